#!/usr/bin/env bash
# Benchmark of layer patches (src/patch, issue 14) on real upgrades built here from real
# packages at two consecutive releases, each installed into a FROM scratch image by the host
# engine and exported with `docker save`, so the tars are real layer tars:
#   django  Django 5.1.3 -> 5.1.4 (asgiref, sqlparse pinned), pip install --target
#   sci     numpy 2.1.2 -> 2.1.3 and pandas 2.2.2 -> 2.2.3 (their deps pinned): compiled code
#   debian  python3.11, openssl, libxml2, libexpat1, perl: the two newest bookworm versions
#           of each (bookworm vs bookworm-updates/-security), apt-get download + dpkg -x
# For each pair of layer tars (v1 = base, v2 = target) it reports:
#   - gzip: the v2 layer as a gzip blob, which is what a delta carries today
#   - changed: the files that differ or are new in v2, tarred and `zstd -19`: the floor
#   - zstd-whole: `zstd -19` of the whole v2 tar (what the stub patch was)
#   - patch-from: `zstd -19 --long=31 --patch-from=v1.tar v2.tar`, the physical reference
#   - airlock: `airlock patch build v1.tar v2.tar` (checked by `airlock patch apply`, cmp)
#   and the time and peak RSS (/usr/bin/time) of patch-from, airlock build and apply.
# Goals (issue 14): airlock <= 0.2x gzip and <= 1.5x patch-from.
#
# Usage: bench/patch.sh [SCENARIO...]   (default: django sci debian; AIRLOCK_BIN=path skips
#        the release build; KEEP=1 keeps the work directory)
# Needs: docker (engine running), python3 with pip, zstd, gzip, apt-get and dpkg (debian),
# GNU time (/usr/bin/time). Downloads from PyPI and the Debian archive.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/airlock-bench-patch.XXXXXX)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
IMAGES=()
cleanup() {
    for i in "${IMAGES[@]}"; do docker rmi -f "$i" >/dev/null 2>&1 || true; done
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT
airlock_bin
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(django sci debian)

pip_dir() { # DIR PACKAGE==VERSION...
    local dir="$1"; shift
    python3 -m pip install --quiet --disable-pip-version-check --no-compile --no-deps --target "$dir" "$@" 2>&1 \
        | grep -v "Running pip as the 'root' user" || true
}

# The two newest versions of a Debian package in bookworm's suites (oldest first).
deb_versions() {
    apt-cache madison "$1" | awk -F'|' '$3 ~ /bookworm/ {gsub(/ /,"",$2); print $2}' \
        | sort -u | sort -V | tail -n 2
}

deb_dir() { # DIR VERSION_INDEX(1|2) PACKAGE...
    local dir="$1" idx="$2"; shift 2
    mkdir -p "$dir"
    for p in "$@"; do
        local v tmp="$WORK/debs/$p.$idx"
        v="$(deb_versions "$p" | sed -n "${idx}p")"
        [ -n "$v" ] || { echo "no bookworm version of $p (run apt-get update)" >&2; exit 1; }
        echo "$p=$v" >>"$dir.versions"
        mkdir -p "$tmp"
        (cd "$tmp" && apt-get download -q "$p=$v" >/dev/null)
        dpkg -x "$tmp"/*.deb "$dir"
    done
}

prepare() { # SCENARIO -> $WORK/SCENARIO/{v1,v2} directories
    local s="$1" d="$WORK/$1"
    mkdir -p "$d"
    case "$s" in
    django)
        pip_dir "$d/v1" Django==5.1.3 asgiref==3.8.1 sqlparse==0.5.2
        pip_dir "$d/v2" Django==5.1.4 asgiref==3.8.1 sqlparse==0.5.2
        DEST=/usr/local/lib/python3.11/site-packages ;;
    sci)
        local deps=(python-dateutil==2.9.0.post0 pytz==2024.2 tzdata==2024.2 six==1.16.0)
        pip_dir "$d/v1" numpy==2.1.2 pandas==2.2.2 "${deps[@]}"
        pip_dir "$d/v2" numpy==2.1.3 pandas==2.2.3 "${deps[@]}"
        DEST=/usr/local/lib/python3.11/site-packages ;;
    debian)
        command -v apt-cache >/dev/null && command -v dpkg >/dev/null || { echo "debian: needs apt and dpkg" >&2; exit 1; }
        [ -n "$(deb_versions openssl)" ] || apt-get update -qq
        local pkgs=(python3.11 python3.11-minimal libpython3.11-stdlib libpython3.11-minimal libssl3 openssl
            libxml2 libexpat1 perl-base libperl5.36)
        deb_dir "$d/v1" 1 "${pkgs[@]}"
        deb_dir "$d/v2" 2 "${pkgs[@]}"
        DEST=/ ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
}

layer_tar() { # DIR DEST OUT.tar: the layer tar of FROM scratch + COPY DIR DEST
    local dir="$1" dest="$2" out="$3" tag
    tag="airlock-bench-patch/$(basename "$(dirname "$dir")")-$(basename "$dir"):$$"
    mkdir -p "$dir.ctx"
    mv "$dir" "$dir.ctx/root"
    printf 'FROM scratch\nCOPY root %s\n' "$dest" >"$dir.ctx/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$dir.ctx" >/dev/null
    IMAGES+=("$tag")
    mkdir -p "$dir.save"
    docker save "$tag" | tar -C "$dir.save" -xf -
    # The image has one layer: the only layer.tar (classic engine) or blob in the manifest.
    python3 - "$dir.save" "$out" <<'EOF'
import json, os, shutil, sys
d, out = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(d, "manifest.json")))[0]
assert len(m["Layers"]) == 1, m["Layers"]
shutil.move(os.path.join(d, m["Layers"][0]), out)
EOF
    mv "$dir.ctx/root" "$dir"
    rm -rf "$dir.ctx" "$dir.save"
}

# changed_files V1DIR V2DIR OUT.tar: the files of V2 that V1 lacks or that differ.
changed_files() {
    python3 - "$1" "$2" "$3" <<'EOF'
import hashlib, os, sys, tarfile
a, b, out = sys.argv[1:]
def h(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).digest()
with tarfile.open(out, "w") as t:
    for root, _, files in os.walk(b):
        for n in sorted(files):
            p = os.path.join(root, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            rel = os.path.relpath(p, b)
            q = os.path.join(a, rel)
            if not os.path.isfile(q) or os.path.islink(q) or h(p) != h(q):
                t.add(p, arcname=rel)
EOF
}

# timed LABEL CMD...: run CMD under GNU time; sets SECS and RSS_MB.
timed() {
    local label="$1"; shift
    /usr/bin/time -f "%e %M" -o "$WORK/time.$label" "$@" >/dev/null 2>"$WORK/stderr.$label" || { cat "$WORK/stderr.$label" >&2; exit 1; }
    read -r SECS RSS_KB <"$WORK/time.$label"
    RSS_MB=$((RSS_KB / 1024))
}

size() { stat -c %s "$1"; }

ROWS=()
for s in "${SCENARIOS[@]}"; do
    echo "== $s: preparing" >&2
    prepare "$s"
    d="$WORK/$s"
    changed_files "$d/v1" "$d/v2" "$d/changed.tar"
    layer_tar "$d/v1" "$DEST" "$d/v1.tar"
    layer_tar "$d/v2" "$DEST" "$d/v2.tar"
    echo "== $s: measuring ($(size "$d/v2.tar") bytes of tar)" >&2
    gzip -c "$d/v2.tar" >"$d/v2.tar.gz"
    zstd -q -19 -T1 -c "$d/changed.tar" >"$d/changed.tar.zst"
    timed whole zstd -q -19 -T1 -f "$d/v2.tar" -o "$d/v2.tar.zst"
    W_S=$SECS W_M=$RSS_MB
    timed pf zstd -q -19 -T1 --long=31 --patch-from="$d/v1.tar" -f "$d/v2.tar" -o "$d/v2.pf.zst"
    PF_S=$SECS PF_M=$RSS_MB
    timed build "$AIRLOCK" patch build "$d/v1.tar" "$d/v2.tar" "$d/v2.patch"
    B_S=$SECS B_M=$RSS_MB
    timed apply "$AIRLOCK" patch apply "$d/v1.tar" "$d/v2.patch" "$d/v2.rebuilt.tar"
    A_S=$SECS A_M=$RSS_MB
    cmp -s "$d/v2.rebuilt.tar" "$d/v2.tar" || { echo "$s: the rebuilt tar differs" >&2; exit 1; }
    [ ! -f "$d/v2.versions" ] || { echo "$s versions: $(paste -sd' ' "$d/v1.versions") -> $(paste -sd' ' "$d/v2.versions")" >&2; }
    ROWS+=("$(python3 - "$s" "$(size "$d/v2.tar")" "$(size "$d/v2.tar.gz")" "$(size "$d/changed.tar")" \
        "$(size "$d/changed.tar.zst")" "$(size "$d/v2.tar.zst")" "$(size "$d/v2.pf.zst")" "$(size "$d/v2.patch")" \
        "$PF_S" "$PF_M" "$B_S" "$B_M" "$A_S" "$A_M" "$W_S" <<'EOF'
import sys
s, tar, gz, ch, chz, whole, pf, patch = sys.argv[1], *map(int, sys.argv[2:9])
pfs, pfm, bs, bm, as_, am, ws = sys.argv[9:]
print(f"| {s} | {tar/1e6:.1f} MB | {gz:,} | {ch/1e6:.2f} MB / {chz:,} | {whole:,} ({ws} s) | {pf:,} | **{patch:,}** "
      f"| {patch/gz:.3f}x | {patch/chz:.2f}x | {patch/pf:.2f}x | {pfs} s, {pfm} MB | {bs} s, {bm} MB | {as_} s, {am} MB |")
EOF
)")
done

echo "| upgrade | v2 layer tar | gzip blob (today's delta) | changed files: tar / zstd -19 (floor) | zstd-whole -19 (the stub) | zstd --patch-from --long=31 -19 | airlock patch | patch / gzip | patch / changed zstd | patch / patch-from | patch-from time, peak RSS | airlock build time, peak RSS | airlock apply time, peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
