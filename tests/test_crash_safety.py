"""kill -9 in the middle of a batch loses nothing already answered: the rerun sends only what was not cached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

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
