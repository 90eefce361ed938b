-- Minute offsets 0 .. 9,999,999 (19 years of minutes): the spine that gives every series one row per
-- minute, with the minutes nobody traded or posted in filled as 0. Redshift cannot run
-- generate_series() into a query on compute nodes (it is a leader-node-only function), so the numbers
-- live in a small table built once by cross-joining ten digits: the documented Redshift pattern.
-- Both INSERTs do nothing once the table is filled, so the file can be run again.

CREATE TABLE IF NOT EXISTS spine_digits (d INTEGER NOT NULL) DISTSTYLE ALL;

INSERT INTO spine_digits
SELECT d FROM (
    SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
    UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9
) AS ten
WHERE NOT EXISTS (SELECT 1 FROM spine_digits);

CREATE TABLE IF NOT EXISTS minute_numbers (n INTEGER NOT NULL) DISTSTYLE ALL SORTKEY (n);

INSERT INTO minute_numbers
SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d + 1000000 * h.d
FROM spine_digits AS a
CROSS JOIN spine_digits AS b
CROSS JOIN spine_digits AS c
CROSS JOIN spine_digits AS e
CROSS JOIN spine_digits AS f
CROSS JOIN spine_digits AS g
CROSS JOIN spine_digits AS h
WHERE NOT EXISTS (SELECT 1 FROM minute_numbers)
ORDER BY 1;
