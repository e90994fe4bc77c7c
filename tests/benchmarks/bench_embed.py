"""Issue #13: ``LLMClient.aembed`` vs raw ``litellm.aembedding`` at the same batch size and concurrency.

    python tests/benchmarks/bench_embed.py            # 100,000 short texts, 50 ms fake latency, 3 repetitions
    python tests/benchmarks/bench_embed.py --quick    # 20,000 texts, 2 repetitions

The fake provider runs in a subprocess (``_common.RemoteFake``), so the client's wall and CPU times are its own.
Raw litellm gets batches of ``--batch`` texts, ``--concurrency`` at once (an asyncio.Semaphore), with the kwargs
llmkit sends. llmkit runs without a cache (the engine alone) and with a cold cache (every vector written); then a
rerun of the same texts that is all cache hits. Variants alternate each repetition; medians and paired ratios, of
wall and of CPU: on a shared machine the CPU per text (this process, all threads) is far less noisy than the wall.
Run it from the repository root with ``PYTHONPATH=.`` to measure the working tree rather than the installed llmkit.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    API_KEY,
    RemoteFake,
    Timing,
    environment,
    markdown_table,
    median,
    progress,
    quiet_litellm,
    section,
    timed,
)

from llmkit import EmbeddingOptions, LLMClient, Model  # noqa: E402

MODEL = "openai/text-embedding-3-small"
WALL_TARGET_RATIO = 1.05
HIT_TARGET_PER_S = 20_000


async def raw_litellm(litellm: Any, base: str, texts: list[str], batch: int, concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def one(chunk: list[str]) -> int:
        async with gate:
            response = await litellm.aembedding(
                model=MODEL, input=chunk, api_base=base, api_key=API_KEY, num_retries=0, max_retries=0
            )
            return len(response.data)

    counts = await asyncio.gather(*(one(texts[i : i + batch]) for i in range(0, len(texts), batch)))
    return sum(counts)


async def with_llmkit(base: str, texts: list[str], batch: int, concurrency: int, cache: str | None) -> int:
    client = LLMClient(Model(MODEL, api_base=base, api_key=API_KEY), cache=cache)
    result = await client.aembed(texts, options=EmbeddingOptions(batch_size=batch), max_in_flight=concurrency)
    assert result.ok and len(result) == len(texts)
    client.close()
    return len(result)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--texts", type=int)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-s", type=float, default=0.05)
    parser.add_argument("--reps", type=int)
    args = parser.parse_args()
    n = args.texts or (20_000 if args.quick else 100_000)
    reps = args.reps or (2 if args.quick else 3)
    litellm = quiet_litellm()
    texts = [f"short text number {i} about topic {i % 97}" for i in range(n)]
    fake = RemoteFake(latency_s=args.latency_s)
    base = fake.api_base("openai")
    scratch = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    times: dict[str, list[Timing]] = {"litellm": [], "llmkit": [], "llmkit+cache": [], "rerun (all hits)": []}
    loads = [os.getloadavg()[0]]
    try:
        asyncio.run(raw_litellm(litellm, base, texts[:4096], args.batch, args.concurrency))  # warm-up
        for rep in range(reps):
            order = ["litellm", "llmkit", "llmkit+cache"] if rep % 2 == 0 else ["llmkit+cache", "llmkit", "litellm"]
            cache = str(scratch / f"cache-{rep}")
            for name in order:
                progress(f"rep {rep + 1}/{reps}: {name}")
                with timed() as t:
                    if name == "litellm":
                        done = asyncio.run(raw_litellm(litellm, base, texts, args.batch, args.concurrency))
                    else:
                        use = cache if name == "llmkit+cache" else None
                        done = asyncio.run(with_llmkit(base, texts, args.batch, args.concurrency, use))
                assert done == n
                times[name].append(t)
            progress(f"rep {rep + 1}/{reps}: rerun (all hits)")
            with timed() as t:
                asyncio.run(with_llmkit(base, texts, args.batch, args.concurrency, cache))
            times["rerun (all hits)"].append(t)
            shutil.rmtree(cache, ignore_errors=True)
            loads.append(os.getloadavg()[0])
    finally:
        fake.close()
        shutil.rmtree(scratch, ignore_errors=True)
    report(times, n, args, reps, loads)


def _spread(values: list[float], fmt: str) -> str:
    return f"{median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(times: dict[str, list[Timing]], n: int, args: argparse.Namespace, reps: int, loads: list[float]) -> None:
    latency_ms = args.latency_s * 1000
    section(f"Embeddings: {n:,} texts, batch {args.batch}, {args.concurrency} in flight, {latency_ms:.0f} ms latency")
    raw = times["litellm"]
    rows = []
    for name, runs in times.items():
        walls = [t.wall_s for t in runs]
        rows.append(
            [
                name,
                _spread(walls, ".2f"),
                f"{n / median(walls):,.0f}",
                _spread([t.cpu_s / n * 1e6 for t in runs], ".0f"),
                f"{median([t.gc_s for t in runs]):.2f}",
                _spread([t.wall_s / r.wall_s for t, r in zip(runs, raw, strict=True)], ".2f"),
                _spread([t.cpu_s / r.cpu_s for t, r in zip(runs, raw, strict=True)], ".2f"),
            ]
        )
    headers = ["variant", "wall s (range)", "texts/s", "CPU µs/text (range)", "GC s", "wall / litellm", "CPU / litellm"]
    print(markdown_table(headers, rows))
    hit_rate = n / median([t.wall_s for t in times["rerun (all hits)"]])
    for name in ("llmkit", "llmkit+cache"):
        ratio = median([t.wall_s / r.wall_s for t, r in zip(times[name], raw, strict=True)])
        print(f"\n{name} / litellm, wall: {ratio:.2f} (target <= {WALL_TARGET_RATIO})", end="")
    print(
        f"\nall-hit rerun {hit_rate:,.0f} texts/s (target >= {HIT_TARGET_PER_S:,}); {reps} repetitions, alternating "
        f"order; load (1 min) at each repetition's end: {', '.join(f'{x:.1f}' for x in loads)}"
    )
    print(environment())


if __name__ == "__main__":
    main()
