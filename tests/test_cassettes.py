"""Cassette tier: hand-written provider replies (``cassettes/``, each citing the API reference it follows) replayed
through real LiteLLM, then through llmkit.

Layer (a) pins what LiteLLM 1.106.2 makes of each documented shape, so a LiteLLM upgrade that changes a mapping
fails here first. Layer (b) compares whole ``Completion`` fields with values worked out by hand from the cassette
bodies. Record mode is "none": nothing reaches the network (see ``cassettes_support`` for the re-record command).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import json
from typing import Any

import pytest
import yaml

try:
    from cassettes_support import CASSETTE_DIR, key_for, replay
except ImportError:  # tests/ became a package
    from tests.cassettes_support import CASSETTE_DIR, key_for, replay

OPENAI_KEY = key_for("OPENAI_API_KEY")
ANTHROPIC_KEY = key_for("ANTHROPIC_API_KEY")
GEMINI_KEY = key_for("GEMINI_API_KEY")

# LiteLLM's own retries and the OpenAI SDK's hidden ones are off, so one cassette interaction is one call.
NO_RETRIES: dict[str, Any] = {"num_retries": 0, "max_retries": 0}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# Values copied from the cassette bodies (the documented inputs), used on both layers.
ANTHROPIC_TOOL_THINKING = (
    'The user wants the current weather in Paris. I have a get_weather tool; I should call it with location "Paris, '
    'France" and use celsius.'
)
ANTHROPIC_TOOL_SIGNATURE = (
    "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds4Gqj3ZkT2e0JTIe4qz1hVvY5sYmJdkWbFXfVRb1c0pQKpZ9lXg=="
)
STREAM_THINKING = "97 is odd and not divisible by 3, 5 or 7; 11 squared is 121 > 97, so 97 is prime."
STREAM_SIGNATURE = "ErUBCkYIBBgCIkB0LlmkitStreamSig7xQm2Lr9aZ0vKc3Jd8nP1sTq5wYe6uHb4gVf2iN0oR8mA3kX9zC1yB7tE5pW=="
GEMINI_THOUGHT = (
    "**Counting the letters**\n\nI spell out s-t-r-a-w-b-e-r-r-y and count each r: one after the t, then two more in "
    "the double r. That makes three.\n"
)
GEMINI_MAX_TOKENS_THOUGHT = (
    "**Planning the essay**\n\nI'm choosing a topic and outlining an introduction, three body sections and a "
    "conclusion before drafting.\n"
)

# One call per cassette, the same on both layers: (cassette, litellm model, messages, extra kwargs, key).
CALLS: dict[str, tuple[str, list[dict[str, str]], dict[str, Any], str]] = {
    "openai_logprobs.yaml": (
        "openai/gpt-4o-mini",
        user("Greet the café in three tokens."),
        {"logprobs": True, "top_logprobs": 2, "max_tokens": 16},
        OPENAI_KEY,
    ),
    "openai_reasoning_usage.yaml": (
        "openai/o4-mini",
        user("How many r's are in strawberry?"),
        {"reasoning_effort": "low"},
        OPENAI_KEY,
    ),
    "openai_tool_calls.yaml": (
        "openai/gpt-4o",
        user("Weather in Paris and Tokyo?"),
        {"tools": [WEATHER_TOOL]},
        OPENAI_KEY,
    ),
    "anthropic_thinking_tool_use.yaml": (
        "anthropic/claude-sonnet-4-5-20250929",
        user("What's the weather in Paris?"),
        {"tools": [WEATHER_TOOL], "thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
        ANTHROPIC_KEY,
    ),
    "anthropic_thinking_no_usage_details.yaml": (
        "anthropic/claude-sonnet-4-20250514",
        user("Is 97 prime?"),
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
        ANTHROPIC_KEY,
    ),
    "anthropic_streaming.yaml": (
        "anthropic/claude-sonnet-4-20250514",
        user("Is 97 prime?"),
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048, "stream": True},
        ANTHROPIC_KEY,
    ),
    "gemini_thoughts.yaml": (
        "gemini/gemini-2.5-flash",
        user("How many r's are in strawberry?"),
        {"reasoning_effort": "low"},
        GEMINI_KEY,
    ),
    "gemini_max_tokens_no_text.yaml": (
        "gemini/gemini-2.5-flash",
        user("Write a long essay."),
        {"reasoning_effort": "low", "max_tokens": 1024},
        GEMINI_KEY,
    ),
    "gemini_max_tokens_no_parts.yaml": (
        "gemini/gemini-2.5-flash",
        user("Write a long essay."),
        {"max_tokens": 64},
        GEMINI_KEY,
    ),
    "gemini_logprobs.yaml": (
        "gemini/gemini-2.0-flash",
        user("Say hello world."),
        # litellm rejects top_logprobs for gemini/ unless allowed per call (litellm-notes.md).
        {"logprobs": True, "top_logprobs": 2, "allowed_openai_params": ["top_logprobs"]},
        GEMINI_KEY,
    ),
}


@pytest.fixture(scope="module")
def litellm() -> Any:
    """Imported on first use: the import takes seconds, and only this tier needs it here."""
    import litellm

    return litellm


async def call(litellm: Any, name: str, **overrides: Any) -> Any:
    """Replay ``name`` through ``litellm.acompletion`` and check it served exactly one request."""
    model, messages, extra, key = CALLS[name]
    with replay(name) as cassette:
        response = await litellm.acompletion(
            model=model, messages=messages, api_key=key, **NO_RETRIES, **{**extra, **overrides}
        )
        if extra.get("stream") or overrides.get("stream"):
            response = [chunk async for chunk in response]
        assert cassette.play_count == 1 and cassette.all_played
    return response


def message_of(response: Any) -> Any:
    assert len(response.choices) == 1
    return response.choices[0].message


# --------------------------------------------------------------------------------------------------------------------
# (a) What LiteLLM 1.106.2 makes of each documented shape.
# --------------------------------------------------------------------------------------------------------------------


async def test_litellm_openai_logprobs_and_cached_tokens(litellm: Any) -> None:
    response = await call(litellm, "openai_logprobs.yaml")
    choice = response.choices[0]
    assert choice.message.content == "Hello café!"
    assert choice.finish_reason == "stop"
    assert response.model == "gpt-4o-mini-2024-07-18"
    tokens = [
        (t.token, t.logprob, t.bytes, [(o.token, o.logprob, o.bytes) for o in t.top_logprobs])
        for t in choice.logprobs.content
    ]
    assert tokens == [
        (
            "Hello",
            -0.0009,
            [72, 101, 108, 108, 111],
            [("Hello", -0.0009, [72, 101, 108, 108, 111]), ("Hi", -7.1, [72, 105])],
        ),
        (
            " café",
            -0.25,
            [32, 99, 97, 102, 195, 169],
            [(" café", -0.25, [32, 99, 97, 102, 195, 169]), (" world", -1.5, [32, 119, 111, 114, 108, 100])],
        ),
        ("!", -0.02, [33], [("!", -0.02, [33]), (".", -4.0, [46])]),
    ]
    # Passed through: prompt_tokens already includes the cached 1024.
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1100, 3, 1103)
    assert response.usage.prompt_tokens_details.cached_tokens == 1024
    assert response.usage.completion_tokens_details.reasoning_tokens == 0
    # gpt-4o-mini list prices: $0.15 / 1M input, $0.075 / 1M cached input, $0.60 / 1M output.
    expected_cost = 76 * 0.15e-6 + 1024 * 0.075e-6 + 3 * 0.60e-6
    assert litellm.completion_cost(completion_response=response) == pytest.approx(expected_cost)


async def test_litellm_openai_reasoning_tokens(litellm: Any) -> None:
    response = await call(litellm, "openai_reasoning_usage.yaml")
    message = message_of(response)
    assert message.content == 'There are 3 r\'s in "strawberry".'
    # The Chat Completions API returns no reasoning text, only its token count.
    assert getattr(message, "reasoning_content", None) is None
    assert getattr(message, "thinking_blocks", None) is None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (18, 283)
    assert response.usage.completion_tokens_details.reasoning_tokens == 256
    assert response.choices[0].finish_reason == "stop"


async def test_litellm_openai_parallel_tool_calls(litellm: Any) -> None:
    response = await call(litellm, "openai_tool_calls.yaml")
    message = message_of(response)
    assert message.content is None
    assert response.choices[0].finish_reason == "tool_calls"
    calls = [(c.id, c.type, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    assert calls == [
        ("call_Paris7sXb2Qm1", "function", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
        ("call_Tokyo9kLp4Rn2", "function", "get_weather", {"location": "Tokyo, Japan"}),
    ]
    # Arguments stay the provider's JSON text, unparsed.
    assert message.tool_calls[0].function.arguments == '{"location": "Paris, France", "unit": "celsius"}'


async def test_litellm_anthropic_thinking_text_and_tool_use(litellm: Any) -> None:
    response = await call(litellm, "anthropic_thinking_tool_use.yaml")
    message = message_of(response)
    assert message.content == "I'll check the current weather in Paris for you."
    assert message.reasoning_content == ANTHROPIC_TOOL_THINKING
    assert message.thinking_blocks == [
        {"type": "thinking", "thinking": ANTHROPIC_TOOL_THINKING, "signature": ANTHROPIC_TOOL_SIGNATURE}
    ]
    assert response.choices[0].finish_reason == "tool_calls"  # stop_reason "tool_use"
    [tool_call] = message.tool_calls
    assert (tool_call.id, tool_call.function.name) == ("toolu_01A09q90qw90lq917835lq9", "get_weather")
    assert json.loads(tool_call.function.arguments) == {"location": "Paris, France", "unit": "celsius"}
    # The tool call's index is its content-block position (thinking=0, text=1, tool_use=2), not 0.
    assert tool_call.index == 2
    # LiteLLM drops Anthropic's message id ("msg_...") for its own.
    assert response.id.startswith("chatcmpl-")
    assert response.model == "claude-sonnet-4-5-20250929"
    usage = response.usage
    # prompt_tokens = input_tokens + cache_creation_input_tokens + cache_read_input_tokens = 50 + 200 + 1800.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2050, 180, 2230)
    assert usage.prompt_tokens_details.cached_tokens == 1800
    assert usage.prompt_tokens_details.cache_creation_tokens == 200
    assert usage.prompt_tokens_details.text_tokens == 50
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (1800, 200)
    # Reported by the API in output_tokens_details.thinking_tokens, not estimated.
    assert usage.completion_tokens_details.reasoning_tokens == 120
    assert usage.completion_tokens_details.text_tokens == 60
    # Claude Sonnet 4.5 list prices: $3 / 1M input, $3.75 / 1M 5-minute cache write, $0.30 / 1M cache read,
    # $15 / 1M output.
    expected_cost = 50 * 3e-6 + 200 * 3.75e-6 + 1800 * 0.30e-6 + 180 * 15e-6
    assert litellm.completion_cost(completion_response=response) == pytest.approx(expected_cost)


async def test_litellm_anthropic_estimates_reasoning_tokens_and_prices_unknown_models_at_zero(litellm: Any) -> None:
    response = await call(litellm, "anthropic_thinking_no_usage_details.yaml")
    message = message_of(response)
    assert message.content == "Yes, 97 is a prime number."
    assert message.reasoning_content == STREAM_THINKING
    assert response.choices[0].finish_reason == "stop"  # "end_turn"
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (30, 70)
    # With no output_tokens_details the body does not say; LiteLLM counts the thinking text with a tokenizer.
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert 0 < reasoning < 70
    assert usage.completion_tokens_details.text_tokens == 70 - reasoning
    # The local price map has no direct-API "claude-sonnet-4-20250514" entry, yet the cost is a made-up 0.0,
    # not None or an error: llmkit must not pass this on as a price.
    assert litellm.completion_cost(completion_response=response) == 0.0


async def test_litellm_anthropic_stream_events(litellm: Any) -> None:
    chunks = await call(litellm, "anthropic_streaming.yaml", stream_options={"include_usage": True})
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == STREAM_THINKING
    assert "".join(d.content or "" for d in deltas) == "Yes, 97 is a prime number."
    # The signature arrives as its own delta: a thinking block with empty text.
    signed = [b for d in deltas for b in (getattr(d, "thinking_blocks", None) or []) if b.get("signature")]
    # LiteLLM 1.109 adds the block's stream position ("index"); the builder drops it from the final message (below).
    signed = [{k: v for k, v in b.items() if k != "index"} for b in signed]
    assert signed == [{"type": "thinking", "thinking": "", "signature": STREAM_SIGNATURE}]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    # Usage comes on one chunk after the finish_reason chunk; message_delta's cumulative input counts are not added
    # twice: 40 + 0 + 1500.
    [usage] = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1540, 95, 1635)
    assert usage.prompt_tokens_details.cached_tokens == 1500
    assert usage.completion_tokens_details.reasoning_tokens == 60

    rebuilt = litellm.stream_chunk_builder(chunks, messages=CALLS["anthropic_streaming.yaml"][1])
    message = message_of(rebuilt)
    assert message.content == "Yes, 97 is a prime number."
    assert message.reasoning_content == STREAM_THINKING
    assert message.thinking_blocks == [{"type": "thinking", "thinking": STREAM_THINKING, "signature": STREAM_SIGNATURE}]
    assert (rebuilt.usage.prompt_tokens, rebuilt.usage.completion_tokens) == (1540, 95)


async def test_litellm_anthropic_stream_has_no_usage_unless_asked(litellm: Any) -> None:
    chunks = await call(litellm, "anthropic_streaming.yaml")
    assert [c for c in chunks if getattr(c, "usage", None) is not None] == []


async def test_litellm_gemini_thought_parts(litellm: Any) -> None:
    response = await call(litellm, "gemini_thoughts.yaml")
    message = message_of(response)
    assert message.content == 'There are 3 r\'s in "strawberry".'
    # "thought": true parts become reasoning_content and a signature-less thinking block.
    assert message.reasoning_content == GEMINI_THOUGHT
    assert message.thinking_blocks == [{"type": "thinking", "thinking": GEMINI_THOUGHT}]
    assert response.choices[0].finish_reason == "stop"
    assert response.id == "llmkitThoughts0001"  # responseId
    assert response.model == "gemini-2.5-flash"
    usage = response.usage
    # completion_tokens = candidatesTokenCount + thoughtsTokenCount = 11 + 230; prompt includes the cached 1024.
    # (prompt_tokens_details.text_tokens: 76, without the cached 1,024, before LiteLLM 1.109; 1,100 in 1.109.3. llmkit
    # does not read it.)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1100, 241, 1341)
    assert usage.completion_tokens_details.reasoning_tokens == 230
    assert usage.completion_tokens_details.text_tokens == 11
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.cache_read_input_tokens == 1024


async def test_litellm_gemini_max_tokens_spent_on_thoughts(litellm: Any) -> None:
    response = await call(litellm, "gemini_max_tokens_no_text.yaml")
    message = message_of(response)
    assert message.content is None  # not ""
    assert response.choices[0].finish_reason == "length"  # MAX_TOKENS
    assert message.reasoning_content == GEMINI_MAX_TOKENS_THOUGHT
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (6, 1023)
    assert response.usage.completion_tokens_details.reasoning_tokens == 1023
    assert response.usage.completion_tokens_details.text_tokens == 0


async def test_litellm_gemini_max_tokens_without_parts(litellm: Any) -> None:
    response = await call(litellm, "gemini_max_tokens_no_parts.yaml")
    message = message_of(response)
    assert message.content is None
    assert getattr(message, "reasoning_content", None) is None
    assert getattr(message, "thinking_blocks", None) is None
    assert response.choices[0].finish_reason == "length"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (6, 63)
    assert response.usage.completion_tokens_details.reasoning_tokens == 63


async def test_litellm_gemini_logprobs_in_openai_shape(litellm: Any) -> None:
    response = await call(litellm, "gemini_logprobs.yaml")
    choice = response.choices[0]
    assert choice.message.content == "Hello world"
    # chosenCandidates[i] with topCandidates[i] become logprobs.content[i]; Gemini sends no bytes.
    tokens = [
        (t.token, t.logprob, getattr(t, "bytes", None), [(o.token, o.logprob) for o in t.top_logprobs])
        for t in choice.logprobs.content
    ]
    assert tokens == [
        ("Hello", -0.011, None, [("Hello", -0.011), ("Hi", -4.6)]),
        (" world", -0.11, None, [(" world", -0.11), (" World", -2.3)]),
    ]
    # A non-thinking model still gets an empty list, not None.
    assert choice.message.thinking_blocks == []
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 2)


@pytest.mark.parametrize(
    ("model", "error_name", "status"),
    [
        # openai.py wraps the SDK's JSON error as a 500 OpenAIError.
        ("openai/gpt-4o-mini", "InternalServerError", 500),
        # AnthropicError keeps the HTTP status 200, which the exception mapping turns into a connection error.
        ("anthropic/claude-sonnet-4-20250514", "APIConnectionError", 500),
        # "Error converting to valid response block" is raised with status 422: a BadRequestError.
        ("gemini/gemini-2.5-flash", "BadRequestError", 422),
    ],
)
async def test_litellm_truncated_json_body(litellm: Any, model: str, error_name: str, status: int) -> None:
    with replay("invalid_json.yaml") as cassette:
        with pytest.raises(getattr(litellm, error_name)) as caught:
            await litellm.acompletion(
                model=model, messages=user("hi"), api_key=key_for("", "invalid_json.yaml"), max_tokens=64, **NO_RETRIES
            )
        assert cassette.play_count == 1  # no hidden retry
    assert type(caught.value) is getattr(litellm, error_name)
    assert caught.value.status_code == status
    assert "Unterminated string" in str(caught.value)


# --------------------------------------------------------------------------------------------------------------------
# Cassette hygiene: every cassette cites its reference, holds no secret and is replayed by a test above.
# --------------------------------------------------------------------------------------------------------------------

CASSETTES = sorted(path.name for path in CASSETTE_DIR.glob("*.yaml"))
PROVIDER_URLS = (
    "https://api.openai.com/v1/",
    "https://api.anthropic.com/v1/",
    "https://generativelanguage.googleapis.com/",
)


@pytest.mark.parametrize("name", CASSETTES)
def test_cassette_is_clean(name: str) -> None:
    text = (CASSETTE_DIR / name).read_text(encoding="utf-8")
    assert text.startswith("# Hand-written"), "start with a comment citing the documented shape it follows"
    for interaction in yaml.safe_load(text)["interactions"]:
        request, response = interaction["request"], interaction["response"]
        assert set(request["headers"]) <= {"content-type"}
        assert set(response["headers"]) <= {"content-type", "retry-after"}
        assert "key=" not in request["uri"]
        assert request["uri"].startswith(PROVIDER_URLS)
    for marker in ("sk-proj-", "sk-ant-", "AIza", "Bearer "):
        assert marker not in text


def test_every_cassette_is_replayed() -> None:
    assert set(CASSETTES) == set(CALLS) | {"invalid_json.yaml"}


# --------------------------------------------------------------------------------------------------------------------
# (b) The same cassettes through llmkit: every Completion field, compared whole, with values worked out by hand from
# the cassette bodies (usage: input counts the whole prompt, cached parts included; output counts thinking too).
# --------------------------------------------------------------------------------------------------------------------

# Per-call llmkit arguments that ask for what CALLS asks LiteLLM for.
LLMKIT_SAMPLING: dict[str, dict[str, Any]] = {
    "openai_logprobs.yaml": {"logprobs": True, "top_logprobs": 2, "max_tokens": 16},
    "openai_reasoning_usage.yaml": {"reasoning_effort": "low"},
    "openai_tool_calls.yaml": {},
    "anthropic_thinking_tool_use.yaml": {"thinking_budget": 1024, "max_tokens": 2048},
    "anthropic_thinking_no_usage_details.yaml": {"thinking_budget": 1024, "max_tokens": 2048},
    "anthropic_streaming.yaml": {"thinking_budget": 1024, "max_tokens": 2048},
    "gemini_thoughts.yaml": {"reasoning_effort": "low"},
    "gemini_max_tokens_no_text.yaml": {"reasoning_effort": "low", "max_tokens": 1024},
    "gemini_max_tokens_no_parts.yaml": {"max_tokens": 64},
    "gemini_logprobs.yaml": {"logprobs": True, "top_logprobs": 2},
}
LLMKIT_TOOLS = {"openai_tool_calls.yaml", "anthropic_thinking_tool_use.yaml"}


@pytest.fixture(scope="module")
def llmkit() -> Any:
    import llmkit

    return llmkit


def client_for(llmkit: Any, name: str) -> Any:
    model, _, _, key = CALLS[name]
    # One attempt: a retry would ask the cassette for a second interaction it does not hold.
    return llmkit.LLMClient(models=[llmkit.Model(model, api_key=key)], retry=llmkit.RetryPolicy(max_attempts=1))


def call_args(llmkit: Any, name: str) -> dict[str, Any]:
    options = llmkit.RequestOptions(tools=[WEATHER_TOOL]) if name in LLMKIT_TOOLS else None
    return {"sampling": llmkit.SamplingParams(**LLMKIT_SAMPLING[name]), "options": options}


async def complete(llmkit: Any, name: str) -> Any:
    with replay(name) as cassette:
        completion = await client_for(llmkit, name).acomplete(CALLS[name][1], **call_args(llmkit, name))
        assert cassette.play_count == 1 and cassette.all_played
    return completion


def assert_same(actual: Any, expected: Any) -> None:
    """Every field but the measured latency and the raw provider dict; the price within float rounding."""
    skip = {"latency_s", "raw", "cost_usd"}
    assert actual.model_dump(exclude=skip) == expected.model_dump(exclude=skip)
    assert actual.error is None and actual.ok
    if expected.cost_usd is None:
        assert actual.cost_usd is None
    else:
        assert actual.cost_usd == pytest.approx(expected.cost_usd)


def expected_completions(llmkit: Any) -> dict[str, Any]:
    Completion, Usage, ToolCall = llmkit.Completion, llmkit.Usage, llmkit.ToolCall
    TokenLogprob, TopLogprob = llmkit.TokenLogprob, llmkit.TopLogprob
    paris = {"location": "Paris, France", "unit": "celsius"}
    return {
        "openai_logprobs.yaml": Completion(
            text="Hello café!",
            logprobs=[
                TokenLogprob(
                    token="Hello",
                    logprob=-0.0009,
                    bytes=[72, 101, 108, 108, 111],
                    top=[TopLogprob(token="Hello", logprob=-0.0009), TopLogprob(token="Hi", logprob=-7.1)],
                ),
                TokenLogprob(
                    token=" café",
                    logprob=-0.25,
                    bytes=[32, 99, 97, 102, 195, 169],
                    top=[TopLogprob(token=" café", logprob=-0.25), TopLogprob(token=" world", logprob=-1.5)],
                ),
                TokenLogprob(
                    token="!",
                    logprob=-0.02,
                    bytes=[33],
                    top=[TopLogprob(token="!", logprob=-0.02), TopLogprob(token=".", logprob=-4.0)],
                ),
            ],
            finish_reason="stop",
            usage=Usage(input_tokens=1100, output_tokens=3, cache_read_tokens=1024),
            # $0.15 / 1M uncached input, $0.075 / 1M cached input, $0.60 / 1M output.
            cost_usd=76 * 0.15e-6 + 1024 * 0.075e-6 + 3 * 0.60e-6,
            model="openai/gpt-4o-mini",
            attempts=1,
        ),
        "openai_reasoning_usage.yaml": Completion(
            text='There are 3 r\'s in "strawberry".',
            finish_reason="stop",
            usage=Usage(input_tokens=18, output_tokens=283, reasoning_tokens=256),
            cost_usd=18 * 1.10e-6 + 283 * 4.40e-6,  # o4-mini: $1.10 / 1M input, $4.40 / 1M output (reasoning included)
            model="openai/o4-mini",
            attempts=1,
        ),
        "openai_tool_calls.yaml": Completion(
            tool_calls=[
                ToolCall(
                    id="call_Paris7sXb2Qm1",
                    name="get_weather",
                    arguments=paris,
                    raw_arguments='{"location": "Paris, France", "unit": "celsius"}',
                ),
                ToolCall(
                    id="call_Tokyo9kLp4Rn2",
                    name="get_weather",
                    arguments={"location": "Tokyo, Japan"},
                    raw_arguments='{"location": "Tokyo, Japan"}',
                ),
            ],
            finish_reason="tool_calls",
            usage=Usage(input_tokens=82, output_tokens=52),
            cost_usd=82 * 2.50e-6 + 52 * 10e-6,  # gpt-4o: $2.50 / 1M input, $10 / 1M output
            model="openai/gpt-4o",
            attempts=1,
        ),
        "anthropic_thinking_tool_use.yaml": Completion(
            text="I'll check the current weather in Paris for you.",
            thinking=ANTHROPIC_TOOL_THINKING,
            thinking_blocks=[
                {"type": "thinking", "thinking": ANTHROPIC_TOOL_THINKING, "signature": ANTHROPIC_TOOL_SIGNATURE}
            ],
            # Anthropic sends input as an object; its text form is the JSON of that object.
            tool_calls=[
                ToolCall(
                    id="toolu_01A09q90qw90lq917835lq9",
                    name="get_weather",
                    arguments=paris,
                    raw_arguments=json.dumps(paris),
                )
            ],
            finish_reason="tool_calls",
            usage=Usage(
                input_tokens=50 + 200 + 1800,
                output_tokens=180,
                reasoning_tokens=120,
                cache_read_tokens=1800,
                cache_write_tokens=200,
            ),
            # Claude Sonnet 4.5: $3 / 1M input, $3.75 / 1M 5-minute cache write, $0.30 / 1M cache read, $15 / 1M out.
            cost_usd=50 * 3e-6 + 200 * 3.75e-6 + 1800 * 0.30e-6 + 180 * 15e-6,
            model="anthropic/claude-sonnet-4-5-20250929",
            attempts=1,
        ),
        "gemini_thoughts.yaml": Completion(
            text='There are 3 r\'s in "strawberry".',
            thinking=GEMINI_THOUGHT,
            thinking_blocks=[{"type": "thinking", "thinking": GEMINI_THOUGHT}],
            finish_reason="stop",
            # candidatesTokenCount excludes thoughts: output = 11 + 230.
            usage=Usage(input_tokens=1100, output_tokens=11 + 230, reasoning_tokens=230, cache_read_tokens=1024),
            # Gemini 2.5 Flash: $0.30 / 1M input, $0.03 / 1M cached, $2.50 / 1M output (thinking included).
            cost_usd=76 * 0.30e-6 + 1024 * 0.03e-6 + 241 * 2.50e-6,
            model="gemini/gemini-2.5-flash",
            attempts=1,
        ),
        "gemini_max_tokens_no_text.yaml": Completion(
            text=None,
            thinking=GEMINI_MAX_TOKENS_THOUGHT,
            thinking_blocks=[{"type": "thinking", "thinking": GEMINI_MAX_TOKENS_THOUGHT}],
            finish_reason="length",
            usage=Usage(input_tokens=6, output_tokens=1023, reasoning_tokens=1023),
            cost_usd=6 * 0.30e-6 + 1023 * 2.50e-6,
            model="gemini/gemini-2.5-flash",
            attempts=1,
        ),
        "gemini_max_tokens_no_parts.yaml": Completion(
            text=None,
            finish_reason="length",
            usage=Usage(input_tokens=6, output_tokens=63, reasoning_tokens=63),
            cost_usd=6 * 0.30e-6 + 63 * 2.50e-6,
            model="gemini/gemini-2.5-flash",
            attempts=1,
        ),
        "gemini_logprobs.yaml": Completion(
            text="Hello world",
            logprobs=[
                TokenLogprob(
                    token="Hello",
                    logprob=-0.011,
                    top=[TopLogprob(token="Hello", logprob=-0.011), TopLogprob(token="Hi", logprob=-4.6)],
                ),
                TokenLogprob(
                    token=" world",
                    logprob=-0.11,
                    top=[TopLogprob(token=" world", logprob=-0.11), TopLogprob(token=" World", logprob=-2.3)],
                ),
            ],
            finish_reason="stop",
            usage=Usage(input_tokens=5, output_tokens=2),
            cost_usd=None,  # gemini/gemini-2.0-flash has no price in LiteLLM's bundled map: unknown, not 0
            model="gemini/gemini-2.0-flash",
            attempts=1,
        ),
    }


EXPECTED_NAMES = [
    "openai_logprobs.yaml",
    "openai_reasoning_usage.yaml",
    "openai_tool_calls.yaml",
    "anthropic_thinking_tool_use.yaml",
    "gemini_thoughts.yaml",
    "gemini_max_tokens_no_text.yaml",
    "gemini_max_tokens_no_parts.yaml",
    "gemini_logprobs.yaml",
]


@pytest.mark.parametrize("name", EXPECTED_NAMES)
async def test_llmkit_completion(llmkit: Any, name: str) -> None:
    assert_same(await complete(llmkit, name), expected_completions(llmkit)[name])


async def test_llmkit_anthropic_without_usage_details(llmkit: Any) -> None:
    completion = await complete(llmkit, "anthropic_thinking_no_usage_details.yaml")
    # The body does not say how many of the 70 output tokens were thinking; any estimate must fit inside them.
    assert 0 <= completion.usage.reasoning_tokens <= 70
    expected = llmkit.Completion(
        text="Yes, 97 is a prime number.",
        thinking=STREAM_THINKING,
        thinking_blocks=[
            {
                "type": "thinking",
                "thinking": STREAM_THINKING,
                "signature": (
                    "EqoBCkgIARABGAIiQLlmkitNoDetailsSig3vXbQ9mLr2aZ0vKc3Jd8nP1sTq5wYe6uHb4gVf2iN0oR8mA3kX9zC1yB=="
                ),
            }
        ],
        finish_reason="stop",
        usage=llmkit.Usage(input_tokens=30, output_tokens=70, reasoning_tokens=completion.usage.reasoning_tokens),
        # LiteLLM prices this model at a made-up 0.0 (test_litellm_anthropic_estimates_...): llmkit says unknown.
        cost_usd=None,
        model="anthropic/claude-sonnet-4-20250514",
        attempts=1,
    )
    assert_same(completion, expected)


async def test_llmkit_anthropic_stream(llmkit: Any) -> None:
    name = "anthropic_streaming.yaml"
    with replay(name) as cassette:
        items = [item async for item in client_for(llmkit, name).astream(CALLS[name][1], **call_args(llmkit, name))]
        assert cassette.play_count == 1
    *deltas, final = items
    assert all(isinstance(d, llmkit.StreamDelta) for d in deltas)
    assert "".join(d.thinking for d in deltas if d.thinking) == STREAM_THINKING
    assert "".join(d.text for d in deltas if d.text) == "Yes, 97 is a prime number."
    assert all(d.tool_call is None for d in deltas)
    expected = llmkit.Completion(
        text="Yes, 97 is a prime number.",
        thinking=STREAM_THINKING,
        thinking_blocks=[{"type": "thinking", "thinking": STREAM_THINKING, "signature": STREAM_SIGNATURE}],
        finish_reason="stop",
        # message_start's counts, not doubled by message_delta's cumulative repeat: 40 + 0 + 1500 in, 95 out.
        usage=llmkit.Usage(input_tokens=1540, output_tokens=95, reasoning_tokens=60, cache_read_tokens=1500),
        cost_usd=None,  # no price for claude-sonnet-4-20250514 in the bundled map
        model="anthropic/claude-sonnet-4-20250514",
        attempts=1,
    )
    assert_same(final, expected)


@pytest.mark.parametrize(
    "model", ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-20250514", "gemini/gemini-2.5-flash"]
)
async def test_llmkit_truncated_json_is_an_invalid_response(llmkit: Any, model: str) -> None:
    # LiteLLM raises three different classes for the same fault (see test_litellm_truncated_json_body); llmkit one.
    client = llmkit.LLMClient(
        models=[llmkit.Model(model, api_key=key_for("", "invalid_json.yaml"))], retry=llmkit.RetryPolicy(max_attempts=1)
    )
    with replay("invalid_json.yaml") as cassette:
        with pytest.raises(llmkit.InvalidResponseError) as caught:
            await client.acomplete("hi", sampling=llmkit.SamplingParams(max_tokens=64))
        assert cassette.play_count == 1
    assert caught.value.retryable
    assert caught.value.model == model
