#!/usr/bin/env bash
# Benchmark of the offline start: the time from a bundle file to a healthy stack.
#   airlock:  airlock up bundle.tar --dir D   (load of what is missing, every blob hashed, compose up, wait
#             until every service is healthy, check)
#   by hand:  docker load -i save.tar && docker compose up -d --pull never --wait   (the seed guide's
#             path, with Compose v2's own wait for health)
# Three services (db <- app <- web, each `depends_on: condition: service_healthy`), each a FROM scratch
# image with busybox (httpd, wget healthcheck every second) and a data layer of text-like content,
# built on the engine under test, pushed to Debian's docker-registry on loopback and packed from there.
# Run it once per engine (DOCKER_HOST); prints a markdown row.
#
# Usage: bench/up.sh [SCALE]   (default 0.5: data layers of 50, 75 and 25 MB). Needs: docker, docker
# compose (v2), docker-registry, busybox-static, python3, bc.
set -euo pipefail

SCALE="${1:-0.5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/airlock-bench-up.XXXXXX)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PORT="$(free_port)"
REG="127.0.0.1:${PORT}"
WEB_PORT="$(free_port)"
PROJECT=airlock-bench-up
SERVICES=(db app web)

refs() { for s in "${SERVICES[@]}"; do echo "$REG/bench-up/$s:1"; done; }
down() {
    docker compose -p "$PROJECT" -f "$WORK/project/compose.yaml" down -t 1 >/dev/null 2>&1 || true
}
rmi_all() { for r in $(refs); do docker rmi -f "$r" >/dev/null 2>&1 || true; done; }
cleanup() {
    down
    bench_stop
    rmi_all
    rm -rf "$WORK"
}
trap cleanup EXIT
airlock_bin
export AIRLOCK_CACHE="$WORK/cache" NO_COLOR=1

echo "== starting docker-registry on $REG"
start_registry "$WORK" "$PORT"

echo "== building the images (scale $SCALE)"
mkdir -p "$WORK/ctx" "$WORK/project"
busybox=/bin/busybox
[ -x "$busybox" ] || busybox=/usr/bin/busybox
cp "$busybox" "$WORK/ctx/busybox"
declare -A MB=([db]=100 [app]=150 [web]=50) HPORT=([db]=8081 [app]=8082 [web]=8080)
for s in "${SERVICES[@]}"; do
    python3 - "$WORK/ctx/$s.bin" "$(echo "${MB[$s]} * $SCALE * 1000000 / 1" | bc)" "$s" <<'EOF'
import random, sys, base64
path, n, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rnd = random.Random(seed)
words = [base64.b32encode(rnd.randbytes(rnd.randint(2, 9))).decode().lower() for _ in range(5000)]
with open(path, "w") as f:
    size = 0
    while size < n:
        line = " ".join(rnd.choice(words) for _ in range(12)) + "\n"
        f.write(line)
        size += len(line)
EOF
    printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCOPY %s.bin /data/%s.bin\n' "$s" "$s" >"$WORK/ctx/Dockerfile.$s"
    docker build -q -t "$REG/bench-up/$s:1" -f "$WORK/ctx/Dockerfile.$s" "$WORK/ctx" >/dev/null
    docker push -q "$REG/bench-up/$s:1" >/dev/null 2>&1 || skopeo copy --quiet --dest-tls-verify=false \
        "docker-daemon:$REG/bench-up/$s:1" "docker://$REG/bench-up/$s:1"
done

svc() { # NAME PORT DEPENDS
    printf '  %s:\n    image: %s/bench-up/%s:1\n' "$1" "$REG" "$1"
    printf '    command: ["sh", "-c", "mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p %s -h /www"]\n' "$1" "$2"
    printf '    healthcheck:\n      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:%s/"]\n      interval: 1s\n      timeout: 2s\n      retries: 60\n' "$2"
    [ -z "$3" ] || printf '    depends_on:\n      %s:\n        condition: service_healthy\n' "$3"
}
{
    echo "name: $PROJECT"
    echo "services:"
    svc db "${HPORT[db]}" ""
    svc app "${HPORT[app]}" db
    svc web "${HPORT[web]}" app
    printf '    ports: ["127.0.0.1:%s:%s"]\n' "$WEB_PORT" "${HPORT[web]}"
} >"$WORK/project/compose.yaml"

echo "== packing the bundle and the docker save archive"
(cd "$WORK/project" && "$AIRLOCK" pack -q -o "$WORK/bundle.tar")
# shellcheck disable=SC2046
docker save -o "$WORK/save.tar" $(refs)
rmi_all
ls -l "$WORK"/*.tar | awk '{printf "  %-40s %8.1f MB\n", $NF, $5/1e6}'

by_hand() {
    docker load -q -i "$WORK/save.tar" &&
        docker compose -p "$PROJECT" -f "$WORK/project/compose.yaml" up -d --pull never --wait
}

echo "== bundle to a healthy stack (nothing on the engine)"
cat "$WORK"/*.tar >/dev/null   # page cache warm for both
t airlock_up "$AIRLOCK" up -q "$WORK/bundle.tar" --dir "$WORK/offline"
docker compose -p "$PROJECT" -f "$WORK/offline/compose.yaml" down -t 1 >/dev/null 2>&1
rmi_all
t by_hand by_hand
down
rmi_all

echo
echo "Engine $(docker version -f '{{.Server.Version}}'), $(docker info -f '{{.Driver}}{{range .DriverStatus}}{{if eq (index . 0) "driver-type"}} (containerd image store){{end}}{{end}}'), $(docker compose version --short), bundle $(stat -c %s "$WORK/bundle.tar" | awk '{printf "%.0f MB", $1/1e6}'), $(nproc) CPUs"
echo
echo "| run | airlock up (s) | docker load -i + compose up --wait (s) | ratio |"
echo "| --- | ---: | ---: | ---: |"
printf '| bundle to healthy | %.2f | %.2f | %.2fx |\n' "${T[airlock_up]}" "${T[by_hand]}" "$(echo "${T[airlock_up]}/${T[by_hand]}" | bc -l)"
