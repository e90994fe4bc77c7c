"""Shared helpers for the benchmarks: a FakeProvider in its own process, timers, an RSS sampler, tables.

Why a subprocess for the fake: in-process, its aiohttp loop shares the GIL and the process CPU clock with the client
under test, which inflates both and hides the difference between them. ``RemoteFake`` runs
``python tests/benchmarks/_common.py --serve`` and drives it over stdin/stdout with one JSON line per command, so
the benchmarks keep ``rate_limit``, ``set_faults``, ``count`` and ``count_status``. Only 127.0.0.1 is ever contacted.

Not collected by pytest (pyproject's ``norecursedirs``); run a benchmark script directly.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "openai/gpt-4o-mini"
API_KEY = "k"  # anything but "invalid-key" passes the fake's auth check

__all__ = [
    "API_KEY",
    "MODEL",
    "RemoteFake",
    "RssSampler",
    "Timing",
    "environment",
    "markdown_table",
    "median",
    "profile_report",
    "progress",
    "quiet_litellm",
    "rss_bytes",
    "section",
    "timed",
]


class RemoteFake:
    """A ``FakeProvider`` in a child process, with the same control methods the benchmarks need."""

    def __init__(self, latency_s: float = 0.0, seed: int = 0) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", "--latency-s", str(latency_s), "--seed", str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        hello = json.loads(self._readline())
        self.url: str = hello["url"]
        self.pid: int = self._proc.pid

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fake provider process exited (code {self._proc.poll()})")
        return line

    def _call(self, op: str, **args: Any) -> Any:
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
            self._proc.stdin.flush()
            reply = json.loads(self._readline())
        if "error" in reply:
            raise RuntimeError(f"fake provider {op}: {reply['error']}")
        return reply["result"]

    def api_base(self, provider: str = "openai") -> str:
        return self.url + {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}[provider]

    def set_latency(self, latency_s: float) -> None:
        self._call("set_latency", latency_s=latency_s)

    def rate_limit(self, requests_per_minute: float | None = 600) -> None:
        self._call("rate_limit", requests_per_minute=requests_per_minute)

    def set_faults(
        self, error_rate: float = 0.0, reset_rate: float = 0.0, status: int = 500, seed: int | None = None
    ) -> None:
        self._call("set_faults", error_rate=error_rate, reset_rate=reset_rate, status=status, seed=seed)

    def reset(self) -> None:
        """Forget requests, counters, faults and the rate limit (also frees the fake's request log)."""
        self._call("reset")

    @property
    def count(self) -> int:
        return int(self._call("count"))

    def count_status(self, status: int) -> int:
        return int(self._call("count_status", status=status))

    def cpu_s(self) -> float:
        """CPU seconds the fake's process has used so far."""
        return float(self._call("cpu_s"))

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> RemoteFake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(latency_s: float, seed: int) -> None:
    """Child side of ``RemoteFake``: one JSON command per stdin line, one JSON reply per stdout line."""
    from llmkit.testing import FakeProvider

    with FakeProvider(latency_s=latency_s, seed=seed) as fake:
        print(json.dumps({"url": fake.url}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op, args = command["op"], command.get("args", {})
            try:
                if op == "set_latency":
                    fake.latency_s = args["latency_s"]
                    result: Any = None
                elif op == "rate_limit":
                    result = fake.rate_limit(args["requests_per_minute"])
                elif op == "set_faults":
                    result = fake.set_faults(**args)
                elif op == "reset":
                    result = fake.reset()
                elif op == "count":
                    result = fake.count
                elif op == "count_status":
                    result = fake.count_status(args["status"])
                elif op == "cpu_s":
                    result = time.process_time()
                else:
                    raise ValueError(f"unknown op {op!r}")
                reply = {"result": result}
            except Exception as exc:  # noqa: BLE001 - report to the parent instead of dying silently
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)


# -- measuring --------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall and process CPU seconds (all threads of this process; the fake runs elsewhere), and the part of them the
    cyclic garbage collector took: with litellm imported a full collection walks a heap of millions of objects."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    gc_s: float = 0.0
    full_collections: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, other: Timing) -> None:
        """Accumulate another block's times (``extra`` is not summed)."""
        self.wall_s += other.wall_s
        self.cpu_s += other.cpu_s
        self.gc_s += other.gc_s
        self.full_collections += other.full_collections


@contextmanager
def timed() -> Iterator[Timing]:
    result = Timing()
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        result.gc_s += time.perf_counter() - started[0]
        result.full_collections += info["generation"] == 2

    gc.callbacks.append(on_gc)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield result
    finally:
        result.wall_s = time.perf_counter() - wall
        result.cpu_s = time.process_time() - cpu
        gc.callbacks.remove(on_gc)


def quiet_litellm() -> Any:
    """Import litellm with its "Give Feedback / Get Help" banner off: LiteLLM prints it to stdout on every failed
    call, which would bury the tables. Set here, in the benchmark process only: llmkit never sets litellm globals,
    so llmkit users do see that banner once per failed attempt."""
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class RssSampler:
    """Samples this process's RSS every ``interval_s`` in a daemon thread; ``peak`` is the largest seen."""

    def __init__(self, interval_s: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


# -- profiling --------------------------------------------------------------------------------------------------


def _where(key: tuple[str, int, str]) -> str:
    path, line, name = key
    for root in ("/site-packages/", "/work/main/"):
        if root in path:
            path = path.split(root, 1)[1]
    return f"{path}:{line} {name}" if line else name


def profile_report(profiler: Any, calls: int, top: int = 15, own: str = "/llmkit/", skip: Sequence[str] = ()) -> str:
    """Where llmkit's own time goes, per call: its functions by self time, and the outside functions it calls
    directly (pydantic, json, tenacity...) by the time spent in them. ``skip`` drops callees by function name (e.g.
    ``acompletion``, the provider call itself, which the raw baseline pays too)."""
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own_rows = sorted(
        ((tt, ct, key) for key, (_, _, tt, ct, _) in stats.items() if own in key[0]), key=lambda r: r[0], reverse=True
    )
    edges: dict[tuple[Any, Any], float] = {}
    for callee, (_, _, _, _, callers) in stats.items():
        if own in callee[0] or callee[2] in skip:
            continue
        for caller, (_, _, _, ct) in callers.items():
            if own in caller[0]:
                edges[(caller, callee)] = edges.get((caller, callee), 0.0) + ct
    edge_rows = sorted(edges.items(), key=lambda item: item[1], reverse=True)
    total_own = sum(r[0] for r in own_rows)
    total_edges = sum(v for _, v in edge_rows)
    lines = [
        f"llmkit self time {total_own / calls * 1e3:.3f} ms/call; outside code called directly from llmkit "
        f"(minus skipped) {total_edges / calls * 1e3:.3f} ms/call (cProfile inflates both; compare shares)",
        "",
        "| llmkit function | self ms/call | cumulative ms/call |",
        "|---|---|---|",
    ]
    lines += [f"| {_where(k)} | {tt / calls * 1e3:.4f} | {ct / calls * 1e3:.4f} |" for tt, ct, k in own_rows[:top]]
    lines += ["", "| called from (llmkit) | callee | ms/call |", "|---|---|---|"]
    lines += [f"| {_where(a)} | {_where(b)} | {t / calls * 1e3:.4f} |" for (a, b), t in edge_rows[:top]]
    return "\n".join(lines)


# -- reporting --------------------------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "PASS" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def environment() -> str:
    """One line on what the numbers were measured with."""
    import importlib.metadata as md

    versions = []
    for dist in ("llmkit", "litellm", "langchain-litellm", "openai", "aiohttp"):
        try:
            versions.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"Python {platform.python_version()}, {os.cpu_count()} cores, load {load:.1f} at start; "
        + ", ".join(versions)
        + f"; llmkit tree {_revision()}"
    )


def _revision() -> str:
    """The commit measured, and whether llmkit/ had uncommitted changes (read-only git commands)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "llmkit"], cwd=root, capture_output=True, text=True
        ).stdout
    except OSError:
        return "unknown"
    return head.strip() + (" + uncommitted changes in llmkit/" if dirty.strip() else "")


def section(title: str) -> None:
    print(f"\n## {title}\n", flush=True)


def progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_serve_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="serve a FakeProvider driven over stdin (used by RemoteFake)")
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    _args = parse_serve_args()
    _serve(_args.latency_s, _args.seed)


def alternate_wires(
    wire: str,
    clients: Callable[[int], dict[str, Callable[[int], Awaitable[int]]]],
    n: int,
    reps: int,
    base: str,
    unit: str,
) -> list[list[Any]]:
    """Every client of one wire in turn, ``reps`` times (so load drift hits them alike), after a 50-item warm-up;
    one table row per client: rate and CPU per item (median and range), both as ratios to ``base``, and GC.
    ``clients(k)`` gives the clients for ``k`` items, each a coroutine factory taking the repetition number."""
    import asyncio

    for run in clients(50).values():  # warm: imports, price map, pools
        asyncio.run(run(-1))
    runs = clients(n)
    times: dict[str, list[Timing]] = {name: [] for name in runs}
    for rep in range(reps):
        for name, run in runs.items():
            with timed() as t:
                ok = asyncio.run(run(rep))
            assert ok == n, f"{name}: {ok}/{n} answered"
            times[name].append(t)
            print(f"  {wire} rep {rep} {name}: {n / t.wall_s:.0f} {unit}/s, {t.cpu_s / n * 1e3:.2f} CPU ms", flush=True)
    base_rps = median([n / t.wall_s for t in times[base]])
    base_cpu = median([t.cpu_s / n * 1e3 for t in times[base]])
    rows = []
    for name, ts in times.items():
        rps = [n / t.wall_s for t in ts]
        cpu = [t.cpu_s / n * 1e3 for t in ts]
        rows.append(
            [
                wire,
                name,
                f"{median(rps):.0f} ({min(rps):.0f}-{max(rps):.0f})",
                f"{median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})",
                f"{median(rps) / base_rps:.2f}x",
                f"{base_cpu / median(cpu):.2f}x",
                f"{median([t.gc_s / n * 1e3 for t in ts]):.2f}",
            ]
        )
    return rows
