"""LLMClient with an in-process transport: cache, retries, routing, capabilities, twins and streams."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmkit import (
    Completion,
    LLMClient,
    Model,
    NoModelAvailableError,
    RetryPolicy,
    SamplingParams,
    StreamDelta,
    UnsupportedFeatureError,
    Usage,
)
from llmkit.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextWindowExceededError,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
    TimeoutError,
)


def client_for(transport, fake_sleep=None, models=None, **kwargs) -> LLMClient:
    extra = {"sleep": fake_sleep, "clock": fake_sleep.clock} if fake_sleep else {}
    return LLMClient(models or [Model("openai/a")], transport=transport, seed=0, **extra, **kwargs)


async def test_cache_hit_sends_nothing_and_is_marked(transport, tmp_path) -> None:
    client = client_for(transport, cache=tmp_path / "c")
    first = await client.acomplete("hello")
    second = await client.acomplete("hello")
    assert len(transport.calls) == 1
    assert (first.cache_hit, second.cache_hit, second.text, second.attempts) == (False, True, first.text, 0)
    assert client.status.cache_hits == 1 and client.status.requests_sent == 1


async def test_cache_is_shared_across_processes_and_runs(transport, tmp_path) -> None:
    await client_for(transport, cache=tmp_path / "c").acomplete("persist me")
    again = await client_for(transport, cache=str(tmp_path / "c")).acomplete("persist me")
    assert again.cache_hit and len(transport.calls) == 1


async def test_pool_lookup_finds_an_answer_from_any_model(transport, tmp_path) -> None:
    await client_for(transport, models=[Model("openai/a")], cache=tmp_path / "c").acomplete("q")
    pooled = client_for(transport, models=[Model("openai/b"), Model("openai/a")], cache=tmp_path / "c")
    hit = await pooled.acomplete("q")
    assert hit.cache_hit and hit.model == "openai/a" and len(transport.calls) == 1


async def test_errors_are_not_cached(transport, tmp_path) -> None:
    transport.enqueue(BadRequestError("nope"))
    client = client_for(transport, cache=tmp_path / "c")
    with pytest.raises(BadRequestError):
        await client.acomplete("q")
    assert (await client.acomplete("q")).ok
    assert len(transport.calls) == 2


async def test_retryable_error_is_retried_with_backoff(transport, fake_sleep) -> None:
    transport.enqueue(ProviderError("boom", status=500), ProviderError("boom", status=503))
    client = client_for(transport, fake_sleep, retry=RetryPolicy(max_attempts=3, initial_backoff_s=1, jitter=False))
    result = await client.acomplete("q")
    assert result.ok and result.attempts == 3 and len(transport.calls) == 3
    assert [w for w in fake_sleep.waits if w] == [1.0, 2.0]
    assert client.status.retried == 2


async def test_a_retryable_error_on_the_only_allowed_attempt_is_not_retried(transport, fake_sleep) -> None:
    transport.enqueue(ProviderError("boom", status=500))
    client = client_for(transport, fake_sleep, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ProviderError):
        await client.acomplete("q")
    assert len(transport.calls) == 1 and client.status.retried == 0


_NO_CYCLES = """
import asyncio, gc, sys
sys.path.insert(0, sys.argv[1])
from conftest import ScriptedTransport
from llmkit import LLMClient, Model

async def main():
    client = LLMClient([Model("openai/a")], transport=ScriptedTransport(), seed=0)
    await client.abatch(["warm up"])
    gc.collect()
    gc.disable()
    for i in range(20):
        await client.acomplete(f"q{i}")
    await client.abatch([f"b{i}" for i in range(20)])
    print(gc.collect())

asyncio.run(main())
"""


def test_calls_that_need_no_retry_leave_no_cyclic_garbage() -> None:
    """Objects in reference cycles wait for the cyclic collector, and with litellm loaded its full passes walk
    millions of objects: a batch pays for every cycle a call leaves. Tenacity's per-call state was one (41 objects
    per call), so the first attempt runs without it. In a fresh process: servers other tests left running close
    their sockets in their own threads, and that garbage is not the calls'."""
    tests = str(Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", _NO_CYCLES, tests], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0", out.stderr


async def test_each_failed_attempt_is_logged_at_info_with_its_cause(transport, fake_sleep, caplog) -> None:
    transport.enqueue(ProviderError("upstream said 503", status=503))
    with caplog.at_level(logging.INFO, logger="llmkit"):
        assert (await client_for(transport, fake_sleep).acomplete("q")).ok
    assert "attempt 1 on openai/a failed: ProviderError: upstream said 503" in caplog.text


async def test_non_retryable_error_is_sent_once(transport, fake_sleep) -> None:
    transport.enqueue(AuthenticationError("bad key"))
    client = client_for(transport, fake_sleep, models=[Model("openai/a"), Model("openai/b")])
    with pytest.raises(AuthenticationError):
        await client.acomplete("q")
    assert len(transport.calls) == 1


async def test_rate_limit_waits_retry_after_then_succeeds(transport, fake_sleep) -> None:
    transport.enqueue(RateLimitError("429", retry_after=7.5))
    client = client_for(transport, fake_sleep)
    result = await client.acomplete("q")
    assert result.ok and len(transport.calls) == 2
    assert sum(fake_sleep.waits) >= 7.5


async def test_429s_on_requests_already_in_flight_are_not_charged(transport, fake_sleep) -> None:
    """Three requests sent together all get 429: only the first is charged, the others' attempts are not used up."""

    def throttled(request):
        fake_sleep.now += 0.1  # each 429 arrives a little later than the three were sent
        return RateLimitError("429", retry_after=0.5)

    transport.delay_s = 0.01
    transport.enqueue(throttled, throttled, throttled)
    client = client_for(transport, fake_sleep, retry=RetryPolicy(max_attempts=1))
    results = await asyncio.gather(*(client.acomplete(f"q{i}") for i in range(3)), return_exceptions=True)
    assert [isinstance(r, RateLimitError) for r in results].count(True) == 1
    assert [isinstance(r, Completion) and r.ok for r in results].count(True) == 2
    assert len(transport.calls) == 5


async def test_a_provider_that_always_429s_stops_after_max_attempts(transport, fake_sleep) -> None:
    transport.enqueue(*[RateLimitError("quota exceeded", retry_after=1.0) for _ in range(20)])
    client = client_for(transport, fake_sleep, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(RateLimitError, match="quota"):
        await client.acomplete("q")
    assert len(transport.calls) == 4


async def test_retry_switches_to_another_model(transport, fake_sleep) -> None:
    transport.enqueue(ProviderError("down", status=503))
    client = client_for(transport, fake_sleep, models=[Model("openai/a"), Model("openai/b")])
    result = await client.acomplete("q")
    first, second = (r.model.name for r in transport.calls)
    assert first != second and result.model == second


async def test_dead_model_leaves_pool_and_last_one_fails_fast(transport, fake_sleep) -> None:
    transport.enqueue(AuthenticationError("bad key a"), AuthenticationError("bad key b"))
    client = client_for(transport, fake_sleep, models=[Model("openai/a"), Model("openai/b")])
    with pytest.raises(AuthenticationError):
        await client.acomplete("one")
    with pytest.raises(AuthenticationError):
        await client.acomplete("two")
    with pytest.raises(NoModelAvailableError, match="no model is left"):
        await client.acomplete("three")
    assert len(transport.calls) == 2


async def test_unsupported_feature_raises_before_any_request(transport) -> None:
    transport.unsupported["openai/a"] = UnsupportedFeatureError("openai/a does not support logprobs")
    client = client_for(transport)
    with pytest.raises(UnsupportedFeatureError, match="logprobs"):
        await client.acomplete("q", sampling=SamplingParams(logprobs=True))
    assert transport.calls == []


async def test_incapable_models_are_skipped_for_that_call(transport) -> None:
    transport.unsupported["openai/a"] = UnsupportedFeatureError("no")
    client = client_for(transport, models=[Model("openai/a", weight=100), Model("openai/b", weight=1)])
    for _ in range(5):
        assert (await client.acomplete("q")).model == "openai/b"


async def test_sampling_precedence_reaches_the_transport(transport) -> None:
    model = Model("openai/a", sampling=SamplingParams(temperature=0.1, max_tokens=50, seed=3))
    client = client_for(transport, models=[model], sampling=SamplingParams(temperature=0.5, top_p=0.5))
    await client.acomplete("q", sampling=SamplingParams(temperature=0.9))
    sent = transport.calls[0].sampling
    assert (sent.temperature, sent.top_p, sent.max_tokens, sent.seed) == (0.9, 0.5, 50, 3)


def test_sync_twin_outside_a_loop(transport) -> None:
    assert client_for(transport).complete("sync").text == "echo: sync"


async def test_sync_twin_inside_a_running_loop_and_shared_client(transport) -> None:
    """Jupyter runs cells inside a loop; complete() must work there, on the same client as acomplete()."""
    client = client_for(transport)
    assert client.complete("inside").text == "echo: inside"
    assert (await client.acomplete("async")).text == "echo: async"
    assert client.complete("again").text == "echo: again"


async def test_stream_yields_deltas_then_one_completion(transport) -> None:
    items = [item async for item in client_for(transport).astream("a b c")]
    assert all(isinstance(i, StreamDelta) for i in items[:-1]) and isinstance(items[-1], Completion)
    assert "".join(i.text or "" for i in items[:-1]).strip() == items[-1].text


def test_sync_stream(transport) -> None:
    items = list(client_for(transport).stream("x y"))
    assert items[-1].text == "echo: x y"


async def test_stream_retries_before_first_delta(transport, fake_sleep) -> None:
    transport.enqueue(ProviderError("reset"))
    items = [i async for i in client_for(transport, fake_sleep).astream("q")]
    assert items[-1].attempts == 2 and len(transport.calls) == 2


async def test_stream_cache_hit_replays_text(transport, tmp_path) -> None:
    client = client_for(transport, cache=tmp_path / "c")
    await client.acomplete("cached stream")
    items = [i async for i in client.astream("cached stream")]
    assert items[0].text == "echo: cached stream" and items[-1].cache_hit
    assert len(transport.calls) == 1


async def test_timeout_error_is_retried(transport, fake_sleep) -> None:
    transport.enqueue(TimeoutError("slow"))
    assert (await client_for(transport, fake_sleep).acomplete("q")).attempts == 2


async def test_status_counts_tokens_and_cost(transport) -> None:
    transport.enqueue(Completion(text="x", usage=Usage(input_tokens=10, output_tokens=5), cost_usd=0.25))
    client = client_for(transport)
    await client.acomplete("q")
    await client.acomplete("r")
    assert client.status.usage.total_tokens == 15 + 5
    assert client.status.cost_usd == 0.25 and client.status.unpriced == 1
    client.status.reset()
    assert client.status.succeeded == 0 and client.status.usage.total_tokens == 0


async def test_concurrent_calls_respect_max_concurrency(transport) -> None:
    from llmkit import RateLimits

    transport.delay_s = 0.01
    client = client_for(transport, limits=RateLimits(max_concurrency=3))
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, client.status.in_flight)
            await asyncio.sleep(0.001)

    watcher = asyncio.ensure_future(watch())
    await asyncio.gather(*(client.acomplete(f"q{i}") for i in range(12)))
    watcher.cancel()
    assert peak == 3


async def test_stream_cache_hit_replays_tool_calls(transport, tmp_path) -> None:
    from llmkit import ToolCall

    call = ToolCall(id="c1", name="f", arguments={"x": 1}, raw_arguments='{"x": 1}')
    transport.enqueue(Completion(tool_calls=[call], finish_reason="tool_calls"))
    client = client_for(transport, cache=tmp_path / "c")
    await client.acomplete("call f")
    items = [i async for i in client.astream("call f")]
    chunks = [i.tool_call for i in items[:-1] if i.tool_call]
    assert [(c.id, c.name, c.arguments) for c in chunks] == [("c1", "f", '{"x": 1}')]


def test_repr_shows_an_empty_cache(transport, tmp_path) -> None:
    assert str(tmp_path / "c") in repr(client_for(transport, cache=tmp_path / "c"))


def too_long_for(*names: str):
    """A scripted reply: the models named refuse every prompt as too long; the others echo it."""

    def reply(request):
        if request.model.name in names:
            return ContextWindowExceededError("prompt is too long", model=request.model.name)
        return None

    return reply


async def test_context_window_fallbacks_are_tried_in_order_only_after_a_too_long_refusal(transport) -> None:
    transport.enqueue(*[too_long_for("openai/small", "openai/medium")] * 3)
    fallbacks = [Model("openai/medium"), Model("openai/large"), Model("openai/huge")]
    client = client_for(transport, models=[Model("openai/small")], context_window_fallbacks=fallbacks)
    answer = await client.acomplete("long")
    assert [r.model.name for r in transport.calls] == ["openai/small", "openai/medium", "openai/large"]
    assert answer.model == "openai/large" and answer.attempts == 3
    # Moving on to a fallback is not a retry: each fallback has its own max_attempts.
    assert (client.status.succeeded, client.status.failed, client.status.retried) == (1, 0, 0)


async def test_each_context_window_fallback_has_its_own_retry_budget(transport, fake_sleep) -> None:
    too_long = too_long_for("openai/a")
    transport.enqueue(ProviderError("down", status=503), too_long, ProviderError("down", status=503))
    retry = RetryPolicy(max_attempts=2, initial_backoff_s=1, jitter=False)
    models = [Model("openai/a")]
    client = client_for(transport, fake_sleep, models=models, context_window_fallbacks=["openai/b"], retry=retry)
    answer = await client.acomplete("long")
    assert [r.model.name for r in transport.calls] == ["openai/a", "openai/a", "openai/b", "openai/b"]
    assert answer.ok and answer.model == "openai/b" and answer.attempts == 4
    assert [w for w in fake_sleep.waits if w] == [1.0, 1.0] and client.status.retried == 2


@pytest.mark.parametrize("broken", [AuthenticationError, ModelNotFoundError])
async def test_a_broken_context_window_fallback_hands_on_to_the_next(transport, broken) -> None:
    def reply(request):
        if request.model.name == "openai/bad-key":
            return broken("bad key or no such model", model=request.model.name)
        return too_long_for("openai/a")(request)

    transport.enqueue(reply, reply, reply)
    fallbacks = ["openai/bad-key", "openai/b"]
    client = client_for(transport, models=[Model("openai/a")], context_window_fallbacks=fallbacks)
    assert (await client.acomplete("long")).model == "openai/b"
    transport.enqueue(reply, reply)
    assert (await client.acomplete("long again")).model == "openai/b"  # the removed fallback is not tried again
    assert [r.model.name for r in transport.calls] == ["openai/a", "openai/bad-key", "openai/b", "openai/a", "openai/b"]


async def test_context_window_fallbacks_are_checked_only_when_a_prompt_needs_them(transport) -> None:
    transport.unsupported["openai/typo"] = ConfigError("LiteLLM does not know how to reach model 'openai/typo'")
    client = client_for(transport, models=[Model("openai/a")], context_window_fallbacks=["openai/typo"])
    assert (await client.acomplete("short")).ok
    transport.enqueue(too_long_for("openai/a"))
    with pytest.raises(ConfigError, match="openai/typo"):
        await client.acomplete("long")


async def test_routing_never_picks_a_context_window_fallback(transport) -> None:
    client = client_for(transport, models=[Model("openai/a")], context_window_fallbacks=["openai/big"])
    await client.abatch([f"q{i}" for i in range(30)])
    assert {r.model.name for r in transport.calls} == {"openai/a"}
    assert "context_window_fallbacks=['openai/big']" in repr(client)


async def test_a_prompt_too_long_for_every_fallback_fails_with_the_last_refusal(transport) -> None:
    transport.enqueue(*[too_long_for("openai/a", "openai/b")] * 2)
    client = client_for(transport, models=[Model("openai/a")], context_window_fallbacks=["openai/b"])
    with pytest.raises(ContextWindowExceededError) as raised:
        await client.acomplete("far too long")
    assert raised.value.model == "openai/b" and len(transport.calls) == 2


async def test_without_fallbacks_a_too_long_prompt_is_sent_once(transport) -> None:
    transport.enqueue(too_long_for("openai/a"))
    with pytest.raises(ContextWindowExceededError):
        await client_for(transport).acomplete("far too long")
    assert len(transport.calls) == 1


async def test_a_fallback_that_cannot_do_what_the_call_asks_is_skipped(transport) -> None:
    transport.enqueue(too_long_for("openai/a"))
    transport.unsupported["openai/no-logprobs"] = UnsupportedFeatureError("no logprobs", model="openai/no-logprobs")
    fallbacks = ["openai/no-logprobs", "openai/logprobs"]
    client = client_for(transport, models=[Model("openai/a")], context_window_fallbacks=fallbacks)
    answer = await client.acomplete("long", sampling=SamplingParams(logprobs=True))
    assert answer.model == "openai/logprobs" and [r.model.name for r in transport.calls] == ["openai/a", answer.model]


async def test_a_stream_too_long_for_the_pool_streams_from_the_fallback(transport) -> None:
    transport.enqueue(too_long_for("openai/a"))
    client = client_for(transport, models=[Model("openai/a")], context_window_fallbacks=["openai/b"])
    items = [item async for item in client.astream("x y")]
    assert "".join(i.text or "" for i in items[:-1]).strip() == items[-1].text == "echo: x y"
    assert items[-1].model == "openai/b" and (client.status.succeeded, client.status.failed) == (1, 0)


async def test_a_stream_too_long_for_every_fallback_raises_the_last_refusal_and_counts_one_failure(transport) -> None:
    transport.enqueue(too_long_for("openai/a", "openai/b"), too_long_for("openai/a", "openai/b"))
    client = client_for(transport, models=[Model("openai/a")], context_window_fallbacks=["openai/b"])
    with pytest.raises(ContextWindowExceededError) as raised:
        [item async for item in client.astream("far too long")]
    assert raised.value.model == "openai/b" and (client.status.succeeded, client.status.failed) == (0, 1)


async def test_with_every_pool_model_removed_prompts_fail_fast_and_never_reach_a_fallback(transport) -> None:
    transport.enqueue(AuthenticationError("bad key"))
    client = client_for(transport, models=[Model("openai/a")], context_window_fallbacks=["openai/b"])
    with pytest.raises(AuthenticationError):
        await client.acomplete("q1")
    with pytest.raises(NoModelAvailableError):
        await client.acomplete("q2")
    with pytest.raises(NoModelAvailableError):
        [item async for item in client.astream("q3")]
    assert [r.model.name for r in transport.calls] == ["openai/a"]


async def test_a_stream_refused_after_its_first_text_is_not_repeated_by_a_fallback() -> None:
    class TextThenTooLong:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def check(self, request) -> None:
            pass

        async def acomplete(self, request):
            raise AssertionError("streams only")

        async def astream(self, request):
            self.calls.append(request.model.name)
            yield StreamDelta(text="partial ")
            raise ContextWindowExceededError("too long", model=request.model.name)

    transport = TextThenTooLong()
    client = LLMClient([Model("openai/a")], transport=transport, context_window_fallbacks=["openai/b"])
    seen = []
    with pytest.raises(ContextWindowExceededError):
        async for item in client.astream("q"):
            seen.append(item)
    assert [d.text for d in seen] == ["partial "] and transport.calls == ["openai/a"]


async def test_a_fallback_answer_is_found_by_any_pool_that_shares_the_cache(transport, tmp_path) -> None:
    await client_for(transport, models=[Model("openai/b")], cache=tmp_path / "c").acomplete("q")
    models = [Model("openai/a")]
    pooled = client_for(transport, models=models, context_window_fallbacks=["openai/b"], cache=tmp_path / "c")
    hit = await pooled.acomplete("q")
    assert hit.cache_hit and hit.model == "openai/b" and len(transport.calls) == 1


def test_latency_starts_at_the_send_not_at_the_first_call_s_setup(transport) -> None:
    """The first call imports LiteLLM during its capability check (seconds); that is not the answer's latency."""

    def slow_check(request: object) -> None:
        time.sleep(0.3)  # as the real transport's first check imports litellm

    transport.check = slow_check
    completion = client_for(transport).complete("hi")
    assert completion.text == "echo: hi" and completion.latency_s < 0.2
