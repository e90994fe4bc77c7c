"""Structured output: the CPU llmkit adds per ``output=`` call (schema lookup, request shaping, validation).

    python tests/benchmarks/bench_output.py            # 11 alternating repetitions of 2,000 calls each
    python tests/benchmarks/bench_output.py --calls 500 --reps 5

A plain call and a structured call (a 10-field pydantic model) go side by side in one process, in alternating order,
through the whole client (plan, fingerprint, routing, status) with an in-process transport that returns the same
10-field JSON answer to both: the network and LiteLLM are left out, so the difference is llmkit's own work for
``output=``. CPU is ``time.process_time``; garbage collections are counted per repetition.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import environment, markdown_table  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from llmkit import Completion, LLMClient, Model, StreamDelta, Usage  # noqa: E402


class Record(BaseModel):
    """Ten fields of the usual kinds: what an extraction batch asks for."""

    name: str
    company: str
    title: str
    email: str
    city: str
    country: str
    age: int = Field(ge=0, le=150)
    years_employed: int = Field(ge=0)
    salary_usd: float = Field(ge=0)
    is_manager: bool


ANSWER = json.dumps(
    {
        "name": "Ada Lovelace",
        "company": "Analytical Engines Ltd",
        "title": "Engineer",
        "email": "ada@example.com",
        "city": "London",
        "country": "UK",
        "age": 36,
        "years_employed": 10,
        "salary_usd": 120000.0,
        "is_manager": True,
    }
)


class Answer:
    """A transport that answers every request with the same completion at once (no network, no LiteLLM)."""

    def check(self, request: Any) -> None:
        return None

    async def acomplete(self, request: Any) -> Completion:
        return Completion(text=ANSWER, finish_reason="stop", usage=Usage(input_tokens=40, output_tokens=60))

    async def astream(self, request: Any) -> AsyncIterator[StreamDelta | Completion]:
        yield await self.acomplete(request)


async def _calls(client: LLMClient, n: int, offset: int, output: Any) -> None:
    for i in range(n):
        c = await client.acomplete(f"Extract the record from document {offset + i}", output=output)
        assert (c.parsed is not None) == (output is not None)


def _measure(client: LLMClient, n: int, offset: int, output: Any) -> tuple[float, int]:
    """CPU microseconds per call and the garbage collections during the run."""
    gc.collect()
    before = sum(s["collections"] for s in gc.get_stats())
    start = time.process_time()
    asyncio.run(_calls(client, n, offset, output))
    cpu = time.process_time() - start
    return cpu / n * 1e6, sum(s["collections"] for s in gc.get_stats()) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per repetition and kind")
    parser.add_argument("--reps", type=int, default=11, help="alternating repetitions")
    args = parser.parse_args()
    # "json_schema" declared: the mode needs no LiteLLM lookup, so none of LiteLLM's CPU is in either number.
    client = LLMClient(Model("openai/bench", supports=frozenset({"json_schema"})), transport=Answer())
    asyncio.run(_calls(client, 200, -1000, Record))  # warm: imports, the schema cache, pydantic's validators
    asyncio.run(_calls(client, 200, -2000, None))
    plain: list[float] = []
    structured: list[float] = []
    collections = {"plain": 0, "structured": 0}
    for rep in range(args.reps):
        order = [("plain", None), ("structured", Record)]
        for kind, output in order if rep % 2 == 0 else reversed(order):
            us, gcs = _measure(client, args.calls, rep * args.calls * 2 + (kind == "structured") * args.calls, output)
            (plain if kind == "plain" else structured).append(us)
            collections[kind] += gcs
    diffs = [s - p for s, p in zip(structured, plain, strict=True)]
    print(environment())
    print(f"{args.reps} alternating repetitions x {args.calls} calls per kind; CPU per call (process_time)\n")
    rows = [
        ["plain call", statistics.median(plain), min(plain), max(plain), collections["plain"]],
        [
            "output=Record (10 fields)",
            statistics.median(structured),
            min(structured),
            max(structured),
            collections["structured"],
        ],
        ["added by output=", statistics.median(diffs), min(diffs), max(diffs), ""],
    ]
    print(markdown_table(["call", "median µs", "min µs", "max µs", "GC runs"], rows))
    print(f"\nratio structured/plain (median): {statistics.median(structured) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
