# Sourced by the benchmark scripts: a release build of the service on a database, NATS prefix, Redis prefix
# and upload directory of its own (its NATS streams deleted), with the demo tenant, all removed on exit.
#   bench_prepare NAME PORT   services up, binary built, environment set, schema migrated, demo tenant created
#                             ($bin, $load — the load generator —, $work, $db and $password — the analyst's — are set)
#   bench_unlimit             lifts the demo tenant's rate limit (to measure the service, not the limiter)
#   bench_serve               starts `pdscore serve` ($pid) and waits until it answers
# PDSCORE_BIN runs another build of the service (e.g. target/debug/pdscore) instead of building the release one;
# the load generator (pdscore-load) is built in release beside it, or taken from PDSCORE_LOAD_BIN.

bench_prepare() {
    local name=$1 port=$2
    scripts/services.sh
    bin=${PDSCORE_BIN:-target/release/pdscore}
    load=${PDSCORE_LOAD_BIN:-target/release/pdscore-load}
    local bins=()
    [ -n "${PDSCORE_BIN:-}" ] || bins+=(--bin pdscore)
    [ -n "${PDSCORE_LOAD_BIN:-}" ] || bins+=(--bin pdscore-load)
    # Both in one build: built one after the other, the service's library was compiled twice in release (the
    # two binaries' dependencies unify to different features): minutes more.
    [ ${#bins[@]} -eq 0 ] || cargo build --release --locked --workspace "${bins[@]}"
    work=$(mktemp -d)
    db="pdscore_bench_${name}_$$"
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
    export PDSCORE__NATS__PREFIX="bench${name}$$" PDSCORE__REDIS__KEY_PREFIX="bench:${name}:$$"
    export PDSCORE__STORAGE__DIR="$work/uploads" LISTEN_ADDR="127.0.0.1:$port"
    export PDSCORE__PIPELINE__INGEST_ENABLED=false RUST_LOG=warn
    trap bench_cleanup EXIT
    "$bin" migrate >/dev/null
    password=$("$bin" demo-setup | awk '$2 == "analyst@demo.example.com" { print $3 }')
}

bench_unlimit() {
    psql -q -h 127.0.0.1 -U postgres -d "$db" \
        -c "UPDATE tenants SET rate_limit_per_second = 1000000, rate_limit_burst = 1000000 WHERE slug = 'demo'"
}

bench_serve() {
    "$bin" serve 2>"$work/service.log" &
    pid=$!
    for _ in $(seq 1 60); do
        curl -fs "http://$LISTEN_ADDR/health/live" >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "[bench] the service did not start; its log:" >&2
    cat "$work/service.log" >&2
    return 1
}

bench_cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    "$load" drop-streams >/dev/null 2>&1 || true
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    # The run's sessions, cached answers and counters in Redis.
    redis-cli -h 127.0.0.1 --scan --pattern "$PDSCORE__REDIS__KEY_PREFIX:*" 2>/dev/null |
        xargs -r redis-cli -h 127.0.0.1 del >/dev/null 2>&1 || true
    rm -rf "$work"
}
