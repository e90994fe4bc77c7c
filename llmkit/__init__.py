"""llmkit: call many LLMs from Python, boringly.

One parameter-object API over every provider LiteLLM supports, with a disk cache, client-side rate limits, retries,
weighted routing and one normalized ``Completion``. ``import llmkit`` does not import litellm, LangChain or aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _lazy, errors
from ._budget import Budget
from ._cache import ResponseCache
from ._client import LLMClient
from ._files import File
from ._fingerprint import fingerprint
from ._params import Model, Prompt, RateLimits, RequestOptions, RetryPolicy, SamplingParams, merge
from ._result import Completion, StreamDelta, TokenLogprob, ToolCall, ToolCallChunk, TopLogprob, Usage
from ._status import StatusTracker
from ._trace import AttemptFailed, AttemptStarted, CacheHit, CallCompleted, Hooks, Tracer, WaitStarted
from .errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    ContentFilterError,
    ContextWindowExceededError,
    InvalidResponseError,
    LLMError,
    ModelNotFoundError,
    NoModelAvailableError,
    OutputValidationError,
    ProviderError,
    RateLimitError,
    TimeoutError,
    UnsupportedFeatureError,
)

if TYPE_CHECKING:
    from ._embed import EmbeddingOptions, EmbeddingResult
    from ._provider_batch import BatchJob, BatchStatus, ProviderJobStatus
    from ._redis import RedisState
    from ._uploads import FileUploads
    from .langchain import ChatLLMKit
    from .testing import FakeProvider

__version__ = "0.1.0"

__all__ = [
    "AttemptFailed",
    "AttemptStarted",
    "AuthenticationError",
    "BadRequestError",
    "BatchJob",
    "BatchStatus",
    "Budget",
    "BudgetExceededError",
    "CacheHit",
    "CallCompleted",
    "ChatLLMKit",
    "Completion",
    "ConfigError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "EmbeddingOptions",
    "EmbeddingResult",
    "FakeProvider",
    "File",
    "FileUploads",
    "Hooks",
    "InvalidResponseError",
    "LLMClient",
    "LLMError",
    "Model",
    "ModelNotFoundError",
    "NoModelAvailableError",
    "OutputValidationError",
    "Prompt",
    "ProviderError",
    "ProviderJobStatus",
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
    "Tracer",
    "UnsupportedFeatureError",
    "Usage",
    "WaitStarted",
    "errors",
    "fingerprint",
    "merge",
]


def __getattr__(name: str) -> Any:
    if name in _lazy.PUBLIC:  # loaded at first use: modules most programs never need cost import time
        return _lazy.load_public(name)
    raise AttributeError(f"module 'llmkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and _obj.__module__.startswith("llmkit._"):
        _obj.__module__ = "llmkit"  # tracebacks and reprs show the public path
del _name, _obj
