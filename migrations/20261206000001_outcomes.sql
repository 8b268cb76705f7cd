-- Realised credit events per company: what the back-tests score the predictions against. One event of a kind
-- on one date is recorded once (a second report of it, from another source or channel, finds the first).
CREATE TYPE credit_event AS ENUM ('default', 'bankruptcy', 'distressed_exchange');

CREATE TABLE outcomes (
    id               uuid NOT NULL,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL,
    company_id       uuid NOT NULL,
    event            credit_event NOT NULL,
    event_date       date NOT NULL CHECK (event_date BETWEEN DATE '1900-01-01' AND DATE '2999-12-31'),
    -- Where the event is known from (a court register, a rating agency, the servicing team).
    source           text NOT NULL CHECK (length(btrim(source)) BETWEEN 1 AND 200),
    note             text CHECK (length(note) <= 2000),
    -- 'api', 'csv' or 'nats'.
    channel          text NOT NULL,
    recorded_by      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, company_id, event, event_date),
    -- Through companies_id_tenant, like the filings' key (20261125000001).
    FOREIGN KEY (company_id, tenant_id) REFERENCES companies (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX outcomes_tenant_date ON outcomes (tenant_id, event_date);
