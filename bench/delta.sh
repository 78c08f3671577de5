#!/usr/bin/env bash
# Benchmark of delta bundles and split volumes, on one loopback registry.
#
# Image set: base (one incompressible layer of 90*SCALE MB) and app:1 / app:2 (base + one
# incompressible layer of 10*SCALE MB each): an upgrade that changes 10% of the bytes.
# Measures:
#   1. delta size (`pack --since v1`) vs the changed layer bytes (target: within 1.05x) and vs a full v2
#   2. split: `pack --split-size` vs plain pack (warm cache), and coreutils `split` of the full bundle
#   3. read-back: `airlock verify` of the parts (hashes every part, then every member) vs `verify` of
#      the joined file vs `cat parts | sha256sum`
#
# Usage: bench/delta.sh [SCALE]   (1.0 = ~110 MB; AIRLOCK_BIN=path skips the release build)
# Needs: docker (engine running), docker-registry, python3. Everything stays on 127.0.0.1.
set -euo pipefail

SCALE="${1:-1.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/airlock-bench-delta.XXXXXX)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PORT="$(free_port)"
REG="127.0.0.1:${PORT}"
cleanup() {
    bench_stop
    for i in base:1 app:1 app:2; do docker rmi -f "$REG/bench-delta/$i" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
airlock_bin
export AIRLOCK_CACHE="$WORK/cache" NO_COLOR=1

mkdir -p "$WORK/reg" "$WORK/ctx"
start_registry "$WORK/reg" "$PORT"

mb() { python3 -c "print(max(1,int(float('$SCALE')*$1)))"; }
head -c "$(( $(mb 90) * 1048576 ))" /dev/urandom > "$WORK/ctx/base.bin"
head -c "$(( $(mb 10) * 1048576 ))" /dev/urandom > "$WORK/ctx/v1.bin"
head -c "$(( $(mb 10) * 1048576 ))" /dev/urandom > "$WORK/ctx/v2.bin"
printf 'FROM scratch\nCOPY base.bin /base.bin\n' > "$WORK/ctx/Dockerfile.base"
for v in 1 2; do printf 'FROM %s\nCOPY v%s.bin /app.bin\n' "$REG/bench-delta/base:1" "$v" > "$WORK/ctx/Dockerfile.$v"; done
DOCKER_BUILDKIT=0 docker build -q -t "$REG/bench-delta/base:1" -f "$WORK/ctx/Dockerfile.base" "$WORK/ctx" >/dev/null
for v in 1 2; do DOCKER_BUILDKIT=0 docker build -q -t "$REG/bench-delta/app:$v" -f "$WORK/ctx/Dockerfile.$v" "$WORK/ctx" >/dev/null; done
for i in base:1 app:1 app:2; do docker push -q "$REG/bench-delta/$i" >/dev/null; done

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }
cd "$WORK"
"$AIRLOCK" pack -q --image "$REG/bench-delta/base:1" --image "$REG/bench-delta/app:1" -o v1.tar
"$AIRLOCK" pack -q --image "$REG/bench-delta/base:1" --image "$REG/bench-delta/app:2" -o v2.tar
"$AIRLOCK" pack -q --image "$REG/bench-delta/base:1" --image "$REG/bench-delta/app:2" --since v1.tar -o v2-delta.tar
CHANGED=$("$AIRLOCK" diff v1.tar v2.tar --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"]["new_bytes"])')
FULL=$(stat -c %s v2.tar); DELTA=$(stat -c %s v2-delta.tar)
echo "| delta | changed layer bytes | delta bundle | full v2 bundle | delta / changed | delta / full |"
echo "|---|---|---|---|---|---|"
python3 -c "print(f'| scale $SCALE | {$CHANGED:,} | {$DELTA:,} | {$FULL:,} | {$DELTA/$CHANGED:.4f}x | {$DELTA/$FULL:.3f} |')"

SPLIT=$(( $(mb 16) * 1048576 ))
sync; t0=$(now); "$AIRLOCK" pack -q --image "$REG/bench-delta/base:1" --image "$REG/bench-delta/app:2" -o plain.tar; t1=$(now)
"$AIRLOCK" pack -q --image "$REG/bench-delta/base:1" --image "$REG/bench-delta/app:2" --split-size "$SPLIT" -o parts.tar; t2=$(now)
mkdir -p cu && split -b "$SPLIT" -d -a 3 plain.tar cu/plain.tar.; sync; t3=$(now)
cat parts.tar.* | cmp - plain.tar >/dev/null 2>&1 && SAME=yes || SAME="no (created time differs)"
t4=$(now); "$AIRLOCK" verify -q parts.parts.json; t5=$(now)
"$AIRLOCK" verify -q plain.tar; t6=$(now)
cat parts.tar.* | sha256sum >/dev/null; t7=$(now)
SIZE=$(stat -c %s plain.tar)
rate() { python3 -c "print(f'{$SIZE/1048576/($2-$1):.0f} MiB/s ({$2-$1:.2f}s)')"; }
echo
echo "| split ($((SPLIT/1048576)) MiB parts, $((SIZE/1048576)) MiB bundle) | throughput |"
echo "|---|---|"
echo "| airlock pack (warm cache, one file) | $(rate $t0 $t1) |"
echo "| airlock pack --split-size (warm cache) | $(rate $t1 $t2) |"
echo "| coreutils split of the bundle | $(rate $t2 $t3) |"
echo "| airlock verify parts.json (parts hashed, then every member) | $(rate $t4 $t5) |"
echo "| airlock verify of the joined file | $(rate $t5 $t6) |"
echo "| cat parts \| sha256sum | $(rate $t6 $t7) |"
echo "cat of the parts equals a plain pack: $SAME"
