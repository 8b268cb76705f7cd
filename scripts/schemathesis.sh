#!/usr/bin/env bash
# Schema fuzzing: schemathesis (from PyPI) generates requests from the service's own OpenAPI document and sends
# them with a real token; the run passes only if no response is a 5xx. The service runs on its own database,
# NATS prefix and Redis prefix (removed afterwards), with the demo tenant. The logout routes are left out, so
# that the token stays signed in for the whole run.
#
#   scripts/schemathesis.sh [SECONDS]      (default 240: the run's time budget)
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-240}

log() { printf '[schemathesis] %s\n' "$*"; }

scripts/services.sh
if ! command -v st >/dev/null 2>&1; then
    log "installing schemathesis"
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi
# The binary the integration tests run, built as scripts/test.sh's last pass builds it (nothing to do after it).
cargo test --workspace --locked --all-features --test api --no-run
bin=$PWD/target/debug/pdscore
# The load tool deletes the run's NATS streams afterwards (built with the features the test build unified, so
# that the service's library is not compiled again).
cargo build --workspace --locked --all-features --bin pdscore-load
load=$PWD/target/debug/pdscore-load

id=st$(date +%s)$$
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export DATABASE_URL="${server_url%/*}/pdscore_$id"
export PDSCORE__NATS__PREFIX=$id PDSCORE__REDIS__KEY_PREFIX="test:$id" PDSCORE__STORAGE__DIR="$work/uploads"
export PDSCORE__APPLICATION__LISTEN=127.0.0.1:$port PDSCORE__APPLICATION__LOG_FORMAT=json
# Generous throttles: the run signs in once, but it calls the throttled routes as often as any other.
export PDSCORE__AUTH__LOGIN_ATTEMPTS_PER_ADDRESS=100000 PDSCORE__AUTH__REFRESHES_PER_ADDRESS=100000
export PDSCORE__AUTH__PASSWORD_CHANGES_PER_ACCOUNT=100000 PDSCORE__PIPELINE__DEFAULT_RATE_PER_SECOND=100000
"$bin" generate-jwt-key --out "$work/key.pem" >/dev/null
export PDSCORE__AUTH__JWT_PRIVATE_KEY_PATH=$work/key.pem

server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    psql "${server_url%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"pdscore_$id\" WITH (FORCE)" >/dev/null 2>&1 || true
    "$load" drop-streams >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

psql "${server_url%/*}/postgres" -qc "CREATE DATABASE \"pdscore_$id\"" >/dev/null
"$bin" migrate >/dev/null
accounts=$("$bin" demo-setup)
read -r email password < <(awk '$1 == "super_admin" { print $2, $3 }' <<<"$accounts")
"$bin" serve >"$work/service.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break
    sleep 0.5
done
token=$(curl -fsS "http://127.0.0.1:$port/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')

log "fuzzing every operation but logout for ${budget}s"
status=0
st run "http://127.0.0.1:$port/api/v1/openapi.json" \
    --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $token" \
    --exclude-path-regex 'logout' \
    --checks not_a_server_error \
    --max-time "$budget" \
    --request-timeout 30 \
    --seed 24 \
    --no-color || status=$?
if [ "$status" -ne 0 ]; then
    log "responses >= 500 (or the run failed); the service's errors:"
    grep -E '"level":"(ERROR|WARN)"' "$work/service.log" | tail -40 || true
fi
exit "$status"
