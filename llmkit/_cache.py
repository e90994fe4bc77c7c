"""A disk cache of completions keyed by fingerprint, shared across processes and runs (diskcache: SQLite + files).

Each ``put`` is its own committed SQLite transaction, so a process killed mid-batch loses nothing already stored.
Entries are JSON (not pickle): readable by any llmkit version and safe to load. Only successful completions are
stored; an entry records the model that answered.

The cache never stops a run: an entry that cannot be read (corrupt, or written by a newer llmkit with a field value
this one does not know) is a miss, logged once; a write that fails (disk full) is logged once and the run goes on
uncached. Only a database that cannot be opened at all is an error, naming its path and how to clear it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ._result import Completion
from .errors import ConfigError

if TYPE_CHECKING:
    import diskcache

    from ._vector_cache import VectorStore

__all__ = ["ResponseCache", "disk_tier"]

logger = logging.getLogger("llmkit")

# Fields whose values a newer llmkit may extend (a new finish reason such as Anthropic's "pause_turn"): an unknown
# value is read as "not known" rather than making the whole entry unreadable.
_LENIENT_ERRORS = frozenset({"literal_error", "enum"})
# What diskcache keeps in its directory: the SQLite database (and its journals) and value files in 2-hex-digit folders.
_DISKCACHE_FILES = re.compile(r"^cache\.db(-wal|-shm|-journal)?$")
_DISKCACHE_DIRS = re.compile(r"^[0-9a-f]{2}$")


class ResponseCache:
    """``ResponseCache("~/.cache/llmkit", ttl=None, namespace=None)``; ``ttl`` in seconds, ``namespace`` isolates.

    Raises ``ConfigError`` when the database at ``path`` is corrupt (``ResponseCache.wipe(path)`` or
    ``llmkit cache clear`` deletes and recreates it).
    """

    def __init__(self, path: str | os.PathLike[str], *, ttl: float | None = None, namespace: str | None = None) -> None:
        self.path = Path(path).expanduser()
        self.ttl = ttl
        self.namespace = namespace
        self._store = _open(self.path)
        self._warned: set[str] = set()
        self._lock = threading.Lock()

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
            completion = self._read(self._key(fingerprint))
            if completion is not None and validate is not None:
                completion = validate(completion)
            if completion is not None:
                return completion.model_copy(
                    update={"cache_hit": True, "attempts": 0, "latency_s": time.perf_counter() - start}
                )
        return None

    def _read(self, key: str) -> Completion | None:
        """One entry, or None when it is absent or cannot be read (then it is a miss, and the fresh answer will
        overwrite it)."""
        try:
            data = self._store.get(key)
            return None if data is None else _parse(data)
        except Exception as exc:  # noqa: BLE001 - a bad entry must be a miss, whatever broke it
            self._warn_once(
                key,
                "cache entry %s in %s cannot be read (%s: %s); treated as a miss, the fresh answer replaces it",
                key,
                self.path,
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
            )
            return None

    def put(self, fingerprint: str, completion: Completion) -> None:
        """Store a successful completion; a failed write (disk full) is logged once and the caller goes on."""
        if not completion.ok:
            return
        try:
            data = completion.model_dump_json(exclude={"error"}, fallback=_fallback)
            self._store.set(self._key(fingerprint), data, expire=self.ttl)
        except Exception as exc:  # noqa: BLE001 - the answer is still returned; only its caching is lost
            self._warn_once(
                "<write>",
                "cannot write to the cache at %s (%s: %s); going on without caching new answers: every answer still "
                "reaches you, but a rerun will send the uncached ones again",
                self.path,
                type(exc).__name__,
                exc,
            )

    def _warn_once(self, topic: str, message: str, *args: object) -> None:
        with self._lock:
            if topic in self._warned:
                return
            self._warned.add(topic)
        logger.warning(message, *args)

    @functools.cached_property
    def vectors(self) -> VectorStore:
        """The embedding vectors of this directory (``_vector_cache``, same namespace and ttl), opened on first use."""
        from ._vector_cache import VectorStore  # here: only embeddings use it, and ``import llmkit`` stays fast

        return VectorStore(self.path, ttl=self.ttl, namespace=self.namespace)

    def __contains__(self, fingerprint: str) -> bool:
        return self._key(fingerprint) in self._store

    def __len__(self) -> int:
        return len(self._store)

    def stats(self) -> dict[str, Any]:
        """Entries, embedding vectors and bytes on disk."""
        return {
            "path": str(self.path),
            "entries": len(self._store),
            "vectors": len(self.vectors),
            "bytes": self._store.volume() + self.vectors.disk_bytes(),
        }

    def clear(self, *, older_than_s: float | None = None) -> int:
        """Remove all entries and vectors, or only those stored more than ``older_than_s`` seconds ago; returns how
        many."""
        removed = self.vectors.clear(older_than_s=older_than_s)
        if older_than_s is None:
            return removed + self._store.clear()
        # diskcache records each row's store_time but offers no public query on it.
        cutoff = time.time() - older_than_s
        rows = self._store._sql("SELECT key FROM Cache WHERE store_time < ?", (cutoff,)).fetchall()
        return removed + sum(bool(self._store.delete(key)) for (key,) in rows)

    def close(self) -> None:
        self._store.close()
        self.vectors.close()

    @staticmethod
    def wipe(path: str | os.PathLike[str]) -> None:
        """Delete the cache database at ``path`` (a corrupt one too), its value files and the embedding vectors,
        leaving an empty cache.

        Only diskcache's and the vectors' own files are removed, so a directory shared with other files keeps them.
        """
        folder = Path(path).expanduser()
        for item in folder.iterdir() if folder.is_dir() else ():
            if item.is_file() and _DISKCACHE_FILES.match(item.name):
                item.unlink()
            elif item.is_dir() and _DISKCACHE_DIRS.match(item.name):
                shutil.rmtree(item)
        from ._vector_cache import remove_files

        remove_files(folder)
        _open(folder).close()


def disk_tier(cache: object) -> ResponseCache | None:
    """The on-disk ``ResponseCache`` of a client's cache: itself, or the local tier in front of a shared one (Redis);
    None when there is none. Embedding vectors and provider-batch manifests live only there."""
    if isinstance(cache, ResponseCache):
        return cache
    local = getattr(cache, "local", None)
    return local if isinstance(local, ResponseCache) else None


def _open(path: Path) -> diskcache.Cache:
    import diskcache  # here, at the first cache opened: it imports pickle and more (~6 ms of ``import llmkit``)

    try:
        return diskcache.Cache(str(path), eviction_policy="none", size_limit=2**62)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"the cache database in {path} is corrupt ({exc}); clear it with `llmkit cache clear --cache-dir {path}` "
            "(or ResponseCache.wipe(path)), which deletes and recreates it"
        ) from None


def _parse(data: str) -> Completion:
    """An entry as a ``Completion``; a value this llmkit does not know for an extensible field becomes None."""
    try:
        return Completion.model_validate_json(data)
    except ValidationError as exc:
        lenient = [e["loc"][0] for e in exc.errors() if e["type"] in _LENIENT_ERRORS and len(e["loc"]) == 1]
        if not lenient or len(lenient) != exc.error_count():
            raise
        fields = json.loads(data)
        logger.debug("cache entry read leniently: unknown values for %s", lenient)
        return Completion.model_validate({**fields, **dict.fromkeys(lenient)})


def _fallback(value: Any) -> Any:
    return str(value)
