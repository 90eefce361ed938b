"""What X costs: its dated prices, what a schedule spends, and a dollar budget kept per UTC day and month.

X's pay-per-use plan bills each post a read returns and each counts request (whatever the number of
minute buckets it holds). The producer asks `XBudget` before every request, `doctor` shows what was
spent, and `deploy --check` prices the configured schedule beside AWS — all from the same prices.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from coinstream.errors import CoinstreamError, FatalError

MINUTES_PER_DAY = 1440
#: an average month, the one deploy/prices.json's AWS figures use (730 hours)
DAYS_PER_MONTH = 730 / 24
#: X's recent search returns at least 10 posts per request (`max_results` 10..100)
MIN_READ = 10


@dataclass(frozen=True)
class XPrices:
    """X's per-resource prices, dated and sourced (the `x` section of deploy/prices.json)."""

    post_read: float
    counts_request: float
    as_of: str
    source: str

    @classmethod
    def load(cls, prices_file: Path) -> XPrices:
        """The `x` section of a prices file; a missing or wrong one is one FatalError line."""
        try:
            x = json.loads(prices_file.read_text())["x"]
            return cls(float(x["post_read"]), float(x["counts_request"]), str(x["as_of"]), str(x["source"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FatalError(
                f"{prices_file}: no usable X prices ({type(exc).__name__}: {exc}); it needs an 'x' section with "
                "post_read, counts_request, as_of and source"
            ) from None


def usd(value: float) -> str:
    """Dollars as people write them: cents, or a tenth of a cent where that is what the figure has."""
    return f"${value:.2f}" if abs(value * 100 - round(value * 100)) < 1e-9 else f"${value:.3f}"


class XUsage(BaseModel):
    """What X billed on one UTC day."""

    model_config = ConfigDict(frozen=True)

    reads: int = 0
    counts_requests: int = 0

    def dollars(self, prices: XPrices) -> float:
        """USD for this usage."""
        return self.reads * prices.post_read + self.counts_requests * prices.counts_request

    def plus(self, reads: int = 0, counts_requests: int = 0) -> XUsage:
        """This usage with more added."""
        return XUsage(reads=self.reads + reads, counts_requests=self.counts_requests + counts_requests)


class BudgetSpent(CoinstreamError):
    """The next X request would take the spend past a budget: it is not made."""


@dataclass(frozen=True)
class XPlan:
    """What a schedule asks of X per day, and what that costs."""

    counts_requests_per_day: float
    reads_per_day: float

    @classmethod
    def of(cls, counts_every_minutes: int, sample_every_minutes: int, sample_size: int) -> XPlan:
        """Counts once per `counts_every_minutes` (one page covers the window), `sample_size` posts per slot."""
        return cls(
            MINUTES_PER_DAY / counts_every_minutes,
            MINUTES_PER_DAY / sample_every_minutes * sample_size if sample_size else 0.0,
        )

    def per_day(self, prices: XPrices) -> float:
        """USD a day."""
        return self.counts_requests_per_day * prices.counts_request + self.reads_per_day * prices.post_read

    def lines(self, prices: XPrices, dollars_per_month: float) -> list[tuple[str, str, float]]:
        """(item, basis, USD per month) for each billed part; the month is capped at the monthly budget."""
        counts = self.counts_requests_per_day * DAYS_PER_MONTH * prices.counts_request
        reads = self.reads_per_day * DAYS_PER_MONTH * prices.post_read
        out = [
            (
                "X counts requests (posts per minute, every minute)",
                f"{self.counts_requests_per_day:g}/day x {DAYS_PER_MONTH:.1f} days x ${prices.counts_request}",
                counts,
            ),
            (
                "X posts read (sample for enrichment)",
                f"{self.reads_per_day:g}/day x {DAYS_PER_MONTH:.1f} days x ${prices.post_read}",
                reads,
            ),
        ]
        if counts + reads > dollars_per_month:
            out.append(
                (
                    "X budget cap (COINSTREAM_X_DOLLARS_PER_MONTH)",
                    f"the producer stops at {usd(dollars_per_month)} a month",
                    dollars_per_month - counts - reads,
                )
            )
        return out


class XBudget:
    """Dollar budgets per UTC day and month, over the usage kept per day in the producer's state."""

    def __init__(
        self, prices: XPrices, per_day: float, per_month: float, spent: dict[str, XUsage], now: datetime
    ) -> None:
        self.prices = prices
        self.per_day = per_day
        self.per_month = per_month
        self.day = now.date().isoformat()
        month = self.day[:7]
        # only this month's days are kept: they are all a monthly budget needs
        self.spent = {day: usage for day, usage in spent.items() if day.startswith(month)}

    @property
    def today(self) -> XUsage:
        """What was billed today (UTC)."""
        return self.spent.get(self.day, XUsage())

    @property
    def today_dollars(self) -> float:
        """USD spent today."""
        return self.today.dollars(self.prices)

    @property
    def month_dollars(self) -> float:
        """USD spent this month (UTC)."""
        return sum(usage.dollars(self.prices) for usage in self.spent.values())

    @property
    def left(self) -> float:
        """USD that may still be spent today: the smaller of what is left of the day's and the month's budget."""
        return max(0.0, min(self.per_day - self.today_dollars, self.per_month - self.month_dollars))

    def _refuse(self, what: str, cost: float) -> BudgetSpent:
        which = (
            f"today's X budget of {usd(self.per_day)} (COINSTREAM_X_DOLLARS_PER_DAY)"
            if self.per_day - self.today_dollars <= self.per_month - self.month_dollars
            else f"this month's X budget of {usd(self.per_month)} (COINSTREAM_X_DOLLARS_PER_MONTH)"
        )
        return BudgetSpent(
            f"x: {what} ({usd(cost)}) would exceed {which}: {usd(self.today_dollars)} spent today, "
            f"{usd(self.month_dollars)} this month; not asked, X is read again when the budget allows"
        )

    def charge_counts_request(self) -> None:
        """Book one counts request before it is made, or raise BudgetSpent."""
        cost = self.prices.counts_request
        if cost > self.left + 1e-9:
            raise self._refuse("a counts request", cost)
        self.spent[self.day] = self.today.plus(counts_requests=1)

    def refund_counts_request(self) -> None:
        """Take back a booked counts request X refused with a 429 (X bills what it answers, not what it refuses)."""
        self.spent[self.day] = self.today.plus(counts_requests=-1)

    def reads_affordable(self, wanted: int) -> int:
        """How many posts one read may ask for (X returns at least MIN_READ), or raise BudgetSpent."""
        affordable = math.floor((self.left + 1e-9) / self.prices.post_read) if self.prices.post_read else wanted
        if min(wanted, affordable) < MIN_READ:
            raise self._refuse(f"reading {MIN_READ} posts", MIN_READ * self.prices.post_read)
        return min(wanted, affordable)

    def charge_reads(self, reads: int) -> None:
        """Book the posts a read returned (X bills them whether or not they parse)."""
        self.spent[self.day] = self.today.plus(reads=reads)

    def summary(self) -> str:
        """One line: today's and this month's spend against the budgets."""
        usage = self.today
        return (
            f"today {usd(self.today_dollars)} of {usd(self.per_day)} ({usage.counts_requests} counts requests, "
            f"{usage.reads} posts read), this month {usd(self.month_dollars)} of {usd(self.per_month)}; "
            f"prices as of {self.prices.as_of}"
        )


def carry_old_reads(data: Any) -> Any:
    """State from before dollar budgets kept only `reads` per day: carry it into `spent`."""
    if isinstance(data, dict) and "reads" in data and "spent" not in data:
        reads = data.get("reads") or {}
        data = {k: v for k, v in data.items() if k != "reads"}
        if isinstance(reads, dict):
            data["spent"] = {day: {"reads": n} for day, n in reads.items() if isinstance(n, int)}
    return data
