#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL, Redis and NATS (started or installed if needed).
# Each test creates and drops its own database and NATS streams, so the suite runs in parallel and leaves
# nothing behind. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust >= 1.95 (https://rustup.rs)" >&2; exit 1; }
cargo test --workspace --all-features --locked "$@"
