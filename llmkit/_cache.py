"""A disk cache of completions keyed by fingerprint, shared across processes and runs (diskcache: SQLite + files).

Each ``put`` is its own committed SQLite transaction, so a process killed mid-batch loses nothing already stored.
Entries are JSON (not pickle): readable by any llmkit version and safe to load. Only successful completions are
stored; an entry records the model that answered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache

from ._result import Completion

__all__ = ["ResponseCache"]


class ResponseCache:
    """``ResponseCache("~/.cache/llmkit", ttl=None, namespace=None)``; ``ttl`` in seconds, ``namespace`` isolates."""

    def __init__(self, path: str | os.PathLike[str], *, ttl: float | None = None, namespace: str | None = None) -> None:
        self.path = Path(path).expanduser()
        self.ttl = ttl
        self.namespace = namespace
        self._store = diskcache.Cache(str(self.path), eviction_policy="none", size_limit=2**62)

    def _key(self, fingerprint: str) -> str:
        return f"{self.namespace}:{fingerprint}" if self.namespace else fingerprint

    def get(
        self, fingerprints: list[str], validate: Callable[[Completion], Completion | None] | None = None
    ) -> Completion | None:
        """The first stored answer among ``fingerprints`` (one per model of the pool), marked as a cache hit.

        ``validate`` checks an entry again (an ``output=`` answer against today's type): None makes it a miss.
        """
        start = time.perf_counter()
        for fingerprint in fingerprints:
            data = self._store.get(self._key(fingerprint))
            if data is not None:
                stored = Completion.model_validate_json(data)
                completion = stored if validate is None else validate(stored)
                if completion is None:
                    continue
                return completion.model_copy(
                    update={"cache_hit": True, "attempts": 0, "latency_s": time.perf_counter() - start}
                )
        return None

    def put(self, fingerprint: str, completion: Completion) -> None:
        if completion.ok:
            data = completion.model_dump_json(exclude={"error"}, fallback=_fallback)
            self._store.set(self._key(fingerprint), data, expire=self.ttl)

    def __contains__(self, fingerprint: str) -> bool:
        return self._key(fingerprint) in self._store

    def __len__(self) -> int:
        return len(self._store)

    def stats(self) -> dict[str, Any]:
        """Entries and bytes on disk."""
        return {"path": str(self.path), "entries": len(self._store), "bytes": self._store.volume()}

    def clear(self, *, older_than_s: float | None = None) -> int:
        """Remove all entries, or only those stored more than ``older_than_s`` seconds ago; returns how many."""
        if older_than_s is None:
            return self._store.clear()
        # diskcache records each row's store_time but offers no public query on it.
        cutoff = time.time() - older_than_s
        rows = self._store._sql("SELECT key FROM Cache WHERE store_time < ?", (cutoff,)).fetchall()
        return sum(bool(self._store.delete(key)) for (key,) in rows)

    def close(self) -> None:
        self._store.close()


def _fallback(value: Any) -> Any:
    return str(value)
