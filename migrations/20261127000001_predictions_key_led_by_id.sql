-- A prediction's unique key (tenant_id, company_id, id) — the target of its alerts' foreign key — is now led by
-- the id.
--
-- The commit reads each new filing's previous prediction (the company's latest of its type) and the portfolio
-- reads each company's latest: `predictions_company_latest` answers either with one index probe. But a plan
-- made while the statistics said a company had about one prediction (before the store's first `ANALYZE`, or
-- between two) costed the unique key on (tenant_id, company_id, id) within a hair of it, and PostgreSQL
-- sometimes chose it: every prediction of the company read and sorted, for each filing — a cost that grows
-- with the company's history. Seen with `auto_explain` during `pdscore load nats` (100 companies): 16 % of the
-- commits with batches of 128 and one transaction at a time, 2–3 % with batches of 256 (10 % of the statement's
-- time), each 3–4 times slower (18–31 ms instead of 5–9 ms).
-- Led by the id, the key can no longer serve a company's predictions; it still serves the alerts' key check
-- (the id alone finds the row) and holds tenant_id, so the key stays within the tenant. Same columns, so the
-- alerts' key keeps checking that an alert's company is its prediction's.
ALTER TABLE alerts DROP CONSTRAINT alerts_tenant_id_company_id_prediction_id_fkey;
ALTER TABLE predictions DROP CONSTRAINT predictions_tenant_id_company_id_id_key,
    ADD CONSTRAINT predictions_id_tenant_company UNIQUE (id, tenant_id, company_id);
ALTER TABLE alerts ADD CONSTRAINT alerts_prediction_fkey FOREIGN KEY (prediction_id, tenant_id, company_id)
    REFERENCES predictions (id, tenant_id, company_id) ON DELETE CASCADE NOT VALID;
ALTER TABLE alerts VALIDATE CONSTRAINT alerts_prediction_fkey;
