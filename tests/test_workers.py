"""Worker processes (``llmkit._workers``): a batch sharded across processes, end to end against the FakeProvider.

The workers are real processes (forked from one fork server per test session, which imports LiteLLM once), and they
reach the session's fake over 127.0.0.1, so what the fake records is what every worker sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from llmkit import (
    Budget,
    BudgetExceededError,
    ConfigError,
    LLMClient,
    Model,
    ProviderError,
    RateLimits,
    ResponseCache,
    SamplingParams,
    Tracer,
)
from llmkit._workers import check_workers
from llmkit.cli import main
from llmkit.testing import FakeProvider

KEY = "sk-fake-workers-0123456789"


def _model(fake: FakeProvider, **extra: object) -> Model:
    return Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key=KEY, **extra)


def _sent_prompts(fake: FakeProvider) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in fake.requests]


def _config(tmp_path: Path, fake: FakeProvider, extra: str = "") -> Path:
    path = tmp_path / "llmkit.yaml"
    path.write_text(
        "pools:\n  default:\n    models:\n"
        f"      - name: openai/gpt-4o-mini\n        api_base: {fake.api_base('openai')}\n        api_key: {KEY}\n"
        f"    cache:\n      path: {tmp_path / 'cache'}\n" + extra
    )
    return path


def _prompts_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"question {i}"}) + "\n" for i in range(n)))
    return path


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _workers_of(parent: psutil.Process) -> list[psutil.Process]:
    """The worker processes: children of a fork server started by ``parent``."""
    servers = [p for p in parent.children() if "forkserver" in " ".join(p.cmdline())]
    return [w for server in servers for w in server.children()]


# -- bad N, and what cannot cross to a worker -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2", 10_000])
def test_a_bad_worker_count_is_a_config_error_that_names_the_fix(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"workers=.*(whole number >= 1|at most \d+ on this machine)"):
        check_workers(bad)


async def test_bad_workers_fail_before_anything_is_sent(fake_provider: FakeProvider, tmp_path: Path) -> None:
    client = LLMClient(_model(fake_provider))
    with pytest.raises(ConfigError, match="workers=0"):
        await client.abatch_in_workers(["a", "b"], workers=0)
    # A limit too small to give each worker a share is refused, naming both fixes.
    small = LLMClient(_model(fake_provider), limits=RateLimits(max_concurrency=1))
    with pytest.raises(ConfigError, match=r"max_concurrency=1 cannot be split over 2 worker processes.*lower workers"):
        await small.abatch_in_workers(["a", "b"], workers=2, max_in_flight=8)
    traced = LLMClient(_model(fake_provider), hooks=Tracer(tmp_path / "trace"))
    with pytest.raises(ConfigError, match="hooks .* are not carried to worker processes"):
        await traced.abatch_in_workers(["a", "b"], workers=2)
    assert fake_provider.count == 0


def test_cli_workers_0_exits_2_and_writes_nothing(
    fake_provider: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, fake_provider)
    prompts = _prompts_file(tmp_path, 3)
    assert main(["run", str(prompts), "-o", "out.jsonl", "--workers", "0", "--no-progress"]) == 2
    assert "llmkit: error: workers=0: must be a whole number >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists() and fake_provider.count == 0


# -- sharding: order, completeness, limits, budget --------------------------------------------------------------------


@pytest.mark.slow  # starts worker processes (the session's fork server imports LiteLLM once: 3-10 s under load)
async def test_200_prompts_on_2_workers_come_back_in_order_each_sent_once_within_the_limits(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    fake_provider.latency_s = 0.02
    prompts = [f"question {i}" for i in range(200)]
    # Only the client's limit bounds concurrency here (max_in_flight is far above it): split 3 + 3 across the
    # workers, the fake never holds more than 6 at once; unsplit, each worker would hold 6.
    client = LLMClient(_model(fake_provider), limits=RateLimits(max_concurrency=6), cache=tmp_path / "cache")

    results = await client.abatch_in_workers(prompts, workers=2, max_in_flight=50)

    assert [r.text for r in results] == [f"Echo: {p}" for p in prompts]
    assert sorted(_sent_prompts(fake_provider)) == sorted(prompts)  # each prompt reached the provider exactly once
    assert fake_provider.peak_in_flight <= 6
    # The workers' counters add up in this process's status (what the progress bar and llmkit run's summary show).
    assert client.status.requests_sent == 200 and client.status.succeeded == 200 and client.status.in_flight == 0
    # The cache is shared: answers cached by the workers are hits here, in this process, with nothing sent.
    fake_provider.reset()
    again = await client.abatch(prompts)
    assert all(r.cache_hit for r in again) and fake_provider.count == 0


@pytest.mark.slow
def test_cli_workers_writes_every_id_once_in_input_order_and_a_rerun_sends_nothing(
    fake_provider: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, fake_provider)
    prompts = _prompts_file(tmp_path, 200)
    argv = ["run", str(prompts), "-o", "out.jsonl", "--workers", "2", "--no-progress"]

    assert main(argv) == 0

    lines = _lines(tmp_path / "out.jsonl")
    assert [line["id"] for line in lines] == [f"p{i}" for i in range(200)]
    assert all(line["text"] == f"Echo: question {i}" for i, line in enumerate(lines))
    assert sorted(_sent_prompts(fake_provider)) == sorted(f"question {i}" for i in range(200))
    err = capsys.readouterr().err
    assert "2 worker processes (cache and budget shared, limits split 2 ways)" in err
    assert "200 done, 0 failed, 0 bad lines skipped, 200 requests sent" in err
    fake_provider.reset()
    assert main(argv) == 0
    rerun = _lines(tmp_path / "out.jsonl")
    assert fake_provider.count == 0 and all(line["cache_hit"] for line in rerun)
    assert [(line["id"], line["text"]) for line in rerun] == [(line["id"], line["text"]) for line in lines]


@pytest.mark.slow
async def test_a_budget_holds_across_workers_as_in_one_process(fake_provider: FakeProvider, tmp_path: Path) -> None:
    import litellm

    info = litellm.get_model_info("openai/gpt-4o-mini")
    most_per_request = 5 * info["input_cost_per_token"] + 20 * info["output_cost_per_token"]
    budget = Budget(max_cost_usd=40 * most_per_request)
    prompts = [f"question number {i}" for i in range(300)]
    client = LLMClient(_model(fake_provider), sampling=SamplingParams(max_tokens=20), cache=tmp_path / "cache")

    results = await client.abatch_in_workers(prompts, workers=2, budget=budget, max_in_flight=8)

    answered = [c for c in results if c.ok]
    stopped = [c for c in results if not c.ok]
    assert len(results) == 300 and stopped
    assert all(isinstance(c.error, BudgetExceededError) and not c.error.retryable for c in stopped)
    assert fake_provider.count == len(answered)  # nothing refused was sent, nothing answered was lost
    spent = sum(c.cost_usd or 0.0 for c in answered)
    assert spent <= budget.max_cost_usd  # one budget for both workers: each taking it whole would spend up to twice
    # ... and it is used up, not stopped early by one worker while the other had money left.
    assert spent >= budget.max_cost_usd - (8 + 2) * most_per_request


# -- Ctrl-C and a dead worker lose nothing answered -------------------------------------------------------------------


@pytest.mark.slow
async def test_a_killed_worker_fails_only_its_unanswered_prompts_and_a_rerun_sends_only_those(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    fake_provider.latency_s = 0.05
    prompts = [f"question {i}" for i in range(200)]
    cache = ResponseCache(tmp_path / "cache")
    client = LLMClient(_model(fake_provider), cache=cache)
    results: dict[int, object] = {}
    killed = False
    async for index, completion in client.as_completed_in_workers(prompts, workers=2, max_in_flight=8):
        results[index] = completion
        if len(results) == 40 and not killed:
            workers = _workers_of(psutil.Process())
            assert len(workers) == 2 and not any(KEY in " ".join(w.cmdline()) for w in workers)  # keys cross by pipe
            victim = workers[0]
            victim.send_signal(signal.SIGKILL)
            killed = True

    assert sorted(results) == list(range(200))  # every prompt accounted for, once
    failed = {i for i, c in results.items() if not c.ok}  # type: ignore[attr-defined]
    assert failed, "the killed worker held some prompts"
    for i in failed:
        error = results[i].error  # type: ignore[attr-defined]
        assert isinstance(error, ProviderError) and error.retryable
        assert "was killed by signal 9 before this prompt was answered" in str(error)
    # The rest went to the surviving worker; a rerun sends only prompts that failed (fewer if the dead worker had
    # cached an answer it had not yet handed over).
    fake_provider.reset()
    again = await client.abatch(prompts)
    assert all(c.ok for c in again)
    assert set(_sent_prompts(fake_provider)) <= {prompts[i] for i in failed}


@pytest.mark.slow
def test_ctrl_c_keeps_what_was_written_and_a_rerun_sends_only_the_unanswered(
    fake_provider: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_provider.latency_s = 0.05
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, fake_provider)
    prompts = _prompts_file(tmp_path, 200)
    argv = ["run", str(prompts), "-o", "out.jsonl", "--workers", "2", "--max-in-flight", "4", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.Popen(
        [sys.executable, "-m", "llmkit", *argv],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    partial = tmp_path / "out.jsonl.partial"
    deadline = time.monotonic() + 120
    while not (partial.exists() and len(partial.read_text().splitlines()) >= 30):
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read() if run.stderr else ""
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group: the run and its workers
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "interrupted: the results above are written" in err
    kept = _lines(tmp_path / "out.jsonl")
    assert 30 <= len(kept) < 200
    assert KEY not in err and KEY not in (tmp_path / "out.jsonl").read_text()

    fake_provider.reset()
    assert main(argv) == 0
    resent = set(_sent_prompts(fake_provider))
    assert not resent & {f"question {line['id'][1:]}" for line in kept}  # type: ignore[index]
    assert len(resent) == fake_provider.count <= 200 - len(kept)
    assert [line["id"] for line in _lines(tmp_path / "out.jsonl")] == [f"p{i}" for i in range(200)]


@pytest.mark.slow
async def test_workers_take_this_process_environment_not_the_fork_servers(
    fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    await LLMClient(_model(fake_provider)).abatch_in_workers(["warm"], workers=2)  # the fork server runs from here on
    monkeypatch.setenv("OPENAI_API_KEY", "sk-exported-later-0123456789")  # as a notebook user does after a first run
    keyless = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"))

    results = await LLMClient(keyless).abatch_in_workers(["a", "b", "c"], workers=2)

    assert [r.text for r in results] == ["Echo: a", "Echo: b", "Echo: c"]


@pytest.mark.slow
def test_cli_max_cost_is_one_budget_for_all_workers(
    fake_provider: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import litellm

    info = litellm.get_model_info("openai/gpt-4o-mini")
    # Each answer ("Echo: question N") costs 2 prompt + 3 output tokens; each reservation is at most 4 + 5.
    answer = 2 * info["input_cost_per_token"] + 3 * info["output_cost_per_token"]
    max_cost = 60 * answer
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, fake_provider, "    sampling:\n      max_tokens: 5\n")
    prompts = _prompts_file(tmp_path, 200)
    argv = ["run", str(prompts), "-o", "out.jsonl", "--workers", "2", "--max-in-flight", "8", "--no-progress"]

    assert main([*argv, "--max-cost", f"{max_cost:.10f}"]) == 1

    lines = _lines(tmp_path / "out.jsonl")
    answered = [line for line in lines if line["error"] is None]
    assert [line["id"] for line in lines] == [f"p{i}" for i in range(200)]
    assert {line["error"]["type"] for line in lines if line["error"]} == {"BudgetExceededError"}  # type: ignore[index]
    assert fake_provider.count == len(answered) >= 30  # nothing refused was sent; the budget was used, not wasted
    assert sum(line["cost_usd"] for line in answered) <= max_cost  # type: ignore[misc]
    assert "BudgetExceededError" in capsys.readouterr().err


def test_a_worker_that_exits_before_its_last_request_is_answered_loses_no_answer() -> None:
    """A finished worker stops listening: the parent's answer to its last request ahead (None, no more prompts) can
    meet a closed pipe. Its "done" message, with answers, is still in the pipe and must be read, not turned into
    "worker exited" errors for those prompts (seen as a flaky ProviderError with exit code 0 under --max-cost)."""
    import asyncio
    import multiprocessing
    import threading

    from llmkit import Completion
    from llmkit._workers import _Pool

    ours, theirs = multiprocessing.Pipe()
    theirs.send(("more",))
    theirs.send(("done", [(0, Completion(text="answered"))], {}))
    theirs.close()  # the worker has exited
    loop = asyncio.new_event_loop()
    pool = _Pool.__new__(_Pool)
    pool._source, pool._lock, pool._loop, pool.exhausted = enumerate([]), threading.Lock(), loop, True
    pool.inbox, pool.held, pool._procs = asyncio.Queue(), [{0}], [None]  # type: ignore[list-item]
    pool._read(0, ours)
    loop.run_until_complete(asyncio.sleep(0))
    kinds = []
    while not pool.inbox.empty():
        kinds.append(pool.inbox.get_nowait()[1][0])
    loop.close()
    assert kinds == ["done"]
