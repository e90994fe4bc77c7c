"""Issue #3: the batch engine: throughput, rate-limit fidelity, 429 handling, faults, cache reruns and memory.

    python tests/benchmarks/bench_batch.py                      # everything, full sizes (about an hour: memory)
    python tests/benchmarks/bench_batch.py --quick              # smoke run, small N
    python tests/benchmarks/bench_batch.py --only throughput --profile   # one part; cProfile llmkit's abatch
    python tests/benchmarks/bench_batch.py --only throughput --reps 3    # fewer repetitions (default 7)

The fake provider runs in a subprocess (``_common.RemoteFake``); each memory run is its own child process, so one
run's freed-but-kept heap never becomes the next run's baseline. Each scenario uses its own API key, because the
fake's rate limit is a token bucket per key.
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
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    MODEL,
    RemoteFake,
    RssSampler,
    Timing,
    environment,
    markdown_table,
    median,
    profile_report,
    progress,
    quiet_litellm,
    rss_bytes,
    section,
    timed,
)

MB = 2**20
PARTS = ("throughput", "ratelimit", "ratelimit-server", "faults", "cache", "memory")


def _model(fake_base: str, key: str) -> Any:
    from llmkit import Model

    return Model(MODEL, api_base=fake_base, api_key=key)


def _echo(prompt: str) -> str:
    return f"Echo: {prompt}"  # what the fake answers a plain prompt (llmkit/testing/_replies.py build_reply)


def _verdict(name: str, ok: bool, detail: str) -> str:
    return f"{name}: {detail}: {'PASS' if ok else 'FAIL'}"


# -- 1. throughput ----------------------------------------------------------------------------------------------


async def bench_throughput(fake: RemoteFake, n: int, reps: int, concurrency: int, profile: bool) -> list[str]:
    litellm = quiet_litellm()
    from langchain_litellm import ChatLiteLLM

    from llmkit import LLMClient

    section("Batch throughput")
    fake.reset()
    fake.set_latency(0.05)
    base = fake.api_base()
    key = "k-throughput"
    client = LLMClient(_model(base, key))
    chat = ChatLiteLLM(model=MODEL, api_base=base, api_key=key)

    async def raw(prompts: list[str]) -> list[str]:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> str:
            async with semaphore:
                response = await litellm.acompletion(
                    model=MODEL,
                    messages=[{"role": "user", "content": prompt}],
                    num_retries=0,
                    max_retries=0,
                    api_base=base,
                    api_key=key,
                )
                return response.choices[0].message.content

        return await asyncio.gather(*(one(p) for p in prompts))

    async def kit(prompts: list[str]) -> list[str]:
        return await client.abatch(prompts, max_in_flight=concurrency, return_completions_only=True)

    async def lc(prompts: list[str]) -> list[str]:
        messages = await chat.abatch(prompts, config={"max_concurrency": concurrency})
        return [m.content for m in messages]

    runners = {"raw litellm + Semaphore": raw, "llmkit abatch": kit, "langchain-litellm ChatLiteLLM.abatch": lc}
    for name, run in runners.items():  # warm up pools and first-call imports
        await run([f"warm {name} {i}" for i in range(20)])
    names = list(runners)
    samples: dict[str, list[Timing]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            prompts = [f"throughput {rep} {name[:3]} {i}" for i in range(n)]
            fake.reset()
            fake.set_latency(0.05)
            # Every variant starts with an empty young generation and no pending promotions: otherwise a run inherits
            # the previous variant's garbage and, with it, part of the next ~0.3 s full collection.
            gc.collect()
            with timed() as t:
                texts = await runners[name](prompts)
            sent = fake.count
            if texts != [_echo(p) for p in prompts] or sent != n:
                raise AssertionError(f"{name}: wrong answers or {sent} requests for {n} prompts")
            samples[name].append(t)
            progress(f"throughput rep {rep + 1}/{reps} {name}: {t.wall_s:.1f} s")
    raw_wall = [t.wall_s for t in samples[names[0]]]
    rows = []
    ratios: dict[str, float] = {}
    for name in names:
        wall = [t.wall_s for t in samples[name]]
        paired = sorted(w / r for w, r in zip(wall, raw_wall, strict=True))
        ratios[name] = median(paired)
        rows.append(
            [
                name,
                median(wall),
                f"{ratios[name]:.3f} ({paired[0]:.2f}-{paired[-1]:.2f})",
                median([t.cpu_s for t in samples[name]]) / n * 1e3,
                median([t.gc_s for t in samples[name]]),
                median([t.full_collections for t in samples[name]]),
                n / median(wall),
            ]
        )
    headers = ["variant", "wall s (median)", "wall vs raw: paired median (range)", "CPU ms/request", "GC s (median)"]
    print(markdown_table([*headers, "full collections", "requests/s"], rows))
    print(
        f"\n{n:,} prompts, concurrency {concurrency}, fake latency 50 ms, {reps} alternating repetitions, each after "
        f"gc.collect(). Latency-bound ideal: {n / concurrency * 0.05:.1f} s; the client is CPU-bound well before that."
    )
    kit_ratio = ratios[names[1]]
    verdicts = [
        _verdict("throughput: llmkit wall <= 1.05x raw", kit_ratio <= 1.05, f"{kit_ratio:.3f}x"),
        _verdict(
            "throughput: llmkit faster than ChatLiteLLM",
            rows[1][1] < rows[2][1],
            f"{rows[1][1]:.2f} s vs {rows[2][1]:.2f} s",
        ),
    ]
    print("\n" + "\n".join(verdicts))
    if profile:
        import cProfile

        section("Profile: llmkit abatch")
        fake.reset()
        fake.set_latency(0.05)
        profiler = cProfile.Profile()
        profiler.enable()
        await kit([f"profile {i}" for i in range(n)])
        profiler.disable()
        print(profile_report(profiler, n, skip=("acompletion",)))
    return verdicts


# -- 2 and 3. rate limits ---------------------------------------------------------------------------------------


def _ideal_rate_limited_s(n: int, rpm: float, latency_s: float) -> float:
    """The fake's bucket holds ``rpm`` at the first request, then refills rpm/60 per second; it takes the token after
    the latency sleep and answers at once. So the n-th request cannot be answered before latency + (n - rpm) / rate."""
    return latency_s + max(0.0, (n - rpm) / (rpm / 60.0))


async def bench_rate_limits(fake: RemoteFake, n: int, rpm: float, client_limit: bool) -> list[str]:
    from llmkit import LLMClient, RateLimits

    title = "client RateLimits(requests_per_minute=600)" if client_limit else "no client limit (server 429s only)"
    section(f"Rate-limit fidelity: {title}")
    fake.reset()
    fake.set_latency(0.05)
    fake.rate_limit(rpm)
    key = f"k-ratelimit-{'client' if client_limit else 'server'}"
    prompts = [f"rate limit {key} {i}" for i in range(n)]
    limits = RateLimits(requests_per_minute=rpm) if client_limit else None
    client = LLMClient(_model(fake.api_base(), key), limits=limits)  # built just before, so both buckets start full
    with timed() as t:
        results = await client.abatch(prompts)
    ideal = _ideal_rate_limited_s(n, rpm, 0.05)
    attempts, answered_429 = fake.count, fake.count_status(429)
    lost = sum(1 for c in results if not c.ok)
    wrong = sum(1 for c, p in zip(results, prompts, strict=False) if c.ok and c.text != _echo(p))
    status = client.status
    errors = sorted({type(c.error).__name__ for c in results if c.error is not None})
    rows = [
        [
            title,
            n,
            t.wall_s,
            ideal,
            t.wall_s / ideal,
            attempts,
            attempts / n,
            answered_429,
            100 * answered_429 / max(attempts, 1),
            lost,
            wrong,
        ]
    ]
    print(
        markdown_table(
            [
                "client",
                "prompts",
                "wall s",
                "ideal s",
                "wall/ideal",
                "requests",
                "requests/prompt",
                "429s",
                "429 % of requests",
                "lost",
                "wrong",
            ],
            rows,
        )
    )
    print(f"\nclient.status: {status}")
    if errors:
        print(f"errors of lost prompts: {', '.join(errors)}")
    print(f"fake: {rpm:.0f} requests/min per key (bucket capacity {rpm:.0f}, then {rpm / 60:.0f}/s), latency 50 ms")
    if client_limit:
        verdicts = [
            _verdict(
                "ratelimit: wall within 10% of ideal", t.wall_s <= 1.10 * ideal, f"{t.wall_s:.2f} s vs {ideal:.2f} s"
            ),
            _verdict(
                "ratelimit: < 1% of requests answered 429",
                answered_429 < 0.01 * attempts,
                f"{answered_429} of {attempts}",
            ),
            _verdict("ratelimit: zero lost", lost == 0 and wrong == 0, f"{lost} lost, {wrong} wrong"),
        ]
    else:
        verdicts = [
            _verdict("server 429s only: zero lost", lost == 0 and wrong == 0, f"{lost} lost, {wrong} wrong"),
            _verdict("server 429s only: attempts <= 1.3x prompts", attempts <= 1.3 * n, f"{attempts / n:.2f}x"),
        ]
    print("\n" + "\n".join(verdicts))
    return verdicts


# -- 4. faults --------------------------------------------------------------------------------------------------


def _fault_prompts(n: int) -> list[str]:
    """n prompts, one in 20 a repeat of a prompt ten places earlier (in-batch dedupe and the cache must hold)."""
    prompts = []
    for i in range(n):
        prompts.append(prompts[i - 10] if i % 20 == 19 else f"fault prompt {i}")
    return prompts


async def bench_faults(fake: RemoteFake, n: int) -> list[str]:
    from llmkit import LLMClient, ResponseCache, RetryPolicy

    section("Faults: 10% HTTP 500, 1% connection resets, RetryPolicy(max_attempts=5)")
    fake.reset()
    fake.set_latency(0.05)
    fake.set_faults(error_rate=0.10, reset_rate=0.01, seed=3)
    prompts = _fault_prompts(n)
    distinct = len(set(prompts))
    with tempfile.TemporaryDirectory(prefix="llmkit-bench-") as tmp:
        cache = ResponseCache(tmp)
        client = LLMClient(_model(fake.api_base(), "k-faults"), retry=RetryPolicy(max_attempts=5), cache=cache)
        with timed() as t:
            results = await client.abatch(prompts)
        entries = len(cache)
        client.close()
    attempts, ok_200, answered_500 = fake.count, fake.count_status(200), fake.count_status(500)
    resets = attempts - ok_200 - answered_500
    failed = sum(1 for c in results if not c.ok)
    in_order = len(results) == n and all(c.text == _echo(p) for c, p in zip(results, prompts, strict=False))
    rows = [[n, distinct, t.wall_s, attempts, answered_500, resets, ok_200, failed, in_order, entries]]
    print(
        markdown_table(
            [
                "prompts",
                "distinct",
                "wall s",
                "requests",
                "500s",
                "resets",
                "200s",
                "failed",
                "in order",
                "cache entries",
            ],
            rows,
        )
    )
    print(f"\nclient.status: {client.status}")
    verdicts = [
        _verdict("faults: every prompt ok, in order", failed == 0 and in_order, f"{failed} failed"),
        _verdict("faults: cache entries == distinct prompts", entries == distinct, f"{entries} vs {distinct}"),
        _verdict("faults: one successful request per distinct prompt", ok_200 == distinct, f"{ok_200} vs {distinct}"),
    ]
    print("\n" + "\n".join(verdicts))
    return verdicts


# -- 5. cache ---------------------------------------------------------------------------------------------------


async def bench_cache(fake: RemoteFake, n: int) -> list[str]:
    from llmkit import LLMClient, ResponseCache

    section("Cache rerun")
    fake.reset()
    fake.set_latency(0.0)
    prompts = [f"cache prompt {i}" for i in range(n)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="llmkit-bench-") as tmp:
        model = _model(fake.api_base(), "k-cache")
        client = LLMClient(model, cache=tmp)
        with timed() as first:
            await client.abatch(prompts)
        sent_first = fake.count
        rows.append(["first pass (latency 0)", first.wall_s, n / first.wall_s, first.cpu_s / n * 1e3, sent_first])
        reruns = {
            "rerun, same client": client,
            "rerun, new client on the same directory": LLMClient(model, cache=ResponseCache(tmp)),
        }
        verdicts = []
        for name, rerun_client in reruns.items():
            before = fake.count
            with timed() as t:
                results = await rerun_client.abatch(prompts)
            sent = fake.count - before
            hits = sum(1 for c in results if c.cache_hit)
            right = all(c.text == _echo(p) for c, p in zip(results, prompts, strict=False))
            rate = n / t.wall_s
            rows.append([name, t.wall_s, rate, t.cpu_s / n * 1e3, sent])
            verdicts += [
                _verdict(
                    f"cache {name}: 0 requests, all hits, right answers",
                    sent == 0 and hits == n and right,
                    f"{sent} sent, {hits:,} hits",
                ),
                _verdict(f"cache {name}: >= 5,000 completions/s", rate >= 5_000, f"{rate:,.0f}/s"),
            ]
            rerun_client.close()
    print(markdown_table(["pass", "wall s", "completions/s", "CPU ms/prompt", "requests sent"], rows))
    print(f"\n{n:,} distinct prompts, abatch with default max_in_flight.")
    print("\n" + "\n".join(verdicts))
    return verdicts


# -- 6. memory --------------------------------------------------------------------------------------------------

MEMORY_MODES = ("as_completed", "abatch", "raw")


def _short(path: str) -> str:
    return path.split("site-packages/")[-1].split("/work/main/")[-1].split("lib/python3.11/")[-1]


async def _memory_child(mode: str, n: int, base: str, trace: bool) -> dict[str, Any]:
    """One memory run in this (fresh) process: RSS growth over a warmed-up baseline while n prompts go through."""
    litellm = quiet_litellm()

    from llmkit import LLMClient

    client = LLMClient(_model(base, f"k-memory-{mode}"))  # no cache

    async def raw_stream(prompts: Iterator[str], limit: int = 100) -> Any:
        """Raw litellm over a generator with at most ``limit`` in flight; yields answers, keeps nothing."""
        pending: set[asyncio.Task[Any]] = set()
        for prompt in prompts:
            pending.add(
                asyncio.ensure_future(
                    litellm.acompletion(
                        model=MODEL,
                        messages=[{"role": "user", "content": prompt}],
                        num_retries=0,
                        max_retries=0,
                        api_base=base,
                        api_key=f"k-memory-{mode}",
                    )
                )
            )
            if len(pending) >= limit:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        for task in asyncio.as_completed(pending):
            yield await task

    async def run(count: int, prefix: str, on_done: Any) -> int:
        prompts = (f"{prefix} {i}" for i in range(count))
        ok = 0
        if mode == "as_completed":
            async for _, completion in client.as_completed(prompts):
                ok += completion.ok
                on_done()
        elif mode == "abatch":
            results = await client.abatch(prompts, on_result=lambda i, c: on_done())
            ok = sum(c.ok for c in results)
            on_done.held = results  # type: ignore[attr-defined]  # keep them alive until the peak is read
        else:
            async for response in raw_stream(prompts):
                ok += response.choices[0].message.content is not None
                on_done()
        return ok

    await run(500, "warm-up", lambda: None)  # first-call imports, pools, caches: not what is being measured
    gc.collect()
    baseline = rss_bytes()
    checkpoints: dict[str, float] = {}
    marks = {n * q // 4: f"{q * 25}%" for q in (1, 2, 3, 4)}
    done = 0

    top: list[str] = []

    def on_done() -> None:
        nonlocal done
        done += 1
        if done in marks:
            checkpoints[marks[done]] = (rss_bytes() - baseline) / MB
        if trace and done == n:  # while the batch still holds what it holds
            snapshot = tracemalloc.take_snapshot()
            for stat in snapshot.statistics("traceback")[:8]:
                frames = [_short(f.filename) + f":{f.lineno}" for f in reversed(stat.traceback)]
                top.append(f"{stat.size / MB:.1f} MB in {stat.count:,} blocks: " + " <- ".join(frames[:4]))

    if trace:
        import tracemalloc

        tracemalloc.start(6)
    with RssSampler() as sampler, timed() as t:
        ok = await run(n, "memory prompt", on_done)
    return {
        "mode": mode,
        "n": n,
        "ok": ok,
        "baseline_mb": baseline / MB,
        "peak_growth_mb": (sampler.peak - baseline) / MB,
        "checkpoints_mb": checkpoints,
        "wall_s": t.wall_s,
        "tracemalloc_top": top,
    }


def bench_memory(fake: RemoteFake, n: int, modes: tuple[str, ...], trace: bool) -> list[str]:
    section("Memory")
    fake.set_latency(0.0)
    rows, verdicts = [], []
    for mode in modes:
        fake.reset()  # the fake's request log lives in its own process, but free it anyway
        command = [sys.executable, __file__, "--memory-child", mode, "--n", str(n), "--base", fake.api_base()]
        if trace:
            command.append("--trace")
        progress(f"memory {mode}: {n:,} prompts in a child process")
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"memory child {mode} failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        cp = result["checkpoints_mb"]
        rows.append(
            [
                {
                    "as_completed": "llmkit as_completed (no cache)",
                    "abatch": "llmkit abatch (no cache, holds results)",
                    "raw": "raw litellm, 100 in flight, nothing kept",
                }[mode],
                f"{n:,}",
                result["ok"],
                result["baseline_mb"],
                result["peak_growth_mb"],
                " / ".join(f"{cp.get(k, float('nan')):.0f}" for k in ("25%", "50%", "75%", "100%")),
                result["peak_growth_mb"] * MB / n,
                n / result["wall_s"],
            ]
        )
        for line in result["tracemalloc_top"]:
            print(f"  tracemalloc {mode}: {line}")
        if mode == "as_completed":
            growth = result["peak_growth_mb"]
            verdicts.append(_verdict("memory: as_completed peak RSS growth < 300 MB", growth < 300, f"{growth:.0f} MB"))
    print(
        markdown_table(
            [
                "run",
                "prompts",
                "ok",
                "baseline RSS MB",
                "peak growth MB",
                "growth at 25/50/75/100% MB",
                "bytes/prompt",
                "prompts/s",
            ],
            rows,
        )
    )
    print(
        "\nGenerator input, fake latency 0, 100 in flight; RSS sampled every 20 ms (psutil) in a thread; each run in a "
        "fresh process after a 500-prompt warm-up."
    )
    print("\n" + "\n".join(verdicts))
    return verdicts


# -- main -------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N for a smoke run")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    parser.add_argument("--profile", action="store_true", help="cProfile llmkit's abatch after the throughput run")
    parser.add_argument("--reps", type=int, help="throughput repetitions per variant (default 7; quick 1)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc's top allocations in the memory runs (slow)")
    parser.add_argument("--memory-modes", default=",".join(MEMORY_MODES), help="memory runs, comma-separated")
    parser.add_argument("--memory-n", type=int, help="prompts per memory run (default 200,000; quick 10,000)")
    parser.add_argument("--memory-child", choices=MEMORY_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(asyncio.run(_memory_child(args.memory_child, args.n, args.base, args.trace))))
        return

    quick = args.quick
    parts = args.only or list(PARTS)
    print(f"# bench_batch{' --quick' if quick else ''}: {environment()}")
    print("fake provider: subprocess (RemoteFake)")
    verdicts: list[str] = []
    quiet_litellm()
    start = time.perf_counter()
    with RemoteFake() as fake:
        if "throughput" in parts:
            verdicts += asyncio.run(
                bench_throughput(fake, 400 if quick else 2_000, args.reps or (1 if quick else 7), 100, args.profile)
            )
        if "ratelimit" in parts:
            verdicts += asyncio.run(bench_rate_limits(fake, 700 if quick else 1_000, 600, client_limit=True))
        if "ratelimit-server" in parts:
            verdicts += asyncio.run(bench_rate_limits(fake, 700 if quick else 1_000, 600, client_limit=False))
        if "faults" in parts:
            verdicts += asyncio.run(bench_faults(fake, 400 if quick else 2_000))
        if "cache" in parts:
            verdicts += asyncio.run(bench_cache(fake, 1_000 if quick else 10_000))
        if "memory" in parts:
            n = args.memory_n or (10_000 if quick else 200_000)
            verdicts += bench_memory(fake, n, tuple(args.memory_modes.split(",")), args.trace)
    section("Verdicts")
    print("\n".join(f"- {v}" for v in verdicts))
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
