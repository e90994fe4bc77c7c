"""Deadlines and the cap on provider-imposed waits, end to end against the FakeProvider."""

from __future__ import annotations

import asyncio
import builtins
import time

import pytest

from llmkit import LLMClient, Model, RateLimitError, RequestOptions, RetryPolicy, StreamDelta, TimeoutError
from llmkit.testing import FakeProvider


@pytest.fixture(autouse=True, scope="module")
def _litellm_imported() -> None:
    """Import litellm before the clock starts: its first import takes seconds on a loaded machine."""
    from llmkit._transport import _litellm

    _litellm()


def _client(fake: FakeProvider, **kwargs: object) -> LLMClient:
    model = Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key="sk-fake-deadline")
    return LLMClient(model, **kwargs)  # type: ignore[arg-type]


async def test_a_retry_after_beyond_the_deadline_fails_the_call_at_once(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    start = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        await client.acomplete("[[fail:429:3600]] hello", options=RequestOptions(deadline_s=10))
    assert time.monotonic() - start < 3  # well under the 10 s deadline, let alone the hour
    assert caught.value.retry_after == 3600
    assert fake_provider.count == 1  # the retry was not even sent: it would have had to wait an hour


async def test_a_batch_deadline_fails_parked_items_at_once_with_their_retry_after(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    start = time.monotonic()
    results = await client.abatch(["[[fail:429:3600]] first", "second", "third"], deadline_s=10)
    assert time.monotonic() - start < 3
    first = results[0].error
    assert isinstance(first, RateLimitError) and first.retry_after == 3600
    # The hour-long cooldown the first 429 set parks the deployment for the others too: they fail as well, at once,
    # with how long the cooldown still has to run.
    for completion in results[1:]:
        assert isinstance(completion.error, RateLimitError) or completion.ok
        if isinstance(completion.error, RateLimitError):
            assert 3500 < (completion.error.retry_after or 0) <= 3600


async def test_without_a_deadline_max_wait_s_caps_any_single_wait(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    assert client.retry.max_wait_s == 300  # the documented default
    start = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        await client.acomplete("[[fail:429:3600]] hello")
    assert time.monotonic() - start < 3 and caught.value.retry_after == 3600


async def test_a_short_retry_after_is_waited_out(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider, retry=RetryPolicy(max_wait_s=5))
    start = time.monotonic()
    answer = await client.acomplete("[[fail_once:429:1]] hello", options=RequestOptions(deadline_s=10))
    assert answer.ok and answer.attempts == 2
    assert 0.9 < time.monotonic() - start < 5
    assert client.status.waited_s["cooldown"] == pytest.approx(1.0, abs=0.1)


async def test_the_deadline_cuts_an_attempt_in_flight(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="deadline passed after 1 attempt"):
        await client.acomplete("[[sleep:5]] slow", options=RequestOptions(deadline_s=0.5))
    assert time.monotonic() - start < 1.5


async def test_a_backoff_past_the_deadline_raises_the_error_that_caused_it(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider, retry=RetryPolicy(initial_backoff_s=30, jitter=False))
    start = time.monotonic()
    with pytest.raises(Exception) as caught:
        await client.acomplete("[[fail:503]] down", options=RequestOptions(deadline_s=5))
    assert getattr(caught.value, "status", None) == 503
    assert time.monotonic() - start < 2 and fake_provider.count == 1


def test_the_progress_bar_says_what_it_waits_for(fake_provider: FakeProvider, capsys: pytest.CaptureFixture) -> None:
    client = _client(fake_provider, retry=RetryPolicy(max_wait_s=10))
    results = client.batch(["[[fail_once:429:2.5]] patience"], show_progress=True)
    assert results[0].ok
    err = capsys.readouterr().err
    assert "waiting=cooldown" in err


# -- streams: first-chunk and stall timeouts, and the upstream connection closed ------------------------------------


async def _disconnects(fake: FakeProvider, expected: int, within_s: float = 2.0) -> int:
    """The fake's disconnect count once it reaches ``expected`` (it polls its connections every 20 ms)."""
    end = time.monotonic() + within_s
    while fake.disconnects < expected and time.monotonic() < end:
        await asyncio.sleep(0.02)
    return fake.disconnects


async def test_a_stream_that_stalls_after_3_chunks_raises_within_the_stall_timeout(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    options = RequestOptions(stall_timeout_s=1.0)
    deltas: list[StreamDelta] = []
    last = time.monotonic()
    with pytest.raises(TimeoutError, match="stalled: no chunk for 1 s") as caught:
        async for item in client.astream("[[stall_after:3]] one two three four five six", options=options):
            assert isinstance(item, StreamDelta)
            deltas.append(item)
            last = time.monotonic()
    assert time.monotonic() - last < 1.0 + 0.5
    assert deltas and caught.value.retryable  # a timeout is retryable, but text was yielded: it raised instead
    assert fake_provider.count == 1
    assert await _disconnects(fake_provider, 1) == 1


async def test_no_first_chunk_in_time_is_retried_like_any_timeout(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider, retry=RetryPolicy(max_attempts=2, initial_backoff_s=0))
    options = RequestOptions(first_token_timeout_s=0.5)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="no first chunk within 0.5 s"):
        async for _ in client.astream("[[stall_after:0]] silent", options=options):
            pytest.fail("nothing was streamed")
    assert time.monotonic() - start < 2 * 0.5 + 1.0
    assert fake_provider.count == 2  # retried once: nothing had been yielded
    assert await _disconnects(fake_provider, 2) == 2


async def test_a_consumer_that_stops_early_closes_the_connection(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    async for item in client.astream("[[stall_after:3]] one two three four five six"):
        assert isinstance(item, StreamDelta)
        break
    assert await _disconnects(fake_provider, 1) == 1


def test_a_sync_consumer_that_stops_early_closes_the_connection(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    for _ in client.stream("[[stall_after:3]] one two three four five six"):
        break
    end = time.monotonic() + 2
    while fake_provider.disconnects < 1 and time.monotonic() < end:
        time.sleep(0.02)
    assert fake_provider.disconnects == 1


async def test_a_stream_within_its_timeouts_is_untouched(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    options = RequestOptions(first_token_timeout_s=5, stall_timeout_s=5)
    items = [item async for item in client.astream("one two three", options=options)]
    assert items[-1].text == "".join(i.text or "" for i in items[:-1] if isinstance(i, StreamDelta))
    assert fake_provider.disconnects == 0


# -- AttemptTimer: one loop timer for every attempt in flight with the same timeout ----------------------------------


async def test_every_attempt_is_cut_at_its_own_deadline_with_one_shared_timer() -> None:
    """Staggered attempts sharing a timeout: a fast one finishing first must not leave a slow later one unbounded,
    and each is cut about ``timeout`` after its own start."""
    from llmkit._client import bounded

    model = Model("openai/gpt-4o-mini")
    ends: dict[str, float] = {}

    async def attempt(name: str, delay: float, work: float) -> str:
        await asyncio.sleep(delay)
        start = time.monotonic()
        try:
            return await bounded(0.3, model, asyncio.sleep(work, name))
        except TimeoutError:
            ends[name] = time.monotonic() - start
            raise

    results = await asyncio.gather(
        attempt("fast", 0.0, 0.01), attempt("slow-a", 0.05, 5), attempt("ok", 0.1, 0.05), attempt("slow-b", 0.2, 5),
        return_exceptions=True,
    )
    assert results[0] == "fast" and results[2] == "ok"
    assert isinstance(results[1], TimeoutError) and isinstance(results[3], TimeoutError)
    assert 0.25 < ends["slow-a"] < 1.5 and 0.25 < ends["slow-b"] < 1.5


async def test_a_cancel_from_elsewhere_stays_a_cancel_and_leaves_no_timer_behind() -> None:
    from llmkit._budget import _queues
    from llmkit._client import bounded

    model = Model("openai/gpt-4o-mini")
    task = asyncio.ensure_future(bounded(30, model, asyncio.sleep(10)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.gather(*(bounded(30, model, asyncio.sleep(0, i)) for i in range(50))) == list(range(50))
    assert not _queues[asyncio.get_running_loop()][30].timers  # no attempt is remembered after it ends


async def test_an_expired_attempt_leaves_its_task_uncancelled_for_an_outer_timeout() -> None:
    """After the attempt's deadline turns the cancel into TimeoutError, the task is not left "cancelling": an outer
    asyncio.timeout (the call's deadline) still works."""
    from llmkit._client import bounded

    model = Model("openai/gpt-4o-mini")
    with pytest.raises(TimeoutError):
        await bounded(0.05, model, asyncio.sleep(5))
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    with pytest.raises(builtins.TimeoutError):
        async with asyncio.timeout(0.05):
            await asyncio.sleep(5)


def test_a_finished_event_loop_is_not_kept_alive_by_its_timers() -> None:
    import gc

    from llmkit._budget import _queues
    from llmkit._client import bounded

    model = Model("openai/gpt-4o-mini")
    gc.collect()
    before = len(_queues)
    for _ in range(3):
        assert asyncio.run(bounded(30, model, asyncio.sleep(0, "done"))) == "done"
    gc.collect()
    assert len(_queues) <= before
