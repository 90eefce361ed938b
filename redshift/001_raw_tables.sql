-- Raw tables that Firehose COPY appends to. A row may arrive twice (at-least-once delivery);
-- reads that must count each row once go through the views in 002_views.sql.
-- Column order is the COPY order: it must match the jsonpaths files in s3/ one to one.
-- VARCHAR lengths are bytes in Redshift: post text is sized for multi-byte scripts
-- (a 280-character post in Korean or Japanese is up to ~1,100 bytes; 65535 is the maximum).
-- Sort keys start with the minute: dashboards and analysis scan minute ranges.

CREATE TABLE IF NOT EXISTS raw_candles (
    record_key     VARCHAR(256)   NOT NULL,
    exchange       VARCHAR(32)    NOT NULL,
    market         VARCHAR(32)    NOT NULL,
    minute_utc     TIMESTAMP      NOT NULL,
    minute_kst     TIMESTAMP      NOT NULL,
    open_price     DECIMAL(38, 8),
    high_price     DECIMAL(38, 8),
    low_price      DECIMAL(38, 8),
    close_price    DECIMAL(38, 8),
    volume         DECIMAL(38, 8),
    quote_volume   DECIMAL(38, 8),
    simulated      BOOLEAN,
    fetched_at     TIMESTAMP      NOT NULL,
    processed_at   TIMESTAMP      NOT NULL
)
DISTSTYLE KEY DISTKEY (market)
COMPOUND SORTKEY (minute_utc, market);

CREATE TABLE IF NOT EXISTS raw_posts (
    record_key     VARCHAR(256)   NOT NULL,
    source         VARCHAR(32)    NOT NULL,
    post_id        VARCHAR(128)   NOT NULL,
    created_at     TIMESTAMP      NOT NULL,
    created_at_kst TIMESTAMP      NOT NULL,
    minute_utc     TIMESTAMP      NOT NULL,
    author_id      VARCHAR(128),
    lang           VARCHAR(16),
    text           VARCHAR(65535),
    hashtags       VARCHAR(4096),
    cashtags       VARCHAR(1024),
    matched_terms  VARCHAR(512),
    is_retweet     BOOLEAN,
    is_reply       BOOLEAN,
    simulated      BOOLEAN,
    fetched_at     TIMESTAMP      NOT NULL,
    processed_at   TIMESTAMP      NOT NULL,
    -- the text or a tag list was cut to fit its column (added last: ALTER TABLE ... ADD COLUMN upgrades)
    truncated      BOOLEAN
)
DISTSTYLE EVEN
COMPOUND SORTKEY (minute_utc, source);

-- Posts per minute as the source counts them (X's counts endpoint): cheap, and complete even
-- when the read budget stops reading the posts themselves.
CREATE TABLE IF NOT EXISTS raw_post_counts (
    record_key     VARCHAR(256)   NOT NULL,
    source         VARCHAR(32)    NOT NULL,
    query          VARCHAR(1024)  NOT NULL,
    minute_utc     TIMESTAMP      NOT NULL,
    minute_kst     TIMESTAMP      NOT NULL,
    post_count     BIGINT         NOT NULL,
    simulated      BOOLEAN,
    fetched_at     TIMESTAMP      NOT NULL,
    processed_at   TIMESTAMP      NOT NULL
)
DISTSTYLE EVEN
COMPOUND SORTKEY (minute_utc, source);
