#!/usr/bin/env bash
# Benchmark of the offline side: `airlock load` vs `docker load -i`, and `airlock verify` vs
# sha256sum / openssl, on the same image set as bench/pack.sh (3 images, 25 layers, text-like
# content; SCALE 1.0 = ~600 MB compressed), served by Debian's docker-registry on 127.0.0.1.
#   1. full load:     airlock load bundle.tar      vs  docker load -i <docker save of the same images>
#   2. upgrade load:  v2 images share all but their top layer with v1 (v1 loaded first, ~90% of the
#                     layers present): airlock load of the v2 bundle vs docker load -i of the v2 save,
#                     and airlock load of the delta (`pack --since` the v1 bundle) vs the same
#   3. verify:        airlock verify bundle.tar    vs  sha256sum and openssl dgst -sha256 of the same
#                     file (page cache warm for all three)
# Prints a markdown table (BENCHMARKS.md) with ratios against the targets of issue 4.
#
# Usage: bench/load.sh [SCALE]   (default 0.2: vfs engines copy every layer, so full scale needs a
# lot of disk and time). Needs: docker, docker-registry, skopeo, python3, openssl, bc.
set -euo pipefail

SCALE="${1:-0.2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/airlock-bench-load.XXXXXX)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PORT="$(free_port)"
REG="127.0.0.1:${PORT}"
NAMES=(bench-load/mariadb bench-load/erpnext bench-load/nginx)

refs() { for n in "${NAMES[@]}"; do echo "$REG/$n:$1"; done; }
rmi_all() { for v in v1 v2; do for r in $(refs $v); do docker rmi -f "$r" >/dev/null 2>&1 || true; done; done; }
cleanup() {
    bench_stop
    rmi_all
    rm -rf "$WORK"
}
trap cleanup EXIT
airlock_bin
export AIRLOCK_CACHE="$WORK/cache" NO_COLOR=1

echo "== starting docker-registry on $REG"
start_registry "$WORK" "$PORT"

echo "== generating images v1 and v2 (scale $SCALE)"
python3 "$ROOT/bench/images.py" "$WORK/oci" "$SCALE" --upgrade
for n in "${NAMES[@]}"; do
    for v in v1 v2; do
        skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/oci:${n#bench-load/}-$v" "docker://$REG/$n:$v"
    done
done

echo "== packing bundles and docker save archives"
for v in v1 v2; do
    args=()
    for r in $(refs $v); do args+=(--image "$r"); done
    "$AIRLOCK" pack -q "${args[@]}" -o "$WORK/bundle-$v.tar"
    [ "$v" = v1 ] || "$AIRLOCK" pack -q "${args[@]}" --since "$WORK/bundle-v1.tar" -o "$WORK/delta-$v.tar"
    # shellcheck disable=SC2046
    for r in $(refs $v); do docker pull -q "$r" >/dev/null; done
    # shellcheck disable=SC2046
    docker save -o "$WORK/save-$v.tar" $(refs $v)
    rmi_all
done
ls -l "$WORK"/*.tar | awk '{printf "  %-40s %8.1f MB\n", $NF, $5/1e6}'


echo "== full load (nothing on the engine)"
cat "$WORK"/*.tar >/dev/null   # page cache warm for both
t airlock_full "$AIRLOCK" load -q "$WORK/bundle-v1.tar"
rmi_all
t docker_full docker load -q -i "$WORK/save-v1.tar"
rmi_all
t docker_bundle docker load -q -i "$WORK/bundle-v1.tar"   # the airlock bundle, loaded by docker itself (v1 stays)

echo "== upgrade load (v1 on the engine, v2 shares all but the top layers)"
t airlock_upgrade "$AIRLOCK" load -q "$WORK/bundle-v2.tar"
for r in $(refs v2); do docker rmi -f "$r" >/dev/null; done
t airlock_delta "$AIRLOCK" load -q "$WORK/delta-v2.tar"
for r in $(refs v2); do docker rmi -f "$r" >/dev/null; done
t docker_upgrade docker load -q -i "$WORK/save-v2.tar"
rmi_all

echo "== verify throughput (same file, page cache warm)"
BYTES=$(stat -c %s "$WORK/bundle-v1.tar")
cat "$WORK/bundle-v1.tar" >/dev/null
t airlock_verify "$AIRLOCK" verify -q "$WORK/bundle-v1.tar"
t sha256sum sha256sum "$WORK/bundle-v1.tar"
t openssl openssl dgst -sha256 "$WORK/bundle-v1.tar"
mbps() { echo "$BYTES / $1 / 1000000" | bc -l; }

echo
echo "Bundle v1: $(echo "$BYTES/1000000" | bc -l | xargs printf '%.0f') MB, $(nproc) CPUs, $(docker info -f '{{.Driver}}{{range .DriverStatus}}{{if eq (index . 0) "driver-type"}} (containerd image store){{end}}{{end}}') storage, Engine $(docker version -f '{{.Server.Version}}')"
echo
echo "| run | airlock (s) | baseline (s) | ratio | target |"
echo "| --- | ---: | ---: | ---: | --- |"
printf '| full load vs `docker load -i` | %.2f | %.2f | %.2fx | <= 1.1x |\n' "${T[airlock_full]}" "${T[docker_full]}" "$(echo "${T[airlock_full]}/${T[docker_full]}" | bc -l)"
printf '| (`docker load -i` of the airlock bundle itself) | %.2f | %.2f | %.2fx | |\n' "${T[docker_bundle]}" "${T[docker_full]}" "$(echo "${T[docker_bundle]}/${T[docker_full]}" | bc -l)"
printf '| upgrade load (~90%% layers present) vs `docker load -i` | %.2f | %.2f | %.2fx | <= 0.3x |\n' "${T[airlock_upgrade]}" "${T[docker_upgrade]}" "$(echo "${T[airlock_upgrade]}/${T[docker_upgrade]}" | bc -l)"
printf '| upgrade load of the delta (`pack --since` v1) vs `docker load -i` | %.2f | %.2f | %.2fx | <= 0.3x |\n' "${T[airlock_delta]}" "${T[docker_upgrade]}" "$(echo "${T[airlock_delta]}/${T[docker_upgrade]}" | bc -l)"
echo
echo "| verify | time (s) | MB/s | vs openssl |"
echo "| --- | ---: | ---: | ---: |"
for n in airlock_verify sha256sum openssl; do
    printf '| %s | %.2f | %.0f | %.2fx |\n' "$n" "${T[$n]}" "$(mbps "${T[$n]}")" "$(echo "${T[openssl]}/${T[$n]}" | bc -l)"
done
