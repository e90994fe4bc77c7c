"""Traces, hooks, metadata and request ids, end to end against the FakeProvider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit import (
    AttemptFailed,
    AttemptStarted,
    CacheHit,
    CallCompleted,
    Hooks,
    LLMClient,
    Model,
    Prompt,
    ProviderError,
    RequestOptions,
    RetryPolicy,
    SamplingParams,
    Tracer,
    WaitStarted,
)
from llmkit.cli import main
from llmkit.testing import FakeProvider

KEY_MARKER = "sk-trace-marker-key-5f1c9a7e"
ENV_MARKER = "sk-trace-marker-env-0b8d2c4f"
CONFIGURED = "s3cret-configured-9a1b"


def _pool(fake: FakeProvider) -> tuple[Model, Model]:
    # The pool model has a 50-word window (the fake's "small-ctx"); the fallback takes its key from the environment.
    small = Model("openai/small-ctx-model", api_base=fake.api_base("openai"), api_key=KEY_MARKER)
    big = Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"))
    return small, big


async def test_a_trace_of_retries_a_fallback_and_a_cache_hit_line_by_line(
    fake_provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_MARKER)
    small, big = _pool(fake_provider)
    tracer = Tracer(tmp_path / "traces", secrets=[CONFIGURED])
    client = LLMClient(
        small,
        context_window_fallbacks=big,
        retry=RetryPolicy(initial_backoff_s=0.01, jitter=False),
        cache=tmp_path / "cache",
        hooks=tracer,
    )
    flaky = f"[[fail_once:500]] my password is {CONFIGURED}"
    first = await client.acomplete(flaky, options=RequestOptions(metadata={"row": 1}))
    long = " ".join(["word"] * 80)
    second = await client.acomplete(long, options=RequestOptions(metadata={"row": 2}))
    third = await client.acomplete(flaky, options=RequestOptions(metadata={"row": 3}))
    client.close()

    assert (first.attempts, second.model, third.cache_hit) == (2, "openai/gpt-4o-mini", True)
    assert [c.metadata for c in (first, second, third)] == [{"row": 1}, {"row": 2}, {"row": 3}]
    files = list((tmp_path / "traces").iterdir())
    assert len(files) == 1
    text = files[0].read_text()
    for secret in (KEY_MARKER, ENV_MARKER, CONFIGURED, KEY_MARKER[:8]):  # a key's prefix is masked too
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    shape = [(r["event"], r.get("decision"), r.get("metadata")) for r in lines]
    assert shape == [
        ("attempt", "retry", {"row": 1}),  # the fake's 500
        ("wait", None, None),  # the backoff
        ("attempt", "done", {"row": 1}),
        ("call", None, {"row": 1}),
        ("attempt", "fallback", {"row": 2}),  # too long for the pool model
        ("attempt", "done", {"row": 2}),
        ("call", None, {"row": 2}),
        ("cache_hit", None, {"row": 3}),
    ]
    failed, _, answered, call, refused, fallback, _, hit = lines
    assert failed["call"] == answered["call"] == call["call"] != refused["call"]
    assert (failed["attempt"], answered["attempt"]) == (1, 2)
    assert failed["error"]["type"] == "ProviderError" and failed["error"]["status"] == 500
    assert failed["error"]["request_id"].startswith("req_fake_")
    assert failed["response"] is None and failed["request"]["model"] == "openai/small-ctx-model"
    assert "***" in failed["request"]["messages"][0]["content"]  # the configured secret, by value
    assert "api_key" not in failed["request"]
    assert answered["response"]["choices"][0]["message"]["content"] == first.text.replace(CONFIGURED, "***")
    assert answered["latency_s"] > 0 and answered["fallback"] is False
    assert call["ok"] and call["attempts"] == 2 and call["cost_usd"] is None  # no price for small-ctx-model
    assert refused["error"]["type"] == "ContextWindowExceededError" and refused["fallback"] is False
    assert fallback["fallback"] is True and fallback["model"] == "openai/gpt-4o-mini"
    assert hit["model"] == "openai/small-ctx-model"


async def test_trace_bodies_are_truncated_and_a_callback_gets_each_line(fake_provider: FakeProvider) -> None:
    got: list[dict] = []
    tracer = Tracer(callback=got.append, max_body_bytes=40)
    client = LLMClient(_pool(fake_provider)[0], hooks=tracer)
    await client.acomplete("a reply long enough to need cutting at forty characters")
    attempt = got[0]
    assert attempt["event"] == "attempt"
    assert attempt["request"]["truncated"] and len(attempt["request"]["head"]) == 40
    assert attempt["request"]["chars"] > 40 and attempt["response"]["truncated"]
    assert KEY_MARKER not in json.dumps(got)


class _Recorder(Hooks):
    def __init__(self) -> None:
        self.events: list[object] = []

    def attempt_started(self, event: AttemptStarted) -> None:
        self.events.append(event)

    def attempt_failed(self, event: AttemptFailed) -> None:
        self.events.append(event)

    def completed(self, event: CallCompleted) -> None:
        self.events.append(event)

    def cache_hit(self, event: CacheHit) -> None:
        self.events.append(event)

    def wait_started(self, event: WaitStarted) -> None:
        self.events.append(event)


class _Broken(Hooks):
    def completed(self, event: CallCompleted) -> None:
        raise RuntimeError("a bug in the user's metrics")


async def test_hooks_see_every_attempt_wait_answer_and_cache_hit(fake_provider: FakeProvider, tmp_path: Path) -> None:
    recorder = _Recorder()
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="sk-hooks")
    client = LLMClient(model, cache=tmp_path / "c", hooks=[_Broken(), recorder])
    answer = await client.acomplete("[[fail_once:429:0.2]] hi", options=RequestOptions(metadata={"k": "v"}))
    await client.acomplete("[[fail_once:429:0.2]] hi")
    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds == ["AttemptStarted", "AttemptFailed", "WaitStarted", "AttemptStarted", "CallCompleted", "CacheHit"]
    started, failed, wait, _, done, hit = recorder.events
    assert isinstance(failed, AttemptFailed) and failed.decision == "retry" and failed.error.status == 429
    assert isinstance(wait, WaitStarted) and wait.reason == "cooldown" and 0 < wait.seconds <= 0.2
    assert isinstance(done, CallCompleted) and done.completion is not None and done.completion.text == answer.text
    assert isinstance(started, AttemptStarted) and started.metadata == {"k": "v"} and started.call_id == done.call_id
    assert isinstance(hit, CacheHit) and hit.metadata is None  # the second call gave none
    assert answer.ok  # the broken hook was logged and ignored


async def test_request_id_comes_from_the_providers_header(fake_provider: FakeProvider) -> None:
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="sk-rid")
    with pytest.raises(ProviderError) as caught:
        await LLMClient(model, retry=RetryPolicy(max_attempts=1)).acomplete("[[fail:503]] down")
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_fake_")


async def test_a_repeat_in_a_batch_keeps_its_own_metadata(fake_provider: FakeProvider) -> None:
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="sk-meta")
    prompts = [Prompt(messages="same", options=RequestOptions(metadata={"n": n})) for n in range(3)]
    results = await LLMClient(model).abatch(prompts)
    assert [r.metadata for r in results] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert fake_provider.count == 1


def test_llmkit_run_output_lines_carry_the_input_metadata(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lines = [{"id": "a", "prompt": "first", "metadata": {"shard": 7}}, {"id": "b", "prompt": "second"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    code = main(["run", "in.jsonl", "-o", "out.jsonl", "--offline", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    out = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert out["a"]["metadata"] == {"shard": 7} and "metadata" not in out["b"]


async def test_auth_headers_are_redacted_by_name_and_logprob_tokens_are_kept(fake_provider: FakeProvider) -> None:
    got: list[dict] = []
    model = Model(
        "openai/gpt-4o-mini",
        api_base=fake_provider.api_base("openai"),
        api_key="sk-fake-headers",
        provider_options={"extra_headers": {"Authorization": "Bearer hdr-marker-31c7"}},
    )
    client = LLMClient(model, hooks=Tracer(callback=got.append))
    await client.acomplete("hello", sampling=SamplingParams(logprobs=True))
    attempt = got[0]
    assert attempt["request"]["extra_headers"] == {"Authorization": "***"}
    assert "hdr-marker-31c7" not in json.dumps(got)
    tokens = [t["token"] for t in attempt["response"]["choices"][0]["logprobs"]["content"]]
    assert "".join(tokens) and "***" not in tokens


def test_llmkit_run_trace_writes_redacted_lines(
    tmp_path: Path, fake_provider: FakeProvider, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OPENAI", fake_provider.api_base("openai"))
    monkeypatch.setenv("OPENAI_API_KEY", ENV_MARKER)
    (tmp_path / "llmkit.yaml").write_text(
        "pools:\n  default:\n    models:\n"
        "      - {name: openai/gpt-4o-mini, api_base: '${FAKE_OPENAI}', api_key: '${OPENAI_API_KEY}'}\n"
        f"      - {{name: openai/gpt-4o-mini, api_base: '${{FAKE_OPENAI}}', api_key: {KEY_MARKER}}}\n"
    )
    (tmp_path / "in.jsonl").write_text('"[[fail_once:500]] first"\n"second"\n')
    code = main(["run", "in.jsonl", "-o", "out.jsonl", "--no-progress", "--trace", "traces", "--no-cache"])
    assert code == 0, capsys.readouterr().err
    (trace,) = (tmp_path / "traces").iterdir()
    text = trace.read_text()
    assert ENV_MARKER not in text and KEY_MARKER not in text and "sk-trace" not in text
    events = [json.loads(line)["event"] for line in text.splitlines()]
    assert events.count("call") == 2 and events.count("attempt") == 3
