#!/usr/bin/env bash
# One command from a fresh clone to a running service: starts (or installs) PostgreSQL, Redis and NATS,
# builds the service, migrates the database, creates the demo tenant and prints how to sign in, then serves
# on http://127.0.0.1:8080 until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust >= 1.95 (https://rustup.rs)" >&2; exit 1; }
scripts/services.sh
echo "[quickstart] building (the first build takes several minutes)"
cargo build --locked --bin pdscore
bin=${CARGO_TARGET_DIR:-target}/debug/pdscore
# A persistent signing key, so that tokens survive restarts of the service.
key=var/jwt-signing-key.pem
[ -f "$key" ] || "$bin" generate-jwt-key --out "$key"
export PDSCORE__AUTH__JWT_PRIVATE_KEY_PATH="$PWD/$key"
"$bin" migrate
echo
echo "================ demo account ================"
"$bin" demo-setup
echo "=============================================="
echo "health:  curl -s http://${LISTEN_ADDR:-127.0.0.1:8080}/health"
echo "metrics: curl -s http://${LISTEN_ADDR:-127.0.0.1:8080}/metrics"
echo "API docs: http://${LISTEN_ADDR:-127.0.0.1:8080}/api/v1/docs/"
echo "dashboard: http://${LISTEN_ADDR:-127.0.0.1:8080}/app/ (sign in with an account above)"
echo
exec "$bin" serve
