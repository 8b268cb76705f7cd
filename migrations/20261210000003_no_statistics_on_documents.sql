-- The documents a filing and a prediction carry (the statement, the ratios, the request as sent; the term
-- structure, the reasons, the model's inputs, the calibration's basis) are read whole and never filtered, joined
-- or sorted on: the planner has no use for their statistics, and gathering them was most of an ANALYZE of these
-- tables (each sampled value detoasted and compared). The prediction store's own ANALYZE names the columns it
-- needs (src/db/mod.rs); autovacuum's and an operator's did not: 265-280 ms for 40,000 filings with their
-- statements, 103 ms with a statistics target of 0 on the documents (one session, nothing else running).
ALTER TABLE filings
    ALTER COLUMN statement SET STATISTICS 0,
    ALTER COLUMN ratios SET STATISTICS 0,
    ALTER COLUMN raw SET STATISTICS 0;
ALTER TABLE predictions
    ALTER COLUMN term_structure SET STATISTICS 0,
    ALTER COLUMN contributions SET STATISTICS 0,
    ALTER COLUMN inputs SET STATISTICS 0,
    ALTER COLUMN basis SET STATISTICS 0;
