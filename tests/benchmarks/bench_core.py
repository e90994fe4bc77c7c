"""Issue #2: ``import llmkit`` time, and llmkit's per-call overhead over raw ``litellm.acompletion``.

    python tests/benchmarks/bench_core.py            # full: 5 imports each, 5 x 1,000 calls per variant
    python tests/benchmarks/bench_core.py --quick    # smoke run: 3 imports each, 2 x 200 calls
    python tests/benchmarks/bench_core.py --profile  # also cProfile llmkit's calls: where its own time goes
    python tests/benchmarks/bench_core.py --only inflight  # llmkit's own CPU with requests in flight, GC included
    python tests/benchmarks/bench_core.py --only cached    # llmkit's CPU per prompt when every prompt is a cache hit

To compare two versions of llmkit, run the same script with ``PYTHONPATH`` on each tree (the script runs from any
directory; without ``PYTHONPATH`` it imports the installed llmkit), alternating the runs.

The fake provider runs in a subprocess (``_common.RemoteFake``), so the client's wall and CPU times are its own.
Raw litellm gets the kwargs llmkit sends (num_retries=0, max_retries=0, api_base, api_key). Variants alternate
(raw, llmkit, llmkit, raw, ...) and the median of the repetitions is reported, with the median of the paired ratios.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    API_KEY,
    MODEL,
    RemoteFake,
    Timing,
    environment,
    markdown_table,
    median,
    profile_report,
    progress,
    quiet_litellm,
    section,
    timed,
)

IMPORT_TARGET_S = 0.3
WALL_TARGET_RATIO = 1.05
CPU_TARGET_MS = 0.5

_IMPORT_CHILD = """
import os, sys, time, json
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
heavy = ("litellm", "langchain_core", "aiohttp", "openai")
print(json.dumps({{"import_s": elapsed, "loaded": {{m: m in sys.modules for m in heavy}}}}))
"""

_FIRST_ANSWER_CHILD = """
import os, sys, time, json
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
start = time.perf_counter()
if {llmkit}:
    import llmkit
    client = llmkit.LLMClient(llmkit.Model("{model}", api_base="{base}", api_key="{key}"))
    text = client.complete("hello").text
else:
    import litellm
    text = litellm.completion(model="{model}", messages=[{{"role": "user", "content": "hello"}}], num_retries=0,
                              max_retries=0, api_base="{base}", api_key="{key}").choices[0].message.content
print(json.dumps({{"first_answer_s": time.perf_counter() - start, "text": text}}))
"""


def _child(code: str) -> tuple[dict, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return json.loads(out.stdout.strip().splitlines()[-1]), wall


def bench_import(runs: int, fake: RemoteFake) -> list[str]:
    section("Import time")
    cases = {
        "import llmkit": _IMPORT_CHILD.format(module="llmkit"),
        "import litellm": _IMPORT_CHILD.format(module="litellm"),
        "python -c pass (interpreter start)": "import json; print(json.dumps({'import_s': 0.0, 'loaded': {}}))",
    }
    results: dict[str, list[tuple[dict, float]]] = {name: [] for name in cases}
    for run in range(runs):  # interleaved, so drift in machine load hits every case alike
        for name, code in cases.items():
            results[name].append(_child(code))
        progress(f"import run {run + 1}/{runs}")
    rows = []
    for name, samples in results.items():
        loaded = samples[0][0]["loaded"]
        rows.append(
            [
                name,
                median([s[0]["import_s"] for s in samples]),
                median([s[1] for s in samples]),
                ", ".join(m for m, yes in loaded.items() if yes) or "-",
            ]
        )
    print(markdown_table(["case", "import s (median)", "process wall s (median)", "also imported"], rows))

    first = {"llmkit: import + LLMClient + complete()": True, "litellm: import + completion()": False}
    first_samples: dict[str, list[float]] = {name: [] for name in first}
    for _ in range(runs):
        for name, use_llmkit in first.items():
            code = _FIRST_ANSWER_CHILD.format(llmkit=use_llmkit, model=MODEL, base=fake.api_base(), key=API_KEY)
            first_samples[name].append(_child(code)[0]["first_answer_s"])
    first_rows = [[name, median(samples)] for name, samples in first_samples.items()]
    print()
    print(markdown_table(["time to first answer (fresh process, fake provider)", "s (median)"], first_rows))

    llmkit_s = rows[0][1]
    litellm_loaded = "litellm" in rows[0][3]
    verdicts = [
        f"import llmkit {llmkit_s:.3f} s <= {IMPORT_TARGET_S} s: {'PASS' if llmkit_s <= IMPORT_TARGET_S else 'FAIL'}",
        f"litellm not imported by import llmkit: {'FAIL' if litellm_loaded else 'PASS'}",
    ]
    print("\n" + "\n".join(verdicts))
    return verdicts


async def _sequential(call: Callable[[int], Awaitable[object]], n: int, offset: int) -> None:
    for i in range(n):
        await call(offset + i)


async def _concurrent(call: Callable[[int], Awaitable[object]], n: int, offset: int, concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await call(i)

    await asyncio.gather(*(one(offset + i) for i in range(n)))


async def bench_overhead(n: int, reps: int, concurrency: int, base: str, profile: bool) -> list[str]:
    litellm = quiet_litellm()

    from llmkit import LLMClient, Model

    section("Per-call overhead")
    client = LLMClient(Model(MODEL, api_base=base, api_key=API_KEY))  # no cache, default retry policy

    async def raw(i: int) -> object:
        return await litellm.acompletion(
            model=MODEL,
            messages=[{"role": "user", "content": f"overhead prompt {i}"}],
            num_retries=0,
            max_retries=0,
            api_base=base,
            api_key=API_KEY,
        )

    async def kit(i: int) -> object:
        return await client.acomplete(f"overhead prompt {i}")

    async def kit_batch(offset: int, count: int) -> None:
        results = await client.abatch(
            [f"overhead prompt {offset + i}" for i in range(count)], max_in_flight=concurrency
        )
        assert all(c.ok for c in results)

    # Warm up: connection pools, LiteLLM's first-call imports and llmkit's provider-facts cache.
    await _sequential(raw, 50, 0)
    await _sequential(kit, 50, 0)

    # Each repetition runs n calls per variant, in blocks that alternate between the variants (ABBA...), so a burst
    # of load from other processes on this shared machine hits every variant alike.
    modes: dict[str, tuple[int, dict[str, Callable[[int, int], Awaitable[None]]]]] = {
        "sequential": (
            max(1, n // 10),
            {
                "raw litellm.acompletion": lambda off, k: _sequential(raw, k, off),
                "llmkit acomplete": lambda off, k: _sequential(kit, k, off),
            },
        ),
        f"concurrency {concurrency}": (
            max(concurrency, n // 4),
            {
                "raw litellm.acompletion": lambda off, k: _concurrent(raw, k, off, concurrency),
                "llmkit acomplete": lambda off, k: _concurrent(kit, k, off, concurrency),
                "llmkit abatch": lambda off, k: kit_batch(off, k),
            },
        ),
    }
    rows, verdicts = [], []
    offset = 1_000
    for mode, (block, runners) in modes.items():
        samples: dict[str, list[Timing]] = {name: [] for name in runners}
        names = list(runners)
        for rep in range(reps):
            totals = {name: Timing() for name in names}
            for index in range(0, n, block):
                count = min(block, n - index)
                for name in names if (index // block) % 2 == 0 else names[::-1]:
                    # A full collection walks litellm's heap for ~0.3 s: without this, whichever block happens to
                    # cross the collector's threshold pays for every block's garbage (+0.3 ms on each of its calls).
                    gc.collect()
                    with timed() as t:
                        await runners[name](offset, count)
                    offset += count
                    totals[name].add(t)
            for name in names:
                samples[name].append(totals[name])
            progress(f"{mode} rep {rep + 1}/{reps}")
        raw_wall = [t.wall_s for t in samples[names[0]]]
        raw_cpu = [t.cpu_s for t in samples[names[0]]]
        for name in names:
            wall = [t.wall_s for t in samples[name]]
            cpu = [t.cpu_s for t in samples[name]]
            ratios = sorted(w / r for w, r in zip(wall, raw_wall, strict=False))
            ratio = median(ratios)
            extra_cpu_ms = median([(c - r) / n * 1e3 for c, r in zip(cpu, raw_cpu, strict=False)])
            rows.append(
                [
                    mode,
                    name,
                    median(wall) / n * 1e3,
                    median(cpu) / n * 1e3,
                    ratio,
                    f"{ratios[0]:.2f}-{ratios[-1]:.2f}",
                    extra_cpu_ms,
                    median([t.gc_s for t in samples[name]]) / n * 1e3,
                    median([t.full_collections for t in samples[name]]),
                    n / median(wall),
                ]
            )
            if name != names[0]:
                verdicts.append(
                    f"{mode}, {name}: wall {ratio:.3f}x raw (target <= {WALL_TARGET_RATIO}): "
                    f"{'PASS' if ratio <= WALL_TARGET_RATIO else 'FAIL'}; {extra_cpu_ms:+.3f} ms CPU/call "
                    f"(target <= {CPU_TARGET_MS}): {'PASS' if extra_cpu_ms <= CPU_TARGET_MS else 'FAIL'}"
                )
    print(
        markdown_table(
            [
                "mode",
                "variant",
                "wall ms/call",
                "CPU ms/call",
                "wall vs raw (paired median)",
                "paired range",
                "CPU ms/call vs raw",
                "GC ms/call",
                "full collections",
                "calls/s",
            ],
            rows,
        )
    )
    print(
        f"\n{reps} repetitions of {n:,} calls per variant, run in alternating blocks "
        f"({modes['sequential'][0]} sequential, {max(concurrency, n // 4)} concurrent); medians over repetitions."
    )
    print("\n" + "\n".join(verdicts))

    if profile:
        import cProfile

        section("Profile: llmkit acomplete, sequential")
        profiler = cProfile.Profile()
        profiler.enable()
        await _sequential(kit, n, offset)
        profiler.disable()
        print(profile_report(profiler, n, skip=("acompletion",)))
    return verdicts


async def _per_op_us(op: Callable[[], Awaitable[object]] | Callable[[], object], n: int, reps: int = 3) -> float:
    """Median over ``reps`` of the CPU microseconds one call of ``op`` takes (awaited if it returns a coroutine)."""
    samples = []
    for _ in range(reps):
        start = time.process_time()
        for _ in range(n):
            result = op()
            if asyncio.iscoroutine(result):
                await result
        samples.append((time.process_time() - start) / n * 1e6)
    return median(samples)


async def bench_breakdown(n: int, base: str) -> None:
    """llmkit's own CPU per call, stage by stage, with the provider call replaced by a replayed real response."""
    from llmkit import LLMClient, Model, RetryPolicy
    from llmkit._retry import retrying

    response = await _sample_response(base)
    transport = _replay(response)
    client = LLMClient(Model(MODEL, api_base=base, api_key=API_KEY), transport=transport)
    plan = client.plan("breakdown prompt")
    request = next(iter(plan.requests.values()))
    completion = await client.acomplete("breakdown prompt")

    async def retry_loop() -> None:
        async for attempt in retrying(RetryPolicy()):
            with attempt:
                pass

    counter = iter(range(10**9))
    stages = [
        ("whole acomplete, provider call replayed", lambda: client.acomplete(f"p {next(counter)}")),
        ("  plan(): messages, merge, capability check, fingerprint", lambda: client.plan(f"p {next(counter)}")),
        ("  _retry.retrying() + one attempt (tenacity; used from the second attempt on)", retry_loop),
        ("  _transport._kwargs()", lambda: transport._kwargs(request)),
        (
            "  _transport._completion(): model_dump + normalize + cost",
            lambda: transport._completion(response, request, 0.0),
        ),
        ("    of which ModelResponse.model_dump()", lambda: response.model_dump()),
        (
            "  Completion.model_copy(attempts, latency_s)",
            lambda: completion.model_copy(update={"attempts": 1, "latency_s": 0.1}),
        ),
        ("  status.record()", lambda: client.status.record(completion)),
    ]
    rows = [[name, await _per_op_us(op, n)] for name, op in stages]

    async def batch_of(k: int) -> None:
        await client.abatch([f"b {next(counter)}" for _ in range(k)])

    per_prompt = await _per_op_us(lambda: batch_of(1_000), max(1, n // 1_000)) / 1_000
    rows.append(["abatch per prompt, provider call replayed (batch engine included)", per_prompt])
    print("\nWhere llmkit's own CPU goes (no network; a real LiteLLM response replayed in place of the call):\n")
    print(markdown_table(["stage", "CPU us/call (median of 3)"], rows))


async def _sample_response(base: str) -> Any:
    """One real LiteLLM response from the fake, to replay in place of the provider call."""
    return await quiet_litellm().acompletion(
        model=MODEL,
        messages=[{"role": "user", "content": "a response to replay"}],
        num_retries=0,
        max_retries=0,
        api_base=base,
        api_key=API_KEY,
    )


def _replay(response: Any, latency_s: float = 0.0) -> Any:
    """A transport doing everything LiteLLMTransport does around the call (kwargs, model_dump, normalize, cost), with
    the call itself replaced by ``response`` after ``latency_s``."""
    from llmkit._transport import LiteLLMTransport

    class Replay(LiteLLMTransport):
        async def acomplete(self, request):  # type: ignore[no-untyped-def]
            self._kwargs(request)
            if latency_s:
                await asyncio.sleep(latency_s)
            return self._completion(response, request, latency_s)

    return Replay()


async def bench_in_flight(base: str, n: int, reps: int) -> None:
    """llmkit's own CPU per prompt, garbage collection included, when each replayed call takes 50 ms: what a request
    holds lives through young collections and is promoted, as in a real batch, and garbage in reference cycles waits
    for full collections, which walk litellm's whole heap (~0.3 s each)."""
    from llmkit import LLMClient, Model

    section("In flight: llmkit's own CPU per prompt, garbage collection included")
    response = await _sample_response(base)
    client = LLMClient(Model(MODEL, api_base=base, api_key=API_KEY), transport=_replay(response, latency_s=0.05))

    async def bare(prompts: list[str]) -> list[str]:
        semaphore = asyncio.Semaphore(100)

        async def one(prompt: str) -> str:
            async with semaphore:
                await asyncio.sleep(0.05)
                return str(response.choices[0].message.content)

        return await asyncio.gather(*(one(p) for p in prompts))

    async def kit(prompts: list[str]) -> list[str]:
        return await client.abatch(prompts, max_in_flight=100, return_completions_only=True)

    runners = {"asyncio.gather + Semaphore(100), sleep 50 ms": bare, "llmkit abatch, replayed call of 50 ms": kit}
    samples: dict[str, list[Timing]] = {name: [] for name in runners}
    for rep in range(reps):
        for name, run in runners.items() if rep % 2 == 0 else list(runners.items())[::-1]:
            gc.collect()
            with timed() as t:
                await run([f"in flight {rep} {i}" for i in range(n)])
            samples[name].append(t)
    gc.collect()
    gc.disable()
    try:
        await kit([f"garbage {i}" for i in range(1_000)])
        cyclic = gc.collect() / 1_000
    finally:
        gc.enable()
    rows = [
        [
            name,
            median([t.cpu_s for t in ts]) / n * 1e6,
            median([t.gc_s for t in ts]) / n * 1e6,
            median([t.full_collections for t in ts]),
        ]
        for name, ts in samples.items()
    ]
    print(f"{n:,} prompts, 100 at a time, each call replayed after 50 ms ({reps} alternating runs):\n")
    print(markdown_table(["variant", "CPU us/prompt", "of which GC us/prompt", "full collections per run"], rows))
    print(
        f"\nllmkit's own CPU per prompt, GC included: {rows[1][1] - rows[0][1]:.0f} us; "
        f"objects left in reference cycles per call: {cyclic:.1f}"
    )


async def bench_cached(base: str, n: int, reps: int) -> None:
    """llmkit's CPU per prompt for a batch rerun in which every prompt is a cache hit (nothing sent): the cache read,
    plan and fingerprint, and the batch engine."""
    import tempfile

    from llmkit import LLMClient, Model

    section("Cached rerun: llmkit's CPU per prompt, every prompt a cache hit")
    response = await _sample_response(base)
    prompts = [f"cached {i}" for i in range(n)]
    samples: list[Timing] = []
    with tempfile.TemporaryDirectory() as directory:
        client = LLMClient(Model(MODEL, api_base=base, api_key=API_KEY), cache=directory, transport=_replay(response))
        await client.abatch(prompts)  # fills the cache
        for _ in range(reps):
            gc.collect()
            with timed() as t:
                results = await client.abatch(prompts)
            assert all(c.cache_hit for c in results)
            samples.append(t)
        client.close()
    cpu = sorted(t.cpu_s / n * 1e6 for t in samples)
    print(f"{n:,} prompts, all cache hits, {reps} runs: CPU us/prompt median {median(cpu):.1f} (range {cpu[0]:.1f}-"
          f"{cpu[-1]:.1f}); GC us/prompt {median([t.gc_s / n * 1e6 for t in samples]):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N for a smoke run")
    parser.add_argument("--profile", action="store_true", help="cProfile llmkit's per-call path afterwards")
    parser.add_argument("--only", choices=["import", "overhead", "inflight", "cached"], help="run one part")
    args = parser.parse_args()
    import_runs, n, reps = (3, 200, 2) if args.quick else (5, 1_000, 5)

    print(f"# bench_core{' --quick' if args.quick else ''}: {environment()}")
    print("fake provider: subprocess (RemoteFake), latency 0")
    verdicts: list[str] = []
    with RemoteFake(latency_s=0.0) as fake:
        if args.only in (None, "import"):
            verdicts += bench_import(import_runs, fake)
        if args.only in (None, "overhead"):
            verdicts += asyncio.run(bench_overhead(n, reps, 50, fake.api_base(), args.profile))
            asyncio.run(bench_breakdown(2_000 if args.quick else 10_000, fake.api_base()))
        if args.only in (None, "inflight"):
            asyncio.run(bench_in_flight(fake.api_base(), 2_000 if args.quick else 10_000, 2 if args.quick else 5))
        if args.only in (None, "cached"):
            asyncio.run(bench_cached(fake.api_base(), 1_000 if args.quick else 5_000, 3 if args.quick else 5))
        print(f"\nfake provider saw {fake.count:,} requests; {fake.count_status(200):,} answered 200")
    section("Verdicts")
    print("\n".join(f"- {v}" for v in verdicts))


if __name__ == "__main__":
    main()
