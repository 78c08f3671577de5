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
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
REG="127.0.0.1:${PORT}"
IMAGES=(bench/mariadb:10.6 bench/erpnext:v15 bench/nginx:1.25)
REGPID=""

cleanup() {
    [ -n "$REGPID" ] && kill "$REGPID" 2>/dev/null || true
    for i in "${IMAGES[@]}"; do docker rmi -f "$REG/$i" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${AIRLOCK_BIN:-}" ]; then
    AIRLOCK="$AIRLOCK_BIN"   # a release binary built beforehand
else
    echo "== building airlock (release)"
    (cd "$ROOT" && cargo build --release --quiet)
    AIRLOCK="$ROOT/target/release/airlock"
fi

echo "== starting docker-registry on $REG"
mkdir -p "$WORK/storage"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/storage
http:
  addr: $REG
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGPID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

echo "== generating images (scale $SCALE)"
python3 - "$WORK/oci" "$SCALE" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile

out, scale = sys.argv[1], float(sys.argv[2])
random.seed(42)
# Layer sizes in MB (uncompressed), largest first like real images.
images = {
    "mariadb:10.6": [300, 100, 50, 25, 15, 5, 3, 2],
    "erpnext:v15": [420, 160, 60, 40, 20, 10, 10, 5, 3, 2],
    "nginx:1.25": [200, 60, 20, 10, 5, 3, 2],
}
words = [("".join(random.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(random.randint(2, 12)))) for _ in range(4000)]
vocab = " ".join(random.choice(words) for _ in range(1_500_000)).encode()  # ~10 MB of "source code"

def content(n):
    """n bytes that gzip about 2.5-3x, like a mix of text and binaries: vocabulary slices and noise."""
    parts, size = [], 0
    while size < n:
        start = random.randrange(0, len(vocab) - 70000)
        chunk = vocab[start:start + random.randint(20000, 60000)]
        noise = os.urandom(random.randint(400, 1200)).hex().encode()
        parts += [chunk, b"\n", noise, b"\n"]
        size += len(chunk) + len(noise) + 2
    return b"".join(parts)[:n]

os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def put(b):
    d = hashlib.sha256(b).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)

index = []
for n, (name, sizes) in enumerate(images.items()):
    layers, diff_ids = [], []
    for i, mb in enumerate(sizes):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
            left, f = int(mb * scale * 1e6), 0
            while left > 0:
                size = min(left, random.randint(200_000, 4_000_000))
                data = content(size)
                info = tarfile.TarInfo(f"opt/{name.split(':')[0]}/layer{i}/file{f}.txt")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                t.addfile(info, io.BytesIO(data))
                left -= size
                f += 1
        raw = raw.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        d, s = put(gz)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": [{"created_by": "bench"}] * len(sizes)}
    cd, cs = put(json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": layers}
    md, ms = put(json.dumps(manifest).encode())
    index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                  "annotations": {"org.opencontainers.image.ref.name": name}})
    print(f"  {name}: {len(sizes)} layers, {sum(l['size'] for l in layers) / 1e6:.0f} MB compressed", flush=True)
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{out}/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": index}, open(f"{out}/index.json", "w"))
PY
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
