#!/usr/bin/env bash
# Where the CPU goes on each hot path, before anything is optimised: the release service under the benchmark's
# loads, sampled by perf. For each path, a flame graph of the service process (DWARF call graphs) in
# benches/flamegraphs/<path>.svg, and the whole machine's CPU split by process (the service, PostgreSQL, NATS,
# Redis, the load generator) in benches/flamegraphs/README.md between its "profile" markers.
# Needs perf (Debian's linux-perf) and inferno (`cargo install inferno`); root or perf_event_paranoid <= 1.
# Usage: scripts/profile.sh   (PROFILE_SECONDS=8 PROFILE_FILINGS=30000)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${PROFILE_SECONDS:-8}
filings=${PROFILE_FILINGS:-30000}
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || { echo "inferno not found: cargo install inferno" >&2; exit 1; }
. scripts/bench-service.sh
bench_prepare profile 18280
export PDSCORE__PIPELINE__INGEST_ENABLED=true
bench_unlimit
account=(--url "http://$LISTEN_ADDR" --email analyst@demo.example.com)
export PDSCORE_PASSWORD="$password"
bench_serve
out=benches/flamegraphs
mkdir -p "$out"
split="$work/split.md"
: >"$split"

# profile NAME COMMAND...: runs the load while perf samples the service (call graphs) and the machine (by process).
profile() {
    local name=$1; shift
    echo "[profile] $name"
    perf record -q -F 199 --call-graph dwarf,16384 -p "$pid" -o "$work/$name.data" 2>/dev/null &
    local service=$!
    perf record -q -F 99 -a -o "$work/$name-all.data" 2>/dev/null &
    local machine=$!
    sleep 1
    "$@" >"$work/$name.out"
    kill -INT "$service" "$machine"; wait "$service" "$machine" 2>/dev/null || true
    perf script -i "$work/$name.data" 2>/dev/null | inferno-collapse-perf >"$work/$name.folded"
    inferno-flamegraph --title "pdscore: $name" --minwidth 2 <"$work/$name.folded" >"$out/$name.svg"
    {
        echo "### $name"
        echo
        echo '```'
        awk 'NR <= 10' "$work/$name.out"
        echo '```'
        echo
        echo "| process | share of the machine's samples |"
        echo "|---|--:|"
        perf report -i "$work/$name-all.data" --sort comm --stdio 2>/dev/null |
            awk '/^ +[0-9.]+%/ { gsub("%", "", $1); if ($1 >= 0.5 && shown++ < 8) printf "| %s | %s %% |\n", $2, $1 }'
        echo
        echo "Top frames of the service (self time):"
        echo
        echo '```'
        perf report -i "$work/$name.data" --no-children --sort symbol --stdio 2>/dev/null |
            awk '/^ +[0-9.]+%/ && shown++ < 12 { print substr($0, 1, 140) }'
        echo '```'
        echo
    } >>"$split"
}

profile http "$load" http "${account[@]}" --concurrency 64 --seconds "$seconds"
profile nats-100-companies "$load" nats "${account[@]}" --count "$filings"
profile nats-10000-companies "$load" nats "${account[@]}" --count "$filings" --companies 10000
profile portfolio-fresh "$load" portfolio "${account[@]}" --fresh --concurrency 64 --seconds "$seconds"

notes="$out/README.md"
[ -f "$notes" ] || printf '# Flame graphs\n\n<!-- profile:begin -->\n<!-- profile:end -->\n' >"$notes"
{
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') at commit $(git rev-parse --short HEAD) by \`scripts/profile.sh\` on $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); the load generator and every service on the same cores."
    echo
    cat "$split"
} >"$work/profile.md"
awk -v results="$work/profile.md" '
    /<!-- profile:begin -->/ { print; while ((getline line < results) > 0) print line; skip = 1; next }
    /<!-- profile:end -->/ { skip = 0 }
    !skip { print }' "$notes" >"$work/notes.md"
cp "$work/notes.md" "$notes"
cat "$work/profile.md"
