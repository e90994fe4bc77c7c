"""Issue #16: ``import llmkit`` (target <= 0.2 s), this tree next to other checkouts, in fresh interpreters.

    git worktree add /tmp/imp-f503 f503231 && git worktree add /tmp/imp-6de1 6de18a7      # the trees to compare
    python tests/benchmarks/bench_import.py --tree /tmp/imp-f503 --tree /tmp/imp-6de1 --reps 9

Each repetition imports every tree once, in turn, so load drift hits them alike. Two ways of running:
- ``bytecode``: the tree's ``__pycache__`` is written first and read after, as for an installed package.
- ``source``: a copy of the package without ``__pycache__``, imported with ``-B``, so llmkit's own modules are compiled
  at every import (pydantic and the stdlib still come from bytecode). This is what a fresh checkout costs when the
  environment sets ``PYTHONDONTWRITEBYTECODE=1``, as this machine's does.
Wall time (``perf_counter``) and the interpreter's CPU time (``process_time``) around ``import llmkit``; the CPU time
is the steadier of the two on a loaded machine. "+ first client" is the import plus building and closing a first
``LLMClient`` (wall): what loads on first use instead of at import is paid there. The load average is printed: this
is a shared 2-core VM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment, markdown_table, section  # noqa: E402

HERE = Path(__file__).resolve()
CODE = (
    "import sys, time; t = time.perf_counter(); c = time.process_time(); import llmkit; "
    "t = time.perf_counter() - t; c = time.process_time() - c; "
    "modules = sum(m.startswith('llmkit') for m in sys.modules); f = time.perf_counter(); "
    "llmkit.LLMClient(llmkit.Model('openai/gpt-4o-mini', api_key='k')).close(); "
    "f = time.perf_counter() - f + t; print(t, c, f, modules, llmkit.__file__)"
)
_MODES = ("bytecode", "source")


def _env(mode: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if mode == "bytecode":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _source_copy(tree: Path, into: Path) -> Path:
    """The tree's package without bytecode, so every import compiles it."""
    copy = into / tree.name
    shutil.copytree(tree / "llmkit", copy / "llmkit", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _once(tree: Path, mode: str) -> tuple[float, float, float, int]:
    args = [sys.executable, *(["-B"] if mode == "source" else []), "-c", CODE]
    out = subprocess.run(args, cwd=tree, env=_env(mode), capture_output=True, text=True, check=True).stdout.split()
    assert out[4].startswith(str(tree)), f"{tree} imported {out[4]}"
    return float(out[0]), float(out[1]), float(out[2]), int(out[3])


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.0f} ({min(values) * 1e3:.0f}-{max(values) * 1e3:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="another llmkit checkout (repeatable)")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--modes", default=",".join(_MODES))
    args = parser.parse_args()
    trees = [HERE.parents[2], *(Path(tree).resolve() for tree in args.tree)]
    modes = args.modes.split(",")
    print(environment(), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        runs: dict[tuple[Path, str], list[tuple[float, float, float, int, float]]] = {}
        sources = {tree: _source_copy(tree, Path(scratch) / str(i)) for i, tree in enumerate(trees)}
        for tree in trees:
            _once(tree, "bytecode")  # writes the tree's __pycache__
        for _ in range(args.reps):
            for mode in modes:
                for tree in trees:
                    where = tree if mode == "bytecode" else sources[tree]
                    load = os.getloadavg()[0]
                    runs.setdefault((tree, mode), []).append((*_once(where, mode), load))
    section(f"import llmkit, fresh interpreter, {args.reps} alternating repetitions, ms median (range)")
    rows = []
    for (tree, mode), values in runs.items():
        wall, cpu, client, modules, load = ([v[i] for v in values] for i in range(5))
        load_range = f"{min(load):.1f}-{max(load):.1f}"
        rows.append([str(tree), mode, _cell(wall), _cell(cpu), _cell(client), int(modules[0]), load_range])
    headers = ["tree", "mode", "wall ms", "CPU ms", "+ first client, wall ms", "llmkit modules", "load"]
    print(markdown_table(headers, rows))
    print(environment(), flush=True)


if __name__ == "__main__":
    main()
