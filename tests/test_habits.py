"""Habits from LiteLLM and LangChain meet a clear answer: dicts for parameter objects, keywords shown where they go."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from llmkit import ConfigError, LLMClient, Model, RateLimits, RequestOptions, RetryPolicy, SamplingParams, merge
from llmkit.langchain import ChatLLMKit
from llmkit.testing import FakeProvider


@pytest.fixture
def client(fake_provider: FakeProvider) -> LLMClient:
    return LLMClient([Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="k")])


def test_a_dict_works_wherever_a_parameter_object_does(fake_provider: FakeProvider, client: LLMClient) -> None:
    dicts = LLMClient(
        [Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="k")],
        sampling={"max_tokens": 50},
        limits={"requests_per_minute": 600},
        retry={"max_attempts": 2},
    )
    assert dicts.sampling == SamplingParams(max_tokens=50) and dicts.limits == RateLimits(requests_per_minute=600)
    assert dicts.retry == RetryPolicy(max_attempts=2)
    assert dicts.complete("hi", sampling={"temperature": 0}).text == "Echo: hi"
    assert dicts.plan("hi", sampling={"temperature": 0}, options={"sample": 1}) == dicts.plan(
        "hi", sampling=SamplingParams(temperature=0), options=RequestOptions(sample=1)
    )
    assert dicts.batch(["a", "b"], sampling={"temperature": 0}, return_completions_only=True) == ["Echo: a", "Echo: b"]
    assert list(dicts.stream("s", sampling={"temperature": 0}))[-1].text == "Echo: s"
    assert merge({"temperature": 0.1}, SamplingParams(max_tokens=3)) == SamplingParams(temperature=0.1, max_tokens=3)


def test_a_dict_gets_the_same_errors_as_the_object(client: LLMClient) -> None:
    with pytest.raises(ConfigError) as from_dict:
        client.complete("hi", sampling={"temperature": -1})
    with pytest.raises(ConfigError) as from_object:
        SamplingParams(temperature=-1)
    assert str(from_dict.value) == str(from_object.value)
    with pytest.raises(ConfigError, match="sampling must be a SamplingParams or a dict of its fields, got int"):
        client.complete("hi", sampling=3)  # type: ignore[arg-type]


def test_sampling_keywords_show_the_parameter_object_spelling(client: LLMClient) -> None:
    with pytest.raises(ConfigError, match=r"sampling=SamplingParams\(temperature=0\)"):
        client.complete("hi", temperature=0)  # type: ignore[call-arg]
    with pytest.raises(
        ConfigError, match=r"sampling=SamplingParams\(max_tokens=5\), options=RequestOptions\(timeout_s=3"
    ):
        client.batch(["hi"], max_tokens=5, timeout=3)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"sampling=SamplingParams\(top_p=0.5\)"):
        asyncio.run(client.acomplete("hi", top_p=0.5))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"options=RequestOptions\(tools="):
        list(client.stream("hi", tools=[]))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="unexpected keyword argument 'samplng' \\(did you mean 'sampling'\\?\\)"):
        client.complete("hi", samplng={})  # type: ignore[call-arg]


def test_a_misspelt_field_gets_did_you_mean() -> None:
    with pytest.raises(
        ConfigError, match=r"SamplingParams.temprature=0.2: unknown field; .*\(did you mean 'temperature'\?\)"
    ):
        SamplingParams(temprature=0.2)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"\(did you mean 'requests_per_minute'\?\)"):
        RateLimits(request_per_minute=5)  # type: ignore[call-arg]


def test_a_pydantic_class_as_response_format_says_where_structured_output_lives() -> None:
    class Movie(BaseModel):
        title: str

    with pytest.raises(ConfigError, match="use output=Movie"):
        RequestOptions(response_format=Movie)  # type: ignore[arg-type]


def test_chat_llmkit_refuses_unknown_arguments() -> None:
    with pytest.raises(
        ConfigError, match=r"ChatLLMKit\(temprature=...\): unknown argument \(did you mean 'temperature'\?\)"
    ):
        ChatLLMKit(model="openai/gpt-4o-mini", temprature=0.2)
    with pytest.raises(ConfigError, match="provider_options"):
        ChatLLMKit(model="openai/gpt-4o-mini", model_kwargs={"top_k": 3})
    llm = ChatLLMKit(model="openai/gpt-4o-mini", temperature=0.2, tags=["kept"], callbacks=None)
    assert llm.temperature == 0.2 and llm.tags == ["kept"]  # its own and BaseChatModel's fields still work
