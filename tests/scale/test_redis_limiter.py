"""The shared rate limiter against a real Redis server: buckets, start times, slots and leases across processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest
import redis
from redis_support import python_env

from llmkit import ConfigError, RateLimits, RedisState
from llmkit._redis import SharedLimiter


class RecordedSleep:
    """Records the waits the limiter asks for instead of sleeping (start times come from Redis's own clock)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def _settle(*limiters: SharedLimiter) -> None:
    """Wait for the give-backs a release sends in the background."""
    for limiter in limiters:
        await asyncio.gather(*limiter._pending)


def test_unreachable_redis_is_a_config_error_naming_the_url_without_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisState("redis://:hunter2secret@127.0.0.1:1/0", timeout_s=0.5)
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "does not answer" in message
    assert "hunter2secret" not in message


def test_a_bad_redis_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad Redis URL"):
        RedisState("http://127.0.0.1:6379")


async def test_two_processes_share_the_request_bucket(redis_url: str) -> None:
    sleep = RecordedSleep()
    with RedisState(redis_url) as one, RedisState(redis_url) as two:  # two states: two processes' connections
        limits = RateLimits(requests_per_minute=60)
        a = one.limiter(limits, sleep=sleep)
        b = two.limiter(limits, sleep=sleep)
        for _ in range(60):  # the bucket holds a minute's worth: all of it goes to a
            (await a.acquire(0)).release()
        assert sleep.waits == []
        (await b.acquire(0)).release()
        (await b.acquire(0)).release()
        # b was handed the next two start times: one and two seconds after a drained the bucket.
        assert sleep.waits[0] == pytest.approx(1.0, abs=0.15)
        assert sleep.waits[1] == pytest.approx(2.0, abs=0.15)


async def test_token_estimates_are_corrected_by_usage_for_every_process(redis_url: str) -> None:
    sleep = RecordedSleep()
    with RedisState(redis_url) as one, RedisState(redis_url) as two:
        limits = RateLimits(tokens_per_minute=6000)
        a, b = one.limiter(limits, sleep=sleep), two.limiter(limits, sleep=sleep)
        permit = await a.acquire(6000)  # an estimate of the whole minute's tokens
        permit.release(actual_tokens=600)  # ... of which the request really used a tenth
        await _settle(a)
        await b.acquire(5000)  # fits what was given back: no wait
        assert sleep.waits == []
        await b.acquire(1000)  # 600 over: 6 s at 100 tokens/s
        assert sleep.waits == [pytest.approx(6.0, abs=0.3)]


async def test_a_cancelled_waiter_hands_its_reservation_back(redis_url: str) -> None:
    with RedisState(redis_url) as state:
        limits = RateLimits(requests_per_minute=60)
        a = state.limiter(limits)
        for _ in range(60):
            (await a.acquire(0)).release()
        waiter = asyncio.ensure_future(a.acquire(0))
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await _settle(a)
        recorded = RecordedSleep()
        b = state.limiter(limits, sleep=recorded)
        await b.acquire(0)
        # Without the give-back this start would be two seconds out; with it, the cancelled one's second is free.
        assert recorded.waits == [pytest.approx(0.9, abs=0.15)]


async def test_concurrency_is_shared_and_a_waiter_gets_the_freed_slot(redis_url: str) -> None:
    with RedisState(redis_url) as one, RedisState(redis_url) as two:
        limits = RateLimits(max_concurrency=2)
        a, b = one.limiter(limits), two.limiter(limits)
        first, second = await a.acquire(0), await a.acquire(0)
        assert a.in_flight == 2
        waiting = asyncio.ensure_future(b.acquire(0))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # both slots are a's, in another "process"
        first.release()
        third = await asyncio.wait_for(waiting, 2)
        assert b.in_flight == 1
        second.release()
        third.release()
        await _settle(a, b)
        with redis.Redis.from_url(redis_url) as client:
            assert client.zcard(one.key("slots", "client")) == 0


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from llmkit import RateLimits, RedisState

    async def main():
        state = RedisState(sys.argv[1], lease_s=float(sys.argv[2]))
        await state.limiter(RateLimits(max_concurrency=1)).acquire(0)
        print("held", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def _holder(redis_url: str, lease_s: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, redis_url, str(lease_s)], stdout=subprocess.PIPE, text=True, env=python_env()
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


@pytest.mark.slow
async def test_a_killed_process_slot_frees_when_its_lease_runs_out_and_a_live_one_keeps_it(redis_url: str) -> None:
    holder = _holder(redis_url, lease_s=1.5)
    try:
        with RedisState(redis_url, lease_s=1.5) as state:
            limiter = state.limiter(RateLimits(max_concurrency=1))
            # The holder renews its lease: after two leases' time the slot is still its own.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(limiter.acquire(0), 3.2)
            holder.kill()  # kill -9: no release, no more renewals
            holder.wait()
            start = time.monotonic()
            (await asyncio.wait_for(limiter.acquire(0), 5)).release()
            assert time.monotonic() - start < 1.5 + 0.5
    finally:
        holder.kill()
        holder.wait()


_GRANTS = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from llmkit import RateLimits, RedisState

    async def main():
        state = RedisState(sys.argv[1])
        limiter = state.limiter(RateLimits(requests_per_minute=600))
        times = []
        for _ in range(int(sys.argv[2])):
            (await limiter.acquire(0)).release()
            times.append(time.time())
        print(json.dumps(times))
        await state.aclose()

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_three_processes_together_keep_to_the_limit(redis_url: str) -> None:
    with RedisState(redis_url) as state:  # drain the minute's burst, so every later start is paced at 10/s
        drain = state.limiter(RateLimits(requests_per_minute=600))
        for _ in range(600):
            (await drain.acquire(0)).release()
        with redis.Redis.from_url(redis_url) as client:  # what the drain left, and when (same machine: same clock)
            level, at = (float(v) for v in client.hmget(state.key("limits", "client"), ["r", "r@"]))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _GRANTS, redis_url, "10"], stdout=subprocess.PIPE, text=True, env=python_env()
        )
        for _ in range(3)
    ]
    times = sorted(t for w in workers for t in json.loads(w.communicate(timeout=60)[0]))
    # 30 starts at 10 per second: the n-th no earlier than the bucket held n requests again, and none idle.
    for n, granted in enumerate(times, 1):
        assert granted >= at + (n - level) / 10 - 0.01, (n, granted - at, level)
    assert times[-1] - at < 3.0 + 2.5  # process start-up (imports) overlaps the first grants
