-- A tenant's portfolio one-year default rate: the trained models' PDs carry their sample's default rate and
-- are shifted to this one (prior shift); NULL keeps the sample's.
ALTER TABLE tenants ADD COLUMN base_rate double precision CHECK (base_rate > 0 AND base_rate < 1);
