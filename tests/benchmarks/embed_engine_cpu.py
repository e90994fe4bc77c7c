"""llmkit's own CPU per text in ``aembed``: no cache, a cold cache (every vector written) and an all-hit rerun.

    PYTHONPATH=. python tests/benchmarks/embed_engine_cpu.py            # 100,000 texts, 16 dims, 5 repetitions
    PYTHONPATH=. python tests/benchmarks/embed_engine_cpu.py --dims 1536

The transport is an instant in-process stand-in (``_transport.aembed`` replaced, as in embed_memory.py), so what is
measured is llmkit alone: packing, keys, dedupe, limiter, router, the cache's reads and writes (the writes run in a
worker thread; process CPU counts every thread). On a shared machine this is far steadier than a wall time against
the fake provider. Variants alternate each repetition; medians and ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from typing import Any

from llmkit import EmbeddingOptions, LLMClient, Model, _transport
from llmkit._transport import EmbedReply


def _instant(dims: int) -> Any:
    vector = [0.25] * dims

    async def aembed(model: Model, texts: list[str], params: dict[str, Any], timeout_s: float | None) -> EmbedReply:
        await asyncio.sleep(0)
        return EmbedReply([list(vector) for _ in texts], len(texts), None)

    return aembed


async def _embed(texts: list[str], cache: str | None) -> None:
    client = LLMClient(Model("openai/text-embedding-3-small", api_key="k"), cache=cache)
    result = await client.aembed(texts, options=EmbeddingOptions(batch_size=2048))
    assert result.ok and len(result) == len(texts)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    _transport.aembed = _instant(args.dims)  # type: ignore[assignment]
    _transport.check_embed = lambda model, params: None  # type: ignore[assignment]
    texts = [f"short text number {i} about topic {i % 97}" for i in range(args.texts)]
    cpu: dict[str, list[float]] = {"no cache": [], "cold cache": [], "all-hit rerun": []}
    loads = [os.getloadavg()[0]]
    for rep in range(args.reps):
        folder = tempfile.mkdtemp(prefix="embed-cpu-")
        order = ["no cache", "cold cache", "all-hit rerun"]
        if rep % 2:
            order = ["cold cache", "all-hit rerun", "no cache"]
        for name in order:
            start = time.process_time()
            asyncio.run(_embed(texts, None if name == "no cache" else folder))
            cpu[name].append((time.process_time() - start) / args.texts * 1e6)
        shutil.rmtree(folder, ignore_errors=True)
        loads.append(os.getloadavg()[0])
    print(f"{args.texts:,} texts, {args.dims} dims, batches of 2,048, {args.reps} repetitions (alternating)")
    for name, values in cpu.items():
        values.sort()
        print(f"  {name:14} {values[len(values) // 2]:6.1f} µs CPU per text ({values[0]:.1f}-{values[-1]:.1f})")
    print(f"  load (1 min) at start and after each repetition: {', '.join(f'{x:.1f}' for x in loads)}")


if __name__ == "__main__":
    main()
