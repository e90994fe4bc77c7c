"""ChatLLMKit over an in-process scripted transport: what reaches llmkit, batches, callbacks, caches and limits.

``transport`` (tests/conftest.py) replies from a script, else echoes the last message, and records every request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from uuid import UUID

import pytest
from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, load
from langchain_core.messages import HumanMessage
from langchain_core.rate_limiters import BaseRateLimiter
from lc_support import Movie, get_weather
from typing_extensions import TypedDict

from llmkit import Completion, ConfigError, LLMClient, Model, OutputValidationError, RetryPolicy, ToolCall, Usage
from llmkit.errors import BadRequestError
from llmkit.langchain import ChatLLMKit

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


class MovieDict(TypedDict):
    """A film."""

    title: str
    year: int


def weather_call(city: str = "Paris") -> Completion:
    arguments = json.dumps({"city": city})
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": city}, raw_arguments=arguments)
    return Completion(tool_calls=[call], finish_reason="tool_calls", usage=Usage(input_tokens=5, output_tokens=3))


@pytest.fixture
def client(transport) -> LLMClient:
    return LLMClient(Model("openai/gpt-4o-mini"), transport=transport, retry=RetryPolicy(max_attempts=1))


@pytest.fixture
def llm(client: LLMClient) -> ChatLLMKit:
    return ChatLLMKit(client=client)


def _without_ids(messages: list[Any]) -> list[Any]:
    return [m.model_copy(update={"id": None}) for m in messages]


# -- what reaches llmkit ---------------------------------------------------------------------------------------


def test_fields_and_call_options_become_llmkits_parameter_objects(client, transport) -> None:
    llm = ChatLLMKit(client=client, temperature=0.2, max_tokens=50, stop=["x"], timeout=5, logprobs=True)
    bound = llm.bind_tools([get_weather], tool_choice="any", parallel_tool_calls=False)
    bound.invoke("hi", temperature=0.7, stop=["END"], seed=3)
    (request,) = transport.calls
    assert request.sampling.model_dump(exclude_none=True) == {
        "temperature": 0.7,
        "max_tokens": 50,
        "stop": ("END",),
        "seed": 3,
        "logprobs": True,
    }
    assert request.options.tool_choice == "required"
    assert request.options.parallel_tool_calls is False
    assert request.options.timeout_s == 5
    assert [t["function"]["name"] for t in request.options.tools] == ["get_weather"]
    assert request.messages == [{"role": "user", "content": "hi"}]


def test_an_unknown_call_option_is_refused_before_anything_is_sent(llm, transport) -> None:
    with pytest.raises(ConfigError, match=r"unknown call option\(s\) \['presence_penalty'\]"):
        llm.invoke("hi", presence_penalty=0.5)
    assert transport.calls == []


def test_max_retries_is_llmkits_retry_policy_and_the_client_is_built_lazily() -> None:
    llm = ChatLLMKit(model="openai/gpt-4o-mini", max_retries=4, base_url="http://127.0.0.1:9/v1", api_key="k")
    assert "_client" not in llm.__dict__
    assert llm._client.retry == RetryPolicy(max_attempts=5)
    (model,) = llm._client.models
    assert (model.name, model.api_base, model.api_key.get_secret_value()) == ("openai/gpt-4o-mini", llm.base_url, "k")
    assert ChatLLMKit(model="openai/gpt-4o-mini")._client.retry == RetryPolicy()


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("openai/gpt-4o-mini", "OPENAI_API_KEY"),
        ("anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
        ("gemini/gemini-2.5-flash", "GEMINI_API_KEY"),
        ("mistral/mistral-small", "MISTRAL_API_KEY"),
    ],
)
def test_the_key_comes_from_the_providers_usual_variable(monkeypatch, model: str, variable: str) -> None:
    monkeypatch.setenv(variable, "from-env")
    llm = ChatLLMKit(model=model)
    assert llm.api_key is not None and llm.api_key.get_secret_value() == "from-env"
    assert llm.lc_secrets == {"api_key": variable}


def test_a_client_owns_its_models_keys_and_limits(client) -> None:
    with pytest.raises(ValueError, match=r"also given \['api_key', 'max_retries'\]"):
        ChatLLMKit(client=client, api_key="k", max_retries=1)
    with pytest.raises(ValueError, match="needs model="):
        ChatLLMKit()
    assert ChatLLMKit(client=client).model == "openai/gpt-4o-mini"


def test_langsmith_params_name_provider_model_and_overrides() -> None:
    llm = ChatLLMKit(model="anthropic/claude-sonnet-4-5", temperature=0, max_tokens=10, stop=["x"])
    assert llm._get_ls_params() == {
        "ls_provider": "anthropic",
        "ls_model_name": "claude-sonnet-4-5",
        "ls_model_type": "chat",
        "ls_temperature": 0,
        "ls_max_tokens": 10,
        "ls_stop": ["x"],
    }
    assert llm._get_ls_params(model="anthropic/claude-haiku-4-5")["ls_model_name"] == "claude-haiku-4-5"


def test_a_per_call_model_picks_a_pool_member_or_gets_its_own_client(transport) -> None:
    pool = LLMClient([Model("openai/a"), Model("openai/b", weight=1e-9)], transport=transport, seed=0)
    ChatLLMKit(client=pool).invoke("hi", model="openai/b")
    assert transport.calls[-1].model.name == "openai/b"
    with pytest.raises(ConfigError, match="not in the client's pool"):
        ChatLLMKit(client=pool).invoke("hi", model="openai/c")

    llm = ChatLLMKit(model="openai/gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="k")
    same, other = llm._target("openai/gpt-4.1-mini")[0], llm._target("anthropic/claude-haiku-4-5")[0]
    assert (same.models[0].api_base, same.models[0].api_key is not None) == (llm.base_url, True)
    assert (other.models[0].api_base, other.models[0].api_key) == (None, None)  # a key never crosses providers
    assert llm._target("openai/gpt-4.1-mini")[0] is same


def test_parallel_tool_calls_is_a_call_option_and_part_of_llmkits_cache_key(transport, tmp_path) -> None:
    client = LLMClient(Model("openai/gpt-4o-mini"), transport=transport, cache=tmp_path / "cache")
    llm = ChatLLMKit(client=client).bind_tools([get_weather])
    llm.invoke("hi")
    again = llm.invoke("hi", parallel_tool_calls=False)
    assert again.response_metadata["cache_hit"] is False
    assert [r.options.parallel_tool_calls for r in transport.calls] == [None, False]


# -- async is native -------------------------------------------------------------------------------------------


def _forbid_sync_twins(monkeypatch, client: LLMClient) -> None:
    for name in ("complete", "stream", "batch"):
        monkeypatch.setattr(client, name, lambda *a, **k: pytest.fail("an async path used a sync twin"))


async def test_async_paths_use_llmkits_async_methods(monkeypatch, llm, client, transport) -> None:
    _forbid_sync_twins(monkeypatch, client)
    assert (await llm.ainvoke("a")).content == "echo: a"
    assert [m.content for m in await llm.abatch(["b", "c"])] == ["echo: b", "echo: c"]
    chunks = [chunk async for chunk in llm.astream("d")]
    assert "".join(c.text for c in chunks).strip() == "echo: d"
    assert len(transport.calls) == 4


async def test_sync_calls_work_inside_a_running_event_loop(llm) -> None:
    assert llm.invoke("from a notebook").content == "echo: from a notebook"


# -- batches ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_version", [None, "v1"])
async def test_batch_answers_equal_invoke_answers(client, output_version) -> None:
    llm = ChatLLMKit(client=client, output_version=output_version).bind(temperature=0.5)
    inputs = ["one", [HumanMessage("two")], "three"]
    invoked = [llm.invoke(i) for i in inputs]
    assert _without_ids(llm.batch(inputs)) == _without_ids(invoked)
    assert _without_ids(await llm.abatch(inputs)) == _without_ids(invoked)
    assert all(m.id.startswith("lc_run--") for m in llm.batch(inputs))


async def test_batch_uses_llmkits_engine_with_max_concurrency_as_max_in_flight(monkeypatch, llm, client) -> None:
    seen: list[dict[str, Any]] = []
    real_batch, real_abatch = client.batch, client.abatch

    def spy_batch(prompts, **kwargs):
        seen.append({"prompts": len(prompts), **kwargs})
        return real_batch(prompts, **kwargs)

    async def spy_abatch(prompts, **kwargs):
        seen.append({"prompts": len(prompts), **kwargs})
        return await real_abatch(prompts, **kwargs)

    monkeypatch.setattr(client, "batch", spy_batch)
    monkeypatch.setattr(client, "abatch", spy_abatch)
    monkeypatch.setattr(client, "complete", lambda *a, **k: pytest.fail("batch went through invoke"))
    llm.batch(["a", "b", "c"], config={"max_concurrency": 2})
    await llm.abatch(["a", "b"])
    assert [(s["prompts"], s["max_in_flight"]) for s in seen] == [(3, 2), (2, None)]


@pytest.mark.parametrize("run_async", [False, True])
async def test_a_per_call_model_in_a_batch_is_each_prompts_preferred_pool_member(monkeypatch, transport, run_async):
    pool = LLMClient([Model("openai/a"), Model("openai/b", weight=1e-9)], transport=transport, seed=0)
    monkeypatch.setattr(pool, "complete", lambda *a, **k: pytest.fail("batch went through invoke"))
    monkeypatch.setattr(pool, "acomplete", lambda *a, **k: pytest.fail("abatch went through ainvoke"))
    llm = ChatLLMKit(client=pool).bind(model="openai/b")
    outputs = await llm.abatch(["x", "y"]) if run_async else llm.batch(["x", "y"])
    assert [m.content for m in outputs] == ["echo: x", "echo: y"]
    assert [r.model.name for r in transport.calls] == ["openai/b", "openai/b"]
    with pytest.raises(ConfigError, match="not in the client's pool"):
        ChatLLMKit(client=pool).batch(["x"], model="openai/c")


@pytest.mark.parametrize("run_async", [False, True])
async def test_batch_errors_are_returned_in_place_or_the_first_is_raised(llm, transport, run_async) -> None:
    def reply(request):
        text = request.messages[-1]["content"]
        return BadRequestError(f"refused {text}", model="openai/gpt-4o-mini") if "bad" in text else None

    transport.enqueue(*[reply] * 6)

    async def run(**kwargs: Any) -> list[Any]:
        return (
            await llm.abatch(["ok", "bad1", "bad2"], **kwargs)
            if run_async
            else llm.batch(["ok", "bad1", "bad2"], **kwargs)
        )

    outputs = await run(return_exceptions=True)
    assert outputs[0].content == "echo: ok"
    assert [str(o) for o in outputs[1:]] == ["refused bad1", "refused bad2"]
    with pytest.raises(BadRequestError, match="refused bad1"):
        await run()


class Recorder(BaseCallbackHandler):
    run_inline = True

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_chat_model_start(self, serialized, messages, *, run_id: UUID, tags=None, metadata=None, **kwargs) -> None:
        self.events.append(
            ("start", (run_id, messages[0][0].content, tags, (metadata or {}).get("user"), kwargs.get("name")))
        )

    def on_llm_end(self, response, *, run_id: UUID, **kwargs) -> None:
        self.events.append(("end", (run_id, response.generations[0][0].message.content)))

    def on_llm_error(self, error, *, run_id: UUID, **kwargs) -> None:
        self.events.append(("error", (run_id, str(error))))


@pytest.mark.parametrize("run_async", [False, True])
async def test_each_batch_input_gets_its_own_callback_run(llm, transport, run_async) -> None:
    transport.enqueue(None, BadRequestError("refused", model="openai/gpt-4o-mini"))
    recorder = Recorder()
    configs = [
        {"callbacks": [recorder], "tags": ["t0"], "metadata": {"user": "u0"}, "run_name": "first"},
        {"callbacks": [recorder], "tags": ["t1"], "metadata": {"user": "u1"}},
    ]
    if run_async:
        outputs = await llm.abatch(["a", "b"], configs, return_exceptions=True)
    else:
        outputs = llm.batch(["a", "b"], configs, return_exceptions=True)
    starts = [e[1] for e in recorder.events if e[0] == "start"]
    assert [s[1:] for s in starts] == [("a", ["t0"], "u0", "first"), ("b", ["t1"], "u1", None)]
    assert [e for e in recorder.events if e[0] != "start"] == [
        ("end", (starts[0][0], "echo: a")),
        ("error", (starts[1][0], "refused")),
    ]
    assert outputs[0].id == f"lc_run--{starts[0][0]}-0"


def test_chain_batch_keeps_structured_output_tracing(llm, transport) -> None:
    transport.enqueue(*[lambda r: Completion(text='{"title": "Heat", "year": 1995}')] * 2)
    recorder = Recorder()
    structured = llm.with_structured_output(Movie, method="json_schema")
    assert structured.batch(["a", "b"], {"callbacks": [recorder]}) == [Movie(title="Heat", year=1995)] * 2
    assert [e[0] for e in recorder.events].count("start") == 2


# -- LangChain's cache and rate limiter, llmkit's cache --------------------------------------------------------


def test_langchains_cache_answers_invoke_and_batch(client, transport) -> None:
    llm = ChatLLMKit(client=client, cache=InMemoryCache())
    first = llm.invoke("a")
    assert llm.invoke("a").content == first.content
    assert [m.content for m in llm.batch(["a", "b"])] == ["echo: a", "echo: b"]
    assert [r.messages[-1]["content"] for r in transport.calls] == ["a", "b"]


class CountingLimiter(BaseRateLimiter):
    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True


async def test_langchains_rate_limiter_is_asked_once_per_request(client) -> None:
    limiter = CountingLimiter()
    llm = ChatLLMKit(client=client, rate_limiter=limiter)
    llm.invoke("a")
    llm.batch(["b", "c"])
    await llm.abatch(["d", "e", "f"])
    assert limiter.acquired == 6


async def test_llmkits_cache_answers_again_without_a_request(transport, tmp_path) -> None:
    transport.enqueue(weather_call())
    client = LLMClient(Model("openai/gpt-4o-mini"), transport=transport, cache=tmp_path / "cache")
    llm = ChatLLMKit(client=client).bind_tools([get_weather])
    first = llm.invoke("weather in Paris?")
    again = llm.invoke("weather in Paris?")
    streamed = None
    async for chunk in llm.astream("weather in Paris?"):
        streamed = chunk if streamed is None else streamed + chunk
    assert len(transport.calls) == 1
    assert (first.response_metadata["cache_hit"], again.response_metadata["cache_hit"]) == (False, True)
    assert again.response_metadata["attempts"] == 0
    assert again.tool_calls == streamed.tool_calls == first.tool_calls
    assert streamed.usage_metadata == first.usage_metadata


# -- structured output -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [Movie, MovieDict, Movie.model_json_schema()], ids=["pydantic", "typeddict", "json"])
@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output_binds_the_right_request_and_parses(llm, transport, schema, method) -> None:
    movie = {"title": "Heat", "year": 1995}
    if method == "function_calling":
        name = "Movie" if schema is not MovieDict else "MovieDict"
        call = ToolCall(id="c1", name=name, arguments=movie, raw_arguments=json.dumps(movie))
        transport.enqueue(Completion(tool_calls=[call], finish_reason="tool_calls"))
    else:
        transport.enqueue(Completion(text=json.dumps(movie), finish_reason="stop"))
    result = llm.with_structured_output(schema, method=method).invoke("A Michael Mann film")
    assert result == (Movie(**movie) if schema is Movie else movie)
    options = transport.calls[0].options
    if method == "function_calling":
        assert (options.tool_choice, len(options.tools), options.response_format) == (
            options.tools[0]["function"]["name"],
            1,
            None,
        )
    elif method == "json_schema":
        assert options.response_format["type"] == "json_schema"
        assert set(options.response_format["json_schema"]["schema"]["properties"]) == {"title", "year"}
    else:
        assert (options.response_format, options.tools) == ({"type": "json_object"}, None)


def test_include_raw_keeps_the_message_and_the_parsing_error(llm, transport) -> None:
    transport.enqueue(*[Completion(text="not json")] * 3)  # the first answer and its two re-asks (llmkit's core)
    result = llm.with_structured_output(Movie, method="json_schema", include_raw=True).invoke("?")
    assert (result["raw"].content, result["parsed"]) == ("not json", None)
    assert isinstance(result["parsing_error"], OutputValidationError) and len(transport.calls) == 3


# -- secrets, serialization, imports ---------------------------------------------------------------------------


def test_serialization_round_trips_without_the_key(monkeypatch) -> None:
    llm = ChatLLMKit(model="openai/gpt-4o-mini", api_key="sk-MARKER-0123456789", temperature=0, base_url="http://x")
    data = dumpd(llm)
    assert "sk-MARKER" not in json.dumps(data)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-MARKER-0123456789")
    with pytest.warns(LangChainBetaWarning):
        loaded = load(data, allowed_objects=[ChatLLMKit], valid_namespaces=["llmkit"], secrets_from_env=True)
    assert loaded.asdict() == llm.asdict() and loaded.api_key == llm.api_key


def test_a_wrapped_client_serializes_as_not_implemented_so_loading_fails_loudly() -> None:
    client = LLMClient(Model("openai/gpt-4o-mini", api_key="sk-MARKER-0123456789"))
    data = dumpd(ChatLLMKit(client=client))
    assert data["kwargs"]["client"]["type"] == "not_implemented"
    assert "sk-MARKER" not in json.dumps(data)


def test_importing_llmkit_leaves_langchain_out_until_asked() -> None:
    code = (
        "import sys, llmkit; before = 'langchain_core' in sys.modules; llmkit.ChatLLMKit; "
        "print(before, 'langchain_core' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
