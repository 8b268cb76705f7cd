-- A bulk job's rows in file order: its results report and the resume check read them by job.
CREATE INDEX filings_bulk_job_row ON filings (tenant_id, bulk_job_id, bulk_row) WHERE bulk_job_id IS NOT NULL;
