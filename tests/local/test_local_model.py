"""A real model through llmkit: real tokenization, logprobs, streaming, tool calls, limits and the cache.

The wire-format checks mirror those the fake provider's OpenAI tests make, minus what depends on its echo replies.
Greedy decoding (temperature 0) makes answers repeatable, but what the model says is never asserted, only its shape.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import time
from pathlib import Path

import pytest

from llmkit import (
    Completion,
    LLMClient,
    Model,
    RateLimits,
    RequestOptions,
    SamplingParams,
    StreamDelta,
    UnsupportedFeatureError,
)
from llmkit.local import LocalModelServer

pytestmark = pytest.mark.local

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def split_stream(items: list[StreamDelta | Completion]) -> tuple[list[StreamDelta], Completion]:
    """Deltas, then exactly one final Completion, last."""
    *deltas, final = items
    assert isinstance(final, Completion)
    assert deltas and all(isinstance(d, StreamDelta) for d in deltas)
    return deltas, final


# -- the shape of an answer -------------------------------------------------------------------------------------------


def test_completion_shape(client: LLMClient, local_model: Model) -> None:
    completion = client.complete("Say hello in one short sentence.", sampling=SamplingParams(max_tokens=200))
    assert completion.ok and completion.error is None
    assert isinstance(completion.text, str) and completion.text.strip()
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0
    assert completion.usage.reasoning_tokens == 0 and completion.thinking is None
    assert completion.tool_calls == [] and completion.logprobs is None
    assert completion.model == local_model.name
    assert completion.cost_usd is None  # no known price: never a made-up 0
    assert completion.attempts == 1 and not completion.cache_hit and completion.latency_s > 0
    assert completion.raw is not None and completion.raw["choices"][0]["message"]["role"] == "assistant"
    assert client.status.requests_sent == 1 and client.status.succeeded == 1 and client.status.unpriced == 1


def test_max_tokens_cuts_with_length(client: LLMClient) -> None:
    completion = client.complete("Write a long story about a dragon.", sampling=SamplingParams(max_tokens=3))
    assert completion.finish_reason == "length"
    assert completion.usage.output_tokens == 3


def test_system_message_and_multi_turn(client: LLMClient) -> None:
    first = client.complete([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi!"}])
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi!"},
        first.to_message(),
        {"role": "user", "content": "And again?"},
    ]
    second = client.complete(messages)
    assert second.ok and second.text
    assert second.usage.input_tokens > first.usage.input_tokens


def test_reasoning_is_refused_before_sending(client: LLMClient) -> None:
    with pytest.raises(UnsupportedFeatureError, match="reasoning"):
        client.complete("Think hard.", sampling=SamplingParams(reasoning_effort="high"))
    assert client.status.requests_sent == 0


# -- logprobs ---------------------------------------------------------------------------------------------------------


def test_real_logprobs(client: LLMClient) -> None:
    completion = client.complete(
        "Name three colours.", sampling=SamplingParams(logprobs=True, top_logprobs=5, max_tokens=16)
    )
    tokens = completion.logprobs
    assert tokens and len(tokens) == completion.usage.output_tokens
    assert "".join(t.token for t in tokens) == completion.text
    for token in tokens:
        assert token.logprob <= 0
        top = [alt.logprob for alt in token.top]
        assert len(top) == 5
        assert all(lp <= 0 for lp in top)
        assert top == sorted(top, reverse=True)
        assert sum(math.exp(lp) for lp in top) <= 1 + 1e-6
        if token.logprob >= top[-1]:  # it ranks among the alternatives, so it must be listed
            assert token.token in [alt.token for alt in token.top]
        # Greedy decoding picks the most likely token.
        assert token.logprob == pytest.approx(top[0], abs=1e-5)


# A known gap of the stream path, kept visible: a strict xfail fails once it is fixed.
STREAM_USAGE_GAP = pytest.mark.xfail(
    strict=True,
    reason="llama-cpp-python 0.3.36 sends no usage in a stream even with stream_options.include_usage; LiteLLM "
    "then invents one with its own tokenizer, so streamed token counts are estimates, not the server's",
)


def test_logprobs_stream_equal_the_non_streamed_ones(client: LLMClient) -> None:
    sampling = SamplingParams(logprobs=True, top_logprobs=2, max_tokens=12)
    plain = client.complete("Count to five.", sampling=sampling)
    _, streamed = split_stream(list(client.stream("Count to five.", sampling=sampling)))
    assert plain.logprobs is not None and streamed.logprobs is not None
    assert [t.token for t in streamed.logprobs] == [t.token for t in plain.logprobs]


# -- streaming --------------------------------------------------------------------------------------------------------


def test_streaming_equals_non_streaming_at_temperature_0(client: LLMClient) -> None:
    prompt = "Give two tips for sleeping well."
    plain = client.complete(prompt)
    deltas, final = split_stream(list(client.stream(prompt)))
    assert len(deltas) > 1, "a real server streams token by token"
    assert "".join(d.text or "" for d in deltas) == final.text == plain.text
    assert final.finish_reason == plain.finish_reason
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


@STREAM_USAGE_GAP
def test_streamed_usage_is_the_servers(client: LLMClient) -> None:
    prompt = "Give two tips for sleeping well."
    plain = client.complete(prompt)
    _, final = split_stream(list(client.stream(prompt)))
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        plain.usage.input_tokens,
        plain.usage.output_tokens,
    )


async def test_async_twins(client: LLMClient) -> None:
    plain = await client.acomplete("Name a fruit.")
    items = [item async for item in client.astream("Name a fruit.")]
    deltas, final = split_stream(items)
    assert "".join(d.text or "" for d in deltas) == final.text == plain.text
    assert plain.text == client.complete("Name a fruit.").text


def test_stream_with_length_limit(client: LLMClient) -> None:
    deltas, final = split_stream(list(client.stream("Tell me about the sea.", sampling=SamplingParams(max_tokens=4))))
    assert final.finish_reason == "length"
    assert 1 < len(deltas) <= 4  # about one token per chunk


def test_concurrent_streams_are_not_cut_short(client: LLMClient) -> None:
    # llama.cpp's server ends a running stream early when a new request arrives unless interrupt_requests is off.
    prompt = "List the days of the week."
    expected = client.complete(prompt).text

    def run() -> str | None:
        return split_stream(list(client.stream(prompt)))[1].text

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        texts = list(pool.map(lambda _: run(), range(3)))
    assert texts == [expected] * 3


# -- tools ------------------------------------------------------------------------------------------------------------


def test_forced_tool_call_parses_to_a_dict(client: LLMClient) -> None:
    options = RequestOptions(tools=[WEATHER_TOOL], tool_choice="get_weather")
    completion = client.complete(
        "What is the weather in Paris?", options=options, sampling=SamplingParams(max_tokens=64)
    )
    assert completion.finish_reason == "tool_calls"
    [call] = completion.tool_calls
    assert call.name == "get_weather"
    assert isinstance(call.arguments, dict) and call.arguments
    assert call.raw_arguments and call.id


def test_forced_tool_call_streamed(client: LLMClient) -> None:
    # By name only: llama-cpp-python 0.3.36's chatml-function-calling format asserts tool_choice is "auto" unless it
    # names a tool, so "required" gets a 500 (llama_cpp/llama_chat_format.py, chatml_function_calling_handler).
    options = RequestOptions(tools=[WEATHER_TOOL], tool_choice="get_weather")
    sampling = SamplingParams(max_tokens=64)
    plain = client.complete("Weather in Rome?", options=options, sampling=sampling)
    items = list(client.stream("Weather in Rome?", options=options, sampling=sampling))
    final = items[-1]
    assert isinstance(final, Completion)
    assert [c.name for c in final.tool_calls] == ["get_weather"]
    assert final.tool_calls[0].arguments == plain.tool_calls[0].arguments
    chunks = [i.tool_call for i in items[:-1] if isinstance(i, StreamDelta) and i.tool_call is not None]
    assert chunks and "".join(c.arguments for c in chunks) == final.tool_calls[0].raw_arguments


# -- batch, limits and cache ------------------------------------------------------------------------------------------

PROMPTS = [f"What is {a} plus {b}? Answer with a number." for a in range(1, 6) for b in range(1, 11)]


def test_batch_of_50_rate_limited_then_all_cache_hits(
    local_model: Model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(PROMPTS) == len(set(PROMPTS)) == 50
    sampling = SamplingParams(temperature=0, max_tokens=8)
    # The request bucket starts full (40); the other 10 start 1.5 s apart, so the last no earlier than 15 s in.
    limits = RateLimits(requests_per_minute=40)
    start = time.monotonic()
    with (
        caplog.at_level(logging.INFO, logger="llmkit"),
        LLMClient(local_model, sampling=sampling, limits=limits, cache=tmp_path / "cache") as first,
    ):
        results = first.batch(PROMPTS)
        elapsed = time.monotonic() - start
        assert [c.error for c in results] == [None] * 50
        assert all(c.text and c.usage.output_tokens > 0 and not c.cache_hit for c in results)
        # Each prompt is sent once, plus retries: one CI run saw a single retried request from the llama.cpp server
        # with 40 requests queued on it; the log says why if it happens again.
        assert first.status.succeeded == 50 and first.status.requests_sent == 50 + first.status.retried, caplog.text
        assert first.status.waited_s["requests"] > 0
        assert elapsed >= 14.0  # a lower bound the limiter guarantees, so it cannot flake on a slow machine
    with LLMClient(local_model, sampling=sampling, limits=limits, cache=tmp_path / "cache") as again:
        rerun = again.batch(PROMPTS)
        assert all(c.cache_hit for c in rerun)
        assert [c.text for c in rerun] == [c.text for c in results]
        assert again.status.requests_sent == 0 and again.status.cache_hits == 50


# -- what the model reads ---------------------------------------------------------------------------------------------


def _token_count(server_url: str, text: str) -> int:
    """How many tokens the server's own tokenizer makes of ``text`` (special tokens such as <|im_start|> included)."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{server_url}/extras/tokenize/count",
        data=json.dumps({"input": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.load(response)["count"])


def test_the_model_reads_quotes_and_markup_as_written(client: LLMClient, local_server: LocalModelServer) -> None:
    """The prompt the server tokenized is the chat template with the text verbatim: ``usage.input_tokens`` equals the
    token count of that rendering, and not of the HTML-escaped one (``&#39;I love this library&#39;``)."""
    text = """He said 'I love this library' & wrote <b>"quotes"</b> > 2"""
    escaped = text.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;").replace("<", "&lt;")
    escaped = escaped.replace(">", "&gt;")
    template = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
    verbatim_tokens = _token_count(local_server.url, template.format(text))
    assert verbatim_tokens != _token_count(local_server.url, template.format(escaped))  # the check can tell them apart
    answer = client.complete(text, sampling=SamplingParams(max_tokens=1))
    assert answer.usage.input_tokens == verbatim_tokens
