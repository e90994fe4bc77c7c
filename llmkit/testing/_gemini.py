"""Gemini API (Google AI Studio) wire format: `/v1beta/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse`.

Shapes follow https://ai.google.dev/api/generate-content. Request fields are read in both spellings, since
the API accepts protobuf JSON names and LiteLLM mixes them (`generationConfig.response_mime_type`,
`system_instruction`, `toolConfig`). Thinking spends `maxOutputTokens` first, so a small budget gives a
MAX_TOKENS reply with a thought part and no text part, as Gemini 2.5 does.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ._files import describe_part
from ._replies import Meta, Prompt, Reply, ToolSpec, context_limit, token_logprobs

__all__ = ["GeminiWire"]

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}


def _get(obj: Any, camel: str, default: Any = None) -> Any:
    """A field by its camelCase or snake_case name (protobuf JSON accepts both)."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()
    return obj.get(snake, default)


def _part_text(part: dict[str, Any]) -> str:
    if "text" in part:
        return "" if part.get("thought") else str(part["text"])
    if _get(part, "inlineData") is not None or _get(part, "fileData") is not None:
        return describe_part(part) or (
            "[image]"
            if "image" in str(_get(_get(part, "inlineData") or _get(part, "fileData"), "mimeType"))
            else "[file]"
        )
    call = _get(part, "functionCall")
    if call is not None:
        return json.dumps(call)
    response = _get(part, "functionResponse")
    if response is not None:
        return _result_text(response)
    return ""


def _result_text(function_response: dict[str, Any]) -> str:
    """The text of a functionResponse; LiteLLM wraps a tool message's string as {"content": ...}."""
    response = function_response.get("response")
    if isinstance(response, dict) and len(response) == 1:
        (value,) = response.values()
        return value if isinstance(value, str) else json.dumps(value)
    return json.dumps(response)


class GeminiWire:
    """Parse and render one wire format; pure functions of the request, no I/O."""

    name = "gemini"
    call_prefix = ""
    auth_status = 400  # Gemini answers a bad key with 400 INVALID_ARGUMENT / API_KEY_INVALID, not 401

    def api_key(self, headers: Any, query: Any) -> str | None:
        return headers.get("x-goog-api-key") or query.get("key")

    def model(self, body: dict[str, Any], path_model: str | None) -> str:
        return path_model or ""

    def is_stream(self, body: dict[str, Any], query: Any) -> bool:
        return query.get("alt") == "sse"

    def parse(self, body: dict[str, Any], model: str) -> Prompt:
        contents = body.get("contents") or []
        system = _get(body, "systemInstruction") or {}
        texts = [_part_text(p) for p in system.get("parts") or []]
        texts += [_part_text(p) for c in contents for p in c.get("parts") or []]
        declarations = [d for t in body.get("tools") or [] for d in _get(t, "functionDeclarations") or []]
        if declarations:
            texts.append(json.dumps(body["tools"]))
        last_user = ""
        for content in reversed(contents):
            parts = [p for p in content.get("parts") or [] if _get(p, "functionResponse") is None]
            if content.get("role", "user") == "user" and parts:
                last_user = " ".join(_part_text(p) for p in parts)
                break
        last_parts = contents[-1].get("parts") or [] if contents else []
        results = [_get(p, "functionResponse") for p in last_parts if _get(p, "functionResponse") is not None]
        calling = _get(_get(body, "toolConfig") or {}, "functionCallingConfig") or {}
        mode, allowed = str(calling.get("mode", "AUTO")).upper(), _get(calling, "allowedFunctionNames") or []
        choice = {"ANY": allowed[0] if allowed else "any", "NONE": "none"}.get(mode, "auto")
        config = _get(body, "generationConfig") or {}
        thinking = _get(config, "thinkingConfig") or {}
        budget = _get(thinking, "thinkingBudget")
        schema = _get(config, "responseJsonSchema") or _get(config, "responseSchema")
        return Prompt(
            model=model,
            texts=texts,
            last_user=last_user,
            first_user=next(
                (
                    " ".join(_part_text(p) for p in c.get("parts") or [])
                    for c in contents
                    if c.get("role", "user") == "user"
                ),
                last_user,
            ),
            tool_result=" ".join(_result_text(r) for r in results) if results else None,
            tools=[
                ToolSpec(d["name"], _get(d, "parametersJsonSchema") or d.get("parameters") or {}) for d in declarations
            ],
            tool_choice=choice,
            max_tokens=_get(config, "maxOutputTokens"),
            reasoning=bool(_get(thinking, "includeThoughts")),
            thinking_budget=budget if isinstance(budget, int) and budget > 0 else None,
            json_mode=_get(config, "responseMimeType") == "application/json",
            json_schema=schema if _get(config, "responseMimeType") == "application/json" else None,
        )

    def validate(self, body: dict[str, Any]) -> str | None:
        return None

    def error(
        self, status: int, kind: str, *, model: str = "", prompt_tokens: int = 0, message: str | None = None
    ) -> dict[str, Any]:
        """The google.rpc.Status body Gemini sends; LiteLLM maps its message text to exceptions."""
        details: list[dict[str, Any]] = []
        if message is not None:
            pass
        elif kind == "context":
            message = (
                f"The input token count ({prompt_tokens}) exceeds the maximum number of tokens allowed "
                f"({context_limit(model)})."
            )
        elif kind == "auth":
            message = "API key not valid. Please pass a valid API key."
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        elif kind == "not_found":
            message = (
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their supported "
                "methods."
            )
        elif status == 429:
            message = "Resource has been exhausted (e.g. check quota)."
        elif status == 503:
            # Not Gemini's other 503 text "The model is overloaded.": LiteLLM maps that one to InternalServerError.
            message = "The service is currently unavailable."
        elif status >= 500:
            message = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
        else:
            message = f"Request failed with status {status}."
        error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
        if details:
            error["details"] = details
        return {"error": error}

    def _usage(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> dict[str, Any]:
        # Implicit caching: the whole prompt is reported cached when the same request contents were seen.
        key = json.dumps(
            ["gemini", prompt.model, body.get("contents"), _get(body, "systemInstruction")], sort_keys=True
        )
        cached = reply.prompt_tokens if meta.remember(hashlib.sha256(key.encode()).hexdigest()) else 0
        # candidatesTokenCount excludes thoughts; totalTokenCount includes them (Gemini 2.5).
        candidates = reply.completion_tokens - reply.reasoning_tokens
        usage: dict[str, Any] = {
            "promptTokenCount": reply.prompt_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": reply.prompt_tokens + reply.completion_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
        }
        if reply.thinking is not None:
            usage["thoughtsTokenCount"] = reply.reasoning_tokens
        if cached:
            usage["cachedContentTokenCount"] = cached
        return usage

    def _logprobs(self, tokens: list[str], top_n: int) -> dict[str, Any]:
        entries = token_logprobs(tokens, top_n)
        return {
            "topCandidates": [{"candidates": [{"token": t, "logProbability": v} for t, v in e.top]} for e in entries],
            "chosenCandidates": [{"token": e.token, "logProbability": e.logprob} for e in entries],
        }

    def _parts(self, reply: Reply) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if reply.thinking is not None:
            parts.append({"text": reply.thinking, "thought": True})
        if reply.text is not None:
            parts.append({"text": reply.text})
        parts += [{"functionCall": {"name": c.name, "args": c.arguments}} for c in reply.tool_calls]
        return parts

    def _candidate(self, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        if finish is not None:
            candidate["finishReason"] = finish
        return candidate

    def render(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> dict[str, Any]:
        candidate = self._candidate(self._parts(reply), _FINISH[reply.finish])
        config = _get(body, "generationConfig") or {}
        if _get(config, "responseLogprobs"):
            entries = token_logprobs(reply.text_chunks, 1)
            candidate["avgLogprobs"] = sum(e.logprob for e in entries) / len(entries) if entries else 0.0
            candidate["logprobsResult"] = self._logprobs(reply.text_chunks, int(_get(config, "logprobs") or 1))
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(prompt, reply, meta, body),
            "modelVersion": prompt.model,
            "responseId": meta.rid,
        }

    def empty(self, model: str) -> dict[str, Any]:
        """HTTP 200 with `"candidates": []`."""
        return {"candidates": [], "usageMetadata": {"promptTokenCount": 0, "totalTokenCount": 0}, "modelVersion": model}

    def render_stream(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> list[str]:
        """One GenerateContentResponse per SSE event: thought, text words, whole functionCall parts; usage last."""
        config = _get(body, "generationConfig") or {}
        top_n = int(_get(config, "logprobs") or 1)
        pieces: list[tuple[dict[str, Any], list[str]]] = []
        for part in self._parts(reply):
            if "text" in part:
                words = re.findall(r"\S+\s*", part["text"]) or [""]
                pieces += [
                    ({**part, "text": "".join(words[i : i + 3])}, words[i : i + 3]) for i in range(0, len(words), 3)
                ]
            else:
                pieces.append((part, []))
        events: list[dict[str, Any]] = []
        for i, (part, words) in enumerate(pieces):
            last = i == len(pieces) - 1
            candidate = self._candidate([part], _FINISH[reply.finish] if last else None)
            if _get(config, "responseLogprobs") and words and not part.get("thought"):
                candidate["logprobsResult"] = self._logprobs(words, top_n)
            events.append({"candidates": [candidate], "modelVersion": prompt.model, "responseId": meta.rid})
        if not events:
            events.append(
                {
                    "candidates": [self._candidate([], _FINISH[reply.finish])],
                    "modelVersion": prompt.model,
                    "responseId": meta.rid,
                }
            )
        events[-1]["usageMetadata"] = self._usage(prompt, reply, meta, body)
        return [f"data: {json.dumps(e)}\r\n\r\n" for e in events]
