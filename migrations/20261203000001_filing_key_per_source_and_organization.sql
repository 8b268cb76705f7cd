-- A filing's idempotency key belongs to one organization and one source, and names one filing.
--
-- The key was unique per tenant: a key one organization used was refused to every other organization of the
-- tenant (an existence oracle across organizations, answered with another company's prediction or a 500),
-- and an HTTP client could take the key a NATS feed would use. Now each (organization, source) has its own
-- keys, and the filing records a digest of what it said (type, period, statement, ratios, model), so that a
-- key repeated for another company or content is told apart from a redelivery (409 CONFLICT, dead letter).
-- Rows stored before have no digest: a repeat of their key is taken as a redelivery when the company matches.
ALTER TABLE filings ADD COLUMN organization_id uuid, ADD COLUMN content_digest bytea;
UPDATE filings f SET organization_id = c.organization_id
FROM companies c WHERE c.tenant_id = f.tenant_id AND c.id = f.company_id;
-- A filing whose company is gone (none should be: the company's deletion takes its history) goes with its
-- predictions.
DELETE FROM predictions p USING filings f
WHERE f.organization_id IS NULL AND p.tenant_id = f.tenant_id AND p.filing_id = f.id;
DELETE FROM filings WHERE organization_id IS NULL;
ALTER TABLE filings ALTER COLUMN organization_id SET NOT NULL,
    ADD CONSTRAINT filings_content_digest_sha256 CHECK (content_digest IS NULL OR length(content_digest) = 32);

DROP INDEX filings_idempotency;
CREATE UNIQUE INDEX filings_idempotency ON filings (tenant_id, organization_id, source, idempotency_key);
