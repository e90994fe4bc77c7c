"""Bytes on disk per cached 1,536-dim vector: float32 bytes (llmkit's vector store) vs a JSON list of floats.

    PYTHONPATH=. python tests/benchmarks/embed_cache_bytes.py

Writes 5,000 vectors to a fresh cache directory each way (llmkit's ``vectors.db``, one request of 500 at a time; a
JSON list per diskcache entry as completions are stored), checkpoints SQLite's WAL, and counts every file.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from array import array
from pathlib import Path

from llmkit import ResponseCache

N, DIMS = 5000, 1536


def directory_bytes(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main() -> None:
    rng = random.Random(0)
    vectors = [array("f", [rng.uniform(-0.1, 0.1) for _ in range(DIMS)]) for _ in range(50)]
    root = Path(tempfile.mkdtemp(prefix="embed-bytes-"))
    try:
        for label in ("float32 bytes", "JSON list"):
            cache = ResponseCache(root / label.replace(" ", "-"))
            if label == "float32 bytes":
                for start in range(0, N, 500):
                    keys = [hashlib.sha256(str(i).encode()).digest() for i in range(start, start + 500)]
                    cache.vectors.put_many([(key, vectors[i % 50]) for i, key in enumerate(keys)])
                cache.vectors.close()  # the last connection to close checkpoints the WAL into the database
            else:
                with cache._store.transact():
                    for i in range(N):
                        cache._store.set(f"emb:{i:064x}", json.dumps(vectors[i % 50].tolist()))
            cache._store._sql("PRAGMA wal_checkpoint(TRUNCATE)")
            print(f"{label}: {directory_bytes(cache.path) / N:,.0f} bytes per {DIMS:,}-dim vector on disk")
            cache.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
