-- The portfolio's read model: each company's current risk in a row of its own (`company_risk`), maintained by
-- the commit that scores it (src/db/predictions.rs, under the company's row lock) instead of probed from the
-- history on every read.
--
-- `risk` is the company's state per prediction type — its latest prediction (by reporting period, then
-- creation) and the one of the period before (src/db/company_risk.rs) — and `probability` / `level` are the
-- current risk's (the latest of the two types, whichever was scored last), for the portfolio's sort and filter.
-- The riskiest page of an organization (or of a tenant) is then an index range scan of one page.
--
-- A table of its own rather than columns of `companies`: an update that changes an indexed column writes an
-- entry in every index of its table, and `companies` has eight (measured with pgbench, 16 companies per
-- transaction: 1,480 transactions/s on companies with the risk indexes, 2,860 on this table, 3,450 on
-- companies without them). Every company has its row, from its creation on (a trigger), so that the unscored
-- ones sort last in the same index.
CREATE TABLE company_risk (
    tenant_id        uuid NOT NULL,
    company_id       uuid NOT NULL,
    organization_id  uuid NOT NULL,
    risk             jsonb,
    probability      double precision,
    level            risk_level,
    PRIMARY KEY (tenant_id, company_id)
);

INSERT INTO company_risk (tenant_id, company_id, organization_id)
SELECT tenant_id, id, organization_id FROM companies;

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
UPDATE company_risk r SET risk = s.risk, probability = s.probability, level = s.level
FROM per_company s
WHERE r.tenant_id = s.tenant_id AND r.company_id = s.company_id;

-- The portfolio's riskiest-first pages: of one organization, and of a tenant.
CREATE INDEX company_risk_org ON company_risk (tenant_id, organization_id, probability DESC NULLS LAST,
                                               company_id DESC);
CREATE INDEX company_risk_tenant ON company_risk (tenant_id, probability DESC NULLS LAST, company_id DESC);

-- A company's row is created with it, and deleted with it (as its history is, by the trigger of
-- 20261202000001).
CREATE FUNCTION company_risk_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO company_risk (tenant_id, company_id, organization_id)
    SELECT tenant_id, id, organization_id FROM added;
    RETURN NULL;
END $$;
CREATE TRIGGER companies_risk_insert AFTER INSERT ON companies REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION company_risk_insert();

CREATE OR REPLACE FUNCTION delete_company_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each statement sees what was committed before it, so a commit that held the company's lock until
    -- this deletion got it is deleted too.
    DELETE FROM predictions p
    USING filings f
    WHERE f.tenant_id = OLD.tenant_id AND f.company_id = OLD.id
      AND p.tenant_id = f.tenant_id AND p.filing_id = f.id;
    DELETE FROM filings WHERE tenant_id = OLD.tenant_id AND company_id = OLD.id;
    DELETE FROM company_risk WHERE tenant_id = OLD.tenant_id AND company_id = OLD.id;
    RETURN NULL;
END
$$;

-- How many companies an organization has at each current risk level (NULL: not scored yet), for the
-- portfolio's total without counting rows. Written as deltas, never updated in place: concurrent commits of
-- one organization would otherwise queue on its counter row. A company's row added or deleted adds its delta
-- (the triggers below); the commit that changes companies' levels adds theirs in the statement that changes
-- them (src/db/predictions.rs). Readers sum the rows, and fold them into one per level now and then
-- (src/db/portfolio.rs). No foreign keys: the rows of a deleted organization sum to zero and are folded away.
CREATE TABLE portfolio_tally (
    tenant_id        uuid NOT NULL,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    organization_id  uuid NOT NULL,
    risk_level       risk_level,
    delta            bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX portfolio_tally_scope ON portfolio_tally (tenant_id, organization_id);

INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
SELECT tenant_id, organization_id, level, count(*) FROM company_risk GROUP BY 1, 2, 3;

CREATE FUNCTION portfolio_tally_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
    SELECT tenant_id, organization_id, level, count(*) FROM added GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE FUNCTION portfolio_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
    SELECT tenant_id, organization_id, level, -count(*) FROM removed GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE TRIGGER company_risk_tally_insert AFTER INSERT ON company_risk REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION portfolio_tally_insert();
CREATE TRIGGER company_risk_tally_delete AFTER DELETE ON company_risk REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION portfolio_tally_delete();
