"""The vector store alone: what a cold-cache embedding run must spend in SQLite per text, whatever the engine does.

    PYTHONPATH=. python tests/benchmarks/embed_store_floor.py            # 100,000 keys, 16 dims, 3 repetitions

Per text, as a cold run does it: one lookup (``get_many`` of 256 keys per query, all misses) and one write
(``put_many``), with the writes 2,048 per transaction (one request per commit) or 8,192 (four requests answered during
a commit, committed together). Keys are sha256 digests, as ``_embed`` makes them. Process CPU (SQLite's work included)
and wall per text; the floor to compare with the budget a 1.05x wall ratio leaves (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from array import array
from pathlib import Path

from llmkit._vector_cache import VectorStore


def _run(keys: list[bytes], dims: int, per_commit: int) -> tuple[float, float, float]:
    """(lookup CPU, write CPU, write wall) in µs per text, into a fresh store."""
    folder = Path(tempfile.mkdtemp(prefix="embed-floor-"))
    store = VectorStore(folder)
    vector = array("f", [0.25] * dims)
    try:
        start = time.process_time()
        for i in range(0, len(keys), 256):
            store.get_many(keys[i : i + 256])
        lookup = time.process_time() - start
        start, wall = time.process_time(), time.perf_counter()
        for i in range(0, len(keys), per_commit):
            store.put_many([(key, vector) for key in keys[i : i + per_commit]])
        write, wall = time.process_time() - start, time.perf_counter() - wall
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return lookup / len(keys) * 1e6, write / len(keys) * 1e6, wall / len(keys) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    keys = [hashlib.sha256(b"text %d" % i).digest() for i in range(args.texts)]
    results: dict[int, list[tuple[float, float, float]]] = {2048: [], 8192: []}
    loads = [os.getloadavg()[0]]
    for rep in range(args.reps):
        for per_commit in (2048, 8192) if rep % 2 == 0 else (8192, 2048):
            results[per_commit].append(_run(keys, args.dims, per_commit))
        loads.append(os.getloadavg()[0])
    print(f"{args.texts:,} keys, {args.dims} dims, {args.reps} repetitions (alternating); µs per text, median (range)")
    for per_commit, runs in results.items():
        columns = []
        for label, values in zip(("lookup CPU", "write CPU", "write wall"), zip(*runs, strict=True), strict=True):
            ordered = sorted(values)
            columns.append(f"{label} {ordered[len(ordered) // 2]:.2f} ({ordered[0]:.2f}-{ordered[-1]:.2f})")
        print(f"  {per_commit:5,} vectors per commit: {'; '.join(columns)}")
    print(f"  load (1 min) at start and after each repetition: {', '.join(f'{x:.1f}' for x in loads)}")


if __name__ == "__main__":
    main()
