"""Embedding vectors in the client's cache directory, as float32 bytes (not JSON lists of floats).

The vectors share the ``ResponseCache``'s diskcache (same directory, namespace and ttl) under their own key prefix,
so one ``cache=`` covers completions and embeddings. A 1,536-dim vector is 6,144 bytes of float32 against ~31,000 as
a JSON list (docs/benchmarks.md has the measured bytes per row). Float32 is what the providers compute in, so
nothing is lost; vectors from the network go through the same float32 round trip, so a cache hit and a miss return
identical numbers. A bad entry (a truncated or foreign value) is a miss; a failed write warns once and is skipped.
"""

from __future__ import annotations

import logging
from array import array

from ._cache import ResponseCache

__all__ = ["VectorCache", "as_float32"]

logger = logging.getLogger("llmkit")

_PREFIX = "emb:"


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

    def get(self, key: str) -> array[float] | None:
        """The stored vector, or None (also for an entry that is not whole float32 bytes)."""
        try:
            data = self._store.get(self._key(key))
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be read is a miss, never a crash
            logger.debug("vector cache read failed for %s: %r", key, exc)
            return None
        if not isinstance(data, bytes) or not data or len(data) % 4:
            return None
        vector = array("f")
        vector.frombytes(data)
        return vector

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

    def __contains__(self, key: str) -> bool:
        return self._key(key) in self._store
