"""Pure conversions between LangChain messages and llmkit's OpenAI-format dicts and ``Completion``.

No I/O and no client: ``llmkit.langchain`` calls these from invoke, stream and batch alike, so the three paths cannot
disagree. Input messages become the OpenAI chat format that LiteLLM takes for every provider; Anthropic thinking
blocks ride along as ``thinking_blocks`` on assistant dicts, which LiteLLM sends back to Anthropic unchanged (llmkit's
transport leaves them out for other models, so a history can move between providers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.exceptions import OutputParserException
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
from langchain_core.messages.tool import (
    InvalidToolCall,
    ToolCall,
    invalid_tool_call,
    tool_call,
    tool_call_chunk,
)
from langchain_core.output_parsers import JsonOutputParser
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.utils.function_calling import convert_to_json_schema
from pydantic.v1 import BaseModel as BaseModelV1

from . import Completion, ConfigError, OutputValidationError, RequestOptions, SamplingParams, StreamDelta, Usage, merge
from . import ToolCall as LLMToolCall

__all__ = [
    "StreamConverter",
    "batch_result",
    "call_settings",
    "env_key",
    "failed_output",
    "normalize_tool_choice",
    "parsed_output",
    "provider_of",
    "structured_output",
    "to_ai_message",
    "to_llmkit_messages",
]

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
        raise ConfigError(f"ChatLLMKit cannot send a {type(message).__name__}; use System/Human/AI/Tool/ChatMessage")
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
        additional_kwargs=_reasoning_kwargs(completion.thinking, completion.thinking_blocks) | _parsed(completion),
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(completion.usage),
        response_metadata=response_metadata(completion),
    )


def _parsed(completion: Completion) -> dict[str, Any]:
    """An ``output=`` answer's value, for ``with_structured_output``'s parser (ChatOpenAI keeps it there too)."""
    return {"parsed": completion.parsed} if completion.parsed is not None else {}


def failed_output(error: OutputValidationError) -> AIMessage:
    """The last answer of an ``output=`` call that never validated: the parser raises ``error`` (include_raw keeps
    the message beside it)."""
    return AIMessage(
        content=error.text or "",
        additional_kwargs={"output_error": error},
        response_metadata={"model_name": error.model, "finish_reason": "error"},
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
    """``reasoning_content`` is what ``content_blocks`` turns into a standard reasoning block.

    Only signed (or redacted) thinking blocks are kept: they are what must go back verbatim. LiteLLM (1.106) also
    builds unsigned ones for Gemini, but only when not streaming; they repeat ``reasoning_content``.
    """
    kwargs: dict[str, Any] = {}
    if thinking:
        kwargs["reasoning_content"] = thinking
    signed = [dict(b) for b in blocks or () if b.get("signature") or b.get("type") == "redacted_thinking"]
    if signed:
        kwargs["thinking_blocks"] = signed
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

    Tool calls always arrive as deltas (a cached answer replays them too), so the last chunk never repeats them.
    """

    text: bool = False
    thinking: bool = False

    def chunk(self, delta: StreamDelta) -> AIMessageChunk:
        if delta.tool_call is not None:
            part = delta.tool_call
            return AIMessageChunk(
                content="",
                tool_call_chunks=[tool_call_chunk(name=part.name, args=part.arguments, id=part.id, index=part.index)],
            )
        if delta.thinking:
            self.thinking = True
            return AIMessageChunk(content="", additional_kwargs={"reasoning_content": delta.thinking})
        self.text = self.text or bool(delta.text)
        return AIMessageChunk(content=delta.text or "")

    def convert(self, item: StreamDelta | Completion) -> ChatGenerationChunk:
        message = self.last(item) if isinstance(item, Completion) else self.chunk(item)
        return ChatGenerationChunk(message=message)

    def last(self, completion: Completion) -> AIMessageChunk:
        """Usage and metadata go on this chunk only, so adding the chunks counts them once."""
        return AIMessageChunk(
            content="" if self.text else completion.text or "",
            additional_kwargs=_reasoning_kwargs(
                None if self.thinking else completion.thinking, completion.thinking_blocks
            )
            | _parsed(completion),
            usage_metadata=usage_metadata(completion.usage),
            response_metadata=response_metadata(completion),
            chunk_position="last",
        )


# -- call options --------------------------------------------------------------------------------------------------

_SAMPLING_KWARGS = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "reasoning_effort",
    "thinking_budget",
    "logprobs",
    "top_logprobs",
)
_OPTION_KWARGS = {
    "tools": "tools",
    "tool_choice": "tool_choice",
    "parallel_tool_calls": "parallel_tool_calls",
    "response_format": "response_format",
    "timeout": "timeout_s",
    "output": "output",
    "output_mode": "output_mode",
}
# `stream` is LangChain's own switch, read by BaseChatModel before it calls _generate or _stream.
CALL_KWARGS = frozenset({*_SAMPLING_KWARGS, *_OPTION_KWARGS, "model", "stream"})


def call_settings(
    kwargs: dict[str, Any], stop: list[str] | None, sampling: SamplingParams | None, timeout: float | None
) -> tuple[SamplingParams | None, RequestOptions, str | None]:
    """A call's kwargs (bound tools, per-call overrides) as llmkit objects, and the ``model=`` override if any.

    Unknown kwargs raise instead of reaching the provider, where a typo would be silently ignored or rejected late.
    """
    unknown = sorted(set(kwargs) - CALL_KWARGS)
    if unknown:
        raise ConfigError(
            f"ChatLLMKit got unknown call option(s) {unknown}; allowed: {sorted(CALL_KWARGS - {'stream'})}. "
            "Provider-specific fields go in Model(provider_options=...) on an LLMClient"
        )
    given = {name: kwargs[name] for name in _SAMPLING_KWARGS if kwargs.get(name) is not None}
    if stop:
        given["stop"] = tuple(stop)
    if given:
        sampling = merge(sampling, SamplingParams(**given))
    options = {target: kwargs[name] for name, target in _OPTION_KWARGS.items() if kwargs.get(name) is not None}
    if timeout is not None:
        options.setdefault("timeout_s", timeout)
    return sampling, RequestOptions(**options), kwargs.get("model")


def batch_result(outputs: list[AIMessage | Exception], return_exceptions: bool) -> list[Any]:
    """Like ``Runnable.batch`` (typed ``list[Output]`` too): errors in place with ``return_exceptions``, else the
    first one (by input) raised."""
    if not return_exceptions:
        for output in outputs:
            if isinstance(output, Exception):
                raise output
    return list(outputs)


def provider_of(model: str) -> str:
    """LiteLLM's provider prefix ('openai' for 'openai/gpt-4o-mini'), '' without one."""
    return model.split("/", 1)[0] if "/" in model else ""


# LiteLLM reads PROVIDER_API_KEY for most providers (https://docs.litellm.ai/docs/set_keys); these differ.
_ENV_KEY_EXCEPTIONS = {"together_ai": "TOGETHERAI_API_KEY", "vertex_ai": "", "bedrock": "", "ollama": ""}


def env_key(model: str) -> str:
    """The environment variable that holds this provider's key ('' when it uses none)."""
    provider = provider_of(model)
    if not provider:
        return ""
    return _ENV_KEY_EXCEPTIONS.get(provider, f"{provider.upper().replace('-', '_')}_API_KEY")


# -- tools and response formats ----------------------------------------------------------------------------------


def normalize_tool_choice(choice: str | bool | dict[str, Any] | None, names: list[str]) -> str | dict[str, Any] | None:
    """LangChain's spellings onto llmkit's: 'any' and True force a call (True with one tool forces that tool)."""
    if choice is None or choice is False:
        return None
    if choice is True:
        return names[0] if len(names) == 1 else "required"
    if isinstance(choice, dict) or choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    if choice in names:
        return choice
    raise ConfigError(
        f"tool_choice={choice!r} is not 'auto', 'none', 'any', 'required', True or a bound tool's name {names}"
    )


_METHOD_MODES = {"function_calling": "tool", "json_schema": "json_schema", "json_mode": "json"}


def _output_target(schema: dict[str, Any] | type) -> dict[str, Any] | type:
    """The schema as ``output=`` takes it: a type pydantic cannot describe (``typing.TypedDict`` before Python 3.12)
    or an OpenAI function dict becomes its JSON schema, which parses to a dict as LangChain's parsers do."""
    if isinstance(schema, dict) and "parameters" in schema and "name" in schema:
        return {"title": schema["name"], **schema["parameters"]}
    try:
        RequestOptions(output=schema)
    except ConfigError:
        return convert_to_json_schema(schema)
    return schema


def parsed_output(message: BaseMessage) -> Any:
    """The validated value ChatLLMKit put on the message, or the ``OutputValidationError`` it carries."""
    kwargs = message.additional_kwargs
    if "output_error" in kwargs:
        raise kwargs["output_error"]
    if "parsed" not in kwargs:
        raise OutputParserException(f"the message has no parsed value: {str(message.content)[:200]!r}")
    return kwargs["parsed"]


def structured_output(
    schema: dict[str, Any] | type | None, method: str, strict: bool | None
) -> tuple[dict[str, Any], Runnable[Any, Any]]:
    """What ``with_structured_output`` binds to the model, and the parser for its answers.

    With a schema it binds llmkit's ``output=`` (validation, re-asks, the disk cache) in the mode ``method`` names;
    the answer's value travels in ``additional_kwargs["parsed"]``. llmkit decides ``strict`` itself (closed schemas
    are strict). ``ls_structured_output_format`` is LangChain's tracing key; BaseChatModel takes it out before the
    call.
    """
    mode = _METHOD_MODES.get(method)
    traced = {"ls_structured_output_format": {"kwargs": {"method": method, "strict": strict}, "schema": schema}}
    if schema is not None and mode is not None:
        parser: Runnable[Any, Any] = RunnableLambda(parsed_output)
        if isinstance(schema, type) and issubclass(schema, BaseModelV1):
            parser = parser | RunnableLambda(schema.parse_obj)  # validated as its JSON schema, then built
        return {"output": _output_target(schema), "output_mode": mode, **traced}, parser
    if method == "json_mode":
        return {"response_format": {"type": "json_object"}}, JsonOutputParser()
    raise ConfigError(
        f"with_structured_output(method={method!r}) needs a schema and one of 'function_calling', 'json_schema', "
        "'json_mode' (only json_mode works without a schema)"
    )
