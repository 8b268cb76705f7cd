-- Identity and RBAC: audit rows name the organization they concern, so an organization admin can read the
-- trail of their own organization; and the company list's name search gets an index in its scope.

ALTER TABLE audit_log ADD COLUMN organization_id uuid;
CREATE INDEX audit_log_tenant_org ON audit_log (tenant_id, organization_id, id DESC);
CREATE INDEX audit_log_tenant_id ON audit_log (tenant_id, id DESC);

CREATE INDEX companies_org_name ON companies (tenant_id, organization_id, lower(name));
