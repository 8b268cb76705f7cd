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

-- Predictions and alerts reference their company by its primary key. The foreign key over (tenant_id,
-- organization_id, id) was checked, for every row inserted, by a plan made while the companies table was
-- tiny, which read the organization's companies through `companies_org_name` (measured: 50-70 pages per
-- prediction); PostgreSQL keeps such a plan for the life of the connection. The primary key is the only index
-- matching both columns of the new check. The organization copied onto predictions and alerts is written
-- from the company's row locked by the same transaction, and a company never changes organization.
ALTER TABLE predictions DROP CONSTRAINT predictions_tenant_id_organization_id_company_id_fkey,
    ADD CONSTRAINT predictions_company_fkey FOREIGN KEY (tenant_id, company_id)
        REFERENCES companies (tenant_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE predictions VALIDATE CONSTRAINT predictions_company_fkey;
ALTER TABLE alerts DROP CONSTRAINT alerts_tenant_id_organization_id_company_id_fkey,
    ADD CONSTRAINT alerts_company_fkey FOREIGN KEY (tenant_id, company_id)
        REFERENCES companies (tenant_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE alerts VALIDATE CONSTRAINT alerts_company_fkey;
-- It existed only as the target of those two keys.
ALTER TABLE companies DROP CONSTRAINT companies_tenant_id_organization_id_id_key;
