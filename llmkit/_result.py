"""The one normalized result, the same shape for every provider."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from .errors import LLMError

__all__ = [
    "Completion",
    "FinishReason",
    "StreamDelta",
    "ToolCall",
    "ToolCallChunk",
    "TokenLogprob",
    "TopLogprob",
    "Usage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class Usage(BaseModel):
    """Token counts with no double counting.

    ``input_tokens`` counts the whole prompt, cached parts included (``cache_read_tokens`` and ``cache_write_tokens``
    are subsets of it); ``output_tokens`` counts everything generated, thinking included (``reasoning_tokens`` is a
    subset of it). So ``total_tokens`` is simply input + output, whatever the provider's own convention.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields})


class ToolCall(BaseModel):
    """A tool the model asked to call. ``arguments`` is parsed; ``raw_arguments`` keeps the provider's text."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""


class TopLogprob(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    token: str
    logprob: float


class TokenLogprob(BaseModel):
    """One generated token, its log probability, and the most likely alternatives (``top``, most likely first)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    token: str
    logprob: float
    bytes: list[int] | None = None
    top: list[TopLogprob] = Field(default_factory=list)


class Completion(BaseModel):
    """One answer. ``ok`` is False when ``error`` is set (batches keep going and record the error here)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)

    text: str | None = None
    thinking: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = Field(
        None, description="Provider thinking blocks verbatim (signatures included), to send back on the next turn."
    )
    tool_calls: list[ToolCall] = Field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    finish_reason: FinishReason | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = Field(None, description="None when the price is unknown; never a made-up 0.")
    model: str | None = Field(None, description="The model that answered.")
    latency_s: float = 0.0
    attempts: int = 0
    cache_hit: bool = False
    metadata: dict[str, Any] | None = Field(None, description="The call's RequestOptions.metadata, unchanged.")
    error: LLMError | None = Field(None, exclude=True)
    parsed: Any = Field(None, exclude=True, description="The validated value of an ``output=`` call; text is its JSON.")
    raw: dict[str, Any] | None = Field(None, repr=False, description="The provider response, as LiteLLM gave it.")

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_message(self) -> dict[str, Any]:
        """This answer as an assistant message for the next turn (thinking blocks and tool calls kept verbatim)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.thinking_blocks:
            message["thinking_blocks"] = self.thinking_blocks
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments}}
                for c in self.tool_calls
            ]
        return message

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, without ``raw``; the error as a small dict."""
        data = self.model_dump(mode="json", exclude={"raw"})
        data["error"] = self.error.to_dict() if self.error is not None else None
        if self.parsed is not None:
            data["parsed"] = to_jsonable_python(self.parsed)
        return data


class ToolCallChunk(BaseModel):
    """A piece of a streamed tool call: ``arguments`` is a fragment of the JSON text, keyed by ``index``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class StreamDelta(BaseModel):
    """One streamed piece: new text, new thinking, or a tool call fragment."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    text: str | None = None
    thinking: str | None = None
    tool_call: ToolCallChunk | None = None
