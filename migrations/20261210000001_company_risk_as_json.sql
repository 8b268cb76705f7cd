-- A company's risk state (`company_risk.risk`) is only ever written and read whole, by the service (never
-- queried inside): stored as `json`, its text kept as written, rather than `jsonb`, whose binary form is built
-- on every write and turned back into text on every read. Measured with pgbench on 100,000 companies (one
-- client, prepared): the portfolio's riskiest page (50 risk documents) 0.28 ms as jsonb, 0.19–0.24 ms as json.
-- The commit reads its companies' risk under their lock and writes it back, so it saves the same per company.
ALTER TABLE company_risk ALTER COLUMN risk TYPE json USING risk::json;
