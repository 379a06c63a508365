#!/bin/bash
# Out-of-core training on a generated table: the cache build's MB/s, then one epoch at batch
# 4,096 (fused engine on flex, then the autodiff engine) with the cache built: wall time and
# peak RSS. Run from the repository root: `bash benches/out_of_core.sh [ROWS] [D] [DIR]`
# (default 6,000,000 rows × 20 features, ~1.45 GB, in /tmp; the file and its cache are deleted
# at the end). The CSV is read once beforehand, so the page cache holds it: the disk is not
# what is measured.
set -euo pipefail
rows=${1:-6000000}; d=${2:-20}; dir=${3:-/tmp}
file="$dir/burnfit-out-of-core-$$.csv"
cache="$dir/burnfit-out-of-core-cache-$$"
trap 'rm -rf "$file" "$cache"' EXIT
cargo build --release --features flex,wgpu,autograd-ref
cargo bench --features flex,wgpu,autograd-ref --bench streaming_ols -- gen "$file" "$rows" "$d"
burnfit="${CARGO_TARGET_DIR:-target}/release/burnfit"
bytes=$(stat -c %s "$file")
mkdir -p "$cache"
cat "$file" > /dev/null

# Wall seconds and peak RSS (MB) of a `/usr/bin/time -v` report.
measured() {
  local secs rss
  secs=$(awk -F': ' '/Elapsed/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$1")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$1")
  echo "$secs s wall, peak RSS $((rss / 1024)) MB"
}

run() { # label, then the train flags
  local label=$1; shift
  /usr/bin/time -v "$burnfit" train --data "$file" --target y --out-of-core --cache-dir "$cache" \
    --backend flex --batch 4096 --out "$cache/m.json" --force "$@" > "$cache/out" 2> "$cache/time"
  echo "$label: $(measured "$cache/time")"
  grep -E "^out of core|steps in" "$cache/out" | sed 's/^/  /'
}

echo "$rows rows × $d features: $bytes bytes ($(awk "BEGIN {print $bytes / 1e6}") MB)"
run "first run (hash pass, cache build, moments pass, 1 step, report)" --engine fused --steps 1
built=$(grep -oE "built in [0-9.]+ (s|ms)" "$cache/out" | awk '{print ($4 == "ms") ? $3 / 1e3 : $3}')
echo "cache build: $(awk "BEGIN {printf \"%.0f\", $bytes / 1e6 / $built}") MB/s of CSV ($built s)," \
  "cache $(stat -c %s "$cache"/*.burnfit-cache) bytes"
run "one epoch, fused engine (cache built)" --engine fused --epochs 1
run "one epoch, autodiff engine (cache built)" --engine autodiff --epochs 1

# Small files keep the in-memory path: with BASELINE=/path/to/an/older/burnfit, the same
# in-memory runs by both binaries, alternated, 5 times each (median wall seconds): the diabetes
# table (442 rows) and the first 1,000,000 rows of the generated file.
if [[ -n "${BASELINE:-}" ]]; then
  head -n 1000001 "$file" > "$cache/small.csv"
  median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
  compare() { # label, then the train flags
    local label=$1; shift
    local new=() old=()
    for _ in 1 2 3 4 5; do
      for bin in "$burnfit" "$BASELINE"; do
        /usr/bin/time -f %e -o "$cache/t" "$bin" train "$@" --backend flex --out "$cache/s.json" \
          --force > /dev/null
        if [[ $bin == "$burnfit" ]]; then new+=("$(cat "$cache/t")"); else old+=("$(cat "$cache/t")"); fi
      done
    done
    echo "$label: $(printf '%s\n' "${new[@]}" | median) s (baseline $(printf '%s\n' "${old[@]}" | median) s)"
  }
  compare "diabetes, fused, 2000 steps" --data docs/data/diabetes.csv --target progression \
    --engine fused --steps 2000
  compare "diabetes, autodiff, 2000 steps" --data docs/data/diabetes.csv --target progression \
    --engine autodiff --steps 2000
  compare "1,000,000 rows in memory, fused, 1 epoch at 4,096" --data "$cache/small.csv" --target y \
    --engine fused --batch 4096 --epochs 1
fi
