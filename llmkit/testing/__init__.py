"""Test helpers for llmkit users: `FakeProvider`, a local server speaking the OpenAI, Anthropic and Gemini
wire formats, and a `fake_provider` pytest fixture (`llmkit.testing.pytest_plugin`).

Importing this package is cheap: aiohttp and the server load on first use of `FakeProvider`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._server import FakeProvider, RecordedRequest

__all__ = ["FakeProvider", "RecordedRequest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _server

        value = getattr(_server, name)
        value.__module__ = __name__
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
