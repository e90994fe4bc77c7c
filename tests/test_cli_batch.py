"""``llmkit batch submit|status|collect|cancel`` and ``llmkit run --provider-batch``, in-process, on FakeProvider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmkit.cli import main
from llmkit.testing import FakeProvider

MARKER = "sk-MARKER-batch-cli-never-print"


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeProvider]:
    """This module's own server, stopped at its end: the OpenAI SDK's pooled connections from the CLI's closed event
    loops are then closed with it, not at some later moment inside another test (test_client's cyclic-garbage test
    counts every cycle created while it runs, in any thread)."""
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake_provider(module_fake: FakeProvider) -> Iterator[FakeProvider]:
    module_fake.reset()
    yield module_fake
    module_fake.reset()


@pytest.fixture
def config(tmp_path: Path, fake_provider, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake_provider.batches.duration_s = 0.3
    monkeypatch.setenv("FAKE_OPENAI", fake_provider.api_base("openai"))
    monkeypatch.setenv("OPENAI_API_KEY", MARKER)
    path = tmp_path / "llmkit.yaml"
    path.write_text(
        "pools:\n  default:\n    models:\n      - name: openai/gpt-4o-mini\n"
        "        api_base: ${FAKE_OPENAI}\n        api_key: ${OPENAI_API_KEY}\n"
    )
    return path


def _prompts(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "prompts.jsonl"
    lines = [json.dumps({"id": f"q{i}", "prompt": f"question {i}"}) for i in range(n)]
    path.write_text("\n".join([*lines, json.dumps({"id": "bad", "prompt": "x [[fail:400]]"})]) + "\n")
    return path


def test_submit_status_collect_write_the_same_lines_as_run(config, tmp_path, fake_provider, capsys) -> None:
    prompts, cache = _prompts(tmp_path, 5), str(tmp_path / "cache")
    assert main(["batch", "submit", str(prompts), "--cache-dir", cache, "--max-requests-per-job", "4"]) == 0
    out, err = capsys.readouterr()
    job_id = out.strip()
    assert job_id.startswith("pb-") and "submitted 6 prompts in 2 provider job(s)" in err
    assert main(["batch", "status", "--cache-dir", cache]) == 0
    assert capsys.readouterr().out.split() == [job_id]
    assert main(["batch", "status", job_id, "--cache-dir", cache]) == 0
    assert "6 prompts, 0 cached" in capsys.readouterr().out

    output = tmp_path / "batch.jsonl"
    assert main(["batch", "collect", job_id, "-o", str(output), "--cache-dir", cache, "--no-progress"]) == 1
    lines = [json.loads(x) for x in output.read_text().splitlines()]
    assert [x["id"] for x in lines] == [*(f"q{i}" for i in range(5)), "bad"]
    assert lines[0]["text"] == "Echo: question 0" and lines[-1]["error"]["type"] == "BadRequestError"
    assert MARKER not in output.read_text() + capsys.readouterr().err

    fake_provider.reset()
    live = tmp_path / "live.jsonl"
    assert main(["run", str(prompts), "-o", str(live), "--cache-dir", cache, "--no-progress"]) == 1
    run_lines = [json.loads(x) for x in live.read_text().splitlines()]
    assert list(run_lines[0]) == list(lines[0])  # the same keys, in the same order
    assert [x["text"] for x in run_lines[:5]] == [x["text"] for x in lines[:5]]
    assert all(x["cache_hit"] for x in run_lines[:5]) and fake_provider.count == 1  # only the failed one is resent


def test_collect_no_wait_on_a_running_job_is_a_usage_error(config, tmp_path, fake_provider, capsys) -> None:
    fake_provider.batches.duration_s = 30
    cache = str(tmp_path / "cache")
    assert main(["batch", "submit", str(_prompts(tmp_path, 2)), "--cache-dir", cache]) == 0
    job_id = capsys.readouterr().out.strip()
    code = main(["batch", "collect", job_id, "-o", str(tmp_path / "r.jsonl"), "--cache-dir", cache, "--no-wait"])
    assert code == 2 and "has not ended" in capsys.readouterr().err
    assert main(["batch", "cancel", job_id, "--cache-dir", cache]) == 0
    assert "cancel requested for 1 provider job" in capsys.readouterr().err
    assert fake_provider.batches.requests["cancel"] == 1


def test_an_unknown_job_is_one_clear_line(config, tmp_path, capsys) -> None:
    assert main(["batch", "status", "pb-missing", "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmkit: error: no provider batch 'pb-missing'") and len(err.splitlines()) == 1


def test_run_provider_batch_submits_waits_and_writes_results(config, tmp_path, fake_provider, capsys) -> None:
    output = tmp_path / "out.jsonl"
    cache = str(tmp_path / "cache")
    code = main(["run", str(_prompts(tmp_path, 3)), "-o", str(output), "--provider-batch", "--cache-dir", cache])
    assert code == 1  # the [[fail:400]] line
    lines = [json.loads(x) for x in output.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["q0", "q1", "q2", "bad"]
    assert fake_provider.count == 0 and fake_provider.batches.lines_received == 4
    assert "provider batch pb-" in capsys.readouterr().err
