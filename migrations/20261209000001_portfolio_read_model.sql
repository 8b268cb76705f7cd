-- The portfolio's read model: each company's current risk on its own row, maintained by the commit that scores
-- it (src/db/predictions.rs, under the company's row lock) instead of probed from the history on every read.
--
-- `risk` is the company's state per prediction type — its latest prediction (by reporting period, then
-- creation) and the one of the period before (src/db/company_risk.rs) — and `risk_probability` /
-- `risk_level` are the current risk's (the latest of the two types, whichever was scored last), for the
-- portfolio's sort and filter. The riskiest page of an organization (or of a tenant) is then an index range
-- scan of one page.
ALTER TABLE companies
    ADD COLUMN risk jsonb,
    ADD COLUMN risk_probability double precision,
    ADD COLUMN risk_level risk_level;

-- The state of the companies scored so far, from their history (the reads the portfolio made until now).
WITH ranked AS (
    SELECT p.*, row_number() OVER w AS n,
           first_value((p.period_year, coalesce(p.period_quarter, 0))) OVER w AS latest_period
    FROM predictions p
    WHERE NOT p.is_shadow
    WINDOW w AS (PARTITION BY p.tenant_id, p.company_id, p.prediction_type
                 ORDER BY p.period_year DESC, p.period_quarter DESC, p.created_at DESC, p.id DESC)
),
latest AS (SELECT * FROM ranked WHERE n = 1),
previous AS (
    SELECT DISTINCT ON (tenant_id, company_id, prediction_type) *
    FROM ranked
    WHERE (period_year, coalesce(period_quarter, 0)) < latest_period
    ORDER BY tenant_id, company_id, prediction_type, period_year DESC, period_quarter DESC, created_at DESC, id DESC
),
per_type AS (
    SELECT l.tenant_id, l.company_id, l.prediction_type, l.created_at, l.id, l.probability, l.risk_level,
           jsonb_build_object(
               'latest', jsonb_build_object(
                   'id', l.id, 'year', l.period_year, 'quarter', l.period_quarter, 'probability', l.probability,
                   'level', l.risk_level, 'rating', l.implied_rating,
                   'model', l.model_name || '@' || l.model_version, 'created_at', l.created_at),
               'previous', CASE WHEN p.id IS NOT NULL THEN jsonb_build_object(
                   'id', p.id, 'year', p.period_year, 'quarter', p.period_quarter, 'probability', p.probability,
                   'created_at', p.created_at) END) AS state
    FROM latest l
    LEFT JOIN previous p USING (tenant_id, company_id, prediction_type)
),
per_company AS (
    SELECT tenant_id, company_id,
           jsonb_object_agg(prediction_type::text, state) AS risk,
           (array_agg(probability ORDER BY created_at DESC, id DESC))[1] AS probability,
           (array_agg(risk_level ORDER BY created_at DESC, id DESC))[1] AS level
    FROM per_type
    GROUP BY tenant_id, company_id
)
UPDATE companies c SET risk = s.risk, risk_probability = s.probability, risk_level = s.level
FROM per_company s
WHERE c.tenant_id = s.tenant_id AND c.id = s.company_id;

-- A company's `updated_at` says when its details changed, not its risk.
DROP TRIGGER companies_updated_at ON companies;
CREATE TRIGGER companies_updated_at BEFORE UPDATE OF symbol, name, sector, market_cap ON companies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The portfolio's riskiest-first pages: of one organization (its id is unique, so it leads), and of a tenant.
-- (The filings' key to companies, whose check once picked an index leading with tenant_id, is gone (see
-- 20261125000001 and 20261202000001); only outcomes and assignments, written one by one, still check one.)
CREATE INDEX companies_org_risk ON companies (organization_id, risk_probability DESC NULLS LAST, id DESC);
CREATE INDEX companies_tenant_risk ON companies (tenant_id, risk_probability DESC NULLS LAST, id DESC);

-- How many companies an organization has at each current risk level (NULL: not scored yet), for the
-- portfolio's total without counting rows. Written as deltas, never updated in place: concurrent commits of
-- one organization would otherwise queue on its counter row. Every statement that creates, deletes or
-- re-rates companies adds its net change (the triggers below); readers sum the rows, and a reader that finds
-- many folds them into one per level (src/db/portfolio.rs). No foreign keys: the rows of a deleted
-- organization sum to zero and are folded away.
CREATE TABLE portfolio_tally (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    organization_id  uuid NOT NULL,
    risk_level       risk_level,
    delta            bigint NOT NULL
);
CREATE INDEX portfolio_tally_scope ON portfolio_tally (tenant_id, organization_id);

INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
SELECT tenant_id, organization_id, risk_level, count(*) FROM companies GROUP BY 1, 2, 3;

CREATE FUNCTION portfolio_tally_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
    SELECT tenant_id, organization_id, risk_level, count(*) FROM added GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE FUNCTION portfolio_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
    SELECT tenant_id, organization_id, risk_level, -count(*) FROM removed GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE FUNCTION portfolio_tally_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
    SELECT tenant_id, organization_id, risk_level, sum(delta)
    FROM (SELECT tenant_id, organization_id, risk_level, -1 AS delta FROM removed
          UNION ALL
          SELECT tenant_id, organization_id, risk_level, 1 FROM added) moves
    GROUP BY 1, 2, 3
    HAVING sum(delta) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER companies_tally_insert AFTER INSERT ON companies REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION portfolio_tally_insert();
CREATE TRIGGER companies_tally_delete AFTER DELETE ON companies REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION portfolio_tally_delete();
CREATE TRIGGER companies_tally_update AFTER UPDATE ON companies REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION portfolio_tally_update();
