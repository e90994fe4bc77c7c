"""FakeProvider end to end: unmodified LiteLLM against the fake in the OpenAI, Anthropic and Gemini wire formats.

Each test asserts what the user sees through LiteLLM and what crossed the wire (the fake's counters). Retries are
off on every call (`num_retries=0`, `max_retries=0`), so one injected failure is exactly one request. The expected
exception per fault documents how LiteLLM 1.106 maps each provider's failure.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported: no remote price map
# Anthropic calls otherwise fetch a beta-header config from GitHub first (anthropic_beta_headers_manager.py:148).
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

import base64
import hashlib
import json
import math
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
import litellm
import pytest
from litellm.exceptions import MidStreamFallbackError
from pydantic import BaseModel

from llmkit.testing import FakeProvider

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
PROVIDERS = list(MODELS)
KEY = "sk-marker-key-never-stored-7f3a"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "magic_function",
            "description": "Applies a magic function to an input.",
            "parameters": {"type": "object", "properties": {"input": {"type": "integer"}}, "required": ["input"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather at a location.",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    },
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider(latency_s=0.0, seed=0) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeProvider) -> Iterator[FakeProvider]:
    server.reset()
    server.latency_s = 0.0
    yield server
    server.reset()


def _call_kwargs(
    fake: FakeProvider, provider: str, content: str | list[dict[str, Any]], **kwargs: Any
) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    return {
        "model": MODELS[provider],
        "messages": messages,
        "api_base": fake.api_base(provider),
        "api_key": KEY,
        "num_retries": 0,
        "max_retries": 0,
        **kwargs,
    }


async def complete(
    fake: FakeProvider, provider: str, content: str | list[dict[str, Any]] = "hello there world", **kwargs: Any
) -> Any:
    return await litellm.acompletion(**_call_kwargs(fake, provider, content, **kwargs))


async def stream(
    fake: FakeProvider, provider: str, content: str | list[dict[str, Any]] = "hello there world", **kwargs: Any
) -> tuple[Any, list[Any]]:
    """The rebuilt response and the raw chunks of a streamed call."""
    kw = _call_kwargs(fake, provider, content, stream=True, stream_options={"include_usage": True}, **kwargs)
    chunks = [chunk async for chunk in await litellm.acompletion(**kw)]
    return litellm.stream_chunk_builder(chunks, messages=kw["messages"]), chunks


async def run(
    fake: FakeProvider, provider: str, streamed: bool, content: Any = "hello there world", **kwargs: Any
) -> Any:
    if streamed:
        return (await stream(fake, provider, content, **kwargs))[0]
    return await complete(fake, provider, content, **kwargs)


def post(
    fake: FakeProvider, provider: str, body: dict[str, Any], *, model: str = "gemini-2.5-flash", key: str = KEY
) -> httpx.Response:
    """One raw request, to assert wire shapes LiteLLM normalizes away."""
    if provider == "openai":
        return httpx.post(f"{fake.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    if provider == "anthropic":
        return httpx.post(f"{fake.url}/v1/messages", json=body, headers={"x-api-key": key})
    return httpx.post(f"{fake.url}/v1beta/models/{model}:generateContent", json=body, headers={"x-goog-api-key": key})


# -- replies ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_text_reply_usage_and_recorded_request(fake: FakeProvider, provider: str, streamed: bool) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there world"}]
    if streamed:
        response, chunks = await stream(fake, provider, messages)
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    else:
        response = await complete(fake, provider, messages)
    assert response.choices[0].message.content == "Echo: hello there world"
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (5, 4, 9)
    (recorded,) = fake.requests
    assert (recorded.provider, recorded.model, recorded.stream) == (provider, MODELS[provider].split("/")[1], streamed)
    assert recorded.api_key_hash == hashlib.sha256(KEY.encode()).hexdigest()[:16]
    assert KEY not in repr(recorded) and KEY not in json.dumps(recorded.body)
    assert fake.count == 1 and fake.count_status(200) == 1


PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_list_content_mentions_images(fake: FakeProvider, provider: str) -> None:
    content = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": PIXEL}}]
    response = await complete(fake, provider, [{"role": "user", "content": content}])
    png = base64.b64decode(PIXEL.split(",", 1)[1])
    echo = f"[image/png {len(png)} bytes sha256:{hashlib.sha256(png).hexdigest()[:12]}]"
    assert response.choices[0].message.content == f"Echo: what is this {echo}"


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_ids_are_derived_from_the_request(fake: FakeProvider, provider: str) -> None:
    first, second = await complete(fake, provider), await complete(fake, provider)
    other = await complete(fake, provider, "something else")
    assert first.id == second.id != other.id


def test_anthropic_ids_are_derived_from_the_request(fake: FakeProvider) -> None:
    # Checked on the wire: LiteLLM replaces Anthropic's message id with a random "chatcmpl-<uuid>".
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    ids = [post(fake, "anthropic", b).json()["id"] for b in (body, body, {**body, "max_tokens": 9})]
    assert ids[0] == ids[1] != ids[2] and ids[0].startswith("msg_")


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reasoning(fake: FakeProvider, provider: str, streamed: bool) -> None:
    response = await run(fake, provider, streamed, reasoning_effort="low", allowed_openai_params=["reasoning_effort"])
    message = response.choices[0].message
    assert message.content == "Echo: hello there world"
    assert message.reasoning_content == "Thinking about: hello there world"
    assert response.usage.completion_tokens_details.reasoning_tokens == 5
    assert response.usage.completion_tokens == 4 + 5
    if provider == "anthropic":
        (block,) = message.thinking_blocks
        assert block["thinking"] == "Thinking about: hello there world" and block["signature"]


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_logprobs(fake: FakeProvider, provider: str) -> None:
    # AI Studio Gemini rejects top_logprobs unless allowed explicitly (litellm-notes.md).
    response = await complete(fake, provider, logprobs=True, top_logprobs=3, allowed_openai_params=["top_logprobs"])
    entries = response.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == response.choices[0].message.content
    for entry in entries:
        top = [t.logprob for t in entry.top_logprobs]
        assert entry.logprob <= 0 and len(top) == 3 and top == sorted(top, reverse=True)
        assert entry.top_logprobs[0].token == entry.token and sum(math.exp(v) for v in top) <= 1
        if provider == "openai":  # LiteLLM's Gemini conversion leaves bytes out
            assert entry.bytes == list(entry.token.encode())


async def test_logprobs_stream_per_chunk(fake: FakeProvider) -> None:
    _, chunks = await stream(fake, "openai", logprobs=True, top_logprobs=2)
    tokens = [e.token for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert "".join(tokens) == "Echo: hello there world"


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_forced_tool_call_arguments_follow_the_schema(fake: FakeProvider, provider: str, streamed: bool) -> None:
    response = await run(fake, provider, streamed, "What is magic_function(3)?", tools=TOOLS, tool_choice="required")
    (call,) = response.choices[0].message.tool_calls
    assert call.function.name == "magic_function" and json.loads(call.function.arguments) == {"input": 3}
    assert call.id and response.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_choice_auto_and_named(fake: FakeProvider, provider: str) -> None:
    plain = await complete(fake, provider, "hello", tools=TOOLS, tool_choice="auto")
    assert plain.choices[0].message.content == "Echo: hello" and not plain.choices[0].message.tool_calls
    auto = await complete(fake, provider, "What is the weather in 'Paris'?", tools=TOOLS, tool_choice="auto")
    assert auto.choices[0].message.tool_calls[0].function.name == "get_weather"
    named = await complete(
        fake,
        provider,
        "Tell me about 'Lyon'",
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    (call,) = named.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"location": "Lyon"})


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_result_turn(fake: FakeProvider, provider: str) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "call magic_function(4)"}]
    first = await complete(fake, provider, messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    second = await complete(fake, provider, messages, tools=TOOLS)
    assert second.choices[0].message.content == "Tool result: 42"


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "count": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
        "inner": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "count", "tags", "inner"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_json_schema_output(fake: FakeProvider, provider: str, streamed: bool) -> None:
    response = await run(
        fake,
        provider,
        streamed,
        "Make one named 'Ada' with 7 items",
        response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True}},
    )
    assert json.loads(response.choices[0].message.content) == {
        "name": "Ada",
        "count": 7,
        "tags": ["x"],
        "inner": {"ok": True},
    }


class Color(str, Enum):
    RED = "red"
    BLUE = "blue"


class Part(BaseModel):
    label: str
    color: Color


class Assembly(BaseModel):
    title: str
    quantity: int
    weight_kg: float | None = None
    parts: list[Part]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_pydantic_response_format_round_trips(fake: FakeProvider, provider: str) -> None:
    # Pydantic schemas use $defs/$ref, anyOf-with-null and enums; LiteLLM rewrites them per provider.
    response = await complete(fake, provider, "Build 'gear box' twice, 2 of them", response_format=Assembly)
    assembly = Assembly.model_validate_json(response.choices[0].message.content)
    assert (assembly.title, assembly.quantity, assembly.parts[0].color) == ("gear box", 2, Color.RED)


async def test_json_object_mode_uses_quoted_keys(fake: FakeProvider) -> None:
    response = await complete(
        fake, "openai", "Return JSON with 'setup' and 'punchline' keys.", response_format={"type": "json_object"}
    )
    assert json.loads(response.choices[0].message.content) == {"setup": "setup", "punchline": "punchline"}


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_max_tokens_cuts_the_reply(fake: FakeProvider, provider: str, streamed: bool) -> None:
    response = await run(fake, provider, streamed, "one two three four five six", max_tokens=3)
    assert response.choices[0].message.content == "Echo: one two"
    assert response.choices[0].finish_reason == "length" and response.usage.completion_tokens == 3


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
async def test_gemini_thinking_spends_the_whole_budget(fake: FakeProvider, streamed: bool) -> None:
    response = await run(fake, "gemini", streamed, "one two three four five six", max_tokens=3, reasoning_effort="low")
    assert not response.choices[0].message.content
    assert response.choices[0].message.reasoning_content == "Thinking about: one"
    assert response.choices[0].finish_reason == "length"
    raw = post(
        fake,
        "gemini",
        {
            "contents": [{"role": "user", "parts": [{"text": "one two three"}]}],
            "generationConfig": {"maxOutputTokens": 2, "thinkingConfig": {"includeThoughts": True}},
        },
    ).json()
    (candidate,) = raw["candidates"]
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert candidate["content"]["parts"] == [{"text": "Thinking about:", "thought": True}]
    assert raw["usageMetadata"]["thoughtsTokenCount"] == 2


# -- prompt caching --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_prompt_cache_memory(fake: FakeProvider, provider: str) -> None:
    messages = [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "a long shared system prompt", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {"role": "user", "content": "hi"},
    ]
    first, second = await complete(fake, provider, messages), await complete(fake, provider, messages)
    assert first.usage.prompt_tokens == second.usage.prompt_tokens == 6
    assert not first.usage.prompt_tokens_details.cached_tokens
    assert second.usage.prompt_tokens_details.cached_tokens == (5 if provider == "anthropic" else 6)
    if provider == "anthropic":
        assert (first.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (5, 5)
    fake.reset()
    assert not (await complete(fake, provider, messages)).usage.prompt_tokens_details.cached_tokens


def test_anthropic_input_tokens_exclude_cache(fake: FakeProvider) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "a b c d", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi there"}],
    }
    usage = [post(fake, "anthropic", body).json()["usage"] for _ in range(2)]
    assert [(u["input_tokens"], u["cache_creation_input_tokens"], u["cache_read_input_tokens"]) for u in usage] == [
        (2, 4, 0),
        (2, 0, 4),
    ]


# -- Anthropic thinking with tools -----------------------------------------------------------------------------


async def test_anthropic_thinking_blocks_must_come_back_signed(fake: FakeProvider) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "call magic_function(4) please"}]
    first = await complete(fake, "anthropic", messages, tools=TOOLS, reasoning_effort="low")
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    result = {"role": "tool", "tool_call_id": first.choices[0].message.tool_calls[0].id, "content": "42"}
    ok = await complete(fake, "anthropic", [*messages, assistant, result], tools=TOOLS, reasoning_effort="low")
    assert ok.choices[0].message.content == "Tool result: 42"

    stripped = {
        k: v
        for k, v in assistant.items()
        if k not in ("thinking_blocks", "reasoning_content", "provider_specific_fields")
    }
    with pytest.raises(
        litellm.BadRequestError, match="Expected `thinking` or `redacted_thinking`, but found `tool_use`"
    ):
        await complete(fake, "anthropic", [*messages, stripped, result], tools=TOOLS, reasoning_effort="low")
    tampered = json.loads(json.dumps(assistant))
    tampered["thinking_blocks"][0]["thinking"] += " (edited)"
    tampered.pop("provider_specific_fields", None)
    with pytest.raises(litellm.BadRequestError, match="Invalid `signature` in `thinking` block"):
        await complete(fake, "anthropic", [*messages, tampered, result], tools=TOOLS, reasoning_effort="low")


# -- faults ------------------------------------------------------------------------------------------------------

# How LiteLLM 1.106 surfaces each injected fault, per provider (non-streaming calls).
FAULT_EXCEPTIONS: dict[str, dict[str, type[Exception]]] = {
    "reset": {
        "openai": litellm.InternalServerError,
        "anthropic": litellm.InternalServerError,
        "gemini": litellm.APIConnectionError,
    },
    "invalid_json": {
        "openai": litellm.InternalServerError,
        "anthropic": litellm.APIConnectionError,
        "gemini": litellm.BadRequestError,
    },
    "timeout": {p: litellm.Timeout for p in PROVIDERS},
}
STATUS_EXCEPTIONS: dict[int, type[Exception]] = {
    400: litellm.BadRequestError,
    401: litellm.AuthenticationError,
    404: litellm.NotFoundError,
    429: litellm.RateLimitError,
    500: litellm.InternalServerError,
    503: litellm.ServiceUnavailableError,
}


@pytest.mark.parametrize("status", list(STATUS_EXCEPTIONS))
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_status_fault_reaches_the_server_once(fake: FakeProvider, provider: str, status: int) -> None:
    fake.fail_next(kind="status", status=status)
    with pytest.raises(STATUS_EXCEPTIONS[status]):
        await complete(fake, provider)
    assert fake.count == 1 and fake.count_status(status) == 1
    assert (await complete(fake, provider)).choices[0].message.content == "Echo: hello there world"


@pytest.mark.parametrize("kind", list(FAULT_EXCEPTIONS))
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fault_kinds(fake: FakeProvider, provider: str, kind: str) -> None:
    fake.fail_next(kind=kind, hang_s=5.0)
    with pytest.raises(FAULT_EXCEPTIONS[kind][provider]):
        await complete(fake, provider, timeout=0.3)
    assert fake.count == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_500_reaches_the_server_once(fake: FakeProvider, provider: str) -> None:
    fake.fail_next(status=500)
    with pytest.raises((litellm.InternalServerError, litellm.ServiceUnavailableError)):
        await stream(fake, provider)
    assert fake.count == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_429_keeps_retry_after(fake: FakeProvider, provider: str) -> None:
    fake.fail_next(status=429, retry_after=1.5)
    with pytest.raises(litellm.ServiceUnavailableError if provider == "gemini" else litellm.RateLimitError) as caught:
        await stream(fake, provider)
    error = caught.value
    if provider == "gemini":
        # Gemini streams send the request on the first chunk, so LiteLLM wraps the error for Router fallbacks.
        assert isinstance(error, MidStreamFallbackError)
        error = error.original_exception
        assert isinstance(error, litellm.RateLimitError)
    assert error.litellm_response_headers["retry-after"] == "1.5" and fake.count == 1


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
async def test_stream_invalid_json_is_swallowed_by_litellm(fake: FakeProvider, provider: str) -> None:
    # A garbage SSE event is skipped, not raised: the stream just ends empty (OpenAI raises instead).
    fake.fail_next(kind="invalid_json")
    response, _ = await stream(fake, provider)
    assert not response.choices[0].message.content and fake.count == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_retry_after_is_exposed(fake: FakeProvider, provider: str) -> None:
    fake.fail_next(status=429, retry_after=2.5)
    with pytest.raises(litellm.RateLimitError) as caught:
        await complete(fake, provider)
    headers = caught.value.litellm_response_headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("2.5", "2500")


def test_random_faults_are_reproducible(fake: FakeProvider) -> None:
    def pattern() -> list[int | None]:
        out: list[int | None] = []
        for _ in range(30):
            try:
                out.append(
                    post(fake, "openai", {"model": "m", "messages": [{"role": "user", "content": "x"}]}).status_code
                )
            except httpx.TransportError:
                out.append(None)
        return out

    fake.set_faults(error_rate=0.3, reset_rate=0.2, status=503, seed=7)
    first = pattern()
    fake.set_faults(error_rate=0.3, reset_rate=0.2, status=503, seed=7)
    assert pattern() == first and {200, 503, None} == set(first)
    assert fake.count == 60 and fake.count_status(503) == 2 * first.count(503)
    fake.set_faults()
    assert post(fake, "openai", {"model": "m", "messages": []}).status_code == 200
    with pytest.raises(ValueError, match="sum to at most 1"):
        fake.set_faults(error_rate=0.8, reset_rate=0.5)
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.fail_next(kind="explode")


# -- rate limit --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_answers_429_with_exact_retry_after(fake: FakeProvider, provider: str) -> None:
    fake.rate_limit(requests_per_minute=3)
    for _ in range(3):
        await complete(fake, provider)
    with pytest.raises(litellm.RateLimitError) as caught:
        await complete(fake, provider)
    retry_after = float(caught.value.litellm_response_headers["retry-after"])
    assert 19.0 < retry_after <= 20.0  # one token per 20 s, minus the moments the calls took
    assert caught.value.litellm_response_headers["retry-after-ms"] == str(round(retry_after * 1000))
    assert fake.count_status(429) == 1
    await complete(fake, provider, api_key="another-key")  # buckets are per key
    fake.rate_limit(None)
    await complete(fake, provider)


def test_rate_limit_bucket_refills_continuously(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmkit.testing._server as server_module

    now = [1000.0]
    monkeypatch.setattr(server_module.time, "monotonic", lambda: now[0])
    fake.rate_limit(requests_per_minute=2)  # capacity 2, one token per 30 s
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert [post(fake, "openai", body).status_code for _ in range(3)] == [200, 200, 429]
    now[0] += 15.0
    refused = post(fake, "openai", body)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "15"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    now[0] += 15.0
    assert post(fake, "openai", body).status_code == 200


# -- directives --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_directives(fake: FakeProvider, provider: str) -> None:
    for _ in range(2):
        with pytest.raises(litellm.InternalServerError):
            await complete(fake, provider, "[[fail:500]] boom")
    with pytest.raises(litellm.RateLimitError) as caught:
        await complete(fake, provider, "[[fail:429:2.5]] slow down")
    assert caught.value.litellm_response_headers["retry-after"] == "2.5"
    with pytest.raises(litellm.InternalServerError):
        await complete(fake, provider, "[[fail_once:500]] flaky")
    ok = await complete(fake, provider, "[[fail_once:500]] flaky")
    assert ok.choices[0].message.content == "Echo: [[fail_once:500]] flaky"
    with pytest.raises((litellm.InternalServerError, litellm.APIConnectionError)):
        await complete(fake, provider, "[[reset]] drop")
    with pytest.raises((litellm.InternalServerError, litellm.APIConnectionError, litellm.BadRequestError)):
        await complete(fake, provider, "[[invalid_json]] garble")
    with pytest.raises(litellm.Timeout):
        await complete(fake, provider, "[[sleep:1.5]] wait", timeout=0.2)
    filtered = await complete(fake, provider, "[[filter]] something bad")
    assert filtered.choices[0].finish_reason == "content_filter" and not filtered.choices[0].message.content
    assert fake.count == 9


async def test_sleep_directive_and_latency_delay_the_answer(fake: FakeProvider) -> None:
    start = time.monotonic()
    await complete(fake, "openai", "[[sleep:0.1]] later")
    fake.latency_s = 0.1
    await complete(fake, "openai")
    assert time.monotonic() - start >= 0.2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_auth_missing_model_and_context_window(fake: FakeProvider, provider: str) -> None:
    with pytest.raises(litellm.AuthenticationError):
        await complete(fake, provider, api_key="invalid-key")
    with pytest.raises(litellm.NotFoundError):
        await complete(fake, provider, model=f"{provider}/missing-model")
    with pytest.raises(litellm.ContextWindowExceededError):
        await complete(fake, provider, "word " * 51, model=f"{provider}/my-small-ctx-model")
    with pytest.raises(litellm.ContextWindowExceededError):
        await complete(fake, provider, "word " * 8001)
    assert (await complete(fake, provider, "word " * 40, model=f"{provider}/my-small-ctx-model")).choices
    assert fake.count == 5


# -- embeddings, counters, keys ----------------------------------------------------------------------------------


async def test_embeddings(fake: FakeProvider) -> None:
    kwargs = {
        "model": "openai/text-embedding-3-small",
        "api_base": fake.api_base("openai"),
        "api_key": KEY,
        "num_retries": 0,
        "max_retries": 0,
    }
    first = await litellm.aembedding(input=["hello world", "x"], **kwargs)
    again = await litellm.aembedding(input=["hello world"], dimensions=4, **kwargs)
    assert len(first.data) == 2 and first.usage.prompt_tokens == 3
    assert math.isclose(sum(v * v for v in first.data[0]["embedding"]), 1.0)
    assert len(again.data[0]["embedding"]) == 4
    raw = httpx.post(
        f"{fake.url}/v1/embeddings",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "m", "input": "hello world", "encoding_format": "base64"},
    ).json()
    assert len(base64.b64decode(raw["data"][0]["embedding"])) == 16 * 4
    assert fake.count_for(provider="openai", model="text-embedding-3-small") == 2


async def test_counters_and_reset(fake: FakeProvider) -> None:
    for provider in PROVIDERS:
        await complete(fake, provider)
    await complete(fake, "openai", model="openai/gpt-4.1-nano")
    assert fake.count == 4 and fake.count_status(200) == 4
    assert fake.count_for(provider="openai") == 2 and fake.count_for(model="gpt-4.1-nano") == 1
    assert fake.count_for(provider="gemini", model="gemini-2.5-flash") == 1
    snapshot = fake.requests
    fake.fail_next(n=5)
    fake.rate_limit(1)
    fake.reset()
    assert fake.count == 0 and fake.requests == [] and len(snapshot) == 4
    await complete(fake, "openai")
    await complete(fake, "openai")  # neither the queued faults nor the limit survived reset()
    assert fake.count_status(200) == 2


def test_gemini_query_key_is_accepted_and_not_recorded(fake: FakeProvider) -> None:
    response = httpx.post(
        f"{fake.url}/v1beta/models/gemini-2.5-flash:generateContent",
        params={"key": KEY},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert response.json()["candidates"][0]["content"]["parts"] == [{"text": "Echo: hi"}]
    (recorded,) = fake.requests
    assert KEY not in repr(recorded) and recorded.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert post(fake, "gemini", {"contents": []}, key="").status_code == 400  # no key: Gemini's API_KEY_INVALID


def test_api_base_names_each_provider(fake: FakeProvider) -> None:
    assert fake.url.startswith("http://127.0.0.1:")
    assert [fake.api_base(p) for p in PROVIDERS] == [fake.url + "/v1", fake.url, fake.url + "/v1beta"]
    with pytest.raises(ValueError, match="unknown provider"):
        fake.api_base("cohere")


# -- packaging: plugin, lazy import, CLI -------------------------------------------------------------------------

_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
}


def test_import_is_cheap() -> None:
    code = (
        "import sys, llmkit.testing, llmkit.testing.pytest_plugin; "
        "print(sorted(m for m in ('aiohttp', 'litellm', 'openai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_ENV, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pytest_plugin_fixture_resets_between_tests(tmp_path: Path) -> None:
    (tmp_path / "test_uses_fixture.py").write_text(
        textwrap.dedent("""
        import httpx

        def test_one(fake_provider):
            fake_provider.fail_next(n=3)
            httpx.post(fake_provider.url + "/v1/chat/completions", json={"model": "m", "messages": []})
            assert fake_provider.count == 1

        def test_two(fake_provider, fake_provider_session):
            assert fake_provider is fake_provider_session and fake_provider.count == 0
            response = httpx.post(fake_provider.url + "/v1/chat/completions", headers={"Authorization": "Bearer k"},
                                  json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200
    """)
    )
    env = {**_ENV, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # load only ours, even once the entry point is installed
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "llmkit.testing.pytest_plugin",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout


def test_main_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmkit.testing", "--port", "0"],
        env=_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert url.startswith("http://127.0.0.1:") and lines[0] == f"openai    api_base={url}/v1"
        response = httpx.post(
            f"{url}/v1/messages",
            headers={"x-api-key": "k"},
            json={"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.json()["content"] == [{"type": "text", "text": "Echo: hi"}]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
