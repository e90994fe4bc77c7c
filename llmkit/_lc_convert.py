"""Pure conversions between LangChain messages and llmkit's OpenAI-format dicts and ``Completion``.

No I/O and no client: ``llmkit.langchain`` calls these from invoke, stream and batch alike, so the three paths cannot
disagree. Input messages become the OpenAI chat format that LiteLLM takes for every provider; Anthropic thinking
blocks ride along as ``thinking_blocks`` on assistant dicts, which LiteLLM sends back to Anthropic unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    is_data_content_block,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.block_translators.openai import convert_to_openai_data_block
from langchain_core.messages.tool import InvalidToolCall, ToolCall, invalid_tool_call, tool_call, tool_call_chunk

from . import Completion, ConfigError, StreamDelta, Usage
from . import ToolCall as LLMToolCall

__all__ = ["StreamConverter", "to_ai_message", "to_llmkit_messages", "usage_metadata"]

_THINKING = frozenset({"thinking", "redacted_thinking"})
# Blocks that describe the model's own output (reasoning, tool calls): carried by dedicated fields, never as content.
_NOT_CONTENT = _THINKING | {"reasoning", "tool_use", "tool_call", "tool_call_chunk", "invalid_tool_call"}
_OPENAI_PARTS = frozenset({"image_url", "input_audio"})
_CHAT_ROLES = {"human": "user", "ai": "assistant"}


# -- LangChain messages -> OpenAI-format dicts ------------------------------------------------------------------


def to_llmkit_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI chat-format dicts for LiteLLM; raises ``ConfigError`` for a message type it cannot send."""
    return [_message(message) for message in messages]


def _message(message: BaseMessage) -> dict[str, Any]:
    if isinstance(message, AIMessage):
        converted = _assistant(message)
    elif isinstance(message, ToolMessage):
        converted = {"role": "tool", "tool_call_id": message.tool_call_id, "content": _content(message.content)}
    elif isinstance(message, (HumanMessage, SystemMessage)):
        converted = {"role": "user" if isinstance(message, HumanMessage) else "system"}
        converted["content"] = _content(message.content)
    elif isinstance(message, ChatMessage):
        converted = {"role": _CHAT_ROLES.get(message.role, message.role), "content": _content(message.content)}
    elif isinstance(message, FunctionMessage):
        converted = {"role": "function", "content": _content(message.content)}
    else:
        raise ConfigError(
            f"ChatLLMKit cannot send a {type(message).__name__}; use System/Human/AI/Tool/ChatMessage"
        )
    if message.name:
        converted["name"] = message.name
    return converted


def _content(content: str | list[str | dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A string stays a string (so the cache key equals a plain llmkit call); one plain text block becomes one."""
    if isinstance(content, str):
        return content
    parts = [part for part in (_part(block) for block in content) if part is not None]
    if len(parts) == 1 and parts[0].keys() == {"type", "text"}:
        return str(parts[0]["text"])
    return parts


def _part(block: str | dict[str, Any]) -> dict[str, Any] | None:
    """One content block in OpenAI form; unknown blocks pass through for LiteLLM and the provider to judge."""
    if isinstance(block, str):
        return {"type": "text", "text": block}
    kind = block.get("type")
    if kind in _NOT_CONTENT:
        return None
    if kind == "text":
        # cache_control marks an Anthropic prompt-cache breakpoint; LiteLLM strips it for providers without one.
        return {key: block[key] for key in ("type", "text", "cache_control") if key in block}
    if kind in _OPENAI_PARTS or (kind == "file" and isinstance(block.get("file"), dict)):
        return dict(block)
    if is_data_content_block(block):
        return convert_to_openai_data_block(block)
    if kind == "image" and isinstance(source := block.get("source"), dict):
        return {"type": "image_url", "image_url": {"url": _anthropic_image_url(source)}}
    return dict(block)


def _anthropic_image_url(source: dict[str, Any]) -> str:
    if source.get("type") == "url":
        return str(source["url"])
    return f"data:{source['media_type']};base64,{source['data']}"


def _assistant(message: AIMessage) -> dict[str, Any]:
    """Text, tool calls (valid or not, so every ToolMessage has its call) and thinking blocks, each in its field."""
    blocks = [message.content] if isinstance(message.content, str) else message.content
    texts = [part for part in (_part(b) for b in blocks) if part is not None and part.get("type") == "text"]
    calls = [_openai_call(c["id"], c["name"], json.dumps(c["args"], ensure_ascii=False)) for c in message.tool_calls]
    calls += [_openai_call(c["id"], c["name"], c["args"]) for c in message.invalid_tool_calls]
    known = {call["id"] for call in calls}
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("id") not in known:
            calls.append(_openai_call(block["id"], block["name"], json.dumps(block["input"], ensure_ascii=False)))
    converted: dict[str, Any] = {"role": "assistant", "content": _assistant_text(texts, has_calls=bool(calls))}
    if calls:
        converted["tool_calls"] = calls
    if thinking := _thinking_blocks(message, blocks):
        converted["thinking_blocks"] = thinking
    return converted


def _assistant_text(texts: list[dict[str, Any]], has_calls: bool) -> str | list[dict[str, Any]] | None:
    if not texts or not any(part["text"] for part in texts):
        return None if has_calls else ""
    if all(part.keys() == {"type", "text"} for part in texts):
        return "".join(part["text"] for part in texts)
    return texts


def _openai_call(call_id: str | None, name: str | None, arguments: str | None) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments or "{}"}}


def _thinking_blocks(message: AIMessage, blocks: Sequence[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """Signed thinking blocks to send back: ours (additional_kwargs), Anthropic-native content, or v1 reasoning."""
    if kept := message.additional_kwargs.get("thinking_blocks"):
        return list(kept)
    found = [dict(b) for b in blocks if isinstance(b, dict) and b.get("type") in _THINKING]
    if found:
        return found
    # ChatAnthropic's v1 output keeps the signature in a reasoning block's extras.
    return [
        {"type": "thinking", "thinking": b.get("reasoning", ""), "signature": b["extras"]["signature"]}
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "reasoning" and "signature" in (b.get("extras") or {})
    ]


# -- Completion -> AIMessage -----------------------------------------------------------------------------------


def to_ai_message(completion: Completion) -> AIMessage:
    """The answer as LangChain shows it: ``.content`` is the text string, reasoning sits beside it."""
    calls, invalid = _tool_calls(completion.tool_calls)
    return AIMessage(
        content=completion.text or "",
        additional_kwargs=_reasoning_kwargs(completion.thinking, completion.thinking_blocks),
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(completion.usage),
        response_metadata=response_metadata(completion),
    )


def usage_metadata(usage: Usage) -> UsageMetadata:
    """llmkit's ``Usage`` already counts cached tokens in the input and reasoning in the output, as LangChain does."""
    return UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        input_token_details=InputTokenDetails(
            cache_read=usage.cache_read_tokens, cache_creation=usage.cache_write_tokens
        ),
        output_token_details=OutputTokenDetails(reasoning=usage.reasoning_tokens),
    )


def response_metadata(completion: Completion) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "model_name": completion.model,
        "finish_reason": completion.finish_reason,
        "cost_usd": completion.cost_usd,
        "cache_hit": completion.cache_hit,
        "attempts": completion.attempts,
    }
    if completion.logprobs is not None:
        # OpenAI's shape, so code written against ChatOpenAI's response_metadata["logprobs"] keeps working.
        metadata["logprobs"] = {
            "content": [
                {
                    "token": lp.token,
                    "logprob": lp.logprob,
                    "bytes": lp.bytes,
                    "top_logprobs": [{"token": top.token, "logprob": top.logprob} for top in lp.top],
                }
                for lp in completion.logprobs
            ]
        }
    return metadata


def _reasoning_kwargs(thinking: str | None, blocks: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``reasoning_content`` is what ``content_blocks`` turns into a standard reasoning block."""
    kwargs: dict[str, Any] = {}
    if thinking:
        kwargs["reasoning_content"] = thinking
    if blocks:
        kwargs["thinking_blocks"] = [dict(block) for block in blocks]
    return kwargs


def _tool_calls(calls: list[LLMToolCall]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for call in calls:
        if _is_json(call.raw_arguments):
            valid.append(tool_call(name=call.name, args=call.arguments, id=call.id or None))
        else:
            error = "arguments are not valid JSON"
            invalid.append(invalid_tool_call(name=call.name, args=call.raw_arguments, id=call.id or None, error=error))
    return valid, invalid


def _is_json(text: str) -> bool:
    if not text:
        return True
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


# -- stream deltas -> AIMessageChunks ----------------------------------------------------------------------------


@dataclass
class StreamConverter:
    """One stream's chunks; the last one adds only what the deltas did not carry, so the sum equals ``invoke``.

    A cached answer replays text and thinking as deltas but not its tool calls, which then come on the last chunk.
    """

    text: bool = False
    thinking: bool = False
    tool_calls: bool = False

    def chunk(self, delta: StreamDelta) -> AIMessageChunk:
        if delta.tool_call is not None:
            part = delta.tool_call
            self.tool_calls = True
            return AIMessageChunk(
                content="",
                tool_call_chunks=[tool_call_chunk(name=part.name, args=part.arguments, id=part.id, index=part.index)],
            )
        if delta.thinking:
            self.thinking = True
            return AIMessageChunk(content="", additional_kwargs={"reasoning_content": delta.thinking})
        self.text = self.text or bool(delta.text)
        return AIMessageChunk(content=delta.text or "")

    def last(self, completion: Completion) -> AIMessageChunk:
        """Usage and metadata go on this chunk only, so adding the chunks counts them once."""
        missing_calls = [
            tool_call_chunk(name=call.name, args=call.raw_arguments or json.dumps(call.arguments), id=call.id, index=i)
            for i, call in enumerate(completion.tool_calls)
            if not self.tool_calls
        ]
        return AIMessageChunk(
            content="" if self.text else completion.text or "",
            additional_kwargs=_reasoning_kwargs(None if self.thinking else completion.thinking, completion.thinking_blocks),
            tool_call_chunks=missing_calls,
            usage_metadata=usage_metadata(completion.usage),
            response_metadata=response_metadata(completion),
            chunk_position="last",
        )
