#!/usr/bin/env bash
# The whole benchmark in one run: the service's paths (HTTP scoring, NATS ingest, a bulk job) and, on the
# same machine and payloads, their ceilings (actix-web JSON echo, the session check in Redis, raw JetStream,
# the default models' scoring, the store's batched inserts). Writes the machine, the commands and the results
# tables into BENCHMARKS.md between its "results" markers (the rest of the file is prose and is kept).
# Last, many tenants sending a little: BENCH_TENANTS tenants, one filing each, then idle until their actors stop.
# Usage: scripts/bench.sh
#   (defaults: BENCH_LEVELS=1,16,64,256 BENCH_SECONDS=10 BENCH_FILINGS=50000 BENCH_COMPANIES=10000 BENCH_ROWS=1000000
#    BENCH_TENANTS=10000 BENCH_PORTFOLIO=100000)
# The dashboard read is measured twice: after the NATS runs (about BENCH_COMPANIES companies in the account's
# organization), and once the organization has been topped up to BENCH_PORTFOLIO companies.
set -euo pipefail
cd "$(dirname "$0")/.."
levels=${BENCH_LEVELS:-1,16,64,256}
seconds=${BENCH_SECONDS:-10}
filings=${BENCH_FILINGS:-50000}
rows=${BENCH_ROWS:-1000000}
tenants=${BENCH_TENANTS:-10000}
universe=${BENCH_COMPANIES:-10000}
portfolio_size=${BENCH_PORTFOLIO:-100000}
idle=60
. scripts/bench-service.sh
bench_prepare all 18180
export PDSCORE__PIPELINE__INGEST_ENABLED=true PDSCORE__PIPELINE__IDLE_TIMEOUT_SECS=$idle
bench_unlimit
records="$work/records.jsonl"
account=(--url "http://$LISTEN_ADDR" --email analyst@demo.example.com)
export PDSCORE_PASSWORD="$password"

echo "[bench] HTTP ceiling: actix-web JSON echo"
"$load" echo-server --listen 127.0.0.1:18190 >/dev/null &
echo_pid=$!
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:18190/health/live >/dev/null 2>&1 && break; sleep 0.1; done
"$load" echo --url http://127.0.0.1:18190 --concurrency "$levels" --seconds "$seconds" --record "$records"
kill "$echo_pid"; wait "$echo_pid" 2>/dev/null || true
echo "[bench] session-check ceiling: the Redis GET of every authenticated request"
"$load" redis --concurrency "$levels" --seconds "$seconds" --record "$records"

bench_serve
echo "[bench] HTTP scoring"
"$load" http "${account[@]}" --concurrency "$levels" --seconds "$seconds" --record "$records"
echo "[bench] stream ceiling: raw JetStream"
"$load" jetstream --count "$filings" --record "$records"
echo "[bench] NATS ingest: $filings filings over 100 companies, then over $universe"
"$load" nats "${account[@]}" --count "$filings" --record "$records"
"$load" nats "${account[@]}" --count "$filings" --companies "$universe" --record "$records"
echo "[bench] persistence ceilings: batched PostgreSQL inserts, then the store's commit of the same batches"
"$load" postgres --count "$filings" --companies "$universe" --record "$records"
# Autovacuum is off on the development machine: what the rows above updated or deleted (the companies' risk,
# the ceilings' tenant) is vacuumed here, as autovacuum would have done meanwhile on a deployment.
psql -q -h 127.0.0.1 -U postgres -d "$db" -c "VACUUM (ANALYZE)"
echo "[bench] alert latency: a steady NATS feed at half the ingest throughput over 1,000 companies"
"$load" alerts "${account[@]}" --seconds "$seconds" --record "$records"
portfolio() {
    echo "[bench] dashboard read: the portfolio's riskiest page, from PostgreSQL then from the Redis cache"
    "$load" portfolio "${account[@]}" --fresh --concurrency "$levels" --seconds "$seconds" --record "$records"
    "$load" portfolio "${account[@]}" --concurrency "$levels" --seconds "$seconds" --record "$records"
}
portfolio
echo "[bench] HTTP scoring, a new company per request"
"$load" http "${account[@]}" --new-company --concurrency "$levels" --seconds "$seconds" --record "$records"
echo "[bench] the portfolio topped up to $portfolio_size companies"
"$load" populate "${account[@]}" --companies "$portfolio_size" --file "$work/portfolio.csv"
portfolio

echo "[bench] bulk job"
"$load" bulk "${account[@]}" --rows "$rows" --file "$work/bulk.csv" --record "$records"

echo "[bench] $tenants tenants, one filing each"
psql -q -h 127.0.0.1 -U postgres -d "$db" -c "
    WITH t AS (INSERT INTO tenants (id, slug, name)
               SELECT gen_random_uuid(), 'scale-' || i, 'Scale ' || i FROM generate_series(1, $tenants) i
               RETURNING id),
         o AS (INSERT INTO organizations (id, tenant_id, name) SELECT gen_random_uuid(), id, 'Scale' FROM t
               RETURNING id, tenant_id)
    INSERT INTO companies (id, tenant_id, organization_id, symbol, name)
    SELECT gen_random_uuid(), tenant_id, id, 'S', 'Scale company' FROM o"
# Rows added behind the service's back: analyzed as autovacuum would (it is off on the development machine).
psql -q -h 127.0.0.1 -U postgres -d "$db" -c "ANALYZE tenants, organizations, companies"
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
actors() { curl -fs "http://$LISTEN_ADDR/metrics" | awk '$1 == "pdscore_tenant_actors" { print $2 }'; }
# RSS once it stops moving (the allocator returns the bulk job's memory for a while after it ends).
settled_rss() {
    local previous=-1 current
    for _ in $(seq 1 90); do
        current=$(rss); [ "$current" = "$previous" ] && break
        previous=$current; sleep 2
    done
    echo "$current"
}
# The allocator's live bytes (jemalloc's stats.allocated): what the actors hold, not what RSS keeps around.
heap() { curl -fs "http://$LISTEN_ADDR/metrics" | awk '$1 == "pdscore_heap_allocated_bytes" { printf "%.0f", $2 }'; }
rss_before=$(settled_rss); actors_before=$(actors); heap_before=$(heap)
"$load" tenants --count "$tenants" --record "$records"
rss_busy=$(rss); actors_busy=$(actors); heap_busy=$(heap)
metrics_bytes=$(curl -fs "http://$LISTEN_ADDR/metrics" | wc -c)
echo "[bench] waiting for the idle tenant actors to stop (idle_timeout_secs $idle)"
for _ in $(seq 1 $((idle * 3))); do [ "$(actors)" = "0" ] && break; sleep 1; done
rss_idle=$(settled_rss); actors_idle=$(actors); heap_idle=$(heap)

peak=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) / hz }' "/proc/$pid/stat")

results="$work/results.md"
{
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') at commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') by"
    echo "\`BENCH_LEVELS=$levels BENCH_SECONDS=$seconds BENCH_FILINGS=$filings BENCH_COMPANIES=$universe BENCH_ROWS=$rows BENCH_TENANTS=$tenants BENCH_PORTFOLIO=$portfolio_size scripts/bench.sh\`."
    echo
    echo "- machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"
    echo "- services: PostgreSQL $(psql -At -h 127.0.0.1 -U postgres -d postgres -c 'SHOW server_version' | cut -d' ' -f1), Redis $(redis-server --version | awk '{ print $3 }' | tr -d 'v='), NATS $(nats-server --version 2>/dev/null | awk '{ print $NF }' || echo '?') — all on the same 2 cores as the service and the load tool"
    echo "- service: release build, default configuration but pipeline.idle_timeout_secs = $idle; the demo tenant's rate limit lifted; peak RSS over the whole run ${peak} MB, CPU ${cpu} s"
    echo
    "$load" report "$records"
    echo
    kb() { awk -v a="$1" -v b="$2" -v n="$tenants" 'BEGIN { printf "%.1f", (b - a) / 1024 / n }'; }
    echo "Many tenants: $tenants tenants with one filing each (the \`tenants\` row above). Live heap (jemalloc's"
    echo "allocated bytes): $((heap_before / 1024)) KB with $actors_before tenant actors before, $((heap_busy / 1024)) KB with $actors_busy"
    echo "actors after the filings were committed, i.e. **$(kb "$heap_before" "$heap_busy") KB per tenant actor** (its state, mailbox,"
    echo "router entry and per-tenant metric series); $((heap_idle / 1024)) KB with $actors_idle actors once they had been idle"
    echo "for ${idle} s and stopped, i.e. $(kb "$heap_before" "$heap_idle") KB per tenant left behind (the metric series, which are never"
    echo "removed). RSS (settled): $rss_before MB before, $rss_busy MB after, $rss_idle MB idle — the allocator keeps freed"
    echo "memory, so RSS moves less than the heap. \`/metrics\` had grown to $((metrics_bytes / 1024)) KB (per-tenant series)."
} >"$results"
awk -v results="$results" '
    /<!-- results:begin -->/ { print; while ((getline line < results) > 0) print line; skip = 1; next }
    /<!-- results:end -->/ { skip = 0 }
    !skip { print }' BENCHMARKS.md >"$work/BENCHMARKS.md"
cp "$work/BENCHMARKS.md" BENCHMARKS.md
cat "$results"
