"""Anthropic Messages wire format (`/v1/messages`), JSON and SSE.

Shapes follow https://docs.claude.com/en/api/messages and .../messages-streaming. Two realities are kept
because clients break on them: extended thinking blocks carry a signature that must come back unchanged, and
`usage.input_tokens` excludes prompt-cache reads and writes (https://docs.claude.com/en/docs/build-with-claude/prompt-caching).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from ._files import describe_part
from ._replies import Meta, Prompt, Reply, ToolSpec, context_limit, count_words, sign_thinking

__all__ = ["AnthropicWire"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        return json.dumps(block.get("input", {}))
    if kind == "tool_result":
        return _content_text(block.get("content"))
    if kind in ("thinking", "redacted_thinking"):
        return ""  # earlier turns' thinking is not billed as input (it is stripped by the API)
    return describe_part(block) or (f"[{kind}]" if kind else "")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(t for t in (_block_text(b) for b in content) if t)


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def _segments(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """Prompt pieces in cache-prefix order (tools, system, messages), each with whether it ends a cache breakpoint."""
    out: list[tuple[str, bool]] = [(json.dumps(t), "cache_control" in t) for t in body.get("tools") or []]
    out += [(_block_text(b), "cache_control" in b) for b in _blocks(body.get("system"))]
    for message in body.get("messages") or []:
        out += [(_block_text(b), isinstance(b, dict) and "cache_control" in b) for b in _blocks(message.get("content"))]
    return out


class AnthropicWire:
    """Parse and render one wire format; pure functions of the request, no I/O."""

    name = "anthropic"
    call_prefix = "toolu_"
    auth_status = 401

    def api_key(self, headers: Any, query: Any) -> str | None:
        # LiteLLM sends `x-api-key`, or `Authorization: Bearer` for some custom bases and OAuth tokens.
        auth = headers.get("Authorization", "")
        return headers.get("x-api-key") or (auth[7:] if auth.startswith("Bearer ") else None)

    def model(self, body: dict[str, Any], path_model: str | None) -> str:
        return str(body.get("model", ""))

    def is_stream(self, body: dict[str, Any], query: Any) -> bool:
        return bool(body.get("stream"))

    def parse(self, body: dict[str, Any], model: str) -> Prompt:
        messages = body.get("messages") or []
        last_user = ""
        for message in reversed(messages):
            text = " ".join(
                _block_text(b)
                for b in _blocks(message.get("content"))
                if message.get("role") == "user" and b.get("type") != "tool_result"
            )
            if text.strip():
                last_user = text
                break
        results = (
            [b for b in _blocks(messages[-1].get("content")) if b.get("type") == "tool_result"] if messages else []
        )
        choice = body.get("tool_choice") or {}
        thinking = body.get("thinking") or {}
        output = body.get("output_format") or (body.get("output_config") or {}).get("format") or {}
        return Prompt(
            model=model,
            texts=[text for text, _ in _segments(body)],
            last_user=last_user,
            first_user=next(
                (_content_text(m.get("content")) for m in messages if m.get("role") == "user"), last_user
            ),
            tool_result=" ".join(_content_text(b.get("content")) for b in results) if results else None,
            tools=[ToolSpec(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or [] if "name" in t],
            tool_choice={"any": "any", "none": "none", "tool": choice.get("name")}.get(choice.get("type", "auto")),
            max_tokens=body.get("max_tokens"),
            reasoning=thinking.get("type") in ("enabled", "adaptive"),
            thinking_budget=thinking.get("budget_tokens"),
            json_schema=output.get("schema") if output.get("type") == "json_schema" else None,
        )

    def validate(self, body: dict[str, Any]) -> str | None:
        """Anthropic's 400s for extended thinking with tool use: a missing or tampered thinking block."""
        if (body.get("thinking") or {}).get("type") not in ("enabled", "adaptive"):
            return None
        messages = body.get("messages") or []
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            for j, block in enumerate(_blocks(message.get("content"))):
                if block.get("type") == "thinking" and not hmac.compare_digest(
                    str(block.get("signature", "")), sign_thinking(str(block.get("thinking", "")))
                ):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        if last is not None:
            blocks = _blocks(messages[last].get("content"))
            if any(b.get("type") == "tool_use" for b in blocks) and blocks[0].get("type") not in (
                "thinking",
                "redacted_thinking",
            ):
                return (
                    f"messages.{last}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    f"`{blocks[0].get('type')}`. When `thinking` is enabled, a final `assistant` message must "
                    "start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
                    "blocks). We recommend you include thinking blocks from previous turns. To avoid this "
                    f"requirement, disable `thinking`. Please consult our documentation at {_THINKING_DOCS}"
                )
        return None

    def error(
        self, status: int, kind: str, *, model: str = "", prompt_tokens: int = 0, message: str | None = None
    ) -> dict[str, Any]:
        """The error body Anthropic sends; LiteLLM maps "prompt is too long" to ContextWindowExceededError."""
        if message is None:
            if kind == "context":
                message = f"prompt is too long: {prompt_tokens} tokens > {context_limit(model)} maximum"
            elif kind == "auth":
                message = "invalid x-api-key"
            elif kind == "not_found":
                message = f"model: {model}"
            elif status == 429:
                message = "This request would exceed the rate limit for your organization. Please try again later."
            elif status == 529:
                message = "Overloaded"
            elif status >= 500:
                message = "Internal server error"
            else:
                message = f"Request failed with status {status}."
        err_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        rid = hashlib.sha256(f"{status}{message}".encode()).hexdigest()[:24]
        return {"type": "error", "error": {"type": err_type, "message": message}, "request_id": f"req_{rid}"}

    def _usage(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> dict[str, Any]:
        # The longest cached prefix read, and the rest up to the last breakpoint written, as Anthropic bills it.
        total, read, last, key = 0, 0, 0, hashlib.sha256(prompt.model.encode())
        for text, breakpoint in _segments(body):
            total += count_words(text)
            key.update(text.encode() + b"\0")
            if breakpoint:
                if meta.remember("anthropic:" + key.hexdigest()):
                    read = total
                last = total
        created = max(last - read, 0)
        usage: dict[str, Any] = {
            "input_tokens": reply.prompt_tokens - read - created,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "output_tokens": reply.completion_tokens,
            "service_tier": "standard",
        }
        if reply.thinking is not None:
            # The thinking share of output_tokens, which newer API versions report (LiteLLM reads it; without it
            # LiteLLM estimates with its own tokenizer).
            usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning_tokens}
        return usage

    def _content(self, reply: Reply) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if reply.thinking is not None:
            content.append({"type": "thinking", "thinking": reply.thinking, "signature": sign_thinking(reply.thinking)})
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in reply.tool_calls]
        return content

    def render(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"msg_{meta.rid}",
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": self._content(reply),
            "stop_reason": _STOP[reply.finish],
            "stop_sequence": None,
            "usage": self._usage(prompt, reply, meta, body),
        }

    def empty(self, model: str) -> dict[str, Any]:
        """HTTP 200 with no content block and no stop reason."""
        return {
            "id": "msg_empty",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }

    def render_stream(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> list[str]:
        """message_start, per block content_block_start/delta.../stop, message_delta (usage, stop_reason),
        message_stop."""
        usage = self._usage(prompt, reply, meta, body)

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        start: dict[str, Any] = {
            "id": f"msg_{meta.rid}",
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        frames = [event("message_start", {"message": start})]
        for index, block in enumerate(self._content(reply)):
            kind = block["type"]
            empty = {
                "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                "text": {"type": "text", "text": ""},
                "tool_use": {**block, "input": {}},
            }[kind]
            frames.append(event("content_block_start", {"index": index, "content_block": empty}))
            if kind == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": w} for w in _pieces(block["thinking"])]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif kind == "text":
                deltas = [{"type": "text_delta", "text": w} for w in _pieces(block["text"])]
            else:
                args = json.dumps(block["input"], ensure_ascii=False)
                deltas = [{"type": "input_json_delta", "partial_json": ""}]
                deltas += [
                    {"type": "input_json_delta", "partial_json": args[i : i + 8]} for i in range(0, len(args), 8)
                ]
            frames += [event("content_block_delta", {"index": index, "delta": d}) for d in deltas]
            frames.append(event("content_block_stop", {"index": index}))
        frames.append(
            event(
                "message_delta", {"delta": {"stop_reason": _STOP[reply.finish], "stop_sequence": None}, "usage": usage}
            )
        )
        frames.append(event("message_stop", {}))
        return frames


def _pieces(text: str) -> list[str]:
    """A few chunks per block, split after whitespace so words arrive whole."""
    words = text.split(" ")
    return [" ".join(words[i : i + 3]) + (" " if i + 3 < len(words) else "") for i in range(0, len(words), 3)] or [""]
