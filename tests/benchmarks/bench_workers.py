"""Issue #16, worker processes: llmkit in one process and with ``workers=2`` next to lm-deluge and raw aiohttp, then
``ChatLLMKit.abatch`` next to ``ChatLiteLLM.abatch``, ``import llmkit`` and the cached path.

    python -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install lm-deluge aiohttp langchain-litellm \\
        "litellm==1.109.3"                                      # the peers' own venv: never llmkit's
    python tests/benchmarks/bench_workers.py --peers-python /tmp/bench-venv/bin/python            # 2,000 x 5 reps
    python tests/benchmarks/bench_workers.py --peers-python /tmp/bench-venv/bin/python --n 500 --reps 3

OpenAI wire, ``max_in_flight`` = concurrency (100), the fake provider in its own process at 50 ms latency, distinct
prompts per client and repetition (no cache anywhere). Every client runs once per repetition, in turn, so load drift
hits them alike. llmkit with workers runs ``LLMClient.abatch_in_workers`` (what ``llmkit run --workers`` runs); its
CPU is this process's plus every worker's whole life (client build included). The peers (``peers_fastpath.py``) run
in a subprocess of the peers' interpreter, and time themselves after a warm-up. The load average is printed with
every number: this is a shared 2-core VM.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))  # this tree's llmkit, not an installed one

from _common import API_KEY, RemoteFake, Timing, environment, markdown_table, quiet_litellm, section, timed  # noqa: E402

MODEL = "openai/gpt-4o-mini"


class _WorkerCpu(logging.Handler):
    """Collects each worker's CPU seconds and full collections from llmkit's DEBUG line at its exit."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.done: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        numbers = getattr(record, "llmkit_worker", None)
        if numbers is not None:
            self.done.append(numbers)


def _load() -> float:
    return os.getloadavg()[0]


def _client(fake: RemoteFake, cache: Path | None = None) -> Any:
    from llmkit import LLMClient, Model

    return LLMClient([Model(MODEL, api_base=fake.api_base("openai"), api_key=API_KEY)], cache=cache)


def _llmkit(fake: RemoteFake, prompts: list[str], concurrency: int, workers: int, freeze: bool = True) -> Timing:
    from llmkit import _workers

    _workers.GC_FREEZE = freeze
    client = _client(fake)
    handler = _WorkerCpu()
    logger = logging.getLogger("llmkit")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.DEBUG
    try:
        with timed() as t:
            if workers == 1:
                results = asyncio.run(client.abatch(prompts, max_in_flight=concurrency))
            else:
                results = asyncio.run(client.abatch_in_workers(prompts, workers=workers, max_in_flight=concurrency))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        client.close()
    assert sum(r.ok for r in results) == len(prompts), "not every prompt was answered"
    t.cpu_s += sum(d["cpu_s"] for d in handler.done)
    t.extra["worker_full_collections"] = sum(d["full_collections"] for d in handler.done)
    return t


def _peer(python: str, peer: str, fake: RemoteFake, n: int, concurrency: int, rep: int) -> Timing:
    command = [python, str(HERE / "peers_fastpath.py"), peer, "--url", fake.url, "--n", str(n)]
    out = subprocess.run(
        [*command, "--concurrency", str(concurrency), "--rep", str(rep)], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"{peer} failed: {out.stderr[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])  # lm-deluge prints its own summary first
    assert data["ok"] == n, f"{peer}: {data['ok']}/{n} answered"
    return Timing(
        wall_s=data["wall_s"], cpu_s=data["cpu_s"], gc_s=data["gc_s"], full_collections=data["full_collections"]
    )


def _row(name: str, n: int, runs: list[tuple[Timing, float]], base_rps: float | None) -> list[Any]:
    rps = [n / t.wall_s for t, _ in runs]
    cpu = [t.cpu_s / n * 1e3 for t, _ in runs]
    gc_ms = [t.gc_s / n * 1e3 for t, _ in runs]
    loads = [load for _, load in runs]
    med = statistics.median(rps)
    return [
        name,
        f"{med:,.0f} ({min(rps):,.0f}-{max(rps):,.0f})",
        f"{statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})",
        f"{statistics.median(gc_ms):.3f}",
        f"{med / base_rps:.2f}x" if base_rps else "",
        f"{min(loads):.1f}-{max(loads):.1f}",
    ]


def _throughput(args: argparse.Namespace, fake: RemoteFake) -> None:
    n, c = args.n, args.concurrency
    clients: dict[str, Callable[[list[str], int], Timing]] = {
        "llmkit, one process": lambda p, rep: _llmkit(fake, p, c, 1),
        "llmkit, workers=2 (gc.freeze)": lambda p, rep: _llmkit(fake, p, c, 2),
        "llmkit, workers=2, no gc.freeze": lambda p, rep: _llmkit(fake, p, c, 2, freeze=False),
    }
    if args.peers_python:
        clients["lm-deluge"] = lambda p, rep: _peer(args.peers_python, "deluge", fake, n, c, rep)
        clients["raw aiohttp, prebuilt JSON"] = lambda p, rep: _peer(args.peers_python, "raw", fake, n, c, rep)
    cold = time.perf_counter()
    _llmkit(fake, [f"warm {i}" for i in range(50)], c, 2)  # starts the fork server (it imports LiteLLM once)
    print(
        f"  first workers=2 batch of 50 (fork server start included): {time.perf_counter() - cold:.1f} s, "
        f"load {_load():.1f}",
        flush=True,
    )
    _llmkit(fake, [f"warm one {i}" for i in range(50)], c, 1)
    runs: dict[str, list[tuple[Timing, float]]] = {name: [] for name in clients}
    for rep in range(args.reps):
        for name, run in clients.items():
            load = _load()
            t = run([f"rep {rep} {name} prompt {i}" for i in range(n)], rep)
            runs[name].append((t, load))
            extra = (
                f", worker full GCs {t.extra['worker_full_collections']}"
                if "worker_full_collections" in t.extra
                else ""
            )
            print(
                f"  rep {rep} {name}: {n / t.wall_s:,.0f} req/s, {t.cpu_s / n * 1e3:.2f} CPU ms/req, "
                f"GC {t.gc_s:.2f} s here ({t.full_collections} full){extra}, load {load:.1f}",
                flush=True,
            )
    deluge = statistics.median([n / t.wall_s for t, _ in runs["lm-deluge"]]) if "lm-deluge" in runs else None
    section(f"OpenAI wire, {n} prompts, concurrency {c}, 50 ms latency, {args.reps} alternating repetitions")
    headers = [
        "client",
        "req/s median (range)",
        "CPU ms/req median (range)",
        "GC ms/req (this process)",
        "vs lm-deluge",
        "load",
    ]
    print(markdown_table(headers, [_row(name, n, r, deluge) for name, r in runs.items()]))


def _langchain(args: argparse.Namespace, fake: RemoteFake) -> None:
    from llmkit.langchain import ChatLLMKit

    n, c = args.lc_n, args.concurrency
    config = {"max_concurrency": c}

    def ours(prompts: list[str]) -> Timing:
        chat = ChatLLMKit(client=_client(fake))
        with timed() as t:
            replies = asyncio.run(chat.abatch(prompts, config=config))
        assert all(str(r.content).startswith("Echo: ") for r in replies)
        return t

    clients: dict[str, Callable[[list[str], int], Timing]] = {"ChatLLMKit.abatch": lambda p, rep: ours(p)}
    if args.peers_python:
        clients["ChatLiteLLM.abatch (langchain-litellm)"] = lambda p, rep: _peer(
            args.peers_python, "chatlitellm", fake, n, c, rep
        )
    ours([f"warm {i}" for i in range(50)])
    runs: dict[str, list[tuple[Timing, float]]] = {name: [] for name in clients}
    for rep in range(args.reps):
        for name, run in clients.items():
            load = _load()
            t = run([f"lc rep {rep} prompt {i}" for i in range(n)], rep)
            runs[name].append((t, load))
            print(
                f"  rep {rep} {name}: {n / t.wall_s:,.0f} req/s, {t.cpu_s / n * 1e3:.2f} CPU ms/req, load {load:.1f}",
                flush=True,
            )
    base = statistics.median([n / t.wall_s for t, _ in runs[next(reversed(runs))]])
    section(f"LangChain abatch, {n} prompts, max_concurrency {c}, 50 ms latency, {args.reps} alternating repetitions")
    headers = ["chat model", "req/s median (range)", "CPU ms/req median (range)", "GC ms/req", "vs ChatLiteLLM", "load"]
    print(markdown_table(headers, [_row(name, n, r, base) for name, r in runs.items()]))


def _import_time(reps: int = 5) -> None:
    code = (
        "import time, sys; t = time.perf_counter(); import llmkit; t = time.perf_counter() - t; "
        "print(t, 'litellm' in sys.modules, 'aiohttp' in sys.modules)"
    )
    seconds, heavy = [], set()
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE.parents[1], check=True
        )
        value, litellm, aiohttp = out.stdout.split()
        seconds.append(float(value))
        heavy |= {name for name, flag in (("litellm", litellm), ("aiohttp", aiohttp)) if flag == "True"}
    section("import llmkit (fresh interpreter)")
    print(
        f"median {statistics.median(seconds):.3f} s (range {min(seconds):.3f}-{max(seconds):.3f}), load "
        f"{_load():.1f}; imported with it: {', '.join(sorted(heavy)) or 'neither litellm nor aiohttp'}"
    )


def _cached(args: argparse.Namespace, fake: RemoteFake) -> None:
    n = args.n
    prompts = [f"cached prompt {i}" for i in range(n)]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        client = _client(fake, Path(directory))
        asyncio.run(client.abatch(prompts))  # fill
        for name, run in (
            ("abatch, one process", lambda: asyncio.run(client.abatch(prompts))),
            ("abatch_in_workers, workers=2", lambda: asyncio.run(client.abatch_in_workers(prompts, workers=2))),
        ):
            times = []
            for _ in range(args.reps):
                load = _load()
                with timed() as t:
                    results = run()
                assert all(r.cache_hit for r in results)
                times.append((t, load))
            rows.append(_row(name, n, times, None))
        client.close()
    section(f"the cached path: {n} prompts, every one a hit")
    print(
        markdown_table(
            ["client", "prompts/s median (range)", "CPU ms/prompt (this process)", "GC ms/prompt", "", "load"], rows
        )
    )


_AB_CODE = """
import os, sys, time, asyncio, tempfile
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
sys.path.insert(0, os.getcwd())
t = time.perf_counter(); import llmkit; imported = time.perf_counter() - t
from llmkit import LLMClient, Model
from llmkit.testing import FakeProvider
prompts = [f"ab prompt {i}" for i in range(int(sys.argv[1]))]
with FakeProvider() as fake, tempfile.TemporaryDirectory() as d:
    client = LLMClient(Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key="k"), cache=d)
    asyncio.run(client.abatch(prompts))
    wall, cpu = time.perf_counter(), time.process_time()
    hits = asyncio.run(client.abatch(prompts))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert all(h.cache_hit for h in hits)
    client.close()
print(imported, len(prompts) / wall, cpu / len(prompts) * 1e3, llmkit.__file__)
"""


def _baseline(args: argparse.Namespace) -> None:
    """``import llmkit`` and the cached path, this tree vs ``--baseline-tree``, alternating, each in a fresh process."""
    trees = {"this tree": str(HERE.parents[1]), f"baseline {args.baseline_tree}": args.baseline_tree}
    runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in trees}
    for _ in range(args.reps):
        for name, tree in trees.items():
            load = _load()
            out = subprocess.run(
                [sys.executable, "-c", _AB_CODE, str(args.n)], cwd=tree, capture_output=True, text=True, check=True
            )
            imported, rate, cpu, path = out.stdout.split()
            assert path.startswith(tree), f"{name} imported {path}"
            runs[name].append((float(imported), float(rate), float(cpu), load))
    section(f"import llmkit and the cached path ({args.n} hits, one process), this tree vs the baseline")
    rows = []
    for name, values in runs.items():
        imp, rate, cpu, load = ([v[i] for v in values] for i in range(4))
        rows.append(
            [
                name,
                f"{statistics.median(imp):.3f} ({min(imp):.3f}-{max(imp):.3f})",
                f"{statistics.median(rate):,.0f} ({min(rate):,.0f}-{max(rate):,.0f})",
                f"{statistics.median(cpu):.3f} ({min(cpu):.3f}-{max(cpu):.3f})",
                f"{min(load):.1f}-{max(load):.1f}",
            ]
        )
    print(markdown_table(["tree", "import llmkit s", "cached prompts/s", "cached CPU ms/prompt", "load"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--lc-n", type=int, default=1000, help="prompts for the LangChain comparison")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--peers-python", help="the peers' venv interpreter (lm-deluge, aiohttp, langchain-litellm)")
    parser.add_argument("--only", default="throughput,langchain,import,cached")
    parser.add_argument("--baseline-tree", help="another llmkit checkout: compare import time and the cached path")
    args = parser.parse_args()
    quiet_litellm()
    print(environment(), flush=True)
    parts = args.only.split(",")
    if args.baseline_tree:
        _baseline(args)
    if "import" in parts:
        _import_time()
    with RemoteFake(latency_s=0.05) as fake:
        if "throughput" in parts:
            _throughput(args, fake)
        if "langchain" in parts:
            _langchain(args, fake)
        if "cached" in parts:
            _cached(args, fake)
    print(environment(), flush=True)


if __name__ == "__main__":
    main()
