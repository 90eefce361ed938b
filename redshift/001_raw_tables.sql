-- Raw tables that Firehose COPY appends to. A row may arrive twice (at-least-once delivery);
-- reads that must count each row once go through the deduplicated views.
-- Column order is the COPY order: it must match the jsonpaths files in s3/ one to one.
-- VARCHAR lengths are bytes in Redshift: post text is sized for multi-byte scripts.

CREATE TABLE IF NOT EXISTS raw_candles (
    record_key     VARCHAR(256)   NOT NULL,
    exchange       VARCHAR(32)    NOT NULL,
    market         VARCHAR(32)    NOT NULL,
    minute_utc     TIMESTAMP      NOT NULL,
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
    minute_utc     TIMESTAMP      NOT NULL,
    author_id      VARCHAR(128),
    lang           VARCHAR(16),
    text           VARCHAR(65535),
    simulated      BOOLEAN,
    fetched_at     TIMESTAMP      NOT NULL,
    processed_at   TIMESTAMP      NOT NULL
)
DISTSTYLE EVEN
COMPOUND SORTKEY (minute_utc, source);
