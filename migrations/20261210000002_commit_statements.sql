-- The commit's statements (src/db/predictions.rs).
--
-- Its lock: a batch's companies locked in one global order, with their risk, and the slugs of the batch's
-- tenants. A function so that PostgreSQL plans its query once per connection and keeps the plan: sent as one
-- simple query after `BEGIN` (one round trip, the ids in its text), the query was planned on every commit
-- (0.39 ms of planning against 0.33 ms of execution per commit, pg_stat_statements at 64 HTTP clients), and a
-- prepared statement would need a round trip of its own after `BEGIN`. Measured with pgbench (one client, 15
-- companies of 100,000, BEGIN, the lock, ROLLBACK): 0.60-0.67 ms as the query's text, 0.26-0.46 ms as this call.
--
-- Rows with a company: the live companies among `companies` (a company deleted meanwhile is not returned, and
-- none can be deleted until the commit), locked in (tenant, id) order so that concurrent batches never deadlock.
-- Rows without one (`id` null): each of `tenants` with its slug.
CREATE FUNCTION lock_companies(tenants uuid[], companies uuid[])
RETURNS TABLE (tenant_id uuid, id uuid, organization_id uuid, symbol text, risk json, level text, slug text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT c.tenant_id, c.id, c.organization_id, c.symbol, r.risk, r.level::text, NULL::text
    FROM companies c
    LEFT JOIN company_risk r ON r.tenant_id = c.tenant_id AND r.company_id = c.id
    WHERE c.tenant_id = ANY(lock_companies.tenants) AND c.id = ANY(lock_companies.companies)
    ORDER BY c.tenant_id, c.id
    FOR UPDATE OF c;
    RETURN QUERY
    SELECT t.id, NULL::uuid, NULL::uuid, NULL::text, NULL::json, NULL::text, t.slug
    FROM tenants t WHERE t.id = ANY(lock_companies.tenants);
END
$$;

-- A company created by a commit (a filing's new company, src/db/predictions.rs) gets its risk row from the
-- commit's write, with the risk its filings give it, rather than an empty row here that the commit then
-- updates (a second version of the row, with an entry in each of its three indexes). Every other company
-- gets its empty row here, as before.
CREATE OR REPLACE FUNCTION company_risk_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO company_risk (tenant_id, company_id, organization_id)
    SELECT tenant_id, id, organization_id FROM added
    ON CONFLICT (tenant_id, company_id) DO NOTHING;
    RETURN NULL;
END $$;
