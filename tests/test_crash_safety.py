"""kill -9 in the middle of a batch loses nothing already answered: the rerun sends only what was not cached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import llmkit
from llmkit import LLMClient, Model, ResponseCache

N = 200

CHILD = textwrap.dedent(
    """
    import sys
    from llmkit import LLMClient, Model
    api_base, cache = sys.argv[1], sys.argv[2]
    client = LLMClient([Model("openai/gpt-4o-mini", api_base=api_base, api_key="k")], cache=cache)
    client.batch(["prompt %d" % i for i in range({n})], max_in_flight=4)
    """
).format(n=N)


@pytest.mark.slow
def test_kill_9_mid_batch_then_rerun_sends_only_the_rest(fake_provider, tmp_path) -> None:
    fake_provider.latency_s = 0.02
    cache_dir = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, fake_provider.api_base("openai"), str(cache_dir)],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cache_dir.exists() and len(ResponseCache(cache_dir)) >= 40:
                break
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    cached = len(ResponseCache(cache_dir))
    assert 40 <= cached < N
    fake_provider.reset()
    client = LLMClient(
        [Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="k")], cache=cache_dir
    )
    results = client.batch([f"prompt {i}" for i in range(N)])
    assert all(r.ok for r in results)
    assert sum(r.cache_hit for r in results) == cached
    assert fake_provider.count == N - cached


PROVIDER_BATCH_CHILD = textwrap.dedent(
    """
    import sys, time
    from llmkit import BatchJob, LLMClient, Model
    api_base, cache, step, out = sys.argv[1:5]
    client = LLMClient([Model("openai/gpt-4o-mini", api_base=api_base, api_key="k")], cache=cache)
    if step == "submit":
        job = client.submit_batch(["prompt %d" % i for i in range({n})], max_requests_per_job=40)
    else:
        job = BatchJob.load(open(out).read(), client)
    open(out + ".tmp", "w").write(job.id)
    __import__("os").replace(out + ".tmp", out)
    job.wait(poll_s=0.05)
    """
).format(n=N)


def _run_until(args: list[str], ready, timeout_s: float = 60) -> None:
    """Start a child, wait until ``ready()``, then kill -9 it."""
    # The child imports the llmkit under test, wherever it is installed from.
    source = str(Path(llmkit.__file__).parent.parent)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": source}
    child = subprocess.Popen([sys.executable, "-c", PROVIDER_BATCH_CHILD, *args], env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not ready():
            assert child.poll() is None, "the child ended before it could be killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_provider_batch_killed_after_submit_and_while_polling_resumes_without_resending(fake_provider, tmp_path):
    from llmkit import BatchJob

    fake_provider.batches.duration_s = 3.0
    cache_dir, id_file = tmp_path / "cache", tmp_path / "job_id"
    args = [fake_provider.api_base("openai"), str(cache_dir), "submit", str(id_file)]
    _run_until(args, id_file.exists)  # killed right after submit_batch returned
    assert fake_provider.batches.lines_received == N
    # A rerun of the same command finds the manifest: nothing is submitted again.
    _run_until([*args[:2], "submit", str(tmp_path / "job_id_2")], (tmp_path / "job_id_2").exists)
    assert (tmp_path / "job_id_2").read_text() == id_file.read_text()
    assert fake_provider.batches.lines_received == N
    retrieved = fake_provider.batches.requests["retrieve"]
    _run_until([*args[:2], "load", str(id_file)], lambda: fake_provider.batches.requests["retrieve"] >= retrieved + 3)

    client = LLMClient(
        [Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="k")], cache=cache_dir
    )
    results = BatchJob.load(id_file.read_text(), client).wait(poll_s=0.05)
    assert [r.text for r in results] == [f"Echo: prompt {i}" for i in range(N)]
    assert fake_provider.batches.requests["create"] == N // 40
    assert sorted(set(fake_provider.batches.received.values())) == [1]
    assert len(fake_provider.batches.received) == N
    fake_provider.reset()
    assert all(r.cache_hit for r in client.batch([f"prompt {i}" for i in range(N)])) and fake_provider.count == 0
