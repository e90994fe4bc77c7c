"""Names whose modules load at first use, so ``import llmkit`` stays fast (issue 16: <= 0.2 s).

Embeddings, provider batch APIs, worker processes and Redis are a fifth of llmkit's code and most programs use none
of them; uploads and the fast-path transport load when the first ``LLMClient`` is built. ``LLMClient`` still has their
methods, and ``llmkit`` their public names, with the same signatures, docstrings and types (type checkers read the
``TYPE_CHECKING`` branches); only the import moves to the first access.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["PUBLIC", "LazyMethod", "load_public"]

PUBLIC = {
    "BatchJob": "llmkit._provider_batch",
    "BatchStatus": "llmkit._provider_batch",
    "ChatLLMKit": "llmkit.langchain",  # LangChain and aiohttp
    "EmbeddingOptions": "llmkit._embed",
    "EmbeddingResult": "llmkit._embed",
    "FakeProvider": "llmkit.testing",  # aiohttp
    "FileUploads": "llmkit._uploads",
    "ProviderJobStatus": "llmkit._provider_batch",
    "RedisState": "llmkit._redis",
}
"""Public ``llmkit`` names loaded at first use, and their modules."""


def load_public(name: str) -> Any:
    """``llmkit.name``, importing its module: kept in the package's namespace and, like every public class defined in
    a private module, shown as ``llmkit.Name`` in reprs and tracebacks."""
    module = PUBLIC[name]
    value = getattr(importlib.import_module(module), name)
    if isinstance(value, type) and value.__module__.startswith("llmkit._"):
        value.__module__ = "llmkit"
    vars(sys.modules["llmkit"])[name] = value
    return value


def _publish(module: str) -> None:
    """Load every public name of ``module`` (just imported by a lazy method), so its classes show their public path
    whichever way the module was first reached."""
    for name, home in PUBLIC.items():
        if home == module:
            load_public(name)


class LazyMethod:
    """A class attribute bound to ``llmkit.<module>.<name>`` (through ``wrap``, e.g. ``_sync.sync_twin``, if given).

    The first access, from the class or an instance, imports the module and replaces this descriptor on the class by
    the function itself, so later calls, ``inspect.signature``, ``help()`` and pickling see exactly what an eager
    ``aembed = _embed.aembed`` in the class body gave.
    """

    def __init__(self, module: str, name: str, wrap: Callable[[Any], Any] | None = None) -> None:
        self._module = f"llmkit.{module}"
        self._name = name
        self._wrap = wrap
        self._attr = name

    def __set_name__(self, owner: type, attr: str) -> None:
        self._attr = attr

    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        owner = owner if owner is not None else type(instance)
        function = getattr(importlib.import_module(self._module), self._name)
        _publish(self._module)
        if self._wrap is not None:
            function = self._wrap(function)
        holder = next((cls for cls in owner.__mro__ if cls.__dict__.get(self._attr) is self), None)
        if holder is not None:  # None: another thread replaced it first
            setattr(holder, self._attr, function)
        return function.__get__(instance, owner)
