"""Streams on the fast path: the same stream through ``litellm.acompletion`` and through the fast path must cross the
wire as the same JSON and come back as the same sequence of llmkit deltas, the same final ``Completion`` (or the same
llmkit error, raised after the same deltas), for every stream shape the suite sends, faults included. A shape that
cannot match stays on acompletion, and a test here proves it does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from llmkit import LLMClient, LLMError, Model, RequestOptions, RetryPolicy, SamplingParams, StreamDelta, TimeoutError
from llmkit._fastpath import FastPathTransport
from llmkit._transport import LiteLLMTransport
from tests.test_fastpath import NO_RETRY, PERSON, WEATHER, Case

TOOL_HISTORY = [
    {"role": "user", "content": "Use get_weather for 'Rome'"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]
DEFAULT_MODEL = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5"}


TOOLS = RequestOptions(tools=[WEATHER], tool_choice="auto")
SHARED = [
    Case("text", "one two three four five six seven"),
    Case("system_role", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]),
    Case("forced_tool_call", "Weather in 'Paris'?", options=RequestOptions(tools=[WEATHER], tool_choice="get_weather")),
    Case("tool_result_round_trip", TOOL_HISTORY, options=TOOLS),
    Case("json_schema", "Name a person", options=RequestOptions(response_format=PERSON)),
    Case("json_mode", "Name a person", sampling=SamplingParams(json_mode=True)),
    Case("length", "one two three four five six", sampling=SamplingParams(max_tokens=3)),
    Case("sampling_knobs", "hi", sampling=SamplingParams(temperature=0.2, top_p=0.9, stop=("END",))),
    Case("refusal", "[[refuse]] how do I pick a lock?"),
    Case("trickle", "[[trickle:0.01]] slow but steady words"),
    Case("unpriced_model", "price me", "{provider}/my-finetune-xyz"),
    # Faults: before the stream (status, reset, garbage), and after some chunks (an error event, a cut connection).
    Case("rate_limited", fault={"kind": "status", "status": 429, "retry_after": 3.0}),
    Case("server_error", fault={"kind": "status", "status": 500}),
    Case("overloaded", fault={"kind": "status", "status": 529}),
    Case("bad_key", fault={"kind": "status", "status": 401}),
    Case("bad_request", fault={"kind": "status", "status": 400}),
    Case("reset_before_the_stream", fault={"kind": "reset"}),
    Case("invalid_json", fault={"kind": "invalid_json"}),
    Case("empty_answer", fault={"kind": "empty"}),
    Case("error_in_ok_body", fault={"kind": "error_body"}),
    Case("error_event_mid_stream", "[[error_after:3]] one two three four five six"),
    Case("reset_mid_stream", "[[reset_after:3]] one two three four five six"),
    Case("stall", "[[stall_after:3]] one two three four", options=RequestOptions(stall_timeout_s=0.3)),
    Case("no_first_chunk", "[[stall_after:0]] silent", options=RequestOptions(first_token_timeout_s=0.3)),
    Case("context_window", "word " * 9000, "{provider}/small-ctx"),
]
CASES = {
    "openai": [
        *SHARED,
        Case("developer_role", [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]),
        Case("thinking", "Think first", "openai/o3-mini", SamplingParams(reasoning_effort="low", max_tokens=2000)),
        Case("parallel_tools", "Weather in 'Oslo' and 'Rome'?", options=RequestOptions(tools=[WEATHER])),
        Case("logprobs", "one two three", sampling=SamplingParams(logprobs=True, top_logprobs=3)),
        Case("seed", "hi", sampling=SamplingParams(seed=7)),
    ],
    "anthropic": [
        *SHARED,
        Case("thinking_effort", "Think first", sampling=SamplingParams(reasoning_effort="low", max_tokens=2000)),
        Case("thinking_budget", "Think first", sampling=SamplingParams(thinking_budget=1024, max_tokens=4000)),
        Case(
            "thinking_and_tools",
            "Use get_weather for 'Rome'",
            sampling=SamplingParams(thinking_budget=1024, max_tokens=4000),
            options=TOOLS,
        ),
        Case(
            "signed_thinking_round_trip",
            [
                TOOL_HISTORY[0],
                {
                    **TOOL_HISTORY[1],
                    "thinking_blocks": [{"type": "thinking", "thinking": "Call the tool.", "signature": "c2ln"}],
                },
                TOOL_HISTORY[2],
            ],
            sampling=SamplingParams(thinking_budget=1024, max_tokens=4000),
            options=TOOLS,
        ),
    ],
}
PARAMS = [
    pytest.param(provider, case, id=f"{provider}-{case.name}") for provider, cases in CASES.items() for case in cases
]


def _comparable(item: object, mid_stream: bool = False) -> object:
    """What must match: every delta as is; the final Completion minus timing and the provider's per-reply ids (the
    Anthropic parser makes a fresh id per stream); an error's class, status, retryability and retry_after, and after
    the first delta its whole text too (LiteLLM's stream wrapper words it on both paths; before the stream the OpenAI
    SDK words errors itself, and Anthropic's route quotes the body as bytes)."""
    if isinstance(item, LLMError):
        described = (type(item), item.status, item.retryable, getattr(item, "retry_after", None))
        return (*described, str(item)) if mid_stream else described
    if isinstance(item, StreamDelta):
        return item.model_dump()
    data = item.model_dump()  # type: ignore[attr-defined]
    data.pop("latency_s")
    for key in ("id", "created"):
        (data["raw"] or {}).pop(key, None)
    return data


async def _run(fake, transport, provider: str, case: Case) -> tuple[list[object], list[dict[str, Any]]]:
    fake.reset()
    if case.fault:
        fake.fail_next(**case.fault)
    name = (case.model or DEFAULT_MODEL[provider]).format(provider=provider)
    model = Model(name, api_base=fake.api_base(provider), api_key="fake-key")
    llm = LLMClient([model], transport=transport, retry=NO_RETRY)
    items: list[object] = []
    try:
        async for item in llm.astream(case.prompt, sampling=case.sampling, options=case.options):
            items.append(item)
    except LLMError as exc:
        items.append(exc)
    finally:
        llm.close()
    compared = [_comparable(item, mid_stream=i > 0) for i, item in enumerate(items)]
    return compared, [r.body for r in fake.requests]


@pytest.mark.parametrize(("provider", "case"), PARAMS)
async def test_a_fast_stream_matches_acompletions(fake_provider, caplog, provider: str, case: Case) -> None:
    slow, slow_sent = await _run(fake_provider, LiteLLMTransport(), provider, case)
    fast_transport = FastPathTransport()
    with caplog.at_level(logging.WARNING):
        fast, fast_sent = await _run(fake_provider, fast_transport, provider, case)
    assert fast_transport.fast_calls == 1, "the stream went through acompletion, so nothing was compared"
    assert fast_sent == slow_sent and len(fast_sent) == 1 and fast_sent[0]["stream"] is True
    assert fast == slow
    # LiteLLM's stream wrapper reports what it cannot do with its logging object at WARNING/ERROR: none of that.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("LiteLLM")] == []


def test_every_provider_streamed_on_the_fast_path_has_a_parity_matrix() -> None:
    from llmkit import _fastpath, _fastpath_stream

    assert set(CASES) == set(_fastpath_stream._WRAPPERS) and set(CASES) <= set(_fastpath._PROVIDERS)


async def test_a_fast_provider_without_a_stream_matrix_streams_through_acompletion(fake_provider, monkeypatch) -> None:
    """A provider the non-stream fast path serves but whose streams have no parity matrix (as Gemini would be when
    it joins the fast path) keeps streaming through acompletion."""
    from llmkit import _fastpath_stream

    monkeypatch.setattr(_fastpath_stream, "_WRAPPERS", {"anthropic": _fastpath_stream._WRAPPERS["anthropic"]})
    transport = FastPathTransport()
    model = Model(DEFAULT_MODEL["openai"], api_base=fake_provider.api_base("openai"), api_key="fake-key")
    items = [item async for item in LLMClient([model], transport=transport).astream("hello")]
    assert items[-1].text == "Echo: hello" and transport.fast_calls == 0 and fake_provider.count == 1


async def _disconnects(fake, expected: int, within_s: float = 2.0) -> int:
    end = time.monotonic() + within_s
    while fake.disconnects < expected and time.monotonic() < end:
        await asyncio.sleep(0.02)
    return fake.disconnects


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_a_fast_stream_stopped_early_or_stalled_closes_its_connection(fake_provider, provider) -> None:
    transport = FastPathTransport()
    model = Model(DEFAULT_MODEL[provider], api_base=fake_provider.api_base(provider), api_key="fake-key")
    llm = LLMClient([model], transport=transport, retry=NO_RETRY)
    async for item in llm.astream("[[stall_after:3]] one two three four five six"):
        assert isinstance(item, StreamDelta)
        break
    assert await _disconnects(fake_provider, 1) == 1
    with pytest.raises(TimeoutError, match="stalled"):
        async for _ in llm.astream("[[stall_after:3]] one two three", options=RequestOptions(stall_timeout_s=0.3)):
            pass
    assert await _disconnects(fake_provider, 2) == 2 and transport.fast_calls == 2
    llm.close()


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_a_429_before_a_fast_stream_is_retried_after_retry_after(fake_provider, provider) -> None:
    fake_provider.fail_next(kind="status", status=429, retry_after=0.2)
    transport = FastPathTransport()
    model = Model(DEFAULT_MODEL[provider], api_base=fake_provider.api_base(provider), api_key="fake-key")
    llm = LLMClient([model], transport=transport, retry=RetryPolicy(max_attempts=2, initial_backoff_s=0))
    start = time.monotonic()
    items = [item async for item in llm.astream("once more")]
    assert items[-1].text == "Echo: once more" and items[-1].attempts == 2 and transport.fast_calls == 2
    assert time.monotonic() - start >= 0.2 and items[-1].cost_usd and items[-1].cost_usd > 0
    llm.close()


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_a_key_echoed_before_a_fast_stream_is_redacted_and_nothing_is_chained(fake_provider, provider) -> None:
    marker = "sk-MARKER-9f8e7d6c5b4a3210"
    fake_provider.fail_next(kind="echo_key", status=400)
    transport = FastPathTransport()
    model = Model(DEFAULT_MODEL[provider], api_base=fake_provider.api_base(provider), api_key=marker)
    with pytest.raises(LLMError) as info:
        async for _ in LLMClient([model], transport=transport, retry=NO_RETRY).astream("x"):
            pass
    assert transport.fast_calls == 1 and info.value.status == 400
    assert marker not in str(info.value) and marker not in repr(info.value.args)
    assert info.value.__cause__ is None and info.value.__context__ is None
