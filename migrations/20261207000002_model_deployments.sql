-- Models uploaded at run time (hot swap), beside those shipped in models/artifacts. A version is written
-- once, with its files, after it was verified (checksums, feature set, its card's reference rows); every
-- instance loads it from here. Service-wide: no tenant owns a model.
CREATE TABLE model_uploads (
    id               text PRIMARY KEY CHECK (id ~ '^[a-z0-9_/-]+@[0-9]+$'),
    prediction_type  prediction_type NOT NULL,
    -- The model's manifest entry, as in models/artifacts/manifest.json.
    entry            jsonb NOT NULL,
    -- Reference rows of its card the model reproduced when it was verified.
    reference_rows   integer NOT NULL CHECK (reference_rows > 0),
    uploaded_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    uploaded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_files (
    model_id  text NOT NULL REFERENCES model_uploads (id) ON DELETE CASCADE,
    path      text NOT NULL CHECK (length(path) BETWEEN 1 AND 300),
    sha256    text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content   bytea NOT NULL,
    PRIMARY KEY (model_id, path)
);

-- The model answering each prediction type for tenants that chose none: the latest activation, else the
-- configured default. Rollback is another activation (of the version before).
CREATE TABLE model_activations (
    id               uuid PRIMARY KEY,
    prediction_type  prediction_type NOT NULL,
    model            text NOT NULL CHECK (model ~ '^[a-z0-9_/-]+@[0-9]+$'),
    previous         text,
    activated_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    activated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_activations_latest ON model_activations (prediction_type, activated_at DESC, id DESC);
