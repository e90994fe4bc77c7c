"""Embedding vectors in the cache directory: float32 bytes, one SQLite row per vector, in a database of their own.

The vectors live beside the ``ResponseCache``'s diskcache (same directory, namespace and ttl; ``ResponseCache.vectors``
opens them), so one ``cache=`` covers completions and embeddings, and its ``clear``/``wipe``/``stats`` cover both.
They have their own file, ``vectors.db``, because a diskcache ``set`` runs five statements and two triggers per value
(18 µs of CPU per vector on a quiet machine, 34 on a loaded one): that alone made a cold-cache embedding run 1.32x
raw LiteLLM. Here one request's vectors are one statement in one transaction (``_INSERT``: not an ``executemany``,
which gives up the GIL for every row), in WAL mode so a read never waits for a write, under a 32-byte binary key
(docs/benchmarks.md has the numbers).

Float32 is what the providers compute in, so nothing is lost; vectors from the network go through the same float32
round trip, so a hit and a miss return identical numbers. A bad entry (truncated, foreign) or a database that cannot
be read is a miss; a failed write warns once and the run goes on. A commit survives a crash of the process (WAL with
``synchronous=NORMAL``, as diskcache); a power cut may lose the last ones.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from array import array
from pathlib import Path

__all__ = ["VectorStore", "as_float32", "remove_files"]

logger = logging.getLogger("llmkit")

FILE = "vectors.db"
FILES = re.compile(r"^vectors\.db(-wal|-shm|-journal)?$")
_PER_QUERY = 500  # SQLite allows 999 parameters per statement in older builds
# auto_vacuum must be set before the table exists: then deleting vectors (clear, ttl) gives the space back.
_SCHEMA = (
    "PRAGMA auto_vacuum = FULL",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "CREATE TABLE IF NOT EXISTS vectors ("
    " space TEXT NOT NULL,"  # the cache's namespace, '' for none
    " key BLOB NOT NULL,"  # sha256 of the model, the options and the text
    " stored REAL NOT NULL,"  # time.time() when written, for clear(older_than_s)
    " expires REAL,"  # time.time() from which it is a miss (the cache's ttl); NULL: never
    " value BLOB NOT NULL,"  # float32, native byte order
    " PRIMARY KEY (space, key))",
    "CREATE INDEX IF NOT EXISTS vectors_expiring ON vectors (expires) WHERE expires IS NOT NULL",
)


# One statement per request's vectors, over one blob of key+value records that SQLite cuts into rows itself.
# ``executemany`` releases and re-takes the GIL for every row: with the event loop busy parsing replies, each re-take
# waited, and a 2,048-row commit took 100-200 ms of wall for ~10 ms of CPU (docs/benchmarks.md).
_INSERT = (
    "WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < ?5) "
    "INSERT OR REPLACE INTO vectors (space, key, stored, expires, value) "
    "SELECT ?1, substr(?4, n * (?6 + ?7) + 1, ?6), ?2, ?3, substr(?4, n * (?6 + ?7) + ?6 + 1, ?7) FROM i"
)


# Vectors per statement: the blob is a copy of them (12.6 MB for 2,048 of 1,536 floats), made one statement at a time.
_PER_STATEMENT = 2048


def _records(items: list[tuple[bytes, array[float]]]) -> dict[tuple[int, int], bytes]:
    """The items as concatenated key+float32 records, one blob per (key size, value size): normally one."""
    groups: dict[tuple[int, int], list[bytes]] = {}
    for key, vector in items:
        value = vector.tobytes()
        groups.setdefault((len(key), len(value)), []).extend((key, value))
    return {sizes: b"".join(parts) for sizes, parts in groups.items()}


def _whole(value: object) -> bool:
    """Whole float32s: anything else under the key (truncated, foreign) is a miss."""
    return isinstance(value, bytes) and bool(value) and len(value) % 4 == 0


def as_float32(vector: list[float]) -> array[float]:
    """The vector as float32 (what is stored, and what every caller gets back)."""
    return array("f", vector)


class _Connection:
    """One lazily opened connection and the lock that serializes its users (reads on the event loop's thread,
    writes in worker threads: two of these, so a read never waits for a commit)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._con: sqlite3.Connection | None = None
        self.lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        if self._con is None:
            con = sqlite3.connect(self._path, timeout=60, check_same_thread=False)
            try:
                for statement in _SCHEMA:
                    con.execute(statement)
            except BaseException:
                con.close()
                raise
            self._con = con
        return self._con

    def close(self) -> None:
        with self.lock:
            if self._con is not None:
                self._con.close()
                self._con = None


class VectorStore:
    """get/put of one float32 vector per 32-byte key in ``folder/vectors.db``; the file is created on first use."""

    def __init__(self, folder: Path, *, ttl: float | None = None, namespace: str | None = None) -> None:
        self.path = folder / FILE
        self.ttl = ttl
        self._space = namespace or ""
        self._reader = _Connection(self.path)
        self._writer = _Connection(self.path)
        self._warned = False

    def get_many(self, keys: list[bytes]) -> dict[bytes, array[float]]:
        """The stored vectors among ``keys``, one query per 500 keys; a bad or expired entry is a miss."""
        found: dict[bytes, array[float]] = {}
        now = time.time()
        try:
            with self._reader.lock:
                con = self._reader.get()
                for start in range(0, len(keys), _PER_QUERY):
                    part = keys[start : start + _PER_QUERY]
                    query = "SELECT key, value, expires FROM vectors WHERE space = ? AND key IN ({})"
                    rows = con.execute(query.format(",".join("?" * len(part))), (self._space, *part)).fetchall()
                    for key, value, expires in rows:
                        if (expires is None or expires > now) and _whole(value):
                            vector = array("f")
                            vector.frombytes(value)
                            found[key] = vector
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be read is a miss, never a crash
            logger.debug("vector cache read failed: %r", exc)
            return {}
        return found

    def put_many(self, items: list[tuple[bytes, array[float]]]) -> None:
        """Store vectors (one or more requests') in one transaction (and drop the expired ones when there is a ttl)."""
        now = time.time()
        expires = None if self.ttl is None else now + self.ttl
        try:
            with self._writer.lock:
                con = self._writer.get()
                with con:
                    for start in range(0, len(items), _PER_STATEMENT):
                        for (key_size, value_size), records in _records(items[start : start + _PER_STATEMENT]).items():
                            count = len(records) // (key_size + value_size)
                            con.execute(_INSERT, (self._space, now, expires, records, count, key_size, value_size))
                    if expires is not None:
                        con.execute("DELETE FROM vectors WHERE expires IS NOT NULL AND expires <= ?", (now,))
        except Exception as exc:  # noqa: BLE001 - an answer that cannot be stored is still returned
            if not self._warned:
                self._warned = True
                logger.warning("could not store embeddings in the cache at %s (%r); going on", self.path, exc)

    def clear(self, *, older_than_s: float | None = None) -> int:
        """Remove every vector (of every namespace), or those stored more than ``older_than_s`` seconds ago.

        A database that cannot be read is deleted: clearing it is what the caller asked for.
        """
        if not self.path.exists():
            return 0
        cutoff = float("inf") if older_than_s is None else time.time() - older_than_s
        try:
            with self._writer.lock:
                con = self._writer.get()
                with con:
                    return con.execute("DELETE FROM vectors WHERE stored < ?", (cutoff,)).rowcount
        except sqlite3.DatabaseError:
            self.close()
            remove_files(self.path.parent)
            return 0

    def __len__(self) -> int:
        """Vectors stored (every namespace); 0 when there is no database or it cannot be read."""
        if not self.path.exists():
            return 0
        try:
            with self._reader.lock:
                return int(self._reader.get().execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        except sqlite3.DatabaseError:
            return 0

    def disk_bytes(self) -> int:
        """Bytes of the database and its journals."""
        return sum(p.stat().st_size for p in self.path.parent.glob(FILE + "*") if FILES.match(p.name))

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


def remove_files(folder: Path) -> None:
    """Delete the vector database and its journals in ``folder`` (``ResponseCache.wipe``)."""
    for item in folder.iterdir() if folder.is_dir() else ():
        if item.is_file() and FILES.match(item.name):
            item.unlink()
