#!/usr/bin/env bash
# Time `airlock plan` on the largest compose fixture (most services, then most merged -f files),
# run as its expected list's header says. Target: under 20 ms wall per run. Then the growth with
# project size: 500 and 2000 services, each extending one base and overridden by a second file
# (linear growth is 4x; the table prints the ratio).
# Uses hyperfine when installed (Debian package `hyperfine`), otherwise a timed loop.
#   bench/plan.sh            # release build, 50 runs
#   RUNS=200 bench/plan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures="${AIRLOCK_FIXTURES:-$(cd .. && pwd)/shared/fixtures/compose}"
runs="${RUNS:-50}"

# Pick the largest case: "<services> <files> <expected list>".
best=""
while IFS= read -r list; do
  if grep -q '^# features:.*fragment' "$list"; then continue; fi
  services=$(sed -n 's/^# services: \([0-9]*\).*/\1/p' "$list" | head -1)
  files=$(head -1 "$list" | { grep -o ' -f ' || true; } | wc -l)
  if [ "$files" -eq 0 ]; then files=1; fi
  line="${services:-0} $files $list"
  if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$line" | sort -k1,1n -k2,2n | tail -1)" = "$line" ]; then
    best="$line"
  fi
done < <(find "$fixtures" -name '*.expected-images.txt' | sort)
read -r services files list <<<"$best"
folder="$fixtures/$(printf '%s' "${list#"$fixtures"/}" | cut -d/ -f1)"

args=(plan --json --profile '*')
if head -1 "$list" | grep -q 'files merged in this order'; then
  for f in $(head -1 "$list" | grep -o ' -f [^ )]*' | awk '{print $2}'); do args+=(-f "$folder/$f"); done
else
  args+=(-f "${list%.expected-images.txt}")
fi
env_file=$(sed -n 's/^# env file used for interpolation: \([^ ]*\).*/\1/p' "$list")
if [ -n "$env_file" ] && [ "$env_file" != none ]; then args+=(--env-file "$folder/$env_file"); fi

if [ -n "${AIRLOCK_BIN:-}" ]; then bin="$AIRLOCK_BIN"; else
  cargo build --release --quiet --bin airlock
  bin="$PWD/target/release/airlock"
fi
echo "fixture: ${list#"$fixtures"/} ($services services, $files compose file(s))"
echo "command: airlock ${args[*]}"
env -i PATH="$PATH" HOME="$HOME" "$bin" "${args[@]}" >/dev/null

if command -v hyperfine >/dev/null 2>&1; then
  md=$(mktemp)
  (cd "$folder" && hyperfine --shell=none --warmup 5 --runs "$runs" --export-markdown "$md" \
    "env -i PATH=$PATH HOME=$HOME $bin ${args[*]}" >/dev/null)
  sed -e "s|env -i PATH=[^ ]* HOME=[^ ]* $bin|airlock|" -e "s|$fixtures/||g" "$md"
  mean_ms=$(awk -F'|' 'NR==3 {gsub(/ /,"",$3); split($3,a,"±"); print a[1]}' "$md")
  rm -f "$md"
else
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do env -i PATH="$PATH" HOME="$HOME" "$bin" "${args[@]}" >/dev/null; done
  end=$(date +%s%N)
  mean_ms=$(awk -v ns=$((end - start)) -v n="$runs" 'BEGIN {printf "%.1f", ns / n / 1e6}')
  printf '| command | runs | mean [ms] |\n|:---|---:|---:|\n| airlock %s | %s | %s |\n' "${args[*]}" "$runs" "$mean_ms"
fi
echo

# The same project through Compose v2 (`docker compose config`, which loads the files as airlock
# does but reads no Dockerfile), when its binary is found.
compose="${AIRLOCK_COMPOSE_V2:-}"
for d in "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins" /usr/local/lib/docker/cli-plugins /usr/libexec/docker/cli-plugins; do
  if [ -z "$compose" ] && [ -x "$d/docker-compose" ]; then compose="$d/docker-compose"; fi
done
if [ -n "$compose" ]; then
  cargs=("${args[@]:2}" config --format json)
  (cd "$folder" && env -i PATH="$PATH" HOME="$HOME" "$compose" "${cargs[@]}" >/dev/null)
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do (cd "$folder" && env -i PATH="$PATH" HOME="$HOME" "$compose" "${cargs[@]}" >/dev/null); done
  end=$(date +%s%N)
  compose_ms=$(awk -v ns=$((end - start)) -v n="$runs" 'BEGIN {printf "%.1f", ns / n / 1e6}')
  printf '| command | runs | mean [ms] |\n|:---|---:|---:|\n| docker compose %s | %s | %s |\n' "${cargs[*]}" "$runs" "$compose_ms"
  echo
fi

# Growth with project size.
gen() {
  local dir=$1 n=$2
  mkdir -p "$dir"
  { printf "services:\n  base:\n    image: base:1\n    ports: ['80']\n"
    for i in $(seq 0 $((n - 1))); do printf '  s%d:\n    extends: base\n    environment: [A=1]\n' "$i"; done
  } >"$dir/compose.yaml"
  { printf 'services:\n'
    for i in $(seq 0 $((n - 1))); do printf "  s%d:\n    environment: {B: 2}\n    ports: ['%d:80']\n" "$i" $((1000 + i)); done
  } >"$dir/override.yaml"
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A per
for n in 500 2000; do
  gen "$work/p$n" "$n"
  start=$(date +%s%N)
  for _ in $(seq 10); do "$bin" plan --json -f "$work/p$n/compose.yaml" -f "$work/p$n/override.yaml" >/dev/null; done
  end=$(date +%s%N)
  per[$n]=$(awk -v ns=$((end - start)) 'BEGIN {printf "%.1f", ns / 10 / 1e6}')
done
echo
printf '| services | mean [ms] |\n|---:|---:|\n| 500 | %s |\n| 2000 | %s |\n' "${per[500]}" "${per[2000]}"
awk -v a="${per[500]}" -v b="${per[2000]}" 'BEGIN { printf "2000/500 services: %.1fx (linear is 4x)\n", b / a }'

awk -v m="$mean_ms" 'BEGIN { if (m + 0 < 20) printf "OK: %.1f ms mean wall time (target < 20 ms)\n", m; else { printf "SLOW: %.1f ms mean wall time (target < 20 ms)\n", m; exit 1 } }'
