"""RSS while N texts go through ``embed_as_completed`` (an instant in-process transport, no cache).

    python tests/benchmarks/embed_memory.py 1000000

Prints RSS every 100,000 texts: flat means the generator is pulled only as requests finish (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import psutil

from llmkit import LLMClient, Model, _transport
from llmkit._transport import EmbedReply


async def instant(model: Model, texts: list[str], params: dict[str, Any], timeout_s: float | None) -> EmbedReply:
    await asyncio.sleep(0)
    return EmbedReply([[0.25] * 256 for _ in texts], len(texts), None)


async def main(n: int) -> None:
    process = psutil.Process()
    client = LLMClient(Model("openai/text-embedding-3-small", api_key="k"))
    start, seen = time.perf_counter(), 0
    async for _ in client.embed_as_completed(f"text number {i}" for i in range(n)):
        seen += 1
        if seen % 100_000 == 0:
            rss = process.memory_info().rss / 2**20
            print(f"{seen:>9,} texts  RSS {rss:6.1f} MiB  {time.perf_counter() - start:5.1f} s", flush=True)


if __name__ == "__main__":
    _transport.aembed = instant  # type: ignore[assignment]
    _transport.check_embed = lambda model, params: None
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
