"""Embedding vectors in the client's cache directory, as float32 bytes (not JSON lists of floats).

The vectors share the ``ResponseCache``'s diskcache (same directory, namespace and ttl) under their own key prefix,
so one ``cache=`` covers completions and embeddings. A 1,536-dim vector is 6,144 bytes of float32 against ~31,000 as
a JSON list (docs/benchmarks.md has the measured bytes per row). Float32 is what the providers compute in, so
nothing is lost; vectors from the network go through the same float32 round trip, so a cache hit and a miss return
identical numbers. A bad entry (a truncated or foreign value) is a miss; a failed write warns once and is skipped.
"""

from __future__ import annotations

import logging
import time
from array import array

from diskcache.core import MODE_RAW

from ._cache import ResponseCache

__all__ = ["VectorCache", "as_float32"]

logger = logging.getLogger("llmkit")

_PREFIX = "emb:"
_PER_QUERY = 500  # SQLite allows 999 parameters per statement in older builds


def _whole(value: object) -> bool:
    """Whole float32s: anything else under the key (truncated, foreign) is a miss."""
    return isinstance(value, bytes) and bool(value) and len(value) % 4 == 0


def as_float32(vector: list[float]) -> array[float]:
    """The vector as float32 (what is stored, and what every caller gets back)."""
    return array("f", vector)


class VectorCache:
    """get/put of one vector per key in a ``ResponseCache``'s store."""

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache
        self._store = cache._store
        self._warned = False

    def _key(self, key: str) -> str:
        namespace = self._cache.namespace
        return f"{namespace}:{_PREFIX}{key}" if namespace else _PREFIX + key

    def get_many(self, keys: list[str]) -> dict[str, array[float]]:
        """The stored vectors among ``keys``, in one query per 500 keys; a bad or expired entry is a miss.

        diskcache has no multi-get, so this reads its table (as ``ResponseCache.clear`` does): a str key is stored
        as is with ``raw = 1``, and bytes under ``disk_min_file_size`` (32 KB) inline with ``mode = MODE_RAW`` (larger
        ones in a file, read through ``get``).
        """
        full = {self._key(key): key for key in keys}
        found: dict[str, array[float]] = {}
        names = list(full)
        now = time.time()
        try:
            for start in range(0, len(names), _PER_QUERY):
                part = names[start : start + _PER_QUERY]
                marks = ",".join("?" * len(part))
                query = f"SELECT key, value, mode, expire_time FROM Cache WHERE raw = 1 AND key IN ({marks})"
                rows = self._store._sql(query, part).fetchall()
                for name, value, mode, expire in rows:
                    if expire is not None and expire <= now:
                        continue
                    if mode != MODE_RAW:  # a vector over 32 KB lives in a file of its own
                        value = self._store.get(name)
                    if _whole(value):
                        vector = array("f")
                        vector.frombytes(value)
                        found[full[name]] = vector
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be read is a miss, never a crash
            logger.debug("vector cache read failed: %r", exc)
            return {}
        return found

    def put_many(self, items: list[tuple[str, array[float]]]) -> None:
        """Store one request's vectors in one transaction: a commit per vector cost ~200 µs each."""
        try:
            with self._store.transact():
                for key, vector in items:
                    self._store.set(self._key(key), vector.tobytes(), expire=self._cache.ttl)
        except Exception as exc:  # noqa: BLE001 - an answer that cannot be stored is still returned
            if not self._warned:
                self._warned = True
                logger.warning("could not store embeddings in the cache at %s (%r); going on", self._cache.path, exc)
