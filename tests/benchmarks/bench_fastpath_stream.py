"""Issue #16: streams through the fast path against the same streams through ``litellm.acompletion``.

    python tests/benchmarks/bench_fastpath_stream.py                   # 1,000 streams, concurrency 100, 5 reps
    python tests/benchmarks/bench_fastpath_stream.py --n 300 --reps 3  # smaller
    python tests/benchmarks/bench_fastpath_stream.py --profile         # plus where the fast stream's CPU goes

Each stream is one ``LLMClient.astream`` consumed to its final ``Completion`` (the fake answers "Echo: <prompt>",
one chunk per word: 6 text chunks, a finish chunk and a usage chunk on the OpenAI wire; 12 events on Anthropic's),
at most ``concurrency`` at once, the fake provider in its own process at 50 ms latency, one fresh client per run,
the two transports alternating inside each repetition (so load drift hits them alike). CPU is this process's CPU
time (the fake's is elsewhere): the headline on a shared machine, where wall time follows the load.
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

MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5"}


async def _streams(fake: RemoteFake, wire: str, prompts: list[str], concurrency: int, transport: Any) -> int:
    """How many of ``prompts`` streamed to a final ``Completion`` whose text is the fake's answer."""
    from llmkit import Completion, LLMClient, Model

    client = LLMClient([Model(MODELS[wire], api_base=fake.api_base(wire), api_key=API_KEY)], transport=transport)
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> bool:
        async with gate:
            final = None
            async for item in client.astream(prompt):
                if isinstance(item, Completion):
                    final = item
            return final is not None and final.text == f"Echo: {prompt}"

    try:
        return sum(await asyncio.gather(*(one(p) for p in prompts)))
    finally:
        client.close()


def _clients(fake: RemoteFake, wire: str, n: int, concurrency: int) -> dict[str, Callable[[int], Awaitable[int]]]:
    from llmkit._fastpath import FastPathTransport
    from llmkit._transport import LiteLLMTransport

    def prompts(rep: int) -> list[str]:
        return [f"rep {rep} stream number {i}" for i in range(n)]

    return {
        "fast path": lambda rep: _streams(fake, wire, prompts(rep), concurrency, FastPathTransport()),
        "LiteLLMTransport (acompletion)": lambda rep: _streams(
            fake, wire, prompts(rep), concurrency, LiteLLMTransport()
        ),
    }


def _run(wire: str, n: int, concurrency: int, reps: int, fake: RemoteFake) -> list[list[Any]]:
    def clients(k: int) -> dict[str, Callable[[int], Awaitable[int]]]:
        return _clients(fake, wire, k, concurrency)

    return alternate_wires(wire, clients, n, reps, "LiteLLMTransport (acompletion)", "streams")


def _profile(fake: RemoteFake, wire: str, n: int, concurrency: int) -> str:
    from llmkit._fastpath import FastPathTransport

    prompts = [f"profile stream {i}" for i in range(n)]
    asyncio.run(_streams(fake, wire, prompts, concurrency, FastPathTransport()))
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_streams(fake, wire, prompts, concurrency, FastPathTransport()))
    profiler.disable()
    return profile_report(profiler, n, top=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--latency-s", type=float, default=0.05)
    parser.add_argument("--wires", default="openai,anthropic")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    quiet_litellm()
    print(environment(), flush=True)
    rows: list[list[Any]] = []
    with RemoteFake(latency_s=args.latency_s) as fake:
        for wire in args.wires.split(","):
            rows += _run(wire, args.n, args.concurrency, args.reps, fake)
        print(environment(), flush=True)
        section(f"astream, {args.n} streams, concurrency {args.concurrency}, {args.latency_s * 1e3:.0f} ms latency")
        headers = ["wire", "transport", "streams/s median (range)", "CPU ms/stream median (range)"]
        print(markdown_table([*headers, "streams/s vs acompletion", "CPU saving", "GC ms/stream"], rows))
        if args.profile:
            for wire in args.wires.split(","):
                section(f"fast path streams, {wire}: where the CPU goes (cProfile, {args.n} streams)")
                print(_profile(fake, wire, args.n, args.concurrency))


if __name__ == "__main__":
    main()
