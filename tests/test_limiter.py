"""The rate limiter: waits (never fails), in arrival order, exact under an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from llmkit import ConfigError, RateLimits
from llmkit._limiter import RateLimiter


async def test_requests_per_minute_spaces_starts_after_the_burst(fake_sleep) -> None:
    limiter = RateLimiter(RateLimits(requests_per_minute=60), clock=fake_sleep.clock, sleep=fake_sleep)
    starts = []
    for _ in range(63):
        permit = await limiter.acquire(0)
        starts.append(fake_sleep.now)
        permit.release()
    assert starts[59] == starts[0]  # a full minute's bucket at first
    assert [round(b - a, 6) for a, b in zip(starts[59:], starts[60:], strict=False)] == [1.0, 1.0, 1.0]


async def test_tokens_per_minute_waits_for_refill_and_corrects_with_actual_usage(fake_sleep) -> None:
    waits: list[tuple[str, float]] = []
    limiter = RateLimiter(
        RateLimits(tokens_per_minute=600),
        clock=fake_sleep.clock,
        sleep=fake_sleep,
        on_wait=lambda limit, s: waits.append((limit, s)),
    )
    (await limiter.acquire(600)).release(actual_tokens=300)  # used half: 300 come back
    await limiter.acquire(300)
    assert fake_sleep.waits == []
    await limiter.acquire(60)  # bucket empty: 60 tokens at 10/s
    assert fake_sleep.waits == [pytest.approx(6.0)]
    assert waits == [("tokens", pytest.approx(6.0))]


async def test_request_larger_than_the_whole_budget_fails_at_once(fake_sleep) -> None:
    limiter = RateLimiter(RateLimits(tokens_per_minute=1000), clock=fake_sleep.clock, sleep=fake_sleep)
    with pytest.raises(ConfigError, match="could never start"):
        await limiter.acquire(5000)
    assert fake_sleep.waits == []


async def test_concurrency_slot_is_handed_over_in_order() -> None:
    limiter = RateLimiter(RateLimits(max_concurrency=2))
    order: list[int] = []
    running = 0
    peak = 0

    async def job(i: int) -> None:
        nonlocal running, peak
        permit = await limiter.acquire(0)
        order.append(i)
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        permit.release()

    await asyncio.gather(*(job(i) for i in range(10)))
    assert peak == 2
    assert order == list(range(10))
    assert limiter.in_flight == 0


async def test_cancelled_waiter_does_not_leak_its_slot() -> None:
    limiter = RateLimiter(RateLimits(max_concurrency=1))
    first = await limiter.acquire(0)
    waiter = asyncio.ensure_future(limiter.acquire(0))
    await asyncio.sleep(0)
    waiter.cancel()
    first.release()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    again = await asyncio.wait_for(limiter.acquire(0), 1)
    again.release()
    assert limiter.in_flight == 0


async def test_one_limiter_serves_two_event_loops() -> None:
    """The sync twins run on a background loop while async callers use their own: no loop-bound locks."""
    import threading

    limiter = RateLimiter(RateLimits(max_concurrency=1))
    held = await limiter.acquire(0)
    result: list[str] = []

    def other_thread() -> None:
        async def take() -> None:
            permit = await limiter.acquire(0)
            result.append("got it")
            permit.release()

        asyncio.run(take())

    thread = threading.Thread(target=other_thread)
    thread.start()
    await asyncio.sleep(0.05)
    assert result == []
    held.release()
    thread.join(5)
    assert result == ["got it"]
