"""The ``llmkit`` command, in-process through ``main(argv)`` and once as ``python -m llmkit``, against FakeProvider."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmkit import _cli_run
from llmkit.cli import main
from llmkit.testing import FakeProvider

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PROMPTS = ROOT / "examples" / "prompts.jsonl"
MARKER = "sk-MARKER-cli-5ecret-never-print"
RESULT_KEYS = [
    "id",
    "text",
    "thinking",
    "finish_reason",
    "usage",
    "cost_usd",
    "model",
    "cache_hit",
    "latency_s",
    "attempts",
    "error",
]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeProvider) -> Iterator[FakeProvider]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()


@pytest.fixture
def fake_config(tmp_path: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config whose two models are served by the test's own fake, so the test can read its counters."""
    monkeypatch.setenv("FAKE_OPENAI", fake.api_base("openai"))
    monkeypatch.setenv("FAKE_ANTHROPIC", fake.api_base("anthropic"))
    monkeypatch.setenv("OPENAI_API_KEY", MARKER)
    return write(
        tmp_path / "llmkit.yaml",
        """\
pools:
  default:
    models:
      - name: openai/gpt-4o-mini
        weight: 3
        api_base: ${FAKE_OPENAI}
        api_key: ${OPENAI_API_KEY}
      - name: anthropic/claude-haiku-4-5
        api_base: ${FAKE_ANTHROPIC}
        api_key: sk-literal-in-file-123456
    retry: {max_attempts: 2, initial_backoff_s: 0, jitter: false}
""",
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def prompts(tmp_path: Path, *lines: object) -> Path:
    return write(
        tmp_path / "prompts.jsonl",
        "".join((x if isinstance(x, str) and x.startswith(("{", " ", "not")) else json.dumps(x)) + "\n" for x in lines),
    )


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


# -- run: results, resume, bad lines ----------------------------------------------------------------------------------


def test_offline_run_of_the_example_then_resume_from_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(EXAMPLE_PROMPTS), "-o", "results.jsonl", "--offline")
    assert code == 0, err
    assert out == ""  # run writes its results to the file; stdout stays clean
    first = results(tmp_path / "results.jsonl")
    ids = [
        json.loads(line).get("id", n) if line.startswith("{") else n
        for n, line in enumerate(EXAMPLE_PROMPTS.read_text().splitlines(), 1)
    ]
    assert sorted(map(str, (r["id"] for r in first))) == sorted(map(str, ids))
    assert all(list(r)[: len(RESULT_KEYS)] == RESULT_KEYS and r["error"] is None for r in first)
    by_id = {r["id"]: r for r in first}
    assert by_id["strawberry"]["thinking"] and by_id["strawberry"]["model"] == "anthropic/claude-haiku-4-5"
    assert by_id["logprobs"]["logprobs"] and by_id["logprobs"]["model"] == "openai/gpt-4o-mini"
    assert by_id["chat"]["text"] == "Echo: Why do caches help?"
    assert "no config file: offline default pool openai/gpt-4o-mini (weight 3)" in err
    assert f"cache {tmp_path / 'home' / '.cache' / 'llmkit'} (namespace offline)" in err  # on by default
    assert "20 done, 0 failed, 0 bad lines skipped, 20 requests sent (" in err
    assert not any(r["cache_hit"] for r in first)

    code, _, err = run(capsys, str(EXAMPLE_PROMPTS), "-o", "results.jsonl", "--offline")
    assert code == 0
    again = results(tmp_path / "results.jsonl")
    assert all(r["cache_hit"] for r in again) and len(again) == 20
    assert {r["id"]: r["text"] for r in again} == {r["id"]: r["text"] for r in first}
    assert "20 done, 0 failed, 0 bad lines skipped, 0 requests sent (" in err
    assert "total                         20       0          20            0" in err  # the summary table


def test_resume_sends_nothing_to_the_provider(
    tmp_path: Path, fake: FakeProvider, fake_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prompts(tmp_path, *[f"question {i}" for i in range(12)])
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--cache-dir", "cache")
    assert code == 0, err
    assert fake.count == 12
    assert "config llmkit.yaml (./llmkit.yaml), pool 'default'" in err
    code, _, _ = run(capsys, str(path), "-o", "out.jsonl", "--cache-dir", "cache")
    assert code == 0
    assert fake.count == 12  # the second run was served from the cache: 0 new requests
    assert all(r["cache_hit"] for r in results(tmp_path / "out.jsonl"))
    code, _, _ = run(capsys, str(path), "-o", "out.jsonl", "--cache-dir", "cache", "--no-cache")
    assert fake.count == 24


def test_offline_answers_never_serve_the_real_model(
    tmp_path: Path, fake: FakeProvider, fake_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prompts(tmp_path, "same prompt")
    assert run(capsys, str(path), "-o", "a.jsonl", "--offline", "--model", "openai/gpt-4o-mini")[0] == 0
    assert run(capsys, str(path), "-o", "b.jsonl", "--model", "openai/gpt-4o-mini")[0] == 0
    assert fake.count == 1  # not answered from the offline run's cache entry
    assert results(tmp_path / "b.jsonl")[0]["cache_hit"] is False


def test_offline_run_sends_a_too_long_prompt_to_the_context_window_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fake gives models named *small-ctx* a 50-token window."""
    pool = "    models: [openai/gpt-4o-mini-small-ctx]\n    context_window_fallbacks: [openai/gpt-4o-mini]\n"
    write(tmp_path / "llmkit.yaml", "pools:\n  default:\n" + pool)
    path = prompts(tmp_path, {"id": "short", "prompt": "hi"}, {"id": "long", "prompt": "word " * 60})
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--offline")
    assert code == 0, err
    models = {row["id"]: row["model"] for row in results(tmp_path / "out.jsonl")}
    assert models == {"short": "openai/gpt-4o-mini-small-ctx", "long": "openai/gpt-4o-mini"}


def test_log_level_info_says_why_prompts_were_retried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMKIT_LOG_LEVEL", "INFO")
    path = prompts(tmp_path, *[f"prompt {i}" for i in range(10)])
    try:
        _, _, err = run(capsys, str(path), "-o", "out.jsonl", "--offline", "--fault-rate", "0.5")
    finally:
        logging.getLogger("llmkit").setLevel(logging.WARNING)
    assert re.search(r"llmkit: INFO llmkit: attempt 1 on \S+ failed: \w+Error: ", err), err


def test_bad_lines_are_reported_with_their_numbers_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prompts(
        tmp_path,
        "first",
        {"id": "a", "prompt": "second"},
        '{"id": "b", "promt": "typo"}',
        "not json",
        {"id": "a", "prompt": "duplicate id"},
        {"id": "c", "prompt": "x", "sampling": {"temprature": 1}},
        {"id": "d", "prompt": "x", "messages": [{"role": "user", "content": "both"}]},
        {"id": None, "prompt": "x"},
        [1, 2],
        {"id": "e", "messages": [{"role": "user", "content": "fine"}], "sampling": {"temperature": 0}},
    )
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--offline")
    assert code == 1  # a skipped line is a prompt that did not run
    assert (
        f"{path}:3: unknown key 'promt' (did you mean 'prompt'?); allowed: id, prompt, messages, sampling, metadata "
        "(skipped)"
        in err
    )
    assert f"{path}:4: not valid JSON (Expecting value at column 1) (skipped)" in err
    assert f'{path}:5: duplicate id "a" (first on line 2) (skipped)' in err
    assert f"{path}:6: SamplingParams.temprature=1: unknown field" in err
    assert f"{path}:7: give exactly one of 'prompt' (a string) or 'messages'" in err
    assert f"{path}:8: id must be a string or an integer, got null" in err
    assert f"{path}:9: expected a JSON string or object, got list" in err
    assert sorted(str(r["id"]) for r in results(tmp_path / "out.jsonl")) == ["1", "a", "e"]
    assert "3 done, 0 failed, 7 bad lines skipped" in err


def test_on_bad_line_stop_sends_nothing(
    tmp_path: Path, fake: FakeProvider, fake_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prompts(tmp_path, "fine", "fine too", "{broken")
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--on-bad-line", "stop")
    assert code == 2
    assert f"{path}:3: not valid JSON" in err and "(skipped)" not in err
    assert f"llmkit: error: {path}: 1 bad line(s); nothing was sent (--on-bad-line skip runs the others)" in err
    assert fake.count == 0


def test_failed_prompts_keep_their_error_and_exit_1(
    tmp_path: Path, fake: FakeProvider, fake_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prompts(tmp_path, {"id": "ok", "prompt": "fine"}, {"id": "bad", "prompt": "boom [[fail:500]]"})
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--model", "openai/gpt-4o-mini")
    assert code == 1
    by_id = {r["id"]: r for r in results(tmp_path / "out.jsonl")}
    assert by_id["ok"]["error"] is None and by_id["ok"]["text"] == "Echo: fine"
    assert by_id["bad"]["error"]["type"] == "ProviderError" and by_id["bad"]["error"]["status"] == 500
    assert by_id["bad"]["finish_reason"] == "error" and by_id["bad"]["attempts"] == 2
    assert '1 failed with ProviderError, e.g. id "bad"' in err
    assert "rerun the same command to retry the 1 prompt(s) that failed for a passing cause" in err
    assert fake.count == 3  # 1 + 2 attempts


def test_results_written_before_an_interrupt_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _cli_run._record
    calls = []

    def interrupt_on_the_fifth(line_id: object, *rest: object) -> dict:
        calls.append(line_id)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return record(line_id, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(_cli_run, "_record", interrupt_on_the_fifth)
    path = prompts(tmp_path, *[f"prompt {i}" for i in range(10)])
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--offline")
    assert code == 130
    assert len(results(tmp_path / "out.jsonl")) == 4
    assert "interrupted: the results above are written; rerun the same command to resume from the cache" in err


def test_model_option_picks_a_deployment_of_the_pool(
    tmp_path: Path, fake: FakeProvider, fake_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prompts(tmp_path, "one", "two", "three")
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--no-cache", "--model", "anthropic/claude-haiku-4-5")
    assert code == 0, err
    assert "pool 'default', --model anthropic/claude-haiku-4-5" in err
    assert {r["model"] for r in results(tmp_path / "out.jsonl")} == {"anthropic/claude-haiku-4-5"}
    assert fake.count_for(provider="anthropic") == 3  # the pool's api_base and key were kept


def test_error_messages_in_results_mask_configured_secrets() -> None:
    from llmkit import Completion, ProviderError

    failed = Completion(finish_reason="error", error=ProviderError(f"cannot reach https://h/?t={MARKER}", status=None))
    record = _cli_run._record("x", failed, (MARKER,))
    assert MARKER not in json.dumps(record) and record["error"]["message"] == "cannot reach https://h/?t=***"


# -- run: offline faults, limits and retries --------------------------------------------------------------------------


def test_fault_rate_shows_retries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = prompts(tmp_path, *[f"prompt {i}" for i in range(4)])
    code, _, err = run(
        capsys, str(path), "-o", "out.jsonl", "--offline", "--no-cache", "--fault-rate", "1", "--max-attempts", "2"
    )
    assert code == 1
    assert all(r["attempts"] == 2 and r["error"]["status"] == 500 for r in results(tmp_path / "out.jsonl"))
    assert "0 done, 4 failed, 0 bad lines skipped, 8 requests sent (4 retries" in err


def test_offline_rpm_answers_429(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = prompts(tmp_path, *[f"prompt {i}" for i in range(34)])
    code, _, err = run(
        capsys, str(path), "-o", "out.jsonl", "--offline", "--no-cache", "--offline-rpm", "30", "--max-attempts", "1"
    )
    assert code == 1
    errors = [r["error"] for r in results(tmp_path / "out.jsonl") if r["error"]]
    # 30 fit the bucket; of the 429s, those on requests already in flight when the pace was set are retried uncharged
    assert 1 <= len(errors) <= 4 and {e["type"] for e in errors} == {"RateLimitError"}
    assert f"{len(errors)} failed with RateLimitError" in err and "lower --rpm/--tpm below the provider's limits" in err


def test_limit_options_reach_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = {}
    client_class = _cli_run.LLMClient

    def spy(*args: object, **kwargs: object) -> object:
        seen.update(kwargs)
        client = client_class(*args, **kwargs)  # type: ignore[arg-type]
        as_completed = client.as_completed

        def recording(*a: object, **kw: object) -> object:
            seen["max_in_flight"] = kw.get("max_in_flight")
            return as_completed(*a, **kw)  # type: ignore[arg-type]

        client.as_completed = recording  # type: ignore[method-assign]
        return client

    monkeypatch.setattr(_cli_run, "LLMClient", spy)
    path = prompts(tmp_path, "hi")
    code, _, _ = run(
        capsys,
        str(path),
        "-o",
        "out.jsonl",
        "--offline",
        "--rpm",
        "600",
        "--tpm",
        "9000",
        "--concurrency",
        "3",
        "--max-attempts",
        "4",
        "--max-in-flight",
        "2",
    )
    assert code == 0
    assert seen["limits"] == _cli_run.RateLimits(requests_per_minute=600, tokens_per_minute=9000, max_concurrency=3)
    assert seen["retry"] == _cli_run.RetryPolicy(max_attempts=4)
    assert seen["max_in_flight"] == 2


# -- run --local: a real model on this machine -----------------------------------------------------------------------


def test_local_without_the_extra_is_one_line_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec

    def without_llama_cpp(name: str, *args: object) -> object:
        return None if name.split(".")[0] == "llama_cpp" else find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_llama_cpp)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # and `import llama_cpp` fails too
    path = prompts(tmp_path, "hi")
    code, out, err = run(capsys, str(path), "-o", "out.jsonl", "--local")
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("llmkit: error:")]
    assert len(errors) == 1 and errors == err.splitlines()[-1:], err
    assert "pip install 'llmkit[local]'" in errors[0] and "Traceback" not in err
    assert out == "" and not (tmp_path / "out.jsonl").exists()  # nothing was run


def test_local_answers_have_their_own_cache_namespace(tmp_path: Path) -> None:
    from llmkit._settings import CacheConfig, LLMKitSettings

    def namespace(section: CacheConfig | None, **backend: bool) -> str | None:
        args = argparse.Namespace(
            no_cache=False, cache_dir=str(tmp_path / "cache"), **{"offline": False, "local": False, **backend}
        )
        cache = _cli_run._cache(args, LLMKitSettings(), section)
        assert cache is not None
        cache.close()
        return cache.namespace

    assert namespace(None) is None
    assert namespace(None, local=True) == "local"
    assert namespace(None, offline=True) == "offline"
    assert namespace(CacheConfig(namespace="team"), local=True) == "team:local"


@pytest.mark.local
def test_local_run_answers_from_a_real_model(
    tmp_path: Path, llama_cpp_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    short = {"max_tokens": 16, "temperature": 0}
    path = prompts(
        tmp_path,
        {"id": "a", "prompt": "Say hello.", "sampling": short},
        {"id": "b", "prompt": "Name a color.", "sampling": short},
        {"id": "c", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "sampling": short},
    )
    code, out, err = run(capsys, str(path), "-o", str(tmp_path / "out.jsonl"), "--local")
    assert code == 0, err
    lines = results(tmp_path / "out.jsonl")
    assert len(lines) == 3 and sorted(r["id"] for r in lines) == ["a", "b", "c"]
    assert all(r["error"] is None and r["text"] and r["text"].strip() for r in lines), lines
    assert len({r["model"] for r in lines}) == 1 and lines[0]["model"].startswith("openai/")
    assert "answers every prompt; nothing leaves this machine" in err and "(namespace local)" in err
    assert "3 done, 0 failed, 0 bad lines skipped, 3 requests sent (" in err and out == ""


# -- usage and config errors: exit code 2, one line -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "missing.jsonl", "-o", "o.jsonl"], "llmkit: error: missing.jsonl: no such file"),
        (
            ["run", "prompts.jsonl", "-o", "o.jsonl", "--fault-rate", "0.2"],
            "--fault-rate and --offline-rpm shape the offline",
        ),
        (["run", "prompts.jsonl", "-o", "o.jsonl"], "no config file found (looked at LLMKIT_CONFIG, ./llmkit.yaml, "),
        (
            ["run", "prompts.jsonl", "-o", "o.jsonl", "--config", "nope.yaml"],
            "llmkit: error: config file nope.yaml does not",
        ),
        (
            ["run", "prompts.jsonl", "-o", "o.jsonl", "--fault-rate", "2", "--offline"],
            "must be a fraction between 0 and 1",
        ),
        (["run", "prompts.jsonl"], "the following arguments are required: -o/--output"),
        (["run", "prompts.jsonl", "-o", "o.jsonl", "--rpm", "0"], "argument --rpm: 0 must be > 0"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["cache", "clear", "--older-than", "7x"], "'7x' is not a duration; write e.g. 90s, 30m, 12h, 7d or 2w"),
        (
            ["run", "prompts.jsonl", "-o", "o.jsonl", "--local", "--offline"],
            "--offline: not allowed with argument --local",
        ),
        (["run", "prompts.jsonl", "-o", "o.jsonl", "--local", "--model", "openai/gpt-4o-mini"], "drop --model"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    prompts(tmp_path, "hi")
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err
    assert "Traceback" not in err and out == ""


def test_config_errors_give_file_line_and_key_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        tmp_path / "llmkit.yaml",
        "pools:\n  default:\n    models:\n      - name: openai/gpt-4o-mini\n        wieght: 2\n",
    )
    prompts(tmp_path, "hi")
    assert main(["run", "prompts.jsonl", "-o", "o.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "llmkit: error: llmkit.yaml:5: pools.default.models[0].wieght: unknown key; allowed: name, weight, api_base, "
        "api_key, sampling, limits, supports, provider_options, input_cost_per_token, output_cost_per_token, "
        "transport (did you mean 'weight'?)"
    )
    assert main(["run", "prompts.jsonl", "-o", "o.jsonl", "--pool", "fast"]) == 2
    assert main(["config", "validate"]) == 2


def test_missing_key_variable_is_fine_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        tmp_path / "llmkit.yaml",
        "pools:\n  default:\n    models:\n      - name: openai/gpt-4o-mini\n        api_key: ${NOT_SET_KEY}\n",
    )
    path = prompts(tmp_path, "hi")
    code, _, err = run(capsys, str(path), "-o", "o.jsonl")
    assert code == 2 and "environment variable NOT_SET_KEY is not set" in err
    code, _, err = run(capsys, str(path), "-o", "o.jsonl", "--offline")
    assert code == 0, err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", "--config", "nope.yaml", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "llmkit: error: config file nope.yaml does not exist" in err


# -- config show / validate -------------------------------------------------------------------------------------------


def test_config_show_masks_every_secret(
    fake_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MY_TOKEN", MARKER + "-token")
    write(
        fake_config,
        fake_config.read_text()
        + "  tokened:\n    models:\n      - name: openai/x\n        api_base: https://h/?t=${MY_TOKEN}\n",
    )
    assert main(["config", "show"]) == 0
    out, err = capsys.readouterr()
    assert "llmkit: config llmkit.yaml (./llmkit.yaml)" in err
    assert MARKER not in out + err and "sk-literal-in-file" not in out + err
    assert out.count("api_key: '***'") == 2
    assert "api_base: https://h/?t=***" in out
    assert "name: anthropic/claude-haiku-4-5" in out and "max_attempts: 2" in out
    assert main(["config", "show", "--pool", "tokened"]) == 0
    assert "anthropic" not in capsys.readouterr().out


def test_config_validate(fake_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate"]) == 0
    assert capsys.readouterr().out == "ok: llmkit.yaml: default (2 models)\n"
    write(fake_config, fake_config.read_text().replace("weight: 3", "weight: -3"))
    assert main(["config", "validate"]) == 2
    err = capsys.readouterr().err
    assert "llmkit.yaml:5: pools.default.models[0].weight: must be greater than 0, got -3" in err
    assert MARKER not in err


def test_config_validate_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", MARKER)
    monkeypatch.setenv("ANTHROPIC_API_KEY_2", MARKER)
    assert main(["config", "validate", "--config", str(ROOT / "examples" / "llmkit.yaml")]) == 0
    assert "default (2 models), thinking (2 models)" in capsys.readouterr().out


def test_config_from_llmkit_config_variable(
    tmp_path: Path, fake_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = write(tmp_path / "conf" / "team.yaml", fake_config.read_text())
    monkeypatch.setenv("LLMKIT_CONFIG", str(elsewhere))
    assert main(["config", "validate"]) == 0
    assert f"llmkit: config {elsewhere} (LLMKIT_CONFIG)" in capsys.readouterr().err


# -- models -----------------------------------------------------------------------------------------------------------


def test_models_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--model", "openai/gpt-4o-mini", "--model", "openai/my-own-finetune"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "model",
        "weight",
        "context",
        "max",
        "out",
        "$/Mtok",
        "in",
        "$/Mtok",
        "out",
        "reasoning",
        "logprobs",
        "tools",
        "vision",
    ]
    assert out[1].split() == ["openai/gpt-4o-mini", "1", "128,000", "16,384", "0.15", "0.60", "no", "yes", "yes", "yes"]
    assert out[2].startswith("openai/my-own-finetune") and out[2].endswith("(unknown to LiteLLM: no prices or limits)")
    assert main(["models", "--offline", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert [(f["model"], f["weight"], f["reasoning"], f["logprobs"]) for f in facts] == [
        ("openai/gpt-4o-mini", 3.0, False, True),
        ("anthropic/claude-haiku-4-5", 1.0, True, False),
    ]


def test_models_from_config_with_declared_capabilities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        tmp_path / "llmkit.yaml",
        "pools:\n  default:\n    models:\n      - name: openai/local-model\n        supports: [reasoning]\n",
    )
    assert main(["models", "--json"]) == 0
    (fact,) = json.loads(capsys.readouterr().out)
    assert (fact["known"], fact["reasoning"], fact["tools"], fact["context_window"]) == (False, True, False, None)


# -- cache ------------------------------------------------------------------------------------------------------------


def test_cache_stats_and_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "stats"]) == 0
    default_dir = tmp_path / "home" / ".cache" / "llmkit"
    assert capsys.readouterr().out == f"no cache at {default_dir} (nothing stored yet)\n"
    path = prompts(tmp_path, "one", "two", "three")
    assert run(capsys, str(path), "-o", "out.jsonl", "--offline")[0] == 0
    assert main(["cache", "stats"]) == 0
    out = capsys.readouterr().out
    assert f"path     {default_dir}" in out and "entries  3" in out
    assert main(["cache", "clear", "--older-than", "7d"]) == 0
    assert capsys.readouterr().out == f"removed 0 entries older than 7d from {default_dir}\n"
    assert main(["cache", "clear", "--older-than", "0s"]) == 0
    assert capsys.readouterr().out == f"removed 3 entries older than 0s from {default_dir}\n"
    assert main(["cache", "clear", "--cache-dir", str(tmp_path / "other")]) == 0
    assert "no cache at" in capsys.readouterr().out


def test_cache_dir_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMKIT_CACHE_DIR", str(tmp_path / "envcache"))
    path = prompts(tmp_path, "one")
    assert run(capsys, str(path), "-o", "out.jsonl", "--offline")[0] == 0
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"removed 1 entries from {tmp_path / 'envcache'}\n"


# -- as a program -----------------------------------------------------------------------------------------------------


def test_python_dash_m_llmkit(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "llmkit", "run", str(EXAMPLE_PROMPTS), "-o", "results.jsonl", "--offline"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert len(results(tmp_path / "results.jsonl")) == 20
    assert "100%" in done.stderr  # the progress bar
    assert "20 done, 0 failed, 0 bad lines skipped, 20 requests sent (" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "llmkit", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "usage: llmkit" in done.stdout


# -- run --schema: structured output ------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["file", "class"])
def test_schema_writes_parsed_on_each_line_and_a_never_valid_answer_fails(
    tmp_path: Path,
    fake: FakeProvider,
    fake_config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    schema: str,
) -> None:
    write(
        tmp_path / "films.py",
        "from pydantic import BaseModel, Field\n\n"
        "class Film(BaseModel):\n    title: str\n    year: int = Field(ge=1888)\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    film_schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "year": {"type": "integer", "minimum": 1888}},
        "required": ["title", "year"],
    }
    target = str(write(tmp_path / "film.schema.json", json.dumps(film_schema))) if schema == "file" else "films:Film"
    path = prompts(
        tmp_path,
        {"id": "ok", "prompt": "'Heat' came out in 1995"},
        {"id": "fixed", "prompt": "'Ran' came out in 1985 [[bad_json_once]]"},
        {"id": "never", "prompt": "'Up' came out in 2009 [[bad_schema]]"},
    )
    code, out, _ = run(capsys, str(path), "-o", "out.jsonl", "--model", "openai/gpt-4o-mini", "--schema", target)
    assert code == 1
    by_id = {r["id"]: r for r in results(tmp_path / "out.jsonl")}
    assert by_id["ok"]["parsed"] == {"title": "Heat", "year": 1995} and by_id["ok"]["error"] is None
    assert by_id["fixed"]["parsed"] == {"title": "Ran", "year": 1985} and by_id["fixed"]["attempts"] == 2
    assert by_id["never"]["parsed"] is None and by_id["never"]["error"]["type"] == "OutputValidationError"
    assert by_id["never"]["error"]["errors"] == [{"loc": "title", "msg": ANY_TYPE_ERROR[schema]}]
    assert fake.count == 1 + 2 + 3


ANY_TYPE_ERROR = {"file": "12345 is not of type 'string'", "class": "Input should be a valid string"}


def test_a_schema_that_cannot_be_loaded_is_a_usage_error_before_sending(
    tmp_path: Path, fake: FakeProvider, fake_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prompts(tmp_path, {"id": "a", "prompt": "hi"})
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--schema", "nowhere.json")
    assert code == 2 and "not module:Class" in err
    code, _, err = run(capsys, str(path), "-o", "out.jsonl", "--schema", "no_such_module_xyz:Film")
    assert code == 2 and "cannot import Film from no_such_module_xyz" in err
    assert fake.count == 0
