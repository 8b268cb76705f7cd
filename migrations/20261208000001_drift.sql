-- Drift monitoring: the population stability of each answering model's inputs and PDs, per tenant.

-- The monitor reads a tenant's recent predictions by time.
CREATE INDEX predictions_tenant_created ON predictions (tenant_id, created_at);

-- How a tenant's answering predictions of one model fell into the bins of each series (the PD and every
-- feature; bins of the model's drift profile, missing last), per hour of their creation. Recomputed from
-- the predictions for the latest hours at every pass of the monitor, final once older.
CREATE TABLE drift_counts (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    model_name     text NOT NULL,
    model_version  integer NOT NULL,
    hour           timestamptz NOT NULL,
    rows           bigint NOT NULL CHECK (rows > 0),
    -- {"pd": [n, ...], "X1": [n, ...], ...}
    counts         jsonb NOT NULL,
    PRIMARY KEY (tenant_id, model_name, model_version, hour)
);

-- Up to which hour each tenant's counts are final.
CREATE TABLE drift_progress (
    tenant_id         uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    counted_through   timestamptz NOT NULL
);

-- The PSIs of a model for a tenant, one row per hour (the latest pass of that hour).
CREATE TABLE drift_snapshots (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    model_name      text NOT NULL,
    model_version   integer NOT NULL,
    hour            timestamptz NOT NULL,
    computed_at     timestamptz NOT NULL,
    window_hours    integer NOT NULL CHECK (window_hours > 0),
    current_rows    bigint NOT NULL,
    past_rows       bigint NOT NULL,
    -- [{"name", "psi_training", "psi_past", "current", "past", "expected", "edges"}], the PD first.
    series          jsonb NOT NULL,
    PRIMARY KEY (tenant_id, model_name, model_version, hour)
);

-- A drift alert: a model whose PSI against a reference passed the threshold, open until every series is
-- back under it. At most one open per tenant, model and reference, whichever instance found it.
CREATE TABLE drift_alerts (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    model_name      text NOT NULL,
    model_version   integer NOT NULL,
    reference       text NOT NULL CHECK (reference IN ('training', 'past')),
    threshold       double precision NOT NULL,
    -- The series above the threshold when it was raised: [{"name", "psi"}], largest first.
    series          jsonb NOT NULL,
    raised_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    published_at    timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX drift_alerts_open ON drift_alerts (tenant_id, model_name, model_version, reference)
    WHERE resolved_at IS NULL;
