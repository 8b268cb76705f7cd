-- What a prediction's flows cover: NULL for the filing's own period; for a quarterly statement scored on its
-- trailing twelve months, {"flows": "trailing_twelve_months", "quarters": ["2025-Q3", ..., "2026-Q2"]}.
ALTER TABLE predictions ADD COLUMN basis jsonb;
