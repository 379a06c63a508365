#!/bin/bash
# The streaming `burnfit ols` and `predict --data` on a generated table: accuracy against the
# in-memory QR, peak RSS and MB/s. Run from the repository root: `bash benches/streaming_ols.sh [ROWS] [D] [DIR]`
# (default 10,000,000 rows × 20 features, 2.4 GB, in /tmp; the file is deleted at the end).
set -euo pipefail
rows=${1:-10000000}; d=${2:-20}; dir=${3:-/tmp}
file="$dir/burnfit-streaming-ols-$$.csv"
trap 'rm -f "$file" "$file".*' EXIT
cargo build --release --features flex,wgpu,autograd-ref
cargo bench --features flex,wgpu,autograd-ref --bench streaming_ols -- gen "$file" "$rows" "$d"
burnfit="${CARGO_TARGET_DIR:-target}/release/burnfit"
bytes=$(stat -c %s "$file")
cat "$file" > /dev/null # into the page cache: the disk is not what is measured
for vf in 0 0.2; do
  /usr/bin/time -v "$burnfit" ols --data "$file" --target y --val-frac "$vf" > /dev/null 2> "$file.time"
  secs=$(awk -F': ' '/Elapsed/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$file.time")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$file.time")
  echo "--val-frac $vf: $bytes bytes in $secs s = $(awk "BEGIN {print $bytes / 1e6 / $secs}") MB/s, peak RSS $((rss / 1024)) MB"
  rm -f "$file.time"
done
# `predict --data` streams the same file: a model trained on its first 100,000 rows, every row
# predicted into a file beside it (deleted after).
head -100001 "$file" > "$file.head.csv"
"$burnfit" train --data "$file.head.csv" --target y --steps 200 --out "$file.model.json" --force > /dev/null
/usr/bin/time -v "$burnfit" predict --checkpoint "$file.model.json" --data "$file" --out "$file.pred.csv" > /dev/null 2> "$file.time"
secs=$(awk -F': ' '/Elapsed/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$file.time")
rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$file.time")
echo "predict --data: $bytes bytes in $secs s = $(awk "BEGIN {print $bytes / 1e6 / $secs}") MB/s, peak RSS $((rss / 1024)) MB"
rm -f "$file.head.csv" "$file.model.json" "$file.pred.csv" "$file.time"
cargo bench --features flex,wgpu,autograd-ref --bench streaming_ols -- compare "$file"
