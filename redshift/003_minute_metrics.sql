-- Per-minute metrics: what the dashboard, the analysis and Looker Studio read.
-- One row per minute and market that has a candle or a post; post counts per source are 0,
-- never missing, in a minute without posts. Reads the deduplicated views, so a row that
-- travelled twice counts once.

CREATE OR REPLACE VIEW minute_posts AS
SELECT minute_utc,
       COUNT(*) AS posts_total,
       SUM(CASE WHEN source = 'x' THEN 1 ELSE 0 END) AS posts_x,
       SUM(CASE WHEN source = 'bluesky' THEN 1 ELSE 0 END) AS posts_bluesky,
       SUM(CASE WHEN source = 'mastodon' THEN 1 ELSE 0 END) AS posts_mastodon,
       SUM(CASE WHEN simulated THEN 1 ELSE 0 END) AS posts_simulated
FROM posts
GROUP BY minute_utc;

CREATE OR REPLACE VIEW minute_metrics AS
WITH minutes AS (
    SELECT minute_utc FROM candles
    UNION
    SELECT minute_utc FROM minute_posts
)
SELECT m.minute_utc,
       DATEADD(hour, 9, m.minute_utc) AS minute_kst,
       c.exchange,
       c.market,
       c.volume,
       c.quote_volume,
       c.high_price,
       c.low_price,
       c.close_price,
       COALESCE(p.posts_total, 0) AS posts_total,
       COALESCE(p.posts_x, 0) AS posts_x,
       COALESCE(p.posts_bluesky, 0) AS posts_bluesky,
       COALESCE(p.posts_mastodon, 0) AS posts_mastodon,
       x.post_count AS posts_x_counted
FROM minutes AS m
LEFT JOIN candles AS c ON c.minute_utc = m.minute_utc
LEFT JOIN minute_posts AS p ON p.minute_utc = m.minute_utc
LEFT JOIN post_counts AS x ON x.minute_utc = m.minute_utc AND x.source = 'x';
