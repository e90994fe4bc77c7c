"""End-to-end: llmkit -> real LiteLLM -> FakeProvider on 127.0.0.1, in the OpenAI, Anthropic and Gemini formats.

The same prompt through each provider must give a Completion of the same shape; what crossed the wire is checked on
the fake's counters (a cache hit sends 0 requests, a 500 with retries off exactly 1).
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest

from llmkit import (
    AuthenticationError,
    ContextWindowExceededError,
    InvalidResponseError,
    LLMClient,
    Model,
    RateLimitError,
    RequestOptions,
    RetryPolicy,
    SamplingParams,
    StreamDelta,
    UnsupportedFeatureError,
)

CHAT = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash"}
REASONING = {
    "openai": "openai/o3-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
MARKER_KEY = "sk-MARKER-9f8e7d6c5b4a3210"
NO_RETRY = RetryPolicy(max_attempts=1)


def model(fake, provider: str, name: str | None = None, **kwargs) -> Model:
    return Model(name or CHAT[provider], api_base=fake.api_base(provider), api_key="fake-key", **kwargs)


def client(fake, provider: str, name: str | None = None, **kwargs) -> LLMClient:
    return LLMClient([model(fake, provider, name)], **kwargs)


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def provider(request) -> str:
    return request.param


async def test_text_usage_and_finish_reason_have_one_shape(fake_provider, provider) -> None:
    c = await client(fake_provider, provider).acomplete("Why is the sky blue?")
    assert c.text == "Echo: Why is the sky blue?"
    assert c.finish_reason == "stop" and c.thinking is None and c.tool_calls == [] and c.logprobs is None
    assert c.usage.input_tokens > 0 and c.usage.output_tokens == len(c.text.split())
    assert c.usage.total_tokens == c.usage.input_tokens + c.usage.output_tokens
    assert c.model == CHAT[provider] and c.attempts == 1 and not c.cache_hit and c.raw is not None
    assert fake_provider.count == 1


async def test_known_models_have_a_cost_and_unknown_ones_none(fake_provider) -> None:
    priced = await client(fake_provider, "openai").acomplete("price me")
    assert priced.cost_usd is not None and priced.cost_usd > 0
    unknown = await client(fake_provider, "openai", "openai/my-finetune-xyz").acomplete("price me")
    assert unknown.cost_usd is None


async def test_thinking_is_normalized(fake_provider, provider) -> None:
    sampling = SamplingParams(reasoning_effort="low", max_tokens=2000)
    c = await client(fake_provider, provider, REASONING[provider]).acomplete("Think first", sampling=sampling)
    assert c.thinking == "Thinking about: Think first"
    assert c.text == "Echo: Think first"
    assert c.usage.reasoning_tokens == len(c.thinking.split())
    assert c.usage.output_tokens >= c.usage.reasoning_tokens + len(c.text.split())
    if provider == "anthropic":
        assert c.thinking_blocks and c.thinking_blocks[0]["signature"]


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_logprobs_are_normalized(fake_provider, provider) -> None:
    sampling = SamplingParams(logprobs=True, top_logprobs=3)
    c = await client(fake_provider, provider).acomplete("count these words", sampling=sampling)
    assert c.logprobs is not None and len(c.logprobs) == len(c.text.split())
    for token in c.logprobs:
        assert token.logprob <= 0
        assert len(token.top) == 3
        assert [t.logprob for t in token.top] == sorted((t.logprob for t in token.top), reverse=True)


async def test_logprobs_on_anthropic_fail_before_any_request(fake_provider) -> None:
    with pytest.raises(UnsupportedFeatureError, match="anthropic/claude-sonnet-4-5"):
        await client(fake_provider, "anthropic").acomplete("x", sampling=SamplingParams(logprobs=True))
    assert fake_provider.count == 0


async def test_forced_tool_call_is_parsed(fake_provider, provider) -> None:
    options = RequestOptions(tools=[WEATHER], tool_choice="get_weather")
    c = await client(fake_provider, provider).acomplete("Weather in 'Paris'?", options=options)
    assert c.finish_reason == "tool_calls"
    (call,) = c.tool_calls
    assert call.name == "get_weather" and call.arguments == {"city": "Paris"} and call.id


async def test_max_tokens_cut_gives_length(fake_provider, provider) -> None:
    c = await client(fake_provider, provider).acomplete(
        "one two three four five six", sampling=SamplingParams(max_tokens=3)
    )
    assert c.finish_reason == "length" and c.text == "Echo: one two"


async def test_gemini_thinking_away_the_budget_gives_length_and_no_text(fake_provider) -> None:
    sampling = SamplingParams(thinking_budget=1024, max_tokens=2)
    c = await client(fake_provider, "gemini").acomplete("a long question to think about", sampling=sampling)
    assert c.finish_reason == "length" and c.text is None and c.thinking


async def test_stream_deltas_add_up_to_the_final_completion(fake_provider, provider) -> None:
    sampling = SamplingParams(reasoning_effort="low", max_tokens=2000)
    items = [
        i async for i in client(fake_provider, provider, REASONING[provider]).astream("Tell a story", sampling=sampling)
    ]
    deltas, final = items[:-1], items[-1]
    assert all(isinstance(d, StreamDelta) for d in deltas) and len(deltas) > 2
    assert "".join(d.text or "" for d in deltas) == final.text == "Echo: Tell a story"
    assert "".join(d.thinking or "" for d in deltas) == final.thinking
    assert final.usage.output_tokens > 0 and final.finish_reason == "stop"


async def test_streamed_tool_call(fake_provider, provider) -> None:
    options = RequestOptions(tools=[WEATHER], tool_choice="required")
    items = [i async for i in client(fake_provider, provider).astream("Weather in 'Oslo'?", options=options)]
    assert any(isinstance(i, StreamDelta) and i.tool_call for i in items[:-1])
    assert items[-1].tool_calls[0].arguments == {"city": "Oslo"}


async def test_anthropic_thinking_and_tools_round_trip_without_400(fake_provider) -> None:
    llm = client(fake_provider, "anthropic")
    sampling = SamplingParams(thinking_budget=1024, max_tokens=4000)
    options = RequestOptions(tools=[WEATHER], tool_choice="auto")
    history = [{"role": "user", "content": "Use get_weather for 'Rome'"}]
    first = await llm.acomplete(history, sampling=sampling, options=options)
    call = first.tool_calls[0]
    history += [first.to_message(), {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = await llm.acomplete(history, sampling=sampling, options=options)
    assert second.text == "Tool result: sunny"


async def test_cache_hit_sends_zero_requests(fake_provider, provider, tmp_path) -> None:
    llm = client(fake_provider, provider, cache=tmp_path / "cache")
    first = await llm.acomplete("cache me")
    second = await llm.acomplete("cache me")
    assert fake_provider.count == 1 and second.cache_hit and second.text == first.text
    assert second.usage == first.usage


async def test_a_500_with_retries_off_reaches_the_server_exactly_once(fake_provider, provider) -> None:
    """LiteLLM's and the OpenAI SDK's hidden retries are off: llmkit owns retries."""
    fake_provider.fail_next(kind="status", status=500)
    with pytest.raises(Exception) as info:
        await client(fake_provider, provider, retry=NO_RETRY).acomplete("x")
    assert info.value.retryable and info.value.status == 500
    assert fake_provider.count == 1


async def test_a_connection_reset_is_sent_once_per_attempt(fake_provider, provider) -> None:
    fake_provider.fail_next(kind="reset")
    c = await client(fake_provider, provider, retry=RetryPolicy(max_attempts=2, initial_backoff_s=0)).acomplete("x")
    assert c.ok and c.attempts == 2 and fake_provider.count == 2


async def test_a_429_waits_retry_after_then_succeeds(fake_provider, provider, fake_sleep) -> None:
    fake_provider.fail_next(kind="status", status=429, retry_after=2.0)
    llm = client(fake_provider, provider, sleep=fake_sleep, clock=fake_sleep.clock)
    c = await llm.acomplete("x")
    assert c.ok and c.attempts == 2 and fake_provider.count == 2
    assert sum(fake_sleep.waits) >= 2.0


async def test_429_error_carries_retry_after(fake_provider, provider) -> None:
    fake_provider.fail_next(kind="status", status=429, retry_after=3.0)
    with pytest.raises(RateLimitError) as info:
        await client(fake_provider, provider, retry=NO_RETRY).acomplete("x")
    assert info.value.retry_after == pytest.approx(3.0)


async def test_invalid_json_is_retried_as_invalid_response(fake_provider, provider) -> None:
    fake_provider.fail_next(kind="invalid_json")
    with pytest.raises(InvalidResponseError):
        await client(fake_provider, provider, retry=NO_RETRY).acomplete("x")
    fake_provider.fail_next(kind="invalid_json")
    assert (await client(fake_provider, provider, retry=RetryPolicy(initial_backoff_s=0)).acomplete("y")).attempts == 2


async def test_context_window_exceeded_is_not_retried(fake_provider, provider) -> None:
    with pytest.raises(ContextWindowExceededError):
        await client(fake_provider, provider, "openai/small-ctx" if provider == "openai" else None).acomplete(
            "word " * 9000
        )
    assert fake_provider.count == 1


async def test_a_prompt_too_long_for_the_pool_goes_to_the_context_window_fallback(
    fake_provider, provider, tmp_path
) -> None:
    """The fake gives models named *small-ctx* a 50-token window: a 60-word prompt is refused there, answered by the
    fallback, and cached under the fallback's key, so the rerun sends nothing."""
    small = model(fake_provider, provider, CHAT[provider] + "-small-ctx")
    kwargs = {"context_window_fallbacks": [model(fake_provider, provider)], "cache": tmp_path / "c"}
    long_prompt = "word " * 60
    answer = await LLMClient([small], **kwargs).acomplete(long_prompt)
    assert answer.model == CHAT[provider] and answer.text == "Echo: " + long_prompt
    assert answer.attempts == 2 and fake_provider.count == 2
    again = await LLMClient([small], **kwargs).acomplete(long_prompt)
    assert again.cache_hit and again.text == answer.text and fake_provider.count == 2
    short = await LLMClient([small], **kwargs).acomplete("a short prompt")
    assert short.model == small.name and fake_provider.count == 3


async def test_timeout_maps_and_is_retried(fake_provider) -> None:
    fake_provider.fail_next(kind="timeout")
    llm = client(fake_provider, "openai", retry=RetryPolicy(max_attempts=2, initial_backoff_s=0))
    c = await llm.acomplete("x", options=RequestOptions(timeout_s=0.3))
    assert c.attempts == 2


async def test_api_key_never_leaks(fake_provider, provider, tmp_path, caplog) -> None:
    """Errors, tracebacks, reprs, logs and cache files never hold the key."""
    bad = Model(CHAT[provider], api_base=fake_provider.api_base(provider), api_key=MARKER_KEY)
    good = Model(CHAT[provider], api_base=fake_provider.api_base(provider), api_key=MARKER_KEY.replace("MARKER", "m"))
    fake_provider.fail_next(kind="status", status=401)
    llm = LLMClient([bad], cache=tmp_path / "cache", retry=NO_RETRY)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthenticationError) as info:
            await llm.acomplete("secret test")
        ok = await LLMClient([good], cache=tmp_path / "cache").acomplete("store this")
    texts = [
        str(info.value),
        repr(info.value),
        "".join(traceback.format_exception(info.value)),
        repr(llm),
        repr(bad),
        caplog.text,
        ok.model_dump_json(),
    ]
    texts += [p.read_bytes().decode("latin-1") for p in Path(tmp_path / "cache").rglob("*") if p.is_file()]
    assert not any("MARKER" in text for text in texts)
    assert all(r.api_key_hash != MARKER_KEY for r in fake_provider.requests)


async def test_unknown_local_model_with_declared_capabilities(fake_provider) -> None:
    local = model(fake_provider, "openai", "openai/my-local-model", supports=frozenset({"logprobs", "reasoning"}))
    c = await LLMClient([local]).acomplete("hi", sampling=SamplingParams(logprobs=True, reasoning_effort="low"))
    assert c.logprobs and c.thinking


def test_sync_twin_against_the_fake(fake_provider) -> None:
    llm = client(fake_provider, "openai")
    assert llm.complete("sync").text == "Echo: sync"
    assert [i for i in llm.stream("sync stream")][-1].text == "Echo: sync stream"


async def test_several_keys_rotate_and_a_rate_limited_key_cools_down_alone(fake_provider) -> None:
    base = fake_provider.api_base("openai")
    keys = [Model(CHAT["openai"], api_base=base, api_key=f"key-{i}") for i in range(2)]
    llm = LLMClient(keys, seed=1)
    await llm.abatch([f"warm {i}" for i in range(20)])
    hashes = {r.api_key_hash for r in fake_provider.requests}
    assert len(hashes) == 2  # both keys carried traffic
    fake_provider.reset()
    fake_provider.fail_next(kind="status", status=429, retry_after=30)
    first = await llm.acomplete("who gets the 429")
    limited = fake_provider.requests[0].api_key_hash
    results = await llm.abatch([f"after {i}" for i in range(20)])
    assert first.ok and all(r.ok for r in results)
    assert all(r.api_key_hash != limited for r in fake_provider.requests[1:])


async def test_per_model_limits_apply_to_that_deployment_only(fake_provider) -> None:
    from llmkit import RateLimits

    slow = model(fake_provider, "openai", limits=RateLimits(max_concurrency=1))
    fast = model(fake_provider, "anthropic", limits=RateLimits(max_concurrency=8))
    fake_provider.latency_s = 0.02
    llm = LLMClient([slow, fast], seed=3)
    peaks: dict[str, int] = {}
    in_flight: dict[str, int] = {"openai": 0, "anthropic": 0}
    original = llm._transport.acomplete

    async def counting(request):
        provider = request.model.provider
        in_flight[provider] += 1
        peaks[provider] = max(peaks.get(provider, 0), in_flight[provider])
        try:
            return await original(request)
        finally:
            in_flight[provider] -= 1

    llm._transport.acomplete = counting  # type: ignore[method-assign]
    await llm.abatch([f"p{i}" for i in range(40)], max_in_flight=20)
    assert peaks["openai"] == 1 and peaks["anthropic"] > 1


async def test_stream_429_is_retried_with_retry_after(fake_provider, provider, fake_sleep) -> None:
    """Gemini streams wrap the 429 in MidStreamFallbackError; it must still count as a rate limit."""
    fake_provider.fail_next(kind="status", status=429, retry_after=1.5)
    llm = client(fake_provider, provider, sleep=fake_sleep, clock=fake_sleep.clock)
    items = [i async for i in llm.astream("stream after 429")]
    assert items[-1].text == "Echo: stream after 429" and items[-1].attempts == 2
    assert sum(fake_sleep.waits) >= 1.5 and llm.status.rate_limited == 1


async def test_streamed_logprobs_reach_the_final_completion(fake_provider) -> None:
    sampling = SamplingParams(logprobs=True, top_logprobs=2)
    llm = client(fake_provider, "openai")
    streamed = [i async for i in llm.astream("three little words", sampling=sampling)][-1]
    plain = await client(fake_provider, "openai").acomplete("three little words", sampling=sampling)
    assert streamed.logprobs is not None and streamed.logprobs == plain.logprobs
