"""ChatLLMKit end to end: real LiteLLM against the FakeProvider's three wire formats, asserting what the user sees
and what crossed the wire (the fake's recorded request bodies and counters)."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from lc_support import API_KEY, MODELS, REASONING_MODELS, Movie, get_weather

from llmkit import LLMClient, Model, RetryPolicy
from llmkit.errors import AuthenticationError, BadRequestError, ProviderError
from llmkit.langchain import ChatLLMKit

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

PROVIDERS = ["openai", "anthropic", "gemini"]


def _streamed(llm: Any, prompt: Any) -> tuple[AIMessageChunk, list[AIMessageChunk]]:
    chunks = list(llm.stream(prompt))
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total, chunks


@pytest.mark.parametrize("provider", PROVIDERS)
def test_thinking_and_tools_survive_a_multi_turn_conversation(chat, fake_provider, provider) -> None:
    """Anthropic answers 400 unless the assistant turn that called a tool starts with its signed thinking block."""
    llm = chat(provider, model=REASONING_MODELS[provider], reasoning_effort="low").bind_tools([get_weather])
    question = HumanMessage("What is the weather in 'Paris'?")
    for first in (llm.invoke([question]), _streamed(llm, [question])[0]):
        assert first.tool_calls[0]["args"] == {"city": "Paris"}
        assert first.additional_kwargs["reasoning_content"]
        answer = llm.invoke([question, first, get_weather.invoke(first.tool_calls[0])])
        assert answer.content == "Tool result: Sunny in Paris."
    if provider == "anthropic":
        sent = fake_provider.requests[-1].body["messages"][1]["content"]
        assert sent[0] == first.additional_kwargs["thinking_blocks"][0]
        assert sent[0]["signature"]
        unsigned = first.model_copy(update={"additional_kwargs": {}})
        with pytest.raises(BadRequestError, match="Expected `thinking`"):
            llm.invoke([question, unsigned, get_weather.invoke(first.tool_calls[0])])


def test_a_claude_history_continues_on_another_provider_without_its_thinking_blocks(chat, fake_provider) -> None:
    question = HumanMessage("What is the weather in 'Paris'?")
    first = chat("anthropic", reasoning_effort="low").bind_tools([get_weather]).invoke([question])
    assert first.additional_kwargs["thinking_blocks"]
    history = [question, first, get_weather.invoke(first.tool_calls[0])]
    assert chat("openai").bind_tools([get_weather]).invoke(history).content == "Tool result: Sunny in Paris."
    assert all("thinking_blocks" not in message for message in fake_provider.requests[-1].body["messages"])


def test_v1_content_blocks_history_also_keeps_the_thinking_blocks(chat) -> None:
    llm = chat("anthropic", reasoning_effort="low", output_version="v1").bind_tools([get_weather])
    question = HumanMessage("What is the weather in 'Paris'?")
    first = llm.invoke([question])
    assert [b["type"] for b in first.content] == ["reasoning", "tool_call"]
    answer = llm.invoke([question, first, get_weather.invoke(first.tool_calls[0])])
    assert answer.text == "Tool result: Sunny in Paris."


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_chunks_add_up_to_invoke_with_usage_on_one_chunk(chat, fake_provider, provider) -> None:
    llm = chat(provider, model=REASONING_MODELS[provider], reasoning_effort="low").bind_tools([get_weather])
    for prompt in ("Write two haikus.", "What is the weather in 'Rome'?"):
        fake_provider.reset()  # the fake's prompt-cache memory would report cached tokens the second time
        invoked = llm.invoke(prompt)
        fake_provider.reset()
        total, chunks = _streamed(llm, prompt)
        assert sum(chunk.usage_metadata is not None for chunk in chunks) == 1
        assert chunks[-1].chunk_position == "last"
        for field in ("content", "usage_metadata", "additional_kwargs"):
            assert getattr(total, field) == getattr(invoked, field), field
        # The fake derives call ids from the request body, and a streamed request's body says stream=true.
        assert [{**c, "id": None} for c in total.tool_calls] == [{**c, "id": None} for c in invoked.tool_calls]
        metadata = {k: v for k, v in total.response_metadata.items() if k != "model_provider"}
        assert metadata == invoked.response_metadata


def test_one_failure_with_retries_off_is_exactly_one_request(chat, fake_provider) -> None:
    """LiteLLM's and the OpenAI SDK's own retries stay off: llmkit's RetryPolicy is the only one."""
    fake_provider.fail_next(1, status=500)
    with pytest.raises(ProviderError):
        chat("openai", max_retries=0).invoke("hello")
    assert fake_provider.count == 1
    fake_provider.reset()
    fake_provider.fail_next(1, status=500)
    client = LLMClient(
        Model(MODELS["openai"], api_base=fake_provider.api_base("openai"), api_key=API_KEY),
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0),
    )
    answer = ChatLLMKit(client=client).invoke("hello")
    assert (answer.content, answer.response_metadata["attempts"], fake_provider.count) == ("Echo: hello", 2, 2)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_native_json_schema_output(chat, fake_provider, provider) -> None:
    movie = chat(provider).with_structured_output(Movie, method="json_schema").invoke("'Heat' came out in 1995")
    assert movie == Movie(title="Heat", year=1995)
    body = fake_provider.requests[-1].body
    sent = {
        "openai": lambda: body["response_format"]["type"],
        "anthropic": lambda: body["output_format"]["type"],
        "gemini": lambda: body["generationConfig"]["response_mime_type"],
    }[provider]()
    assert sent in ("json_schema", "application/json")


@pytest.mark.parametrize(
    ("provider", "sent"),
    [
        ("openai", lambda body: body["parallel_tool_calls"]),
        ("anthropic", lambda body: not body["tool_choice"]["disable_parallel_tool_use"]),
    ],
)
def test_parallel_tool_calls_reaches_the_wire(chat, fake_provider, provider, sent) -> None:
    """Gemini has no such switch (LiteLLM drops it), so only OpenAI's and Anthropic's wire formats carry it."""
    llm = chat(provider).bind_tools([get_weather], parallel_tool_calls=False)
    assert llm.invoke("What is the weather in 'Paris'?").tool_calls[0]["args"] == {"city": "Paris"}
    assert sent(fake_provider.requests[-1].body) is False


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_json_mode_output(chat, provider) -> None:
    result = chat(provider).with_structured_output(method="json_mode").invoke("Give 'title' and 'year' as JSON")
    assert result == {"title": "title", "year": "year"}


def test_logprobs_are_plain_dicts(chat) -> None:
    message = chat("openai", logprobs=True, top_logprobs=2).invoke("Hello there")
    content = message.response_metadata["logprobs"]["content"]
    assert [item["token"] for item in content] == ["Echo: ", "Hello ", "there"]
    assert all(len(item["top_logprobs"]) == 2 for item in content)
    json.dumps(message.response_metadata)


def test_llmkits_disk_cache_is_shared_with_plain_llmkit_calls(chat, fake_provider, tmp_path) -> None:
    llm = chat("openai", response_cache=tmp_path / "cache")
    assert llm.invoke("Hello").response_metadata["cache_hit"] is False
    client = LLMClient(
        Model(MODELS["openai"], api_base=fake_provider.api_base("openai"), api_key=API_KEY), cache=tmp_path / "cache"
    )
    assert client.complete("Hello").cache_hit
    assert [m.response_metadata["cache_hit"] for m in llm.batch(["Hello", "Bye"])] == [True, False]
    assert fake_provider.count == 2


def test_batch_through_the_fake_keeps_input_order(chat, fake_provider) -> None:
    prompts = [f"prompt {i}" for i in range(12)]
    answers = chat("anthropic").batch(prompts, config={"max_concurrency": 4})
    assert [a.content for a in answers] == [f"Echo: {p}" for p in prompts]
    assert fake_provider.count == 12


MARKER = "sk-MARKER-5f3a9c1e7b"


class Capture(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
        self.seen.append(json.dumps([serialized, kwargs], default=repr))

    def on_llm_error(self, error, **kwargs) -> None:
        self.seen.append(repr(error))


def test_the_key_appears_in_no_repr_trace_log_or_error(chat, fake_provider, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    llm = chat("openai", api_key=MARKER)
    capture = Capture()
    fake_provider.fail_next(1, status=401)
    with pytest.raises(AuthenticationError) as caught:
        llm.invoke("hello", config={"callbacks": [capture]})
    # A 401 takes the model out of that client's pool for good, so the successful call uses a fresh model.
    answer = chat("openai", api_key=MARKER).invoke("hello", config={"callbacks": [capture]})
    shown = [
        repr(llm),
        str(llm),
        repr(llm._client),
        repr(llm._client.models),
        json.dumps(dumpd(llm)),
        "".join(traceback.format_exception(caught.value)),
        caplog.text,
        *capture.seen,
        repr(answer),
    ]
    assert capture.seen and all(MARKER not in text and "MARKER" not in text for text in shown)


def test_errors_name_the_model_and_fix(chat) -> None:
    with pytest.raises(AuthenticationError, match="openai/gpt-4o-mini"):
        chat("openai", api_key="invalid-key").invoke("hello")


def test_an_ai_message_from_the_fake_round_trips_as_history(chat) -> None:
    llm = chat("gemini")
    first = llm.invoke("hello")
    assert isinstance(first, AIMessage)
    assert llm.invoke([HumanMessage("hello"), first, HumanMessage("again")]).content == "Echo: again"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output_is_reasked_and_cached_by_the_core(fake_provider, provider, method, tmp_path) -> None:
    """with_structured_output goes through llmkit's output= path: a bad answer is re-asked, the good one cached."""
    fake_provider.reset()
    model = Model(MODELS[provider], api_base=fake_provider.api_base(provider), api_key=API_KEY)
    client = LLMClient(model, cache=tmp_path / "cache")
    structured = ChatLLMKit(client=client).with_structured_output(Movie, method=method)
    prompt = "'Heat' came out in 1995 [[bad_schema_once]]"
    assert structured.invoke(prompt) == Movie(title="Heat", year=1995)
    assert fake_provider.count == 2 and client.status.reasked == 1
    assert structured.invoke(prompt) == Movie(title="Heat", year=1995) and fake_provider.count == 2
    body = json.dumps(fake_provider.requests[0].body)
    assert ("JSON Schema:" in body) == (method == "json_mode")
