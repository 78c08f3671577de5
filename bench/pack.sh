#!/usr/bin/env bash
# Benchmark of `airlock pack` against the manual way, on one loopback registry.
#
# Generates a realistic image set (3 images, 25 layers, about 600 MB compressed, compressible
# text-like content shaped like a Frappe deployment: a big OS/runtime layer first, then a tail of
# smaller application layers), pushes it to Debian's docker-registry on 127.0.0.1, then times:
#   1. airlock pack, cold cache
#   2. airlock pack, warm cache
#   3. docker pull x3 + docker save (the manual way; the engine does the work)
#   4. skopeo copy per image to docker-archive files
# and prints wall time, output size and peak RSS (/usr/bin/time -v) with ratios.
#
# Usage: bench/pack.sh [SCALE]   (SCALE 1.0 = ~600 MB compressed; 0.1 for a quick run)
#        AIRLOCK_BIN=path/to/airlock bench/pack.sh   (skip the release build)
# Needs: docker (engine running), docker-registry, skopeo, python3, /usr/bin/time. Uses ~15 GB of
# disk on a vfs engine during the docker pull step. Everything stays on 127.0.0.1.
set -euo pipefail

SCALE="${1:-1.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/airlock-bench.XXXXXX)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PORT="$(free_port)"
REG="127.0.0.1:${PORT}"
IMAGES=(bench/mariadb:10.6 bench/erpnext:v15 bench/nginx:1.25)

cleanup() {
    bench_stop
    for i in "${IMAGES[@]}"; do docker rmi -f "$REG/$i" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
airlock_bin

echo "== starting docker-registry on $REG"
start_registry "$WORK" "$PORT"

echo "== generating images (scale $SCALE)"
python3 "$ROOT/bench/images.py" "$WORK/oci" "$SCALE"
for i in "${IMAGES[@]}"; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/oci:${i#bench/}" "docker://$REG/$i"
done
REFS=()
for i in "${IMAGES[@]}"; do REFS+=("$REG/$i"); done

# time_it NAME OUTPUT-FILES... -- COMMAND...: records wall seconds, peak RSS (KiB) and output bytes.
declare -A WALL RSS SIZE
time_it() {
    local name=$1; shift
    local outputs=()
    while [ "$1" != "--" ]; do outputs+=("$1"); shift; done
    shift
    sync
    /usr/bin/time -v -o "$WORK/time.$name" "$@" >"$WORK/out.$name" 2>&1 || { cat "$WORK/out.$name"; exit 1; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.$name" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.$name")
    WALL[$name]=$wall
    RSS[$name]=$rss
    # shellcheck disable=SC2068 # outputs may be glob patterns, expanded now that they exist
    SIZE[$name]=$(du -cb ${outputs[@]} | tail -1 | cut -f1)
    printf '  %-14s %8.1f s  %8.1f MB  peak %6.1f MB\n' "$name" "$wall" "$(echo "${SIZE[$name]}/1000000" | bc -l)" "$(echo "$rss/1024" | bc -l)"
}

echo "== airlock pack, cold cache"
export AIRLOCK_CACHE="$WORK/cache"
args=()
for r in "${REFS[@]}"; do args+=(--image "$r"); done
time_it cold "$WORK/cold.tar" -- "$AIRLOCK" pack "${args[@]}" -o "$WORK/cold.tar" -q
echo "== airlock pack, warm cache"
time_it warm "$WORK/warm.tar" -- "$AIRLOCK" pack "${args[@]}" -o "$WORK/warm.tar" -q

echo "== docker pull + docker save"
for r in "${REFS[@]}"; do docker rmi -f "$r" >/dev/null 2>&1 || true; done
time_it manual "$WORK/save.tar" -- sh -c "for r in ${REFS[*]}; do docker pull -q \$r >/dev/null; done; docker save -o $WORK/save.tar ${REFS[*]}"
for r in "${REFS[@]}"; do docker rmi -f "$r" >/dev/null 2>&1 || true; done

echo "== skopeo copy (one docker-archive per image)"
time_it skopeo "$WORK/skopeo-*.tar" -- sh -c "n=0; for r in ${REFS[*]}; do n=\$((n+1)); skopeo copy --quiet --src-tls-verify=false docker://\$r docker-archive:$WORK/skopeo-\$n.tar:\$r; done"

echo
echo "| run | wall time (s) | output (MB) | peak RSS (MB) | time vs manual | size vs docker save |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for n in cold warm manual skopeo; do
    printf '| %s | %.1f | %.0f | %.1f | %.2fx | %.2fx |\n' "$n" "${WALL[$n]}" "$(echo "${SIZE[$n]}/1000000" | bc -l)" \
        "$(echo "${RSS[$n]}/1024" | bc -l)" "$(echo "${WALL[$n]}/${WALL[manual]}" | bc -l)" "$(echo "${SIZE[$n]}/${SIZE[manual]}" | bc -l)"
done
printf '\nwarm pack is %.1fx faster than cold\n' "$(echo "${WALL[cold]}/${WALL[warm]}" | bc -l)"
echo "(peak RSS of 'manual' is the docker CLI only: the engine does the work in dockerd)"
