#!/usr/bin/env bash
# HTTP benchmark: serves a release build on a database of its own, lifts the demo tenant's rate limit (to
# measure the service, not the limiter), and runs `pdscore-load http`: single AccuNode annual predictions,
# each a new filing scored and persisted, at fixed concurrency levels.
# Usage: scripts/bench-http.sh [concurrency list, default 1,16,64,256] [seconds per level, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
levels=${1:-1,16,64,256}
seconds=${2:-10}
. scripts/bench-service.sh
bench_prepare http 18182
bench_unlimit
bench_serve
PDSCORE_PASSWORD="$password" "$load" http --url "http://$LISTEN_ADDR" --email analyst@demo.example.com \
    --concurrency "$levels" --seconds "$seconds"
awk '/VmHWM/ { printf "[bench] service peak RSS %.0f MB\n", $2 / 1024 }' "/proc/$pid/status"
