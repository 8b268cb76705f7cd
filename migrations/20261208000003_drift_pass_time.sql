-- When a tenant's last drift pass ran (whichever instance ran it): the other instances skip the tenant until
-- half their interval has gone by, so a fleet shares the passes instead of repeating them.
ALTER TABLE drift_progress ADD COLUMN passed_at timestamptz;
