"""Issue #4: ``ChatLLMKit.abatch`` vs ``langchain_litellm.ChatLiteLLM.abatch``, side by side, then a cached rerun.

    python tests/benchmarks/bench_langchain.py                    # 1,000 prompts, concurrency 50, 50 ms latency
    python tests/benchmarks/bench_langchain.py -n 200 -c 20       # a quicker run

The fake provider runs in a subprocess (``_common.RemoteFake``), so wall and CPU times are the client's own. Both
models get the same prompts, the same ``max_concurrency`` and the same endpoint; each variant sends distinct
prompts, so neither LiteLLM's nor the fake's caches help. ``ChatLiteLLM.abatch`` is LangChain's default (``ainvoke``
per input under a semaphore); ``ChatLLMKit.abatch`` hands every input to ``LLMClient.abatch``.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, MODEL, RemoteFake, Timing, environment, markdown_table, progress, section, timed  # noqa: E402

LATENCY_S = 0.05


def _prompts(tag: str, n: int) -> list[str]:
    return [f"{tag} prompt {i}: name a colour" for i in range(n)]


async def _run(
    name: str, batch: Callable[[list[str]], Awaitable[list[Any]]], prompts: list[str], fake: RemoteFake
) -> tuple[str, Timing, int]:
    before = fake.count
    with timed() as timing:
        answers = await batch(prompts)
    sent = fake.count - before
    bad = [a for a in answers if not str(getattr(a, "content", "")).startswith("Echo: ")]
    if bad:
        raise RuntimeError(f"{name}: {len(bad)} answers were not the fake's echo, e.g. {bad[0]!r}")
    progress(f"{name}: {timing.wall_s:.2f} s wall")
    return name, timing, sent


async def main(n: int, concurrency: int) -> None:
    from langchain_litellm import ChatLiteLLM

    from llmkit.langchain import ChatLLMKit

    config = {"max_concurrency": concurrency}
    with RemoteFake(latency_s=LATENCY_S) as fake, tempfile.TemporaryDirectory() as cache_dir:
        base = fake.api_base("openai")
        litellm_model = ChatLiteLLM(model=MODEL, api_base=base, api_key=API_KEY)
        plain = ChatLLMKit(model=MODEL, base_url=base, api_key=API_KEY)
        cached = ChatLLMKit(model=MODEL, base_url=base, api_key=API_KEY, response_cache=cache_dir)

        warm = _prompts("warm-up", 20)  # imports, connection pools, LiteLLM's first-call setup
        await litellm_model.abatch(warm, config)
        await plain.abatch(warm, config)

        runs = [
            await _run("ChatLiteLLM.abatch", lambda p: litellm_model.abatch(p, config), _prompts("a", n), fake),
            await _run("ChatLLMKit.abatch (no cache)", lambda p: plain.abatch(p, config), _prompts("b", n), fake),
            await _run("ChatLLMKit.abatch (cache cold)", lambda p: cached.abatch(p, config), _prompts("c", n), fake),
            await _run("ChatLLMKit.abatch (cache warm)", lambda p: cached.abatch(p, config), _prompts("c", n), fake),
        ]

    base_timing = runs[0][1]
    rows = [
        [
            name,
            n,
            sent,
            timing.wall_s,
            timing.cpu_s / n * 1e3,
            timing.wall_s / base_timing.wall_s,
            timing.cpu_s / base_timing.cpu_s,
        ]
        for name, timing, sent in runs
    ]
    section(f"abatch of {n} prompts, max_concurrency={concurrency}, fake provider latency {LATENCY_S * 1e3:.0f} ms")
    print(environment())
    print()
    headers = [
        "variant",
        "prompts",
        "requests sent",
        "wall s",
        "CPU ms/prompt",
        "wall / ChatLiteLLM",
        "CPU / ChatLiteLLM",
    ]
    print(markdown_table(headers, rows))
    floor = n / concurrency * LATENCY_S
    print(f"\nLatency floor at this concurrency: {n} / {concurrency} x {LATENCY_S * 1e3:.0f} ms = {floor:.2f} s.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="prompts per variant (default 1000)")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="max_concurrency for both (default 50)")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency))
