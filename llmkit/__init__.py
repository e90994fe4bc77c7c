"""llmkit: call many LLMs from Python, boringly.

One parameter-object API over every provider LiteLLM supports, with a disk cache, client-side rate limits, retries,
weighted routing and one normalized ``Completion``. ``import llmkit`` does not import litellm, LangChain or aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from ._cache import ResponseCache
from ._client import LLMClient
from ._fingerprint import fingerprint
from ._params import Model, Prompt, RateLimits, RequestOptions, RetryPolicy, SamplingParams, merge
from ._redis import RedisState
from ._result import Completion, StreamDelta, TokenLogprob, ToolCall, ToolCallChunk, TopLogprob, Usage
from ._status import StatusTracker
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentFilterError,
    ContextWindowExceededError,
    InvalidResponseError,
    LLMError,
    ModelNotFoundError,
    NoModelAvailableError,
    ProviderError,
    RateLimitError,
    TimeoutError,
    UnsupportedFeatureError,
)

if TYPE_CHECKING:
    from .langchain import ChatLLMKit
    from .testing import FakeProvider

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ChatLLMKit",
    "Completion",
    "ConfigError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "FakeProvider",
    "InvalidResponseError",
    "LLMClient",
    "LLMError",
    "Model",
    "ModelNotFoundError",
    "NoModelAvailableError",
    "Prompt",
    "ProviderError",
    "RateLimitError",
    "RateLimits",
    "RedisState",
    "RequestOptions",
    "ResponseCache",
    "RetryPolicy",
    "SamplingParams",
    "StatusTracker",
    "StreamDelta",
    "TimeoutError",
    "TokenLogprob",
    "ToolCall",
    "ToolCallChunk",
    "TopLogprob",
    "UnsupportedFeatureError",
    "Usage",
    "errors",
    "fingerprint",
    "merge",
]

_LAZY = {"ChatLLMKit": "llmkit.langchain", "FakeProvider": "llmkit.testing"}


def __getattr__(name: str) -> Any:
    # LangChain and aiohttp cost import time; load them only when these names are used.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmkit' has no attribute {name!r}")


for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and _obj.__module__.startswith("llmkit._"):
        _obj.__module__ = "llmkit"  # tracebacks and reprs show the public path
del _name, _obj
