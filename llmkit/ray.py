"""Batches on a Ray cluster: ``LLMKitPredictor`` for Ray Data's ``map_batches``, one ``LLMClient`` per actor.

Each actor builds the client of a config pool (``LLMClient.from_config``); with ``shared: {redis_url: ...}`` in the
pool, every actor on every node shares its rate limits, cooldowns and cache through Redis. Rows are what
``llmkit run`` reads (``id``, ``prompt`` or ``messages``, ``sampling``), and the result columns are those of its
output lines, so the two are interchangeable. Install with ``pip install 'llmkit[ray]'`` (``ray[data]``, ``redis``).

A worker node needs llmkit (with the pool's provider packages), the config file at the same path (or ship it with
``runtime_env={"working_dir": ...}``), the provider keys in its environment (``runtime_env={"env_vars": ...}``), and
a route to the Redis URL. An actor runs one batch at a time on its own event loop (no background thread), and
closes its cache and Redis connections when Ray stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._cli_input import LINE_KEYS, _BadLine, _jsonl_item
from ._cli_run import _record
from ._client import LLMClient
from ._result import Completion
from .errors import ConfigError, LLMError

__all__ = ["LLMKitPredictor", "plain", "result_columns"]


def result_columns() -> tuple[str, ...]:
    """The columns ``LLMKitPredictor`` returns: an ``llmkit run`` output line's keys."""
    from ._cli_run import _RESULT_FIELDS

    return ("id", *_RESULT_FIELDS)


class LLMKitPredictor:
    """``ds.map_batches(LLMKitPredictor, fn_constructor_kwargs={"config": "llmkit.yaml", "pool": "default"}, ...)``.

    ``config``: the config file (None: found as ``LLMClient.from_config`` does); ``pool``: its pool. A row that is not
    a valid prompt gets a ``ConfigError`` in its ``error`` column instead of stopping the dataset.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | None = None,
        pool: str = "default",
        *,
        client_factory: Callable[[], LLMClient] | None = None,
    ) -> None:
        """``client_factory`` (a picklable function) builds the client instead of the config (``llmkit run --ray``)."""
        self._client = client_factory() if client_factory is not None else LLMClient.from_config(config, pool)
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()  # an actor allowed several tasks at once calls from several threads

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        rows = list(_rows(batch))
        with self._lock:
            return self._loop.run_until_complete(self.arun(rows))

    async def arun(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """The result columns for ``rows`` (dicts of ``llmkit run``'s line keys), in their order."""
        records: list[dict[str, Any] | None] = [None] * len(rows)
        ids: list[Any] = []
        prompts = []
        positions = []
        for position, row in enumerate(rows):
            try:
                line_id, prompt = _jsonl_item(json.dumps(row), position + 1)
            except _BadLine as exc:
                error = ConfigError(f"row {position + 1}: {exc}")
                records[position] = _record(row.get("id", position + 1), _failed(error))
                continue
            ids.append(line_id)
            prompts.append(prompt)
            positions.append(position)
        for line_id, position, completion in zip(ids, positions, await self._client.abatch(prompts), strict=True):
            records[position] = _record(line_id, completion)
        return {column: [r[column] if r else None for r in records] for column in result_columns()}

    def close(self) -> None:
        """Close the client's cache and shared state; Ray calls ``__del__`` when it stops the actor."""
        self._client.close()
        if self._client.shared is not None:
            self._client.shared.close()
        if not self._loop.is_closed():
            self._loop.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to report to
            pass


def _failed(error: LLMError) -> Completion:
    return Completion(finish_reason="error", error=error)


def _rows(batch: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Ray's column batch (numpy arrays, or a pandas DataFrame) as plain rows of the keys ``llmkit run`` reads."""
    columns = {key: plain(batch[key]) for key in LINE_KEYS if key in batch}
    size = len(next(iter(columns.values()))) if columns else 0
    for index in range(size):
        yield {key: values[index] for key, values in columns.items() if values[index] is not None}


def plain(value: Any) -> Any:
    """numpy/pandas/arrow values as the JSON types they hold (Ray hands lists of dicts as arrays of dicts)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
