"""The fast-path transport: the same request through ``litellm.acompletion`` and through the fast path must cross the
wire as the same JSON and come back as the same ``Completion`` (or the same llmkit error), for every request shape the
end-to-end and cassette suites send. This parity matrix is also the guard for LiteLLM upgrades.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmkit import (
    File,
    LLMClient,
    LLMError,
    Model,
    RequestOptions,
    RetryPolicy,
    SamplingParams,
    TimeoutError,
    _fastpath,
    _transport,
)
from llmkit._fastpath import FastPathTransport
from llmkit._transport import LiteLLMTransport
from tests.test_e2e_providers import WEATHER

PERSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}
MARKER_KEY = "sk-MARKER-9f8e7d6c5b4a3210"
DOTTED_KEY = "gw.MARKER.key-42"  # no shape LiteLLM's own log filter recognises as a secret
SIGNED = "call_1__thought__c2lnbmVkLXRob3VnaHQ="
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class Case:
    name: str
    prompt: Any = "Why is the sky blue?"
    model: str | None = None
    sampling: SamplingParams | None = None
    options: RequestOptions | None = None
    fault: dict[str, Any] = field(default_factory=dict)


TOOL_HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Use get_weather for 'Rome'"},
    {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]

SYSTEM_HI = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]

# Every wire: what the end-to-end suite sends to each provider (tests/test_e2e_providers.py, tests/test_cassettes.py).
SHARED = [
    Case("text"),
    Case("system_role", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]),
    Case("forced_tool_call", "Weather in 'Paris'?", options=RequestOptions(tools=[WEATHER], tool_choice="get_weather")),
    Case("tool_required", "Weather in 'Oslo'?", options=RequestOptions(tools=[WEATHER], tool_choice="required")),
    Case("tool_result_round_trip", TOOL_HISTORY, options=RequestOptions(tools=[WEATHER], tool_choice="auto")),
    Case("json_schema", "Name a person", options=RequestOptions(response_format=PERSON)),
    Case("json_mode", "Name a person", sampling=SamplingParams(json_mode=True)),
    Case("length", "one two three four five six", sampling=SamplingParams(max_tokens=3)),
    Case("sampling_knobs", "hi", sampling=SamplingParams(temperature=0.2, top_p=0.9, stop=("END",))),
    Case("rate_limited", fault={"kind": "status", "status": 429, "retry_after": 3.0}),
    Case("server_error", fault={"kind": "status", "status": 500}),
    Case("overloaded", fault={"kind": "status", "status": 529}),
    Case("bad_key", fault={"kind": "status", "status": 401}),
    Case("bad_request", fault={"kind": "status", "status": 400}),
    Case("invalid_json", fault={"kind": "invalid_json"}),
    Case("error_in_ok_body", fault={"kind": "error_body"}),
    Case("empty_answer", fault={"kind": "empty"}),
    Case("connection_reset", fault={"kind": "reset"}),
]
CASES = {
    "openai": [
        *SHARED,
        Case("developer_role", [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]),
        Case("thinking", "Think first", "openai/o3-mini", SamplingParams(reasoning_effort="low", max_tokens=2000)),
        Case("refused_by_litellm", "hi", "openai/gpt-5-mini", SamplingParams(reasoning_effort="none")),
        Case("gpt5_tools", "Weather in 'Oslo'?", "openai/gpt-5-mini", options=RequestOptions(tools=[WEATHER])),
        Case("logprobs", "one two three", sampling=SamplingParams(logprobs=True, top_logprobs=3)),
        Case("seed", "hi", sampling=SamplingParams(seed=7)),
        Case("unpriced_model", "price me", "openai/my-finetune-xyz"),
        Case("context_window", "word " * 9000, "openai/small-ctx"),
    ],
    "anthropic": [
        *SHARED,
        Case("thinking_effort", "Think first", sampling=SamplingParams(reasoning_effort="low", max_tokens=2000)),
        Case("thinking_budget", "Think first", sampling=SamplingParams(thinking_budget=1024, max_tokens=4000)),
        Case(
            "thinking_and_tools",
            "Use get_weather for 'Rome'",
            sampling=SamplingParams(thinking_budget=1024, max_tokens=4000),
            options=RequestOptions(tools=[WEATHER], tool_choice="auto"),
        ),
        Case(
            "signed_thinking_round_trip",
            [
                {"role": "user", "content": "Use get_weather for 'Rome'"},
                {
                    "role": "assistant",
                    "content": "",
                    "thinking_blocks": [{"type": "thinking", "thinking": "Call the tool.", "signature": "c2ln"}],
                    "tool_calls": TOOL_HISTORY[2]["tool_calls"],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            sampling=SamplingParams(thinking_budget=1024, max_tokens=4000),
            options=RequestOptions(tools=[WEATHER], tool_choice="auto"),
        ),
        Case("context_window", "word " * 9000),
    ],
    "gemini": [
        *SHARED,
        Case("unavailable", fault={"kind": "status", "status": 503}),
        Case("content_filtered", "[[filter]] tell me"),
        Case("thinking_effort", "Think first", sampling=SamplingParams(reasoning_effort="low", max_tokens=2000)),
        Case("thinking_budget", "Think first", sampling=SamplingParams(thinking_budget=1024, max_tokens=4000)),
        Case("thinking_eats_the_budget", "a long one", sampling=SamplingParams(thinking_budget=1024, max_tokens=8)),
        Case(
            "thinking_and_tools",
            "Use get_weather for 'Rome'",
            sampling=SamplingParams(thinking_budget=1024, max_tokens=4000),
            options=RequestOptions(tools=[WEATHER], tool_choice="auto"),
        ),
        Case(
            # LiteLLM carries Gemini's thought signature in the tool call id; it must go back as thoughtSignature.
            "signed_thought_round_trip",
            [
                TOOL_HISTORY[1],
                {**TOOL_HISTORY[2], "content": "", "tool_calls": [{**TOOL_HISTORY[2]["tool_calls"][0], "id": SIGNED}]},
                {"role": "tool", "tool_call_id": SIGNED, "content": "sunny"},
            ],
            sampling=SamplingParams(thinking_budget=1024, max_tokens=4000),
            options=RequestOptions(tools=[WEATHER], tool_choice="auto"),
        ),
        Case("logprobs", "one two three", sampling=SamplingParams(logprobs=True, top_logprobs=3)),
        Case("seed", "hi", sampling=SamplingParams(seed=7)),
        Case("image", ["What is in this picture?", File(PNG)]),
        Case("unpriced_model", "price me", "gemini/my-tuned-gemini"),
        Case("unknown_model_schema", SYSTEM_HI, "gemini/my-tuned", options=RequestOptions(response_format=PERSON)),
        Case("context_window", "word " * 9000, "gemini/small-ctx"),
    ],
}
DEFAULT_MODEL = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
PARAMS = [
    pytest.param(provider, case, id=f"{provider}-{case.name}") for provider, cases in CASES.items() for case in cases
]


def _comparable(outcome: object, provider: str = "") -> object:
    """What must match: the whole Completion minus timing and the provider's per-reply ids; an error's class, status,
    retryability and retry_after (the text differs: the OpenAI SDK words its errors itself)."""
    if isinstance(outcome, LLMError):
        return (type(outcome), outcome.status, outcome.retryable, getattr(outcome, "retry_after", None))
    data = outcome.model_dump()  # type: ignore[attr-defined]
    data.pop("latency_s")
    for key in ("id", "created"):
        (data["raw"] or {}).pop(key, None)
    if provider == "gemini":
        # Gemini's function calls carry no id: LiteLLM makes up a random "call_<uuid>" for each (the part before
        # any "__thought__" signature), wherever it appears. Compared by position instead.
        text = json.dumps(data)
        for i, call in enumerate(data["tool_calls"]):
            text = text.replace(call["id"].split("__thought__")[0], f"call_{i}")
        data = json.loads(text)
    return data


async def _run(fake, transport, provider: str, case: Case) -> tuple[object, list[dict[str, Any]]]:
    fake.reset()
    if case.fault:
        fake.fail_next(**case.fault)
    model = Model(case.model or DEFAULT_MODEL[provider], api_base=fake.api_base(provider), api_key="fake-key")
    llm = LLMClient([model], transport=transport, retry=NO_RETRY)
    try:
        outcome: object = await llm.acomplete(case.prompt, sampling=case.sampling, options=case.options)
    except LLMError as exc:
        outcome = exc
    finally:
        llm.close()
    return outcome, [r.body for r in fake.requests]


@pytest.mark.parametrize(("provider", "case"), PARAMS)
async def test_fast_path_matches_acompletion(fake_provider, provider: str, case: Case) -> None:
    slow, slow_sent = await _run(fake_provider, LiteLLMTransport(), provider, case)
    fast_transport = FastPathTransport()
    fast, fast_sent = await _run(fake_provider, fast_transport, provider, case)
    if slow_sent:
        assert fast_transport.fast_calls == 1, "the request went through acompletion, so nothing was compared"
    assert fast_sent == slow_sent and len(fast_sent) <= 1
    assert _comparable(fast, provider) == _comparable(slow, provider)


def test_every_fast_provider_has_a_parity_matrix() -> None:
    assert set(CASES) == set(_fastpath._PROVIDERS)


async def test_optional_params_do_not_depend_on_messages() -> None:
    """The fast path memoizes get_optional_params per model and parameters; this pins what makes that safe."""
    from litellm.utils import get_optional_params

    params = {"temperature": 0.2, "tools": [WEATHER], "tool_choice": "auto", "max_retries": 0}
    short = get_optional_params(model="gpt-4o-mini", custom_llm_provider="openai", messages=[], **params)
    long = get_optional_params(model="gpt-4o-mini", custom_llm_provider="openai", messages=TOOL_HISTORY, **params)
    assert short == long and short["temperature"] == 0.2


@pytest.mark.parametrize(
    "model_kwargs",
    [
        {"transport": "litellm"},
        {"provider_options": {"extra_body": {"x": 1}}},
        {"name": "deepseek/deepseek-chat"},
    ],
    ids=["forced", "extra_body", "provider_not_on_the_allowlist"],
)
async def test_requests_the_fast_path_cannot_prove_go_through_acompletion(fake_provider, model_kwargs) -> None:
    name = model_kwargs.pop("name", "openai/gpt-4o-mini")
    wire = {"deepseek": "openai"}.get(name.split("/")[0], name.split("/")[0])
    transport = FastPathTransport()
    model = Model(name, api_base=fake_provider.api_base(wire), api_key="fake-key", **model_kwargs)
    c = await LLMClient([model], transport=transport).acomplete("hello")
    assert c.text == "Echo: hello" and transport.fast_calls == 0 and fake_provider.count == 1
    fake_provider.fail_next(kind="status", status=401)
    with pytest.raises(LLMError) as info:
        await LLMClient([model], transport=transport, retry=NO_RETRY).acomplete("x")
    assert info.value.status == 401 and info.value.__context__ is None and info.value.__cause__ is None


async def test_a_history_with_null_fields_goes_through_acompletion(fake_provider) -> None:
    """acompletion drops ``"content": None`` from an assistant tool-call message before sending; the fast path has
    not matched that yet, so such a request must not take it."""
    history = [dict(m, content=None) if m["role"] == "assistant" else m for m in TOOL_HISTORY]
    transport = FastPathTransport()
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    c = await LLMClient([model], transport=transport).acomplete(history, options=RequestOptions(tools=[WEATHER]))
    assert c.ok and transport.fast_calls == 0 and "content" not in fake_provider.requests[0].body["messages"][2]


async def test_a_stream_the_fast_path_cannot_prove_goes_through_acompletion(fake_provider) -> None:
    """Streams take the fast path's own refusals (tests/test_fastpath_stream.py has their parity matrix)."""
    transport = FastPathTransport()
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    forced = model.model_copy(update={"transport": "litellm"})
    items = [i async for i in LLMClient([forced], transport=transport).astream("hello")]
    assert items[-1].text == "Echo: hello" and transport.fast_calls == 0
    items = [i async for i in LLMClient([model], transport=transport).astream("hello")]
    assert items[-1].text == "Echo: hello" and transport.fast_calls == 1


async def test_the_client_uses_the_fast_path_by_default(fake_provider) -> None:
    llm = LLMClient([Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")])
    assert (await llm.acomplete("hello")).text == "Echo: hello"
    assert isinstance(llm._transport, FastPathTransport) and llm._transport.fast_calls == 1


def test_a_bad_transport_name_is_a_config_error() -> None:
    from llmkit import ConfigError

    with pytest.raises(ConfigError, match="transport"):
        Model("openai/gpt-4o-mini", transport="fast")


@pytest.mark.parametrize("provider", sorted(_fastpath._PROVIDERS))
async def test_a_key_echoed_in_an_error_is_redacted_and_nothing_is_chained(fake_provider, provider, caplog) -> None:
    fake_provider.fail_next(kind="echo_key", status=400)
    transport = FastPathTransport()
    model = Model(DEFAULT_MODEL[provider], api_base=fake_provider.api_base(provider), api_key=MARKER_KEY)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(LLMError) as info:
            await LLMClient([model], transport=transport, retry=NO_RETRY).acomplete("x")
    assert transport.fast_calls == 1 and "Invalid credentials" in str(info.value)  # the key was echoed, then removed
    assert MARKER_KEY not in str(info.value) and MARKER_KEY not in repr(info.value.args)
    assert MARKER_KEY[:8] not in caplog.text
    assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_a_hung_reply_times_out_and_is_retried(fake_provider, provider) -> None:
    fake_provider.fail_next(kind="timeout", hang_s=5)
    transport = FastPathTransport()
    model = Model(DEFAULT_MODEL[provider], api_base=fake_provider.api_base(provider), api_key="fake-key")
    llm = LLMClient([model], transport=transport, timeout_s=0.5, retry=RetryPolicy(max_attempts=2, initial_backoff_s=0))
    c = await llm.acomplete("late")
    assert c.ok and c.attempts == 2 and transport.fast_calls == 2
    fake_provider.fail_next(kind="timeout", hang_s=5)
    with pytest.raises(TimeoutError):
        await LLMClient([model], transport=transport, timeout_s=0.5, retry=NO_RETRY).acomplete("late again")


async def test_a_500_with_retries_off_reaches_the_server_once(fake_provider) -> None:
    fake_provider.fail_next(kind="status", status=500)
    transport = FastPathTransport()
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    with pytest.raises(LLMError) as info:
        await LLMClient([model], transport=transport, retry=NO_RETRY).acomplete("x")
    assert info.value.status == 500 and info.value.retryable and fake_provider.count == 1


async def test_a_changed_litellm_signature_switches_the_provider_off_once(fake_provider, monkeypatch, caplog) -> None:
    route = _fastpath._route("openai/gpt-4o-mini")
    assert route is not None

    def changed(*args: object, **kwargs: object) -> dict[str, Any]:
        raise TypeError("transform_request() got an unexpected keyword argument 'model'")

    monkeypatch.setattr(route.config, "transform_request", changed)
    monkeypatch.setattr(_fastpath, "_switched_off", set())
    transport = FastPathTransport()
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    llm = LLMClient([model], transport=transport)
    with caplog.at_level(logging.WARNING, logger="llmkit"):
        answers = [await llm.acomplete(f"q{i}") for i in range(3)]
    assert [a.text for a in answers] == ["Echo: q0", "Echo: q1", "Echo: q2"]
    assert transport.fast_calls == 0 and fake_provider.count == 3
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "switched off for openai" in caplog.records[0].message


async def test_clients_on_one_loop_share_a_session_closed_by_the_last_close(fake_provider) -> None:
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    first, second = LLMClient([model]), LLMClient([model])
    await first.acomplete("one")
    await second.acomplete("two")
    pool = _fastpath._POOLS[asyncio.get_running_loop()]
    assert len(pool.users) == 2
    first.close()
    assert not pool.session.closed and (await second.acomplete("three")).text == "Echo: three"
    second.close()
    await asyncio.sleep(0.05)  # closing from inside the loop finishes on the loop
    assert pool.session.closed
    assert (await second.acomplete("four")).text == "Echo: four"  # a closed client's next call opens a new one
    assert _fastpath._POOLS[asyncio.get_running_loop()] is not pool
    second.close()


def test_asyncio_run_shutdown_closes_the_session_of_a_client_never_closed(fake_provider) -> None:
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    pools = []

    async def forgetful() -> str:
        text = (await LLMClient([model]).acomplete("bye")).text
        pools.append(_fastpath._POOLS[asyncio.get_running_loop()])
        return text

    assert asyncio.run(forgetful()) == "Echo: bye"
    assert pools[0].session.closed


def test_sync_twins_share_one_session_on_the_background_loop(fake_provider) -> None:
    from llmkit import _sync

    transport = FastPathTransport()
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    llm = LLMClient([model], transport=transport)
    assert [c.text for c in llm.batch(["a", "b", "c"])] == ["Echo: a", "Echo: b", "Echo: c"]
    assert llm.complete("d").text == "Echo: d"
    pool = _fastpath._POOLS[_sync._background_loop()]
    assert set(pool.users) == {transport}
    llm.close()
    assert pool.session.closed and transport.fast_calls == 4


async def test_cost_is_litellms_and_priced_once_per_model_and_usage(fake_provider, monkeypatch) -> None:
    """The fast path memoizes completion_cost per (provider, model, usage, tier): the same usage is priced once, and
    the memoized price is the one acompletion's route reports."""
    import litellm

    monkeypatch.setattr(_fastpath, "_COSTS", {})
    calls = []
    real = litellm.completion_cost
    monkeypatch.setattr(litellm, "completion_cost", lambda **kw: calls.append(1) or real(**kw))
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    fast = LLMClient([model], transport=FastPathTransport())
    first, second = await fast.acomplete("price me"), await fast.acomplete("price it")
    assert len(calls) == 1 and first.usage == second.usage and first.cost_usd == second.cost_usd
    slow = await LLMClient([model], transport=LiteLLMTransport()).acomplete("price us")
    assert slow.usage == first.usage and slow.cost_usd == first.cost_usd and first.cost_usd > 0
    unpriced = Model("openai/my-finetune-xyz", api_base=fake_provider.api_base("openai"), api_key="fake-key")
    assert [(await LLMClient([unpriced], transport=FastPathTransport()).acomplete(p)).cost_usd for p in "ab"] == [
        None,
        None,
    ]


@pytest.mark.parametrize("provider", sorted(_fastpath._PROVIDERS))
async def test_a_key_from_the_environment_is_sent_and_never_shown(fake_provider, monkeypatch, provider) -> None:
    variable = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}[provider]
    monkeypatch.setenv(variable, MARKER_KEY)
    monkeypatch.setattr(_transport, "_KEY_VARS", {})  # what _check_key learns with the variable set stays here
    transport = FastPathTransport()
    model = Model(DEFAULT_MODEL[provider], api_base=fake_provider.api_base(provider))
    assert (await LLMClient([model], transport=transport).acomplete("hi")).text == "Echo: hi"
    fake_provider.fail_next(kind="echo_key", status=401)
    with pytest.raises(LLMError) as info:
        await LLMClient([model], transport=transport, retry=NO_RETRY).acomplete("x")
    assert transport.fast_calls == 2 and MARKER_KEY not in str(info.value)
    assert len({r.api_key_hash for r in fake_provider.requests}) == 1 and info.value.__context__ is None


def test_an_untested_litellm_release_turns_the_fast_path_off_with_one_warning(monkeypatch, caplog) -> None:
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.200.0")
    _fastpath._tested_litellm.cache_clear()
    _fastpath._route.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="llmkit"):
            assert _fastpath._route("openai/gpt-4o-mini") is None
            assert _fastpath._route("anthropic/claude-sonnet-4-5") is None
        assert len(caplog.records) == 1 and "LiteLLM 1.200.0 is outside" in caplog.records[0].message
    finally:
        monkeypatch.undo()
        _fastpath._tested_litellm.cache_clear()
        _fastpath._route.cache_clear()
    assert _fastpath._route("openai/gpt-4o-mini") is not None  # the installed, tested release


@pytest.mark.parametrize("provider", sorted(_fastpath._PROVIDERS))
async def test_a_request_with_no_key_anywhere_goes_through_acompletion(fake_provider, monkeypatch, provider) -> None:
    """The OpenAI SDK refuses to send without a key (LiteLLM reports a 500); the fast path must not send it keyless."""
    request = _transport.Request(
        Model(DEFAULT_MODEL[provider], api_base=fake_provider.api_base(provider)),
        [{"role": "user", "content": "hi"}],
        SamplingParams(),
        RequestOptions(),
    )
    with pytest.raises(_fastpath._Unsupported):
        await _fastpath._prepare(request, LiteLLMTransport()._kwargs(request))


def test_a_sync_script_that_never_closes_its_client_closes_the_session_at_exit(fake_provider) -> None:
    """The sync twins' session lives on llmkit's background loop, which never shuts down: llmkit closes it at exit
    (before, aiohttp reported an unclosed session while the interpreter was shutting down)."""
    import subprocess
    import sys

    script = (
        "import atexit, sys\n"
        "from llmkit import LLMClient, Model, _fastpath\n"
        "pools = []\n"
        "atexit.register(lambda: print('closed' if pools[0].session.closed else 'open'))  # runs after llmkit's\n"
        "print(LLMClient([Model('openai/gpt-4o-mini', api_base=sys.argv[1], api_key='k')]).complete('hi').text)\n"
        "pools.extend(_fastpath._POOLS.values())\n"
    )
    root = os.path.dirname(os.path.dirname(_fastpath.__file__))  # this tree's llmkit, not an installed one
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": root}
    done = subprocess.run(
        [sys.executable, "-c", script, fake_provider.api_base("openai")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0 and done.stdout.split() == ["Echo:", "hi", "closed"], done.stderr[-2000:]
    assert "Unclosed" not in done.stderr


class _ScriptedGemini:
    """A Gemini server answering from a script (one reply per request, in order) and recording what it received:
    for what the FakeProvider does not send (continuation hops, thought signatures on function calls)."""

    def __init__(self, replies: list[tuple[int, dict[str, Any]]]) -> None:
        self.replies, self.script = list(replies), list(replies)
        self.received: list[tuple[str, str | None, Any]] = []

    async def __aenter__(self) -> str:
        from aiohttp import web

        async def answer(request: web.Request) -> web.Response:
            self.received.append((request.path, request.headers.get("x-goog-api-key"), await request.json()))
            status, body = self.script.pop(0)
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_post("/v1beta/models/{target}", answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1beta"  # type: ignore[union-attr]

    async def __aexit__(self, *exc_info: object) -> None:
        await self.runner.cleanup()

    def rewind(self) -> list[Any]:
        received, self.received, self.script = self.received, [], list(self.replies)
        return received


def _gemini_reply(parts: list[dict[str, Any]], finish: str, tokens: int, **candidate: Any) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0, **candidate}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": tokens, "totalTokenCount": 5 + tokens},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
    }


HOP_1 = _gemini_reply([{"text": "Once upon "}], "CONTINUATION", 3, continuationToken="tok-1")
HOP_2 = _gemini_reply([{"text": "a time."}], "STOP", 3)
SIGNED_CALL = _gemini_reply(
    [
        {"text": "Rome needs the tool.", "thought": True},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}, "thoughtSignature": "c2lnbmVkLXRob3VnaHQ="},
    ],
    "STOP",
    7,
)
SERVER_ERROR = {"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}


@pytest.mark.parametrize(
    ("replies", "sampling", "posts", "text"),
    [
        ([(200, HOP_1), (200, HOP_2)], SamplingParams(max_tokens=100), 2, "Once upon a time."),
        ([(200, HOP_1), (500, SERVER_ERROR)], SamplingParams(max_tokens=100), 2, "Once upon "),
        ([(200, HOP_1)], SamplingParams(), 1, "Once upon "),  # no max_tokens: no cap, so no hop
        ([(200, SIGNED_CALL)], SamplingParams(thinking_budget=1024, max_tokens=4000), 1, None),
    ],
    ids=["continuation_hops_merged", "failed_hop_keeps_the_answer_so_far", "no_cap_no_hop", "signed_function_call"],
)
async def test_gemini_continuation_hops_and_signatures_match_acompletion(replies, sampling, posts, text) -> None:
    """LiteLLM's Gemini handler posts again while a capped reply ends in CONTINUATION; the fast path must send the
    same hops and merge them the same way (and read thought signatures on function calls the same way)."""
    outcomes = []
    server = _ScriptedGemini(replies)
    async with server as api_base:
        model = Model("gemini/gemini-2.5-flash", api_base=api_base, api_key="fake-key")
        for transport in (LiteLLMTransport(), FastPathTransport()):
            llm = LLMClient([model], transport=transport, retry=NO_RETRY)
            outcomes.append((await llm.acomplete("Tell a story", sampling=sampling), server.rewind()))
            llm.close()
    (slow, slow_received), (fast, fast_received) = outcomes
    assert transport.fast_calls == 1 and len(slow_received) == posts and slow.text == text
    if replies[0][1] is SIGNED_CALL:  # the signature comes back inside the tool call id, and the thought with it
        assert slow.tool_calls[0].id.endswith("__thought__c2lnbmVkLXRob3VnaHQ=")
        assert slow.thinking == "Rome needs the tool."
    assert fast_received == slow_received
    assert _comparable(fast, "gemini") == _comparable(slow, "gemini")


async def test_a_gemini_key_goes_in_a_header_and_a_failed_hop_logs_no_key(caplog) -> None:
    """The key travels as x-goog-api-key, never in the URL; a continuation hop whose error echoes the key is logged
    by LiteLLM ("returning the answer so far") without it."""
    echoed = {"error": {"code": 400, "message": f"API key {DOTTED_KEY} not valid", "status": "INVALID_ARGUMENT"}}
    server = _ScriptedGemini([(200, HOP_1), (400, echoed)])
    transport = FastPathTransport()
    async with server as api_base:
        model = Model("gemini/gemini-2.5-flash", api_base=api_base, api_key=DOTTED_KEY)
        with caplog.at_level(logging.DEBUG):
            c = await LLMClient([model], transport=transport).acomplete("x", sampling=SamplingParams(max_tokens=100))
        received = server.rewind()
    assert c.text == "Once upon " and transport.fast_calls == 1 and len(received) == 2
    assert all(key == DOTTED_KEY and DOTTED_KEY not in path for path, key, _ in received)
    assert "continuation hop failed" in caplog.text and "MARKER" not in caplog.text


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}],
        [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
    ],
    ids=["message_marker", "part_marker"],
)
async def test_a_gemini_request_litellm_would_context_cache_goes_through_acompletion(messages) -> None:
    """LiteLLM creates a cachedContent (and re-sends when the server rejects it) for messages marked cache_control:
    extra requests on its own client, which the fast path does not make."""
    model = Model("gemini/gemini-2.5-flash", api_base="http://127.0.0.1:9/v1beta", api_key="fake-key")
    request = _transport.Request(model, messages, SamplingParams(), RequestOptions())
    with pytest.raises(_fastpath._Unsupported):
        await _fastpath._prepare(request, LiteLLMTransport()._kwargs(request))
    plain = _transport.Request(model, [{"role": "user", "content": "hi"}], SamplingParams(), RequestOptions())
    assert (await _fastpath._prepare(plain, LiteLLMTransport()._kwargs(plain))).route.provider == "gemini"


async def test_a_changed_gemini_transform_switches_gemini_off_once(fake_provider, monkeypatch, caplog) -> None:
    """Gemini's body comes from LiteLLM's module-level transform, not the provider config: a release that changes
    its signature must switch Gemini off (one warning), and the answers keep coming through acompletion."""
    from litellm.llms.vertex_ai.gemini import transformation

    def changed(*args: object, **kwargs: object) -> dict[str, Any]:
        raise TypeError("async_transform_request_body() got an unexpected keyword argument 'gemini_api_key'")

    monkeypatch.setattr(transformation, "async_transform_request_body", changed)
    monkeypatch.setattr(_fastpath, "_switched_off", set())
    transport = FastPathTransport()
    model = Model("gemini/gemini-2.5-flash", api_base=fake_provider.api_base("gemini"), api_key="fake-key")
    with caplog.at_level(logging.WARNING, logger="llmkit"):
        answers = [await LLMClient([model], transport=transport).acomplete(f"q{i}") for i in range(2)]
    assert [a.text for a in answers] == ["Echo: q0", "Echo: q1"] and transport.fast_calls == 0
    assert [r.message for r in caplog.records if "switched off" in r.message] == [caplog.records[0].message]
    assert "switched off for gemini" in caplog.records[0].message


async def test_anthropics_model_map_lookup_is_memoized_per_route_and_every_deployment_sends_its_own_key(
    fake_provider,
) -> None:
    """validate_environment's model-map lookup is memoized on the fast path's own config instance, never LiteLLM's;
    the headers (and so the key) are still built per request: two deployments of one model, their requests
    interleaved, each send their own key."""
    import hashlib

    import litellm

    _fastpath._route.cache_clear()
    transport = FastPathTransport()
    keys = ["sk-ant-first-deployment-key", "sk-ant-second-deployment-key"]
    models = [Model(DEFAULT_MODEL["anthropic"], api_base=fake_provider.api_base("anthropic"), api_key=k) for k in keys]
    clients = [LLMClient([m], transport=transport) for m in models]
    for i in range(6):
        assert (await clients[i % 2].acomplete(f"q{i}")).text == f"Echo: q{i}"
    sent = [r.api_key_hash for r in fake_provider.requests]
    assert sent == [hashlib.sha256(keys[i % 2].encode()).hexdigest()[:16] for i in range(6)]
    route = _fastpath._route(DEFAULT_MODEL["anthropic"])
    assert route is not None and transport.fast_calls == 6
    memo = route.config._is_adaptive_thinking_model.cache_info()
    assert memo.misses == 1 and memo.hits >= 5  # one model-map lookup for six requests
    assert "_is_adaptive_thinking_model" not in vars(litellm.AnthropicConfig())  # LiteLLM's own configs: untouched
