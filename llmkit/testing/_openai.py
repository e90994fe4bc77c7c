"""OpenAI Chat Completions wire format (`/v1/chat/completions`; embeddings are in `_embeddings`).

Shapes follow https://platform.openai.com/docs/api-reference/chat and what the `openai` SDK that LiteLLM wraps
parses. `message.reasoning_content` is not part of OpenAI's own API but is what LiteLLM reads from
OpenAI-compatible servers (vLLM, DeepSeek), so the fake returns it to make reasoning observable.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._files import describe_part
from ._replies import Meta, Prompt, Reply, ToolSpec, context_limit, token_logprobs

__all__ = ["OpenAIWire"]

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
}
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def _text(content: Any) -> str:
    """Text of a message's content; non-text parts become placeholders such as "[image]"."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content if isinstance(content, list) else [content]:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(str(part.get("text", "")))
        elif kind in ("image_url", "file", "input_audio"):
            parts.append(describe_part(part) or f"[{kind}]")
        elif kind:
            parts.append(f"[{kind.removeprefix('input_')}]")
    return " ".join(parts)


def _finish(reply: Reply) -> str:
    """OpenAI ends a refusal with "stop" and puts it in `message.refusal` (structured outputs guide)."""
    return "stop" if reply.refusal is not None else _FINISH[reply.finish]


def _logprobs(tokens: list[str], top_n: int) -> dict[str, Any]:
    entries = []
    for lp in token_logprobs(tokens, top_n):
        entries.append(
            {
                "token": lp.token,
                "logprob": lp.logprob,
                "bytes": list(lp.token.encode()),
                "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in lp.top],
            }
        )
    return {"content": entries, "refusal": None}


class OpenAIWire:
    """Parse and render one wire format; pure functions of the request, no I/O."""

    name = "openai"
    call_prefix = "call_"
    auth_status = 401

    def api_key(self, headers: Any, query: Any) -> str | None:
        auth = headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def model(self, body: dict[str, Any], path_model: str | None) -> str:
        return str(body.get("model", ""))

    def is_stream(self, body: dict[str, Any], query: Any) -> bool:
        return bool(body.get("stream"))

    def parse(self, body: dict[str, Any], model: str) -> Prompt:
        messages = body.get("messages") or []
        texts = [_text(m.get("content")) for m in messages]
        texts += [json.dumps(c.get("function", {})) for m in messages for c in m.get("tool_calls") or []]
        tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
        if tools:
            texts.append(json.dumps(body["tools"]))
        users = [m for m in messages if m.get("role") == "user"]
        last = messages[-1] if messages else {}
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            choice = choice.get("function", {}).get("name")
        elif choice == "required":
            choice = "any"
        fmt = body.get("response_format") or {}
        effort = body.get("reasoning_effort")
        return Prompt(
            model=model,
            texts=texts,
            last_user=_text(users[-1].get("content")) if users else "",
            first_user=_text(users[0].get("content")) if users else "",
            tool_result=_text(last.get("content")) if last.get("role") in ("tool", "function") else None,
            tools=[ToolSpec(t["name"], t.get("parameters") or {}) for t in tools],
            tool_choice=choice,
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            reasoning=effort not in (None, "none"),
            json_mode=fmt.get("type") == "json_object",
            json_schema=(fmt.get("json_schema") or {}).get("schema", {}) if fmt.get("type") == "json_schema" else None,
        )

    def validate(self, body: dict[str, Any]) -> str | None:
        return None

    def error(
        self, status: int, kind: str, *, model: str = "", prompt_tokens: int = 0, message: str | None = None
    ) -> dict[str, Any]:
        """The error body OpenAI sends; LiteLLM picks its exception from `code` and the message text."""
        code: str | None = None
        if message is not None:
            pass
        elif kind == "context":
            message = (
                f"This model's maximum context length is {context_limit(model)} tokens. However, your "
                f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages."
            )
            code = "context_length_exceeded"
        elif kind == "auth":
            message = (
                "Incorrect API key provided: inv*****key. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            code = "invalid_api_key"
        elif kind == "not_found":
            message, code = f"The model `{model}` does not exist or you do not have access to it.", "model_not_found"
        elif status == 429:
            message = f"Rate limit reached for {model} on requests per min (RPM). Please try again later."
            code = "rate_limit_exceeded"
        elif status >= 500:
            message = "The server had an error while processing your request. Sorry about that!"
        else:
            message = f"Request failed with status {status}."
        err_type = _STATUS_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": err_type, "param": None, "code": code}}

    def _usage(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> dict[str, Any]:
        # OpenAI caches automatically; the fake reports the whole prompt as cached when the same message list
        # was seen before (https://platform.openai.com/docs/guides/prompt-caching).
        seen = meta.remember(
            hashlib.sha256(
                json.dumps(["openai", prompt.model, body.get("messages")], sort_keys=True).encode()
            ).hexdigest()
        )
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.prompt_tokens if seen else 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reply.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _tool_calls(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in reply.tool_calls
        ]

    def render(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text,
            "refusal": reply.refusal,
            "annotations": [],
        }
        if reply.thinking is not None:
            message["reasoning_content"] = reply.thinking
        if reply.tool_calls:
            message["tool_calls"] = self._tool_calls(reply)
        logprobs = _logprobs(reply.text_chunks, body.get("top_logprobs") or 0) if body.get("logprobs") else None
        return {
            "id": f"chatcmpl-{meta.rid}",
            "object": "chat.completion",
            "created": meta.created,
            "model": prompt.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": _finish(reply)}],
            "usage": self._usage(prompt, reply, meta, body),
        }

    def render_stream(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> list[str]:
        """`chat.completion.chunk` SSE frames: role, reasoning, content words or tool-call fragments, finish, usage."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        usage = self._usage(prompt, reply, meta, body)
        base = {
            "id": f"chatcmpl-{meta.rid}",
            "object": "chat.completion.chunk",
            "created": meta.created,
            "model": prompt.model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> str:
            frame = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
            if include_usage:
                frame["usage"] = None
            return f"data: {json.dumps(frame)}\n\n"

        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        for word in (reply.thinking and [reply.thinking[i : i + 24] for i in range(0, len(reply.thinking), 24)]) or []:
            frames.append(chunk({"reasoning_content": word}))
        top_n = body.get("top_logprobs") or 0
        for word in reply.text_chunks:
            lps = _logprobs([word], top_n) if body.get("logprobs") else None
            frames.append(chunk({"content": word}, logprobs=lps))
        for i, call in enumerate(reply.tool_calls):
            frames.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            args = call.arguments_json
            for j in range(0, len(args), 8):
                frames.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 8]}}]}))
        if reply.refusal is not None:
            frames.append(chunk({"refusal": reply.refusal}))
        frames.append(chunk({}, finish=_finish(reply)))
        if include_usage:
            frames.append(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n")
        frames.append("data: [DONE]\n\n")
        return frames

    def empty(self, model: str) -> dict[str, Any]:
        """HTTP 200 with `"choices": []`, as a struggling provider or gateway sometimes sends."""
        return {
            "id": "chatcmpl-empty",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
