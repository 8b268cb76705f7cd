-- Filings, predictions and alerts are the tables bulk jobs grow by the million. Each row's tenant is already
-- enforced by its composite foreign key to the company (which references the tenant, ON DELETE CASCADE, so
-- deleting a tenant still removes them), so the separate foreign key to tenants only cost a trigger per row.
ALTER TABLE filings DROP CONSTRAINT filings_tenant_id_fkey;
ALTER TABLE predictions DROP CONSTRAINT predictions_tenant_id_fkey;
ALTER TABLE alerts DROP CONSTRAINT alerts_tenant_id_fkey;
