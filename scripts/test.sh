#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL, Redis and NATS (started or installed if needed).
# Each test creates and drops its own database and NATS streams, so the suite runs in parallel and leaves
# nothing behind. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh --browser
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust >= 1.95 (https://rustup.rs)" >&2; exit 1; }
if [ $# -gt 0 ]; then
    exec cargo test --workspace --all-features --locked "$@"
fi
# Everything runs in parallel except the tests that kill service processes or drive a browser: those run one
# at a time, after the parallel pass. No test compares latencies (the benchmark does: scripts/bench.sh).
serial=(crash:: fleet:: dashboard::browser_)
cargo test --workspace --all-features --locked -- "${serial[@]/#/--skip=}"
cargo test --workspace --all-features --locked --test api -- --test-threads 1 dashboard::browser_
cargo test --workspace --all-features --locked --test api -- --test-threads 1 crash:: fleet::
