"""Issue 11: the defects adversarial probing found, each with the test that failed before its fix.

End to end through real LiteLLM against the FakeProvider wherever a reply is involved; the fake's misbehaviours
(empty replies, error bodies in a 200, a gateway echoing the key, a trickled body) are its own fault kinds and
directives, so users can reuse them.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest

from llmkit import (
    AuthenticationError,
    Completion,
    ConfigError,
    InvalidResponseError,
    LLMClient,
    Model,
    ProviderError,
    RateLimits,
    RequestOptions,
    ResponseCache,
    RetryPolicy,
    StreamDelta,
    TimeoutError,
)
from llmkit.cli import main

CHAT = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5", "gemini": "gemini/gemini-2.5-flash"}
ENV_KEY = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
MARKER = "sk-ENVMARKER-0a1b2c3d4e5f6789"
FAST_RETRY = RetryPolicy(max_attempts=2, initial_backoff_s=0, jitter=False)


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def deployment(fake, provider: str, **kwargs) -> Model:
    kwargs.setdefault("api_key", "fake-key")
    return Model(CHAT[provider], api_base=fake.api_base(provider), **kwargs)


def write_prompts(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "prompt": t}) + "\n" for i, t in enumerate(texts)))
    return path


# -- 1, 2: the output file ---------------------------------------------------------------------------------------------


def test_output_naming_the_input_is_refused_and_the_input_survives(tmp_path: Path, capsys) -> None:
    data = write_prompts(tmp_path / "data.jsonl", ["a", "b"])
    before = data.read_text()
    (tmp_path / "link.jsonl").symlink_to(data)
    for target in (str(data), str(tmp_path / "." / "data.jsonl"), str(tmp_path / "link.jsonl")):
        code = main(["run", str(data), "-o", target, "--offline", "--no-progress", "--no-cache"])
        err = capsys.readouterr().err
        assert code == 2 and "is the input file" in err, err
        assert data.read_text() == before
    assert not list(tmp_path.glob("*.partial"))


def test_results_are_complete_in_place_and_no_partial_file_is_left(tmp_path: Path, capsys) -> None:
    data = write_prompts(tmp_path / "prompts.jsonl", [f"q{i}" for i in range(20)])
    out = tmp_path / "results.jsonl"
    out.write_text("an older run's results\n")
    assert main(["run", str(data), "-o", str(out), "--offline", "--no-progress", "--no-cache"]) == 0
    capsys.readouterr()
    ids = sorted(json.loads(line)["id"] for line in out.read_text().splitlines())
    assert ids == list(range(20)) and not (tmp_path / "results.jsonl.partial").exists()


def test_a_second_run_on_the_same_output_fails_at_start_and_the_first_stays_valid(tmp_path: Path) -> None:
    data = write_prompts(tmp_path / "prompts.jsonl", [f"question {i}" for i in range(30)])
    out = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "llmkit", "run", str(data), "-o", str(out), "--offline", "--no-progress"]
    slow = cmd + ["--offline-latency-s", "0.2", "--max-in-flight", "2", "--cache-dir", str(tmp_path / "c1")]
    first = subprocess.Popen(slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        partial = tmp_path / "results.jsonl.partial"
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert partial.exists(), first.stderr.read() if first.poll() is not None else "first run never wrote"
        second = subprocess.run(
            cmd + ["--cache-dir", str(tmp_path / "c2")], capture_output=True, text=True, cwd=tmp_path
        )
        assert second.returncode == 2 and "another llmkit run is writing" in second.stderr, second.stderr
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        first.kill()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == list(range(30)) and all(line["error"] is None for line in lines)


# -- 3: an empty answer is retried, never cached -----------------------------------------------------------------------


async def test_an_empty_reply_is_retried_and_the_real_answer_cached(fake_provider, provider, tmp_path: Path) -> None:
    client = LLMClient([deployment(fake_provider, provider)], retry=FAST_RETRY, cache=tmp_path / "c")
    fake_provider.fail_next(kind="empty")
    c = await client.acomplete("hello")
    assert c.text == "Echo: hello" and c.attempts == 2 and fake_provider.count == 2
    assert (await client.acomplete("hello")).cache_hit and fake_provider.count == 2


async def test_an_always_empty_reply_fails_and_is_never_served_from_the_cache(
    fake_provider, provider, tmp_path: Path
) -> None:
    client = LLMClient([deployment(fake_provider, provider)], retry=FAST_RETRY, cache=tmp_path / "c")
    (first,) = await client.abatch(["[[empty]] hi"])
    assert isinstance(first.error, InvalidResponseError) and first.error.retryable and fake_provider.count == 2
    (again,) = await client.abatch(["[[empty]] hi"])
    assert not again.cache_hit and fake_provider.count == 4 and len(client.cache) == 0


async def test_a_200_with_an_error_body_is_retried(fake_provider, provider) -> None:
    client = LLMClient([deployment(fake_provider, provider)], retry=FAST_RETRY)
    fake_provider.fail_next(kind="error_body")
    c = await client.acomplete("after the glitch")
    assert c.ok and c.attempts == 2 and fake_provider.count == 2


# -- 4: max_in_flight --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
async def test_a_bad_max_in_flight_is_a_config_error_in_every_entry_point(transport, bad) -> None:
    client = LLMClient([Model("openai/a")], transport=transport)
    with pytest.raises(ConfigError, match=rf"max_in_flight={bad!r}"):
        client.batch(["x"], max_in_flight=bad)
    with pytest.raises(ConfigError, match="max_in_flight"):
        await client.abatch(["x"], max_in_flight=bad)
    with pytest.raises(ConfigError, match="max_in_flight"):
        client.as_completed(["x"], max_in_flight=bad)  # at the call, before iterating
    assert transport.calls == []


def test_langchain_max_concurrency_zero_is_a_config_error(transport) -> None:
    from llmkit.langchain import ChatLLMKit

    llm = ChatLLMKit(client=LLMClient([Model("openai/a")], transport=transport))
    with pytest.raises(ConfigError, match="max_in_flight=0"):
        llm.batch(["a", "b"], {"max_concurrency": 0})
    assert transport.calls == []


# -- 5, 6: the cache never stops a run ---------------------------------------------------------------------------------


async def test_an_unreadable_entry_is_a_miss_warned_once_and_replaced(fake_provider, tmp_path: Path, caplog) -> None:
    client = LLMClient([deployment(fake_provider, "openai")], cache=tmp_path / "c")
    key = client.plan("q").fingerprints[0]
    client.cache._store.set(key, '{"text": "half a json')
    with caplog.at_level(logging.WARNING, logger="llmkit"):
        first = await client.acomplete("q")
        client.cache._store.set(key, "not json at all")
        await client.acomplete("q")
    assert first.ok and not first.cache_hit and fake_provider.count == 2
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warnings) == 1 and key in warnings[0]
    assert (await client.acomplete("q")).cache_hit and fake_provider.count == 2


def test_an_entry_from_a_newer_llmkit_is_read_leniently(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    newer = {"text": "done", "finish_reason": "pause_turn", "a_field_from_the_future": 1, "model": "m"}
    cache._store.set("k", json.dumps(newer))
    hit = cache.get(["k"])
    assert hit is not None and hit.text == "done" and hit.finish_reason is None and hit.cache_hit


def test_a_corrupt_database_names_its_path_and_cache_clear_recreates_it(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "cache"
    ResponseCache(folder).put("k", Completion(text="x", finish_reason="stop"))
    (folder / "cache.db").write_bytes(b"this is not a sqlite database" * 100)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=rf"{folder}.*llmkit cache clear --cache-dir"):
        ResponseCache(folder)
    assert main(["cache", "stats", "--cache-dir", str(folder)]) == 2
    assert main(["cache", "clear", "--cache-dir", str(folder)]) == 0
    assert "deleted and recreated" in capsys.readouterr().out
    assert len(ResponseCache(folder)) == 0 and (folder / "notes.txt").read_text() == "mine"


async def test_a_failed_cache_write_warns_once_and_every_answer_still_arrives(
    fake_provider, tmp_path: Path, caplog
) -> None:
    client = LLMClient([deployment(fake_provider, "openai")], cache=tmp_path / "c")
    await client.acomplete("warm up")
    # A real SQLITE_FULL ("database or disk is full"): the database may not grow by a single page.
    pages = client.cache._store._sql("PRAGMA page_count").fetchone()[0]
    client.cache._store._sql(f"PRAGMA max_page_count = {pages}")
    prompts = [f"prompt {i} " + "x" * 2000 for i in range(300)]
    with caplog.at_level(logging.WARNING, logger="llmkit"):
        results = await client.abatch(prompts)
    assert [r.text for r in results] == [f"Echo: {p}" for p in prompts]
    warnings = [r.getMessage() for r in caplog.records if "cannot write to the cache" in r.getMessage()]
    assert len(warnings) == 1 and str(client.cache.path) in warnings[0] and "full" in warnings[0]


# -- 8, 9, 10: no key in any output ------------------------------------------------------------------------------------


def _everywhere(completion: Completion, error: BaseException, caplog) -> str:
    """Every place a key could surface: the message, the dict, the repr, a full traceback, the log."""
    return "\n".join(
        [
            str(error),
            repr(error),
            json.dumps(completion.to_dict()),
            "".join(traceback.format_exception(type(error), error, error.__traceback__)),
            caplog.text,
        ]
    )


async def test_a_key_from_the_environment_never_leaves_llmkit(fake_provider, provider, monkeypatch, caplog) -> None:
    monkeypatch.setenv(ENV_KEY[provider], MARKER)
    client = LLMClient(
        [Model(CHAT[provider], api_base=fake_provider.api_base(provider))], retry=FAST_RETRY
    )  # no api_key: LiteLLM reads the environment
    fake_provider.fail_next(2, kind="echo_key", status=500)
    with caplog.at_level(logging.INFO, logger="llmkit"):
        (failed,) = await client.abatch(["one"])
        fake_provider.fail_next(kind="echo_key", status=401)
        with pytest.raises(AuthenticationError) as raised:
            await client.acomplete("two")
    assert fake_provider.count == 3  # the key did reach the provider, which echoed it
    assert "attempt 1" in caplog.text and "left the pool" in caplog.text
    for error, completion in ((failed.error, failed), (raised.value, Completion(error=raised.value))):
        assert error is not None and error.__cause__ is None and error.__context__ is None
        assert MARKER not in _everywhere(completion, error, caplog)
        assert MARKER[:8] not in _everywhere(completion, error, caplog)


async def test_a_token_in_an_auth_header_is_redacted(fake_provider) -> None:
    token = "tok-HEADERMARKER-123456789"
    model = Model(
        CHAT["openai"],
        api_base=fake_provider.api_base("openai"),
        api_key="placeholder",
        provider_options={"extra_headers": {"Authorization": f"Bearer {token}"}},
    )
    fake_provider.fail_next(kind="echo_key", status=500)
    (failed,) = await LLMClient([model], retry=RetryPolicy(max_attempts=1)).abatch(["x"])
    assert failed.error is not None and "Invalid credentials" in failed.error.message  # the gateway echoed it
    assert "HEADERMARKER" not in failed.error.message + repr(model) + repr(failed.error)


def test_credentials_in_api_base_are_known_secrets_and_masked_in_reprs() -> None:
    model = Model("openai/m", api_base="https://bob:pw-MARKER-1234@gw.example/v1?key=qs-MARKER-5678&region=eu")
    assert {"pw-MARKER-1234", "qs-MARKER-5678"} <= set(model.secrets())
    assert "MARKER" not in repr(model) and "region=eu" in repr(model) and "bob:***@gw.example" in repr(model)


def test_cli_results_and_summary_carry_no_environment_key(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", MARKER)
    from llmkit.testing import FakeProvider

    with FakeProvider() as fake:
        monkeypatch.setenv("FAKE_OPENAI", fake.api_base("openai"))
        (tmp_path / "llmkit.yaml").write_text(
            "pools:\n  default:\n    models:\n      - {name: openai/gpt-4o-mini, api_base: '${FAKE_OPENAI}'}\n"
            "    retry: {max_attempts: 1}\n"
        )
        data = write_prompts(tmp_path / "p.jsonl", ["[[echo_key:500]] leak?", "fine"])
        code = main(["run", str(data), "-o", str(tmp_path / "r.jsonl"), "--no-progress", "--no-cache"])
    out, err = capsys.readouterr()
    results = (tmp_path / "r.jsonl").read_text()
    assert code == 1 and "Invalid credentials" in results
    assert MARKER not in results + out + err and MARKER[:8] not in results + out + err


@pytest.mark.parametrize("key", [None, ""])
async def test_a_missing_key_is_an_authentication_error_naming_the_variable_before_sending(
    fake_provider, provider, key
) -> None:
    client = LLMClient([Model(CHAT[provider], api_base=fake_provider.api_base(provider), api_key=key)])
    (result,) = await client.abatch(["hi"])
    error = result.error
    assert isinstance(error, AuthenticationError) and not error.retryable and ENV_KEY[provider] in error.message
    assert fake_provider.count == 0


async def test_a_keyless_deployment_leaves_the_pool_and_the_others_answer(fake_provider, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "fake-key")
    pool = [Model(CHAT[p], api_base=fake_provider.api_base(p)) for p in ("openai", "anthropic")]
    results = await LLMClient(pool, seed=1).abatch([f"q{i}" for i in range(6)])
    assert all(r.ok and r.model == CHAT["anthropic"] for r in results)
    assert fake_provider.count_for(provider="openai") == 0


def test_config_show_masks_auth_headers_query_credentials_and_userinfo(tmp_path: Path, capsys) -> None:
    (tmp_path / "llmkit.yaml").write_text(
        """\
pools:
  default:
    models:
      - name: openai/gpt-4o-mini
        api_base: https://user:pw-SECRET-555@gateway.example/v1?auth=qs-SECRET-666&region=eu
        provider_options:
          extra_headers: {Authorization: Bearer hdr-SECRET-777, X-Trace: visible-trace}
"""
    )
    assert main(["config", "show", "--config", str(tmp_path / "llmkit.yaml")]) == 0
    shown = capsys.readouterr().out
    assert "SECRET" not in shown
    assert "visible-trace" in shown and "region=eu" in shown and "user:***@gateway.example" in shown


# -- 11, 12: no unbounded wait -----------------------------------------------------------------------------------------


def test_every_attempt_has_a_deadline_by_default(tmp_path: Path) -> None:
    from llmkit._transport import LiteLLMTransport

    client = LLMClient([Model("openai/gpt-4o-mini")])
    (request,) = client.plan("hi").requests.values()
    assert client.timeout_s == 600 and request.timeout_s == 600
    assert LiteLLMTransport()._kwargs(request)["timeout"] == 600
    (request,) = client.plan("hi", options=RequestOptions(timeout_s=5)).requests.values()
    assert request.timeout_s == 5
    (tmp_path / "llmkit.yaml").write_text("pools:\n  default:\n    models: [openai/gpt-4o-mini]\n    timeout_s: 42\n")
    assert LLMClient.from_config(tmp_path / "llmkit.yaml").timeout_s == 42


async def test_a_trickling_reply_is_cut_at_the_whole_attempt_deadline(fake_provider, provider) -> None:
    client = LLMClient([deployment(fake_provider, provider)], retry=RetryPolicy(max_attempts=1))
    start = time.monotonic()
    (result,) = await client.abatch(["[[trickle:0.25]] a long answer"], options=RequestOptions(timeout_s=1))
    elapsed = time.monotonic() - start
    assert isinstance(result.error, TimeoutError) and result.error.retryable and "within 1 s" in result.error.message
    assert elapsed < 3  # the body takes over 10 s to arrive, and each piece beats any per-read timeout


async def test_a_stream_that_never_starts_is_cut_at_the_deadline(fake_provider) -> None:
    client = LLMClient([deployment(fake_provider, "openai")], retry=RetryPolicy(max_attempts=1))
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        async for _ in client.astream("[[sleep:30]] hi", options=RequestOptions(timeout_s=1)):
            pass
    assert time.monotonic() - start < 3


def test_cli_timeout_bounds_each_attempt(tmp_path: Path, capsys) -> None:
    data = write_prompts(tmp_path / "p.jsonl", ["[[trickle:0.25]] slow", "fast"])
    out = tmp_path / "r.jsonl"
    code = main(["run", str(data), "-o", str(out), "--offline", "--no-progress", "--no-cache", "--timeout", "1",
                 "--max-attempts", "1"])  # fmt: skip
    capsys.readouterr()
    lines = {line["id"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert code == 1 and lines[0]["error"]["type"] == "TimeoutError" and lines[1]["error"] is None


# -- 13: a sync call inside a callback ---------------------------------------------------------------------------------


def test_a_sync_call_inside_on_result_raises_instead_of_deadlocking(transport) -> None:
    client = LLMClient([Model("openai/a")], transport=transport)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            client.batch(["a"], on_result=lambda index, completion: client.complete("nested"))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test reports whatever came out
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the nested sync call deadlocked"
    assert isinstance(outcome[0], ConfigError) and "async def on_result" in str(outcome[0])


def test_an_async_on_result_may_call_the_client(transport) -> None:
    client = LLMClient([Model("openai/a")], transport=transport)
    follow_ups: dict[int, str | None] = {}

    async def on_result(index: int, completion: Completion) -> None:
        follow_ups[index] = (await client.acomplete(f"follow up {completion.text}")).text

    results = client.batch(["a", "b"], on_result=on_result)
    assert [r.text for r in results] == ["echo: a", "echo: b"]
    assert follow_ups == {0: "echo: follow up echo: a", 1: "echo: follow up echo: b"}


# -- 14: wrong classification ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [42, {"text": "hi"}, [], ["plain string part"], [{"text": "no type"}], None])
async def test_bad_content_is_a_config_error_before_sending(fake_provider, content) -> None:
    client = LLMClient([deployment(fake_provider, "openai")])
    with pytest.raises(ConfigError, match=r"messages\[0\]\.content"):
        await client.acomplete([{"role": "user", "content": content}])
    assert fake_provider.count == 0


def test_models_may_be_dicts_and_anything_else_is_a_config_error() -> None:
    assert LLMClient([{"name": "openai/gpt-4o-mini", "weight": 2}]).models[0].weight == 2
    with pytest.raises(ConfigError, match="a model must be"):
        LLMClient([42])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"Model.wieght"):
        LLMClient([{"name": "openai/gpt-4o-mini", "wieght": 2}])


@pytest.mark.parametrize(
    "build",
    [
        lambda: Model("openai/a", weight=float("inf")),
        lambda: RequestOptions(timeout_s=float("inf")),
        lambda: RateLimits(requests_per_minute=float("inf")),
        lambda: RequestOptions(timeout_s=float("nan")),
        lambda: LLMClient([Model("openai/a")], timeout_s=float("inf")),
    ],
)
def test_infinite_and_nan_numbers_are_refused(build) -> None:
    with pytest.raises(ConfigError, match="finite|timeout_s=inf"):
        build()


async def test_connection_refused_names_the_address(provider) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}" + {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}[provider]
    client = LLMClient([Model(CHAT[provider], api_base=base, api_key="k-12345678")], retry=RetryPolicy(max_attempts=1))
    (result,) = await client.abatch(["hi"])
    error = result.error
    assert type(error) is ProviderError and error.retryable and error.status is None
    assert f"could not connect to {base}" in error.message


# -- streams and cached-hit paths keep the same rules ------------------------------------------------------------------


async def test_an_empty_stream_reply_is_retried(fake_provider) -> None:
    client = LLMClient([deployment(fake_provider, "anthropic")], retry=FAST_RETRY)
    fake_provider.fail_next(kind="empty")
    items = [item async for item in client.astream("streamed")]
    assert isinstance(items[-1], Completion) and items[-1].text == "Echo: streamed"
    assert any(isinstance(i, StreamDelta) for i in items) and fake_provider.count == 2


def test_the_event_loop_keeps_serving_after_a_refused_sync_call(transport) -> None:
    client = LLMClient([Model("openai/a")], transport=transport)
    with pytest.raises(ConfigError):
        client.batch(["a"], on_result=lambda i, c: client.complete("nested"))
    assert client.complete("still works").text == "echo: still works"
