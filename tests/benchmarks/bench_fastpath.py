"""Issue #16: the fast-path transport against ``LiteLLMTransport`` and raw ``litellm.acompletion``.

    python tests/benchmarks/bench_fastpath.py                     # 2,000 prompts, concurrency 100, 5 repetitions
    python tests/benchmarks/bench_fastpath.py --n 500 --reps 3    # smaller
    python tests/benchmarks/bench_fastpath.py --profile           # plus where the fast path's CPU goes

``abatch`` with ``max_in_flight`` = concurrency, the fake provider in its own process at 50 ms latency, one fresh
client per run, the three clients alternating inside each repetition (so load drift hits them alike). CPU is this
process's CPU time (the fake's is elsewhere): the headline on a shared machine, where wall time follows the load.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import asyncio
import cProfile
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this tree's llmkit, not an installed one

from _common import (  # noqa: E402
    API_KEY,
    RemoteFake,
    alternate_wires,
    environment,
    markdown_table,
    profile_report,
    quiet_litellm,
    section,
)

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}


async def _llmkit(fake: RemoteFake, wire: str, prompts: list[str], concurrency: int, transport: Any) -> int:
    from llmkit import LLMClient, Model

    client = LLMClient([Model(MODELS[wire], api_base=fake.api_base(wire), api_key=API_KEY)], transport=transport)
    try:
        results = await client.abatch(prompts, max_in_flight=concurrency)
    finally:
        client.close()
    return sum(1 for r in results if r.ok)


async def _raw(fake: RemoteFake, wire: str, prompts: list[str], concurrency: int) -> int:
    litellm = quiet_litellm()
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> bool:
        async with gate:
            reply = await litellm.acompletion(
                model=MODELS[wire],
                messages=[{"role": "user", "content": prompt}],
                api_base=fake.api_base(wire),
                api_key=API_KEY,
                num_retries=0,
                max_retries=0,
            )
            return bool(reply.choices)

    return sum(await asyncio.gather(*(one(p) for p in prompts)))


def _clients(fake: RemoteFake, wire: str, n: int, concurrency: int) -> dict[str, Callable[[int], Awaitable[int]]]:
    from llmkit._fastpath import FastPathTransport
    from llmkit._transport import LiteLLMTransport

    def prompts(rep: int) -> list[str]:
        return [f"rep {rep} prompt {i}" for i in range(n)]

    return {
        "llmkit fast path": lambda rep: _llmkit(fake, wire, prompts(rep), concurrency, FastPathTransport()),
        "llmkit LiteLLMTransport": lambda rep: _llmkit(fake, wire, prompts(rep), concurrency, LiteLLMTransport()),
        "raw litellm.acompletion": lambda rep: _raw(fake, wire, prompts(rep), concurrency),
    }


def _run(wire: str, n: int, concurrency: int, reps: int, fake: RemoteFake) -> list[list[Any]]:
    def clients(k: int) -> dict[str, Callable[[int], Awaitable[int]]]:
        return _clients(fake, wire, k, concurrency)

    return alternate_wires(wire, clients, n, reps, "llmkit LiteLLMTransport", "req")


def _profile(fake: RemoteFake, wire: str, n: int, concurrency: int) -> str:
    from llmkit._fastpath import FastPathTransport

    prompts = [f"profile prompt {i}" for i in range(n)]
    asyncio.run(_llmkit(fake, wire, prompts, concurrency, FastPathTransport()))
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_llmkit(fake, wire, prompts, concurrency, FastPathTransport()))
    profiler.disable()
    return profile_report(profiler, n, top=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--latency-s", type=float, default=0.05)
    parser.add_argument("--wires", default="openai,anthropic,gemini")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    quiet_litellm()
    print(environment(), flush=True)
    rows: list[list[Any]] = []
    with RemoteFake(latency_s=args.latency_s) as fake:
        for wire in args.wires.split(","):
            rows += _run(wire, args.n, args.concurrency, args.reps, fake)
        print(environment(), flush=True)
        section(f"abatch, {args.n} prompts, concurrency {args.concurrency}, {args.latency_s * 1e3:.0f} ms latency")
        headers = ["wire", "client", "req/s median (range)", "CPU ms/req median (range)", "req/s vs LiteLLMTransport"]
        print(markdown_table([*headers, "CPU saving", "GC ms/req"], rows))
        if args.profile:
            for wire in args.wires.split(","):
                section(f"fast path, {wire}: where the CPU goes (cProfile, {args.n} prompts)")
                print(_profile(fake, wire, args.n, args.concurrency))


if __name__ == "__main__":
    main()
