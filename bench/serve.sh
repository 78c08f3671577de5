#!/usr/bin/env bash
# Benchmark of `airlock serve` against the distribution server (Debian's docker-registry) serving
# the same content on loopback, and of `airlock push` against `skopeo copy`.
#
# Content: one image with a 100 MB incompressible layer plus 27 tiny layers, so its manifest is
# about 4 KB. It is pushed to docker-registry, packed with `airlock pack`, and served by both:
#   1. engine pull time (docker pull after docker rmi; median of 3)
#   2. blob throughput with 1, 8 and 64 concurrent clients (wrk, 8 s each): the 100 MB blob (MB/s)
#      and the ~4 KB manifest (requests/s); peak RSS of each server over the whole run
#   3. airlock push of the bundle vs skopeo copy (registry to registry, and from the bundle as an
#      oci-archive) into an empty docker-registry (median of 3)
# Prints markdown tables (BENCHMARKS.md). Everything stays on 127.0.0.1.
#
# Usage: bench/serve.sh [SECONDS]   (wrk duration per cell, default 8)
# Needs: docker (engine running), docker-registry, skopeo, wrk (`apt-get install wrk`), python3.
set -euo pipefail

DURATION="${1:-8}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/airlock-bench-serve.XXXXXX)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
cleanup() {
    bench_stop
    docker rmi -f "$REG/bench/big:1" "$SRV/bench/big:1" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "wrk is missing: scripts/install-deps bench" >&2; exit 3; }

airlock_bin

RPORT=$(free_port)
REG="127.0.0.1:$RPORT"
mkdir -p "$WORK/dist"
start_registry "$WORK/dist" "$RPORT"
DISTPID=$LAST_PID

echo "== generating the image (100 MB layer + 27 small ones)"
python3 - "$WORK/oci" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(b)
    return "sha256:" + d, len(b)
layers, diff_ids = [], []
for i in range(28):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = os.urandom(100_000_000) if i == 0 else f"layer {i}\n".encode()
        info = tarfile.TarInfo(f"data/layer{i}.bin")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        t.addfile(info, io.BytesIO(data))
    raw = raw.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    d, s = put(gzip.compress(raw, compresslevel=1, mtime=0))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})
config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/data/none"]},
          "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": [{"created_by": "bench"}] * 28}
cd, cs = put(json.dumps(config).encode())
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": layers}).encode()
md, ms = put(manifest)
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{out}/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}, open(f"{out}/index.json", "w"))
print(f"  manifest {ms} bytes, big layer {layers[0]['size'] / 1e6:.1f} MB ({layers[0]['digest']})")
open(f"{out}/../big.digest", "w").write(layers[0]["digest"])
PY
BIG=$(cat "$WORK/big.digest")
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/oci:1" "docker://$REG/bench/big:1"

echo "== airlock pack"
AIRLOCK_CACHE="$WORK/cache" "$AIRLOCK" pack --image "$REG/bench/big:1" -o "$WORK/bundle.tar" -q
SPORT=$(free_port)
SRV="127.0.0.1:$SPORT"
"$AIRLOCK" serve "$WORK/bundle.tar" --addr "$SRV" --quiet >"$WORK/serve.out" 2>&1 &
SERVEPID=$!
BENCH_PIDS+=("$SERVEPID")
wait_port "$SPORT"

hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
median() { python3 -c 'import sys, statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

echo "== engine pull (median of 3)"
declare -A PULL
for name in dist airlock; do
    host=$REG; [ "$name" = airlock ] && host=$SRV
    times=()
    for _ in 1 2 3; do
        docker rmi -f "$host/bench/big:1" >/dev/null 2>&1 || true
        s=$(date +%s.%N)
        docker pull -q "$host/bench/big:1" >/dev/null
        times+=("$(echo "$(date +%s.%N) - $s" | bc -l)")
    done
    docker rmi -f "$host/bench/big:1" >/dev/null 2>&1 || true
    PULL[$name]=$(median "${times[@]}")
    printf '  %-8s %.2f s\n' "$name" "${PULL[$name]}"
done

echo "== wrk (${DURATION} s per cell)"
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
declare -A RES
# wrk_cell NAME HOST PATH CONNS KIND: KIND blob -> MB/s, manifest -> requests/s
wrk_cell() {
    local threads=2; [ "$4" = 1 ] && threads=1
    local out
    out=$(wrk -t "$threads" -c "$4" -d "${DURATION}s" -H "$ACCEPT" "http://$2$3")
    if [ "$5" = blob ]; then
        RES[$1,$5,$4]=$(echo "$out" | awk '/Transfer\/sec/ {v=$2; if (v ~ /GB/) {sub("GB","",v); v*=1000} else if (v ~ /MB/) {sub("MB","",v)} else if (v ~ /KB/) {sub("KB","",v); v/=1000}; print v}')
    else
        RES[$1,$5,$4]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    fi
    if echo "$out" | grep -q "Non-2xx"; then echo "  $1 $5 c=$4: non-2xx answers:"; echo "$out"; exit 1; fi
    printf '  %-8s %-8s c=%-3s %s\n' "$1" "$5" "$4" "${RES[$1,$5,$4]}"
}
for c in 1 8 64; do
    wrk_cell dist "$REG" "/v2/bench/big/blobs/$BIG" "$c" blob
    wrk_cell airlock "$SRV" "/v2/bench/big/blobs/$BIG" "$c" blob
    wrk_cell dist "$REG" "/v2/bench/big/manifests/1" "$c" manifest
    wrk_cell airlock "$SRV" "/v2/bench/big/manifests/1" "$c" manifest
done
RSS_DIST=$(hwm "$DISTPID")
RSS_AIRLOCK=$(hwm "$SERVEPID")

echo "== push into an empty docker-registry (median of 3)"
declare -A PUSH
push_run() { # NAME COMMAND...; a fresh registry per run, on $TPORT
    local name=$1; shift
    local times=()
    for n in 1 2 3; do
        TPORT=$(free_port)
        start_registry "$WORK/target-$name-$n" "$TPORT"
        local cmd=("${@//TARGET/127.0.0.1:$TPORT}")
        s=$(date +%s.%N)
        "${cmd[@]}" >/dev/null
        times+=("$(echo "$(date +%s.%N) - $s" | bc -l)")
        kill "$LAST_PID"
    done
    PUSH[$name]=$(median "${times[@]}")
    printf '  %-22s %.2f s\n' "$name" "${PUSH[$name]}"
}
push_run airlock "$AIRLOCK" push "$WORK/bundle.tar" --to TARGET/p -q
push_run skopeo-registry skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false "docker://$REG/bench/big:1" "docker://TARGET/p/bench/big:1"
push_run skopeo-oci-archive skopeo copy --quiet --dest-tls-verify=false "oci-archive:$WORK/bundle.tar:1" "docker://TARGET/p/bench/big:1"

echo
echo "| measure | docker-registry | airlock serve | airlock / registry |"
echo "| --- | ---: | ---: | ---: |"
printf '| engine pull, 100 MB image (s, lower is better) | %.2f | %.2f | %.2fx |\n' "${PULL[dist]}" "${PULL[airlock]}" "$(echo "${PULL[airlock]}/${PULL[dist]}" | bc -l)"
for c in 1 8 64; do
    printf '| 100 MB blob, %s clients (MB/s) | %.0f | %.0f | %.2fx |\n' "$c" "${RES[dist,blob,$c]}" "${RES[airlock,blob,$c]}" "$(echo "${RES[airlock,blob,$c]}/${RES[dist,blob,$c]}" | bc -l)"
done
for c in 1 8 64; do
    printf '| 4 KB manifest, %s clients (requests/s) | %.0f | %.0f | %.2fx |\n' "$c" "${RES[dist,manifest,$c]}" "${RES[airlock,manifest,$c]}" "$(echo "${RES[airlock,manifest,$c]}/${RES[dist,manifest,$c]}" | bc -l)"
done
printf '| peak RSS over the whole run (MB) | %.1f | %.1f | %.2fx |\n' "$(echo "$RSS_DIST/1024" | bc -l)" "$(echo "$RSS_AIRLOCK/1024" | bc -l)" "$(echo "$RSS_AIRLOCK/$RSS_DIST" | bc -l)"
echo
echo "| push into an empty docker-registry | time (s) | vs skopeo copy (registry) |"
echo "| --- | ---: | ---: |"
for n in airlock skopeo-registry skopeo-oci-archive; do
    printf '| %s | %.2f | %.2fx |\n' "$n" "${PUSH[$n]}" "$(echo "${PUSH[$n]}/${PUSH[skopeo-registry]}" | bc -l)"
done
