"""A rerun served wholly from the cache never imports litellm (seconds saved on every resumed job)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from llmkit import LLMClient, Model
    client = LLMClient([Model("openai/gpt-4o-mini", api_base=sys.argv[1], api_key="k")], cache=sys.argv[2])
    results = client.batch(["a", "b", "c"])
    assert all(r.ok for r in results)
    print(sum(r.cache_hit for r in results), "litellm" in sys.modules)
    """
)


def run(fake, cache) -> str:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True"}
    args = [sys.executable, "-c", SCRIPT, fake.api_base("openai"), str(cache)]
    return subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout.strip()


def test_cached_rerun_sends_nothing_and_skips_litellm(fake_provider, tmp_path) -> None:
    assert run(fake_provider, tmp_path / "c") == "0 True"
    assert run(fake_provider, tmp_path / "c") == "3 False"
    assert fake_provider.count == 3
