-- The drift monitor reads a tenant's recent predictions organization by organization, on
-- predictions_org_created: no index of its own for the write path to maintain.
DROP INDEX predictions_tenant_created;
