"""Per-key rate limits: a token bucket per API key; over it, 429 rate_limited with Retry-After."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidq.api.ratelimit import RateLimiter
from vidq.errors import RateLimited

from .conftest import make_settings, running_server
from .helpers import assert_problem


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(RateLimited) as refused:
        limiter.take("a")
    assert refused.value.headers() == {"Retry-After": "1"}
    limiter.take("b")  # another key has its own bucket
    clock.now += 0.5  # one request's worth at 2 per second
    limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")
    clock.now += 60  # a bucket refills to its burst, no further
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")


def test_retry_after_is_the_wait_for_one_request() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=0.1, burst=1, clock=clock)
    limiter.take("a")
    clock.now += 2.5
    with pytest.raises(RateLimited) as refused:
        limiter.take("a")
    assert refused.value.retry_after == 8  # 7.5 s until the next token, rounded up


def test_a_rate_of_zero_means_no_limit() -> None:
    limiter = RateLimiter(per_second=0, burst=1)
    for _ in range(1000):
        limiter.take("a")


def test_over_its_rate_one_key_is_refused_and_another_is_not(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_limit_per_second=0.5, rate_limit_burst=3)
    with running_server(settings) as live:
        other_key = live.new_key("someone-else")
        with live.client() as mine, live.client(other_key) as theirs:
            for _ in range(3):
                assert mine.get("/presets").status_code == 200
            response = mine.get("/jobs")
            body = assert_problem(response, 429, "rate_limited")
            assert response.headers["retry-after"] == "2"
            assert "0.5 requests per second" in body["detail"]
            # The count is the key's, wherever the requests claim to come from.
            spoofed = mine.get("/presets", headers={"X-Forwarded-For": "203.0.113.7"})
            assert_problem(spoofed, 429, "rate_limited")
            assert theirs.get("/presets").status_code == 200
            assert mine.get("/healthz").status_code == 200  # no key, no count
