-- Deduplicated views: what users read. Raw tables may hold several copies of one fact
-- (replays, restarts, two workers, Firehose retries); each view keeps exactly one per natural key.

-- Candles: the latest copy of each minute wins (a later fetch of a minute replaces an earlier one).
CREATE OR REPLACE VIEW candles AS
SELECT record_key, exchange, market, minute_utc, minute_kst, open_price, high_price, low_price,
       close_price, volume, quote_volume, simulated, fetched_at
FROM (
    SELECT r.*,
           ROW_NUMBER() OVER (PARTITION BY record_key ORDER BY fetched_at DESC, processed_at DESC) AS copy_rank
    FROM raw_candles AS r
) AS ranked
WHERE copy_rank = 1;

-- Posts: one row per source and post id.
CREATE OR REPLACE VIEW posts AS
SELECT record_key, source, post_id, created_at, created_at_kst, minute_utc, author_id, lang, text,
       hashtags, cashtags, matched_terms, is_retweet, is_reply, simulated, fetched_at, truncated,
       -- the author's clock (created_at) more than 10 minutes from when the network saw the post (minute_utc):
       -- Bluesky's createdAt is set by the posting app; archives imported years later keep their first date
       ABS(DATEDIFF(minute, minute_utc, created_at)) > 10 AS dated_apart
FROM (
    SELECT r.*,
           ROW_NUMBER() OVER (PARTITION BY record_key ORDER BY fetched_at DESC, processed_at DESC) AS copy_rank
    FROM raw_posts AS r
) AS ranked
WHERE copy_rank = 1;

-- Counts: the latest count of each minute wins.
CREATE OR REPLACE VIEW post_counts AS
SELECT record_key, source, query, minute_utc, minute_kst, post_count, simulated, fetched_at
FROM (
    SELECT r.*,
           ROW_NUMBER() OVER (PARTITION BY record_key ORDER BY fetched_at DESC, processed_at DESC) AS copy_rank
    FROM raw_post_counts AS r
) AS ranked
WHERE copy_rank = 1;
