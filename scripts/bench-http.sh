#!/usr/bin/env bash
# HTTP benchmark: serves a release build on a database of its own, lifts the demo tenant's rate limit (to
# measure the service, not the limiter), and runs `pdscore load http`: single AccuNode annual predictions,
# each a new filing scored and persisted, at fixed concurrency levels.
# Usage: scripts/bench-http.sh [concurrency list, default 1,16,64,256] [seconds per level, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
levels=${1:-1,16,64,256}
seconds=${2:-10}
scripts/services.sh
# PDSCORE_BIN runs another build (e.g. target/debug/pdscore) instead of building the release one.
bin=${PDSCORE_BIN:-target/release/pdscore}
[ -n "${PDSCORE_BIN:-}" ] || cargo build --release --locked --bin pdscore
work=$(mktemp -d)
db="pdscore_bench_http_$$"
port=18182
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export PDSCORE__NATS__PREFIX="benchhttp$$" PDSCORE__REDIS__KEY_PREFIX="bench:$$" PDSCORE__STORAGE__DIR="$work/uploads"
export LISTEN_ADDR="127.0.0.1:$port" PDSCORE__PIPELINE__INGEST_ENABLED=false RUST_LOG=warn
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" migrate >/dev/null
password=$("$bin" demo-setup | awk '$2 == "analyst@demo.example.com" { print $3 }')
psql -q -h 127.0.0.1 -U postgres -d "$db" \
    -c "UPDATE tenants SET rate_limit_per_second = 1000000, rate_limit_burst = 1000000 WHERE slug = 'demo'"
"$bin" serve 2>"$work/service.log" &
pid=$!
for _ in $(seq 1 60); do
    curl -fs "http://$LISTEN_ADDR/health/live" >/dev/null 2>&1 && break
    sleep 1
done
PDSCORE_PASSWORD="$password" "$bin" load http --url "http://$LISTEN_ADDR" --email analyst@demo.example.com \
    --concurrency "$levels" --seconds "$seconds"
awk '/VmHWM/ { printf "[bench] service peak RSS %.0f MB\n", $2 / 1024 }' "/proc/$pid/status"
