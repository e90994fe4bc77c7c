"""Batches: order, isolation of failures, bounded flight over generators, dedupe, cancellation, progress."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from llmkit import BadRequestError, LLMClient, Model, Prompt, RetryPolicy, SamplingParams
from llmkit.errors import ProviderError


def client_for(transport, **kwargs) -> LLMClient:
    return LLMClient([Model("openai/a")], transport=transport, seed=0, **kwargs)


def fail_on(word: str, error: Exception):
    def reply(request):
        return error if word in request.messages[-1]["content"] else None

    return reply


async def test_results_in_input_order_with_failures_isolated(transport) -> None:
    transport.delay_s = 0.001
    transport.enqueue(*[fail_on("bad", BadRequestError("rejected")) for _ in range(10)])
    results = await client_for(transport).abatch([f"p{i}" if i != 3 else "bad" for i in range(10)])
    assert [r.text for r in results] == [f"echo: p{i}" if i != 3 else None for i in range(10)]
    assert not results[3].ok and isinstance(results[3].error, BadRequestError)
    assert results[3].finish_reason == "error"


async def test_return_completions_only_gives_texts(transport) -> None:
    assert await client_for(transport).abatch(["a", "b"], return_completions_only=True) == ["echo: a", "echo: b"]


async def test_raise_on_error_raises_the_llmkit_error(transport) -> None:
    transport.enqueue(BadRequestError("rejected"))
    with pytest.raises(BadRequestError):
        await client_for(transport).abatch(["a", "b"], raise_on_error=True, max_in_flight=1)


async def test_generator_is_pulled_lazily_with_bounded_flight(transport) -> None:
    pulled = 0
    peak = 0
    client = client_for(transport)
    transport.delay_s = 0.001

    def prompts():
        nonlocal pulled, peak
        for i in itertools.count():
            if i == 500:
                return
            pulled += 1
            peak = max(peak, pulled - client.status.succeeded)
            yield f"p{i}"

    seen = [index async for index, _ in client.as_completed(prompts(), max_in_flight=8)]
    assert sorted(seen) == list(range(500))
    assert peak <= 9  # never more than max_in_flight pulled ahead of what finished (+ the one being pulled)


async def test_identical_prompts_in_one_batch_are_sent_once(transport) -> None:
    results = await client_for(transport).abatch(["same", "same", "other", "same"])
    assert len(transport.calls) == 2
    assert [r.text for r in results] == ["echo: same", "echo: same", "echo: other", "echo: same"]


async def test_without_a_cache_dedupe_keeps_only_recent_answers(transport, monkeypatch) -> None:
    """Memory stays flat on huge uncached batches: a repeat far behind the window is sent again."""
    monkeypatch.setattr("llmkit._batch._RECENT_ANSWERS", 3)
    prompts = ["a", "b", "a", "c", "d", "e", "a"]
    results = await client_for(transport).abatch(prompts, max_in_flight=1)
    assert [r.text for r in results] == [f"echo: {p}" for p in prompts]
    assert [c.messages[-1]["content"] for c in transport.calls] == ["a", "b", "c", "d", "e", "a"]


async def test_sample_index_makes_repeats_distinct(transport, tmp_path) -> None:
    from llmkit import RequestOptions

    items = [Prompt(messages="same", options=RequestOptions(sample=i)) for i in range(3)]
    await client_for(transport, cache=tmp_path / "c").abatch(items)
    assert len(transport.calls) == 3


async def test_per_item_sampling_overrides_the_batch(transport) -> None:
    items = ["a", Prompt(messages="b", sampling=SamplingParams(temperature=1.0))]
    await client_for(transport).abatch(items, sampling=SamplingParams(temperature=0.0, max_tokens=9))
    by_text = {r.messages[-1]["content"]: r.sampling for r in transport.calls}
    assert (by_text["a"].temperature, by_text["b"].temperature, by_text["b"].max_tokens) == (0.0, 1.0, 9)


async def test_on_result_called_for_each(transport) -> None:
    seen: list[int] = []
    await client_for(transport).abatch(["a", "b", "c"], on_result=lambda i, c: seen.append(i))
    assert sorted(seen) == [0, 1, 2]


async def test_bad_prompt_becomes_an_error_result_not_a_crash(transport) -> None:
    results = await client_for(transport).abatch(["fine", 42, [{"role": "wizard", "content": "x"}]])
    assert results[0].ok and not results[1].ok and not results[2].ok
    assert "role" in str(results[2].error)


async def test_cancellation_stops_dispatch_and_keeps_finished_work_cached(transport, tmp_path) -> None:
    transport.delay_s = 0.02
    client = client_for(transport, cache=tmp_path / "c")
    task = asyncio.ensure_future(client.abatch([f"p{i}" for i in range(100)], max_in_flight=5))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = len(transport.calls)
    assert sent < 100
    finished = client.status.succeeded
    assert finished > 0
    rerun = client_for(transport, cache=tmp_path / "c")
    results = await rerun.abatch([f"p{i}" for i in range(100)])
    assert sum(r.cache_hit for r in results) == finished
    assert len(transport.calls) - sent == 100 - finished


async def test_retries_inside_a_batch_end_ok(transport, fake_sleep) -> None:
    transport.enqueue(*[ProviderError("flaky", status=500) for _ in range(5)])
    client = client_for(transport, retry=RetryPolicy(max_attempts=5), sleep=fake_sleep, clock=fake_sleep.clock)
    results = await client.abatch([f"p{i}" for i in range(20)])
    assert all(r.ok for r in results) and client.status.retried == 5


def test_sync_batch_with_progress_bar(transport, capsys) -> None:
    results = client_for(transport).batch(["a", "b"], show_progress=True)
    assert [r.text for r in results] == ["echo: a", "echo: b"]
    err = capsys.readouterr().err
    assert "2/2" in err and "hits=0" in err


async def test_prompt_prefer_model_routes_that_item(transport) -> None:
    client = LLMClient([Model("openai/a", weight=100), Model("openai/b", weight=1)], transport=transport, seed=0)
    results = await client.abatch([Prompt(messages=f"p{i}", prefer_model="openai/b") for i in range(10)])
    assert {r.model for r in results} == {"openai/b"}


def test_progress_shows_cached_work_as_saved_not_spent(transport, tmp_path, capsys) -> None:
    """A rerun served from the cache spends nothing: the bar says so, and shows what the cache saved."""
    client = LLMClient([Model("openai/a")], transport=transport, cache=tmp_path / "c")
    client.batch(["a", "b", "c"], show_progress=True)
    first = capsys.readouterr().err
    assert "tokens=15 " in first and "saved(" not in first  # the scripted echo: 5 tokens per answer
    client.batch(["a", "b", "c"], show_progress=True)
    rerun = capsys.readouterr().err
    assert "hits=3 " in rerun and "tokens=0 " in rerun and "saved(tokens=15 " in rerun
