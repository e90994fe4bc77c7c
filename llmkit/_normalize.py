"""LiteLLM responses and stream chunks (as plain dicts) into ``Completion`` fields, one function per quirk.

Pure functions over dicts, so cassettes, the fake provider and real providers go through the same code and this
module never imports litellm.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ._result import Completion, FinishReason, StreamDelta, TokenLogprob, ToolCall, ToolCallChunk, TopLogprob, Usage
from .errors import InvalidResponseError

__all__ = [
    "chunk_logprobs",
    "completion_from_response",
    "delta_from_chunk",
    "finish_reason",
    "logprobs",
    "tool_calls",
    "usage",
]

logger = logging.getLogger("llmkit")

# Provider spellings that LiteLLM passes through unmapped in some routes, next to the OpenAI ones it maps to.
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "error": "error",
    "malformed_function_call": "error",
}


def finish_reason(raw: str | None, has_tool_calls: bool) -> FinishReason | None:
    """Map any provider's finish reason onto the five llmkit knows; tool calls win over a plain 'stop'."""
    if raw is None:
        return "tool_calls" if has_tool_calls else None
    mapped = _FINISH.get(raw.lower())
    if mapped is None:
        logger.debug("unknown finish reason %r treated as 'stop'", raw)
        mapped = "stop"
    return "tool_calls" if has_tool_calls and mapped == "stop" else mapped


def usage(raw: dict[str, Any] | None) -> Usage:
    """LiteLLM's usage: prompt_tokens already includes cached tokens for every provider (Anthropic's are added back
    in litellm/llms/anthropic/chat/transformation.py calculate_usage), completion_tokens includes reasoning."""
    if not raw:
        return Usage()
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=raw.get("prompt_tokens") or 0,
        output_tokens=raw.get("completion_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or raw.get("reasoning_tokens") or 0,
        cache_read_tokens=prompt_details.get("cached_tokens") or raw.get("cache_read_input_tokens") or 0,
        cache_write_tokens=raw.get("cache_creation_input_tokens") or prompt_details.get("cache_creation_tokens") or 0,
    )


def _parse_arguments(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        logger.warning("a tool call's arguments are not valid JSON; kept in raw_arguments")
        return {}
    return value if isinstance(value, dict) else {"value": value}


def tool_calls(raw: list[dict[str, Any]] | None) -> list[ToolCall]:
    calls = []
    for call in raw or []:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments or {})
        calls.append(
            ToolCall(
                id=call.get("id") or "",
                name=function.get("name") or "",
                arguments=_parse_arguments(arguments),
                raw_arguments=arguments,
            )
        )
    return calls


def logprobs(raw: dict[str, Any] | None) -> list[TokenLogprob] | None:
    content = (raw or {}).get("content")
    if content is None:
        return None
    return [
        TokenLogprob(
            token=item["token"],
            logprob=item["logprob"],
            bytes=item.get("bytes"),
            top=[TopLogprob(token=t["token"], logprob=t["logprob"]) for t in item.get("top_logprobs") or []],
        )
        for item in content
    ]


def _text(content: Any) -> str | None:
    """Empty text is no answer: a reply cut before any text (Gemini thinking away the budget) has text=None."""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or None


def _thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    blocks = message.get("thinking_blocks")
    return [dict(block) for block in blocks] if blocks else None


def completion_from_response(
    response: dict[str, Any], *, cost_usd: float | None, model: str, latency_s: float, attempts: int = 1
) -> Completion:
    """One ``Completion`` from a LiteLLM ModelResponse dumped to a dict.

    Raises ``InvalidResponseError`` (retryable, never cached) for an answer with nothing in it: no choice, or one with
    no text, no tool call, no thinking and no finish reason but a plain "stop" (LiteLLM reports "stop" for an Anthropic
    reply with no content and no stop reason). A provider or gateway in trouble sends HTTP 200 with ``"choices": []``;
    stored as a success it would be served from the cache forever after the provider recovered. A reply cut by
    ``max_tokens`` before any text (``"length"``) or refused (``"content_filter"``) is an answer, and kept.
    """
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = tool_calls(message.get("tool_calls"))
    text = _text(message.get("content"))
    thinking = message.get("reasoning_content") or None
    reason = finish_reason(choice.get("finish_reason"), bool(calls))
    refused = bool(message.get("refusal"))  # OpenAI's refusal field: no content, but an answer
    if text is None and not calls and thinking is None and not refused and reason in (None, "stop"):
        raise InvalidResponseError(
            f"{model} sent an empty answer (no choice, no text, no tool call); retried, never cached",
            model=model,
        )
    return Completion(
        text=text,
        thinking=thinking,
        thinking_blocks=_thinking_blocks(message),
        tool_calls=calls,
        logprobs=logprobs(choice.get("logprobs")),
        finish_reason=reason,
        usage=usage(response.get("usage")),
        cost_usd=cost_usd,
        model=model,
        latency_s=latency_s,
        attempts=attempts,
        raw=response,
    )


def chunk_logprobs(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-token logprobs one stream chunk carries, in OpenAI's shape."""
    items: list[dict[str, Any]] = []
    for choice in chunk.get("choices") or []:
        items += (choice.get("logprobs") or {}).get("content") or []
    return items


def delta_from_chunk(chunk: dict[str, Any]) -> list[StreamDelta]:
    """The deltas one stream chunk carries (usually one; none for a usage-only chunk)."""
    deltas: list[StreamDelta] = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content"):
            deltas.append(StreamDelta(thinking=delta["reasoning_content"]))
        if delta.get("content"):
            deltas.append(StreamDelta(text=delta["content"]))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            deltas.append(
                StreamDelta(
                    tool_call=ToolCallChunk(
                        index=call.get("index") or 0,
                        id=call.get("id"),
                        name=function.get("name"),
                        arguments=function.get("arguments") or "",
                    )
                )
            )
    return deltas
