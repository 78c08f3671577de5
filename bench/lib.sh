# Shared by the bench/*.sh scripts (sourced): loopback ports, a docker-registry on loopback, the
# airlock binary, and `t` (time a command). Callers set ROOT and WORK first and keep their own
# cleanup trap, which should call `bench_stop` to kill what `start_registry` started.

BENCH_PIDS=()

# free_port: a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: until 127.0.0.1:PORT accepts connections (10 s at most).
wait_port() {
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done
    echo "nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

# start_registry DIR PORT: Debian's docker-registry with filesystem storage in DIR, on
# 127.0.0.1:PORT; sets LAST_PID.
start_registry() {
    mkdir -p "$1/storage"
    printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
        "$1/storage" "$2" >"$1/registry.yml"
    docker-registry serve "$1/registry.yml" >"$1/registry.log" 2>&1 &
    LAST_PID=$!
    BENCH_PIDS+=("$LAST_PID")
    wait_port "$2"
}

# t NAME COMMAND...: run COMMAND (output to $WORK/out.NAME, shown if it fails), its wall seconds
# into T[NAME], printed.
declare -A T
t() {
    local name=$1; shift
    sync
    local s e
    s=$(date +%s.%N)
    "$@" >"$WORK/out.$name" 2>&1 || { cat "$WORK/out.$name"; exit 1; }
    e=$(date +%s.%N)
    T[$name]=$(echo "$e - $s" | bc -l)
    printf '  %-22s %7.2f s\n' "$name" "${T[$name]}"
}

# bench_stop: kill every server start_registry started.
bench_stop() { for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }

# airlock_bin: sets AIRLOCK to $AIRLOCK_BIN, or builds the release binary.
airlock_bin() {
    if [ -n "${AIRLOCK_BIN:-}" ]; then
        AIRLOCK="$(realpath "$AIRLOCK_BIN")"   # absolute: scripts cd into their work directory
    else
        echo "== building airlock (release)"
        (cd "$ROOT" && cargo build --release --quiet --bin airlock)
        AIRLOCK="$ROOT/target/release/airlock"
    fi
}
