#!/usr/bin/env bash
# Coverage-guided fuzzing of the hostile-input decoders (fuzz/: the NATS message, the spreadsheet reader with
# its upload check, a filing's content and its features): builds the targets with cargo fuzz (libFuzzer) and
# runs each for SECONDS (default 30) from its committed seeds. A crash stops the run with the input that caused
# it (fuzz/artifacts/<target>/); make it a regression test where the code is, then fix it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(nats_message spreadsheet filing_content)

log() { printf '[fuzz] %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install --locked cargo-fuzz --version '^0.13'
fi
# libFuzzer's instrumentation takes nightly compiler flags; this machine's one toolchain is stable, and this
# lets it take them. Rust is memory-safe, so no sanitizer: the fuzzers look for panics, aborts (an allocation
# that a file's declared size asks for), hangs and memory past the limit.
export RUSTC_BOOTSTRAP=1
# The instrumented build shares nothing with the service's; kept outside the checkout, so that the next run on
# this machine (another clone, another CI run) rebuilds only what changed.
target_dir=${PDSCORE_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pdscore/fuzz-target}
cd fuzz
log "building the targets"
cargo fuzz build --sanitizer none --target-dir "$target_dir"
for target in "${targets[@]}"; do
    corpus=$(mktemp -d)
    log "$target for ${seconds}s"
    cargo fuzz run --sanitizer none --target-dir "$target_dir" "$target" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | grep -E '^(#[0-9]+\s+(INITED|DONE)|stat::number_of_executed_units|==[0-9]+==|SUMMARY|Test unit written|thread .* panicked|.*ERROR)' || true
    status=${PIPESTATUS[0]}
    rm -rf "$corpus"
    if [ "$status" -ne 0 ]; then
        log "$target failed: see fuzz/artifacts/$target/"
        exit "$status"
    fi
done
log "no crash"
