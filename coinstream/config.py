"""Settings: where the pipeline runs and what its resources are called.

`Settings` comes from the environment (prefix COINSTREAM_); `Pipeline` from pipeline.toml, the
one declaration of the stream, bucket and delivery streams that both the local stack and AWS use.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coinstream import RESOURCES, default_state_dir
from coinstream.errors import FatalError
from coinstream.records import Kind
from coinstream.x_bill import MIN_READ, MINUTES_PER_DAY

LOCAL_ACCOUNT_ID = "000000000000"
#: The region when nothing names one (the local stack's, and AWS's own default).
FALLBACK_REGION = "us-east-1"


def default_region() -> str:
    """The region as the AWS tools resolve it: AWS_REGION, AWS_DEFAULT_REGION, the profile's, else us-east-1."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(name):
            return os.environ[name]
    import boto3  # the profile's region: ~/.aws/config (or AWS_CONFIG_FILE), as the CLI reads it

    return boto3.session.Session().region_name or FALLBACK_REGION


class Settings(BaseSettings):
    """Where coinstream runs: the local stand-in stack (default) or AWS."""

    model_config = SettingsConfigDict(env_prefix="COINSTREAM_", frozen=True, extra="ignore")

    target: Literal["local", "aws"] = "local"
    #: COINSTREAM_REGION if set, else the standard AWS chain (AWS_REGION, AWS_DEFAULT_REGION, the profile's).
    region: str = Field(default_factory=default_region, min_length=1)
    pipeline_file: Path = RESOURCES / "pipeline.toml"
    #: On AWS: the CloudFormation stack whose outputs name the resources (`coinstream deploy --apply` creates it);
    #: lower case, as the Redshift Serverless names made from it must be.
    stack_name: str = Field(default="coinstream", pattern=r"^[a-z][a-z0-9-]{2,40}$")
    #: Every piece of local state (pids, logs, the warehouse file) lives under this folder.
    state_dir: Path = Field(default_factory=default_state_dir)
    host: str = "127.0.0.1"
    kinesis_port: int = Field(default=4568, ge=1, le=65535)
    kinesis_tls_port: int = Field(default=4567, ge=1, le=65535)
    moto_port: int = Field(default=5055, ge=1, le=65535)
    warehouse_file: Path | None = None
    #: kinesis-mock's npm package folder, where not in the checkout's node_modules (an installed wheel)
    kinesis_mock_dir: Path | None = None
    #: Where `load` puts delivered rows and `analyze` reads them: the DuckDB file standing in for Redshift, or
    #: Apache Iceberg tables on the stack's S3 (the warehouse without a cluster; warehouse/lake.py).
    warehouse: Literal["redshift", "iceberg"] = "redshift"
    #: The offline source replays the recorded API answers in this folder (<source>/*.json).
    offline_dir: Path | None = None
    #: API base URLs (a local server in tests; the real APIs by default).
    coinone_url: str = "https://api.coinone.co.kr"
    upbit_url: str = "https://api.upbit.com"
    #: The world's largest spot markets (Binance, Coinbase, OKX, Bybit, Kraken, Bitstamp): base URLs.
    binance_url: str = "https://api.binance.com"
    coinbase_url: str = "https://api.exchange.coinbase.com"
    okx_url: str = "https://www.okx.com"
    bybit_url: str = "https://api.bybit.com"
    kraken_url: str = "https://api.kraken.com"
    bitstamp_url: str = "https://www.bitstamp.net"
    #: Markets each exchange's candle producer fetches (QUOTE-TARGET, comma separated); `--market` overrides.
    coinone_markets: str = "KRW-BTC"
    upbit_markets: str = "KRW-BTC"
    binance_markets: str = "USDT-BTC"
    coinbase_markets: str = "USD-BTC"
    okx_markets: str = "USDT-BTC"
    bybit_markets: str = "USDT-BTC"
    kraken_markets: str = "USD-BTC"
    bitstamp_markets: str = "USD-BTC"
    #: A candle's minute counts as closed this many seconds after it ends (exchanges publish late trades late).
    candle_grace_seconds: float = Field(default=10.0, ge=0, le=59)
    #: Each candle run reads this many closed minutes again; a candle that changed since is sent again
    #: (and replaces the earlier copy), an unchanged one is not.
    candle_reread_minutes: int = Field(default=3, ge=0, le=60)
    #: Requests per second each API is asked at most (`coinstream backfill` reads pages as fast as these allow):
    #: Upbit publishes 10/s for its quotation endpoints; Mastodon 300 per 5 minutes.
    upbit_requests_per_second: float = Field(default=10.0, gt=0, le=10)
    #: Coinone publishes 300 requests a minute for its public API (over it, a client is blocked for a minute).
    coinone_requests_per_second: float = Field(default=5.0, gt=0, le=5)
    mastodon_requests_per_second: float = Field(default=1.0, gt=0, le=5)
    #: the published public limits, with room: Binance 6,000 weight a minute (a kline request weighs 2),
    #: Coinbase 10 a second, OKX 20 per 2 s, Bybit 600 per 5 s, Kraken about 1 a second, Bitstamp 8,000 per 10 min
    binance_requests_per_second: float = Field(default=10.0, gt=0, le=40)
    coinbase_requests_per_second: float = Field(default=8.0, gt=0, le=10)
    okx_requests_per_second: float = Field(default=8.0, gt=0, le=10)
    bybit_requests_per_second: float = Field(default=10.0, gt=0, le=100)
    kraken_requests_per_second: float = Field(default=0.5, gt=0, le=1)
    bitstamp_requests_per_second: float = Field(default=10.0, gt=0, le=13)
    #: X counts history is asked in windows of this many minutes (one billed request each, more if X pages one)
    x_counts_backfill_window_minutes: int = Field(default=1440, ge=60, le=10080)
    #: Bluesky search (history only; the live producer uses the free Jetstream): a handle and an app password
    #: (Settings -> App passwords), since searchPosts refuses unauthenticated calls.
    bluesky_handle: str | None = None
    bluesky_app_password: SecretStr | None = None
    bluesky_api_url: str = "https://bsky.social"
    bluesky_query: str = "bitcoin"
    #: Bluesky's search orders by `sortAt` (the earlier of `createdAt` and `indexedAt`), a post counts at `indexedAt`:
    #: a history asks this many minutes beyond both ends of its window (a post written earlier can be missed).
    bluesky_sort_margin_minutes: int = Field(default=60, ge=15, le=1440)
    #: Mastodon instances whose #bitcoin timeline the posts producer reads, comma separated.
    mastodon_instances: str = "https://mastodon.social"
    #: A tag timeline is in arrival order and remote statuses arrive late: a Mastodon history reads back until its
    #: posts were written this many hours before the window's start (a status later than that can be missed).
    mastodon_late_hours: float = Field(default=24.0, ge=0, le=168)
    #: Bluesky Jetstream: where to listen and how long one run listens.
    bluesky_url: str = "wss://jetstream2.us-east.bsky.network/subscribe"
    bluesky_seconds: float = Field(default=50.0, gt=0)
    bluesky_max_posts: int = Field(default=1000, ge=1)
    #: X API v2: the bearer token (or a file holding it, outside the repo), the query and a read budget,
    #: because X bills every post read.
    x_bearer_token: SecretStr | None = None
    x_bearer_token_file: Path | None = None
    #: ... or the name of an SSM Parameter Store SecureString holding it (the stack's hosts: read at run time).
    x_bearer_token_parameter: str | None = None
    x_query: str = "(bitcoin OR #bitcoin) -is:retweet"
    #: X API base URL (a proxy, or a loopback server in tests; the real API by default).
    x_url: str = "https://api.twitter.com"
    #: Per-minute counts (one billed request covers many minutes): asked once per this many minutes,
    #: re-reading the last few counted minutes so late-indexed posts update them.
    x_counts_every_minutes: int = Field(default=120, ge=1, le=1440)
    x_counts_reread_minutes: int = Field(default=5, ge=0, le=60)
    #: Posts are read by sample, for enrichment: the newest `x_sample_size` posts (0 = none, else 10..100)
    #: once per slot of this many minutes.
    x_sample_every_minutes: int = Field(default=720, ge=1, le=1440)
    x_sample_size: int = Field(default=10, ge=0, le=100)
    #: What X may cost: a request that would pass either budget is not made.
    x_dollars_per_day: float = Field(default=0.20, ge=0)
    x_dollars_per_month: float = Field(default=5.00, ge=0)
    #: On the local stack, start a new KCL application without the waits it does not need there
    #: (consumer/daemon.py FAST_START); false gives KCL's own pacing, for comparison.
    kcl_fast_start: bool = True
    #: Posts in their usual shape take the native path (native/, when coinstream-native is installed);
    #: false sends every record through the Python path.
    native: bool = True
    #: How many natural keys each record processor remembers to drop duplicates (bounded memory).
    dedupe_capacity: int = Field(default=300_000, ge=1)
    #: Seconds the warehouse application holds a shard's rows before sending them to Firehose, which bills
    #: every record as at least 5 KB; it checkpoints only what it sent. 0 sends every batch; `live` never waits.
    delivery_window_seconds: float = Field(default=60.0, ge=0, le=900)
    #: ... or until this many bytes of stream records are held for the shard, whichever comes first.
    delivery_window_bytes: int = Field(default=1_000_000, ge=1, le=64_000_000)

    @field_validator("x_counts_every_minutes", "x_sample_every_minutes")
    @classmethod
    def _divides_a_day(cls, value: int) -> int:
        if MINUTES_PER_DAY % value:
            choices = ", ".join(str(d) for d in range(1, MINUTES_PER_DAY + 1) if MINUTES_PER_DAY % d == 0)
            raise ValueError(f"{value} does not divide a day's 1440 minutes; choose one of {choices}")
        return value

    @field_validator("x_sample_size")
    @classmethod
    def _a_read_size(cls, value: int) -> int:
        if 0 < value < MIN_READ:
            raise ValueError(f"X returns at least {MIN_READ} posts per read; use 0 (read no posts) or {MIN_READ}..100")
        return value

    def markets(self, source: str) -> list[str]:
        """The markets configured for a source (COINSTREAM_<SOURCE>_MARKETS; KRW-BTC where none is)."""
        raw = getattr(self, f"{source}_markets", "KRW-BTC")
        found = [m.strip() for m in str(raw).split(",") if m.strip()]
        for market in found:
            check_market(market, f"COINSTREAM_{source.upper()}_MARKETS")
        return found or ["KRW-BTC"]

    @property
    def prices_file(self) -> Path:
        """The dated prices (AWS and X) that `deploy --check` prices with and the X budget converts with."""
        return self.pipeline_file.parent / "deploy" / "prices.json"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file that stands in for Redshift."""
        return self.warehouse_file or self.state_dir / "warehouse.duckdb"

    def endpoint(self, service: str) -> str | None:
        """Endpoint URL of a service: the standard AWS_ENDPOINT_URL_<SERVICE> variable when set (containers
        name their hosts that way), else the local stack's port on loopback; None on AWS (the SDK resolves it)."""
        explicit = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}")
        if explicit:
            return explicit
        if self.target == "aws":
            return None
        port = self.kinesis_port if service == "kinesis" else self.moto_port
        return f"http://{self.host}:{port}"


_MARKET = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,15}$")


def check_market(market: str, where: str = "--market") -> str:
    """A market as QUOTE-TARGET (KRW-BTC); anything else is one FatalError line naming where it came from."""
    if not _MARKET.match(market):
        raise FatalError(f"{where}: {market!r} is not a market; write QUOTE-TARGET in capitals, e.g. KRW-BTC")
    return market


#: Settings that no longer exist, and what replaced them (pydantic-settings would ignore them silently).
_REPLACED = {
    "COINSTREAM_X_POSTS_PER_RUN": "COINSTREAM_X_SAMPLE_SIZE and COINSTREAM_X_SAMPLE_EVERY_MINUTES",
    "COINSTREAM_X_POSTS_PER_DAY": "COINSTREAM_X_DOLLARS_PER_DAY (and _PER_MONTH)",
}


def load_settings() -> Settings:
    """Read settings from the environment; bad values end in one clear FatalError line."""
    for old, new in _REPLACED.items():
        if old in os.environ:
            raise FatalError(f"{old} is no longer read; it was replaced by {new} (see the README's X section)")
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "COINSTREAM_" + str(first["loc"][0]).upper() if first["loc"] else "COINSTREAM_*"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise FatalError(f"{name}: {message} (fix or unset that environment variable)") from None


@dataclass(frozen=True)
class Pipeline:
    """The resources declared in pipeline.toml."""

    root: Path
    stream_name: str
    shards: int
    retention_hours: int
    bucket: str
    dead_letter_prefix: str
    jsonpaths_prefix: str
    delivery_files: dict[str, Path]
    live_table: str
    live_ttl_days: int
    #: the consumer applications `consume --app` and `replay --app` accept
    apps: tuple[str, ...] = ("warehouse", "live")

    def check_app(self, name: str) -> str:
        """`name` if it is one of the pipeline's consumer applications, else one FatalError line naming them: a new
        name would start a new application that reads (and delivers) the whole stream again."""
        if name in self.apps:
            return name
        raise FatalError(
            f"unknown consumer application {name!r}: use {' or '.join(self.apps)} (a new one reads and delivers the "
            "whole stream again: add its name to [consumers] apps in pipeline.toml first)"
        )

    @classmethod
    def load(cls, path: Path) -> Pipeline:
        """Load and check pipeline.toml; any problem is one FatalError line naming the key."""
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise FatalError(f"{path}: pipeline file not found (set COINSTREAM_PIPELINE_FILE)") from None
        except tomllib.TOMLDecodeError as exc:
            raise FatalError(f"{path}: not valid TOML: {exc}") from None
        root = path.parent
        try:
            stream, bucket, delivery, live = doc["stream"], doc["bucket"], doc["delivery"], doc["live"]
            shards = int(stream["shards"])
            if not 1 <= shards <= 500:
                raise ValueError("stream.shards must be between 1 and 500")
            files = {kind: root / rel for kind, rel in delivery.items()}
            for kind, file in files.items():
                if kind not in {k.value for k in Kind}:
                    raise ValueError(f"delivery.{kind} is not a record kind ({', '.join(k.value for k in Kind)})")
                if not file.is_file():
                    raise ValueError(f"delivery.{kind} names {file}, which does not exist")
            return cls(
                root=root,
                stream_name=str(stream["name"]),
                shards=shards,
                retention_hours=int(stream.get("retention_hours", 24)),
                bucket=str(bucket["name"]),
                dead_letter_prefix=str(bucket.get("dead_letter_prefix", "dead-letter/")),
                jsonpaths_prefix=str(bucket.get("jsonpaths_prefix", "jsonpaths/")),
                delivery_files=files,
                live_table=str(live["table"]),
                live_ttl_days=int(live.get("ttl_days", 8)),
                apps=tuple(str(a) for a in doc.get("consumers", {}).get("apps", ["warehouse", "live"])),
            )
        except KeyError as exc:
            raise FatalError(f"{path}: missing key {exc.args[0]!r}; see the pipeline.toml in the repo") from None
        except (TypeError, ValueError) as exc:
            raise FatalError(f"{path}: {exc}") from None
