-- Replays: jobs that re-score a company's, an organization's or a tenant's stored filings with another model
-- version, run by the bulk runner like uploads (progress, cancel, resume on any instance). They read filings,
-- not a file, and a tenant-wide replay belongs to no organization. Their predictions are stored beside the
-- filings' answers (is_shadow): a replay never changes a company's current risk nor raises an alert.
ALTER TABLE bulk_jobs ADD COLUMN kind text NOT NULL DEFAULT 'upload' CHECK (kind IN ('upload', 'replay'));
ALTER TABLE bulk_jobs ALTER COLUMN organization_id DROP NOT NULL;
ALTER TABLE bulk_jobs ALTER COLUMN file_format DROP NOT NULL;
ALTER TABLE bulk_jobs ADD CONSTRAINT bulk_jobs_upload_has_its_file
    CHECK (kind = 'replay' OR (organization_id IS NOT NULL AND file_format IS NOT NULL));
-- Filings are replayed in id order: a replay resumes after the last one it recorded.
ALTER TABLE bulk_jobs ADD COLUMN resume_after_filing uuid;
