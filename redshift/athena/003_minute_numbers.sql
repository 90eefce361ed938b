-- Athena (Trino) replaces ../003_minute_numbers.sql with this file: the same numbers 0 .. 9,999,999 as a
-- view, since Athena builds no table from a query it runs on a schedule of ours. Trino's sequence() makes at
-- most 10,000 elements per call, so two of them are crossed: nothing is stored and nothing is scanned (a
-- query reading the view costs no bytes of it).
CREATE OR REPLACE VIEW minute_numbers AS
SELECT ones.n + 10000 * tens_of_thousands.n AS n
FROM UNNEST(sequence(0, 9999)) AS ones(n)
CROSS JOIN UNNEST(sequence(0, 999)) AS tens_of_thousands(n);
