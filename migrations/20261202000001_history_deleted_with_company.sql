-- Filings and predictions without foreign keys on their insert path; a company's deletion deletes them instead.
--
-- The two keys were checked for every row the commit inserts: each check is an index probe and a row lock
-- (FOR KEY SHARE) taken on the referenced row, in PostgreSQL's trigger queue — on the filing the same
-- statement had just inserted, for the prediction's key. Measured on the benchmark's NATS ingest (30,000
-- filings over 100 companies, PostgreSQL's CPU per filing from /proc, two runs each): 234-247 µs with both
-- keys, 210-213 without the predictions' key, 194-211 without both (BENCHMARKS.md).
--
-- What the keys guaranteed still holds, by the only writer of these rows (the prediction store's commit):
-- it locks the batch's companies (FOR UPDATE) before writing, writes only the filings of companies it found,
-- and inserts each prediction in the same statement, joined to the filing that statement inserted. A company
-- deleted meanwhile waits for that lock, and a commit that comes after the deletion finds no company.
-- What the keys also did — deleting a company's filings and predictions with it, also when its organization
-- or tenant is deleted (those cascade to companies) — is the trigger below. Alerts still go with their
-- prediction (alerts_prediction_fkey).
ALTER TABLE predictions DROP CONSTRAINT predictions_tenant_id_company_id_filing_id_fkey;
ALTER TABLE filings DROP CONSTRAINT filings_company_fkey;

CREATE FUNCTION delete_company_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each statement sees what was committed before it, so a commit that held the company's lock until
    -- this deletion got it is deleted too.
    DELETE FROM predictions p
    USING filings f
    WHERE f.tenant_id = OLD.tenant_id AND f.company_id = OLD.id
      AND p.tenant_id = f.tenant_id AND p.filing_id = f.id;
    DELETE FROM filings WHERE tenant_id = OLD.tenant_id AND company_id = OLD.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER companies_delete_history AFTER DELETE ON companies
    FOR EACH ROW EXECUTE FUNCTION delete_company_history();
