-- Per-minute series: what the dashboard, the analysis and Looker Studio read. Every series has
-- exactly one row per minute from its first to its last minute (the spine of 003_minute_numbers.sql),
-- so a minute nobody traded or posted in is a row with 0, never a missing row. The views read the
-- deduplicated views, so a row that travelled twice counts once.

-- Dropped first: CREATE OR REPLACE VIEW cannot change an existing view's columns (Redshift, as
-- PostgreSQL), and these views changed shape when they gained their minute spines.
DROP VIEW IF EXISTS minute_metrics;
DROP VIEW IF EXISTS minute_posts;
DROP VIEW IF EXISTS candle_minutes;

-- One row per (exchange, market, minute). `traded` is false, and volume 0, where the exchange sent
-- no candle for the minute (Upbit sends none for a minute without trades); prices are NULL there.
-- The world series, exchange 'all' and market 'BTC': per minute the sum of the BTC (base currency)
-- volume of every real BTC market whose span covers the minute (`series_count`), and how many of them
-- sent a candle for it (`reporting`); its prices are NULL (the markets quote different currencies).
CREATE OR REPLACE VIEW candle_minutes AS
WITH bounds AS (
    SELECT exchange, market, MIN(minute_utc) AS first_minute,
           DATEDIFF(minute, MIN(minute_utc), MAX(minute_utc)) AS span
    FROM candles
    GROUP BY exchange, market
),
spine AS (
    SELECT b.exchange, b.market, DATEADD(minute, n.n, b.first_minute) AS minute_utc
    FROM bounds AS b
    JOIN minute_numbers AS n ON n.n <= b.span
),
per_market AS (
    SELECT s.exchange,
           s.market,
           s.minute_utc,
           CASE WHEN c.record_key IS NULL THEN FALSE ELSE TRUE END AS traded,
           COALESCE(c.volume, 0) AS volume,
           COALESCE(c.quote_volume, 0) AS quote_volume,
           c.open_price,
           c.high_price,
           c.low_price,
           c.close_price,
           c.fetched_at
    FROM spine AS s
    LEFT JOIN candles AS c
        ON c.exchange = s.exchange AND c.market = s.market AND c.minute_utc = s.minute_utc
)
SELECT exchange,
       market,
       minute_utc,
       DATEADD(hour, 9, minute_utc) AS minute_kst,
       traded,
       volume,
       quote_volume,
       open_price,
       high_price,
       low_price,
       close_price,
       fetched_at,
       1 AS series_count,
       CASE WHEN traded THEN 1 ELSE 0 END AS reporting
FROM per_market
UNION ALL
SELECT 'all' AS exchange,
       'BTC' AS market,
       minute_utc,
       DATEADD(hour, 9, minute_utc) AS minute_kst,
       BOOL_OR(traded) AS traded,
       SUM(volume) AS volume,
       CAST(NULL AS DECIMAL(38, 8)) AS quote_volume,
       CAST(NULL AS DECIMAL(38, 8)) AS open_price,
       CAST(NULL AS DECIMAL(38, 8)) AS high_price,
       CAST(NULL AS DECIMAL(38, 8)) AS low_price,
       CAST(NULL AS DECIMAL(38, 8)) AS close_price,
       MAX(fetched_at) AS fetched_at,
       COUNT(*) AS series_count,
       SUM(CASE WHEN traded THEN 1 ELSE 0 END) AS reporting
FROM per_market
WHERE market LIKE '%-BTC' AND exchange <> 'simulated'
GROUP BY minute_utc;

-- One row per (source, minute) from the source's first to its last post: posts 0 in a minute
-- without any. The `simulated` source (the demo's) is a source of its own.
CREATE OR REPLACE VIEW minute_posts AS
WITH counted AS (
    SELECT source, minute_utc, COUNT(*) AS posts
    FROM posts
    GROUP BY source, minute_utc
),
bounds AS (
    SELECT source, MIN(minute_utc) AS first_minute,
           DATEDIFF(minute, MIN(minute_utc), MAX(minute_utc)) AS span
    FROM counted
    GROUP BY source
),
spine AS (
    SELECT b.source, DATEADD(minute, n.n, b.first_minute) AS minute_utc
    FROM bounds AS b
    JOIN minute_numbers AS n ON n.n <= b.span
)
SELECT s.source,
       s.minute_utc,
       DATEADD(hour, 9, s.minute_utc) AS minute_kst,
       COALESCE(c.posts, 0) AS posts
FROM spine AS s
LEFT JOIN counted AS c ON c.source = s.source AND c.minute_utc = s.minute_utc;

-- Exactly one row per (exchange, market, minute) of candle_minutes, with the posts of that minute.
-- A source's column is NULL outside the minutes it was collected (not 0: nobody looked);
-- posts_total adds the real sources (x, bluesky, mastodon) and is NULL where none was collected.
-- Simulated posts are never in posts_total: they are posts_simulated.
CREATE OR REPLACE VIEW minute_metrics AS
WITH by_source AS (
    SELECT minute_utc,
           MAX(CASE WHEN source = 'x' THEN posts END) AS posts_x,
           MAX(CASE WHEN source = 'bluesky' THEN posts END) AS posts_bluesky,
           MAX(CASE WHEN source = 'mastodon' THEN posts END) AS posts_mastodon,
           MAX(CASE WHEN source = 'simulated' THEN posts END) AS posts_simulated
    FROM minute_posts
    GROUP BY minute_utc
),
counted AS (
    SELECT minute_utc, MAX(post_count) AS posts_x_counted
    FROM post_counts
    WHERE source = 'x'
    GROUP BY minute_utc
)
SELECT c.minute_utc,
       c.minute_kst,
       c.exchange,
       c.market,
       c.traded,
       c.volume,
       c.quote_volume,
       c.open_price,
       c.high_price,
       c.low_price,
       c.close_price,
       c.series_count,
       c.reporting,
       CASE
           WHEN p.posts_x IS NULL AND p.posts_bluesky IS NULL AND p.posts_mastodon IS NULL THEN NULL
           ELSE COALESCE(p.posts_x, 0) + COALESCE(p.posts_bluesky, 0) + COALESCE(p.posts_mastodon, 0)
       END AS posts_total,
       p.posts_x,
       p.posts_bluesky,
       p.posts_mastodon,
       p.posts_simulated,
       x.posts_x_counted
FROM candle_minutes AS c
LEFT JOIN by_source AS p ON p.minute_utc = c.minute_utc
LEFT JOIN counted AS x ON x.minute_utc = c.minute_utc;
