"""RSS while N texts go through ``embed_as_completed`` (an instant in-process transport; no cache unless --cache).

    PYTHONPATH=. python tests/benchmarks/embed_memory.py 1000000
    PYTHONPATH=. python tests/benchmarks/embed_memory.py 1000000 --cache   # every vector written to vectors.db too

Prints RSS every 100,000 texts: flat means the generator is pulled only as requests finish (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from typing import Any

import psutil

from llmkit import LLMClient, Model, _transport
from llmkit._transport import EmbedReply


async def instant(model: Model, texts: list[str], params: dict[str, Any], timeout_s: float | None) -> EmbedReply:
    await asyncio.sleep(0)
    return EmbedReply([[0.25] * 256 for _ in texts], len(texts), None)


async def main(n: int, cache: str | None) -> None:
    process = psutil.Process()
    client = LLMClient(Model("openai/text-embedding-3-small", api_key="k"), cache=cache)
    start, seen = time.perf_counter(), 0
    async for _ in client.embed_as_completed(f"text number {i}" for i in range(n)):
        seen += 1
        if seen % 100_000 == 0:
            rss = process.memory_info().rss / 2**20
            print(f"{seen:>9,} texts  RSS {rss:6.1f} MiB  {time.perf_counter() - start:5.1f} s", flush=True)


if __name__ == "__main__":
    _transport.aembed = instant  # type: ignore[assignment]
    _transport.check_embed = lambda model, params: None
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--cache", action="store_true", help="a cache in a fresh temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="embed-memory-") as folder:
        asyncio.run(main(args.n, folder if args.cache else None))
