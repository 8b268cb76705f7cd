#!/usr/bin/env bash
# Bulk benchmark: generates an AccuNode annual CSV (default 1,000,000 rows: 100,000 companies × 10 years),
# starts a release build of the service on a database of its own, submits the file with `pdscore-load
# submit` and reports the wall time from upload to the job's completion and the service's peak RSS.
# Usage: scripts/bench-bulk.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
. scripts/bench-service.sh
bench_prepare bulk 18181
"$load" sample --type annual --rows "$rows" --periods 10 --out "$work/bench.csv"
ls -l "$work/bench.csv" | awk '{printf "[bench] file: %.1f MB\n", $5 / 1e6}'
bench_serve
start=$(date +%s.%N)
PDSCORE_PASSWORD="$password" "$load" submit "$work/bench.csv" --type annual \
    --url "http://$LISTEN_ADDR" --email analyst@demo.example.com
end=$(date +%s.%N)
peak=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
# CPU seconds of the service (user + system), from /proc/<pid>/stat fields 14 and 15 (clock ticks).
cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat")
awk -v s="$start" -v e="$end" -v n="$rows" -v p="$peak" -v r="$rss" -v c="$cpu" 'BEGIN {
    printf "[bench] %d rows in %.1f s (%.0f rows/s); service peak RSS %.0f MB (now %.0f MB), service CPU %.1f s\n",
        n, e - s, n / (e - s), p / 1024, r / 1024, c }'
