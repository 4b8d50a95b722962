"""Per-key request rate limits: a token bucket for each API key, kept in this process.

Each key may make `burst` requests at once and `per_second` on average after that; one
more is `429 rate_limited` with `Retry-After`. Keys are counted by their hash, whatever
address they come from (X-Forwarded-For plays no part). The buckets are per process: a
fleet of N API processes behind a load balancer lets a key make up to N times the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from vidq.errors import RateLimited

# Past this many keys, buckets that have refilled (keys idle a while) are forgotten.
MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets of `burst` requests that refill at `per_second` (0: no limit)."""

    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key_hash: str) -> None:
        """Count one request of the key; 429 rate_limited if its bucket is empty."""
        retry_after = self.try_take(key_hash)
        if retry_after is not None:
            raise RateLimited(
                f"This API key may make {self.per_second:g} requests per second "
                f"(bursts of {self.burst}); retry in {retry_after} seconds.",
                retry_after=retry_after,
            )

    def try_take(self, key_hash: str) -> int | None:
        """Count one request of the key and return None; or, if its bucket is empty, count
        nothing and return the seconds to wait."""
        if self.per_second <= 0:
            return None
        now = self.clock()
        bucket = self._buckets.get(key_hash)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[key_hash] = _Bucket(tokens=self.burst, updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        if bucket.tokens < 1:
            return max(1, math.ceil((1 - bucket.tokens) / self.per_second))
        bucket.tokens -= 1
        return None

    def _forget_full(self, now: float) -> None:
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.per_second < self.burst
        }
