-- Indexes whose plans do not depend on fresh statistics.
--
-- A company's latest prediction (the commit's previous-prediction read, the portfolio, the history) is ordered
-- by period, creation time and id: with `id` in the index the newest row is its first entry, so the read
-- stays one index probe whatever plan the statistics suggest. Without it, a generic plan cached while the
-- table was small sorted every prediction of the company (measured: 70-300 rows read per company, 4 ms per
-- commit on 16 companies).
CREATE INDEX predictions_company_latest
    ON predictions (tenant_id, company_id, prediction_type, period_year DESC, period_quarter DESC, created_at DESC,
                    id DESC)
    WHERE NOT is_shadow;
DROP INDEX predictions_company_history;

-- No query reads filings by period, and the foreign-key check from predictions (tenant_id, company_id, id)
-- picked this index over the unique one when its plan was made on a small table, then read every filing
-- of the company for each prediction inserted. The unique index (tenant_id, company_id, id) still serves
-- the company's cascade.
DROP INDEX filings_company_period;

-- Predictions and alerts no longer carry a foreign key to their company: each such key was checked, for
-- every row inserted, by a plan made while the companies table was tiny and kept for the life of the
-- connection, which read the organization's companies through `companies_org_name` (measured: 50-70 pages
-- per prediction). The company is implied: a prediction's key to its filing includes the company
-- (tenant_id, company_id, filing_id), the filing's key references the company, and an alert's key to its
-- prediction includes the company too — so a company's deletion still cascades, through its filings, to its
-- predictions and their alerts. The organization copied onto predictions and alerts is written from the
-- company's row, locked by the same transaction; a company never changes organization.
ALTER TABLE predictions DROP CONSTRAINT predictions_tenant_id_organization_id_company_id_fkey;
ALTER TABLE alerts DROP CONSTRAINT alerts_tenant_id_organization_id_company_id_fkey;
-- It existed only as the target of those two keys.
ALTER TABLE companies DROP CONSTRAINT companies_tenant_id_organization_id_id_key;

-- A filing's key to its company leads with the company id. The check of the old key (tenant_id, company_id)
-- was planned, when the companies table was tiny or had about one company per tenant, with whichever index
-- on companies starts with tenant_id (they all looked equally cheap), and kept: after 10,000 one-company
-- tenants, a bulk job's filings each read all of their tenant's companies through `companies_org_name`
-- (474 pages per filing; ~3,000 rows/s instead of ~15,000). On (id, tenant_id) the id alone finds the row, so
-- this index is never the worse choice; and where the estimates tie, PostgreSQL keeps the newest index,
-- which this one is. (An index added to companies later becomes the newest: it should not lead with
-- tenant_id, or this one should be recreated after it.)
CREATE UNIQUE INDEX companies_id_tenant ON companies (id, tenant_id);
ALTER TABLE filings DROP CONSTRAINT filings_tenant_id_company_id_fkey,
    ADD CONSTRAINT filings_company_fkey FOREIGN KEY (company_id, tenant_id)
        REFERENCES companies (id, tenant_id) ON DELETE CASCADE NOT VALID;
ALTER TABLE filings VALIDATE CONSTRAINT filings_company_fkey;
