"""Deterministic reply content shared by the three wire formats.

Everything here is a pure function of the request, so the same prompt always gets the same reply, usage,
tool arguments, logprobs and signatures: tests can assert exact values and caches stay valid across runs.
A "token" is a whitespace-separated word; that is coarse but lets a test compute usage by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "CONTEXT_LIMIT",
    "SMALL_CONTEXT_LIMIT",
    "Directives",
    "Meta",
    "Prompt",
    "Reply",
    "ToolCall",
    "TokenLogprob",
    "ToolSpec",
    "Wire",
    "build_reply",
    "chunks",
    "context_limit",
    "count_words",
    "parse_directives",
    "schema_instance",
    "sign_thinking",
    "stable_id",
    "strip_directives",
    "token_logprobs",
    "truncate",
]

CONTEXT_LIMIT = 8000
"""Prompt words over which every model answers the provider's context-length-exceeded 400."""
SMALL_CONTEXT_LIMIT = 50
"""The same limit for model names containing `small-ctx`, so a test can trip it with a short prompt."""

# A fixed secret (not per process) so a thinking block signed by one FakeProvider, cached on disk and replayed
# to another one later, still verifies, as real Anthropic signatures do.
_THINKING_SECRET = b"llmkit.testing.FakeProvider thinking signature v1"
_DIRECTIVE = re.compile(
    r"\[\[(fail_once|fail|reset|invalid_json|sleep|filter|empty|error_body|echo_key|trickle|stall_after|error_after|reset_after|bad_json_once"
    r"|bad_json|bad_schema_once|bad_schema|refuse)(?::([^\]]*))?\]\]"
)
_SCHEMA_IN_PROMPT = "JSON Schema:"
_QUOTED = re.compile(r"(?<!\w)'([^'\n]+?)'(?!\w)|(?<!\w)\"([^\"\n]+?)\"(?!\w)")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_ALTERNATIVES = ("the", " a", " and", " of", " to", " is", " in", " it", " that", " was", " for", " on")
_GENERIC_NAME_PARTS = frozenset({"get", "set", "call", "make", "tool", "function", "create", "list", "find", "fetch"})


def count_words(text: str) -> int:
    """Tokens as this fake counts them: whitespace-separated words."""
    return len(text.split())


def chunks(text: str) -> list[str]:
    """Split into word tokens that concatenate back to `text` (each keeps its trailing whitespace)."""
    return re.findall(r"\S+\s*", text)


def truncate(text: str, n_words: int) -> str:
    return "".join(chunks(text)[: max(n_words, 0)]).rstrip()


def stable_id(*parts: object, size: int = 24) -> str:
    """A hex id derived from the request, so ids are reproducible run to run."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:size]


def sign_thinking(thinking: str) -> str:
    """Base64 HMAC of the thinking text: verifiable by this server, opaque to clients, like Anthropic's."""
    return base64.b64encode(hmac.new(_THINKING_SECRET, thinking.encode(), hashlib.sha256).digest()).decode()


def context_limit(model: str) -> int:
    return SMALL_CONTEXT_LIMIT if "small-ctx" in model else CONTEXT_LIMIT


@dataclass(frozen=True)
class Directives:
    """Misbehaviour requested by `[[...]]` markers in the last user message."""

    fail: tuple[int, float | None] | None = None
    fail_once: tuple[int, float | None] | None = None
    reset: bool = False
    invalid_json: bool = False
    sleep_s: float = 0.0
    filter: bool = False
    empty: bool = False
    error_body: bool = False
    echo_key: int | None = None
    """Answer this HTTP status with an error message that quotes the API key as received (a careless gateway)."""
    trickle_s: float | None = None
    """Send the answer 10 bytes at a time, this many seconds apart (a reply that never trips a per-read timeout)."""
    stall_after: int | None = None
    """Stream this many frames, then send nothing more until the client hangs up."""
    error_after: int | None = None
    """Stream this many frames, then the provider's error event (a 500's error body) and end the stream."""
    reset_after: int | None = None
    """Stream this many frames, then drop the connection."""
    bad_json: bool = False
    bad_json_once: bool = False
    bad_schema: bool = False
    bad_schema_once: bool = False
    refuse: bool = False


def parse_directives(text: str) -> Directives:
    """Read `[[fail:500]]`, `[[fail:429:2.5]]`, `[[fail_once:500]]`, `[[reset]]`, `[[invalid_json]]`,
    `[[sleep:1.5]]`, `[[filter]]`, `[[empty]]`, `[[error_body]]`, `[[echo_key:401]]`, `[[trickle:0.5]]`,
    `[[stall_after:3]]`, `[[error_after:3]]`, `[[reset_after:3]]`, and the structured-output ones: `[[bad_json]]`
    (the JSON answer is cut short),
    `[[bad_schema]]` (valid JSON that breaks the schema), their `_once` forms (only the first answer for that
    prompt; the server remembers it) and `[[refuse]]` (a refusal: OpenAI's `refusal` field, Anthropic's "refusal"
    stop reason, Gemini's SAFETY)."""
    found: dict[str, Any] = {}
    for name, arg in _DIRECTIVE.findall(text):
        try:
            if name in ("fail", "fail_once"):
                status, _, retry_after = (arg or "500").partition(":")
                found[name] = (int(status), float(retry_after) if retry_after else None)
            elif name == "sleep":
                found["sleep_s"] = float(arg or 0)
            elif name == "echo_key":
                found["echo_key"] = int(arg or 401)
            elif name == "trickle":
                found["trickle_s"] = float(arg or 0.5)
            elif name in ("stall_after", "error_after", "reset_after"):
                found[name] = int(arg or 0)
            else:
                found[name] = True
        except ValueError:
            continue  # a malformed marker is just text, like any other unknown [[...]]
    return Directives(**found)


def strip_directives(text: str) -> str:
    return _DIRECTIVE.sub("", text)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass
class Prompt:
    """A wire-format-neutral view of one chat request; each format module fills it from its own body."""

    model: str
    texts: list[str]
    """Every countable piece of the prompt (system, messages, tool JSON): prompt tokens are their words."""
    last_user: str
    first_user: str = ""
    """The first user message: a JSON answer after a re-ask still draws its values from the original question."""
    tool_result: str | None = None
    """The content of the last message when it is a tool result: the reply then reports it."""
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str | None = None
    """None or "auto"; "none"; "any" (call the first tool); or the name of the tool to call."""
    max_tokens: int | None = None
    reasoning: bool = False
    thinking_budget: int | None = None
    json_mode: bool = False
    json_schema: dict[str, Any] | None = None

    @property
    def prompt_tokens(self) -> int:
        return sum(count_words(t) for t in self.texts)


@dataclass
class Reply:
    thinking: str | None
    text: str | None
    tool_calls: list[ToolCall]
    finish: str
    """One of "stop", "length", "tool_calls", "content_filter"; each format maps it to its own reason."""
    prompt_tokens: int
    refusal: str | None = None
    """A refusal message (finish is then "content_filter"; OpenAI sends it in `message.refusal`)."""

    @property
    def reasoning_tokens(self) -> int:
        return count_words(self.thinking or "")

    @property
    def completion_tokens(self) -> int:
        calls = sum(count_words(f"{c.name} {c.arguments_json}") for c in self.tool_calls)
        return self.reasoning_tokens + count_words(self.text or "") + calls

    @property
    def text_chunks(self) -> list[str]:
        return chunks(self.text or "")


def _pick_tool(prompt: Prompt) -> ToolSpec | None:
    if not prompt.tools or prompt.tool_result is not None or prompt.tool_choice == "none":
        return None
    if prompt.tool_choice == "any":
        return prompt.tools[0]
    for tool in prompt.tools:
        if tool.name == prompt.tool_choice:
            return tool
    if prompt.tool_choice not in (None, "auto"):
        return prompt.tools[0]
    # "auto": call a tool the user names, or one whose distinctive name part they use ("weather" for
    # get_weather), so agent-loop tests get a call without forcing one.
    said = strip_directives(prompt.last_user).lower()
    said_words = set(re.findall(r"\w+", said))
    for tool in prompt.tools:
        if tool.name.lower() in said:
            return tool
    for tool in prompt.tools:
        parts = [p for p in re.split(r"[_\W]+", tool.name.lower()) if len(p) >= 4 and p not in _GENERIC_NAME_PARTS]
        if any(p in said_words for p in parts):
            return tool
    return None


def _json_object_reply(prompt: Prompt) -> dict[str, Any]:
    """JSON mode without a schema: one key per quoted word in the prompt (each its own value), else an echo."""
    keys = [a or b for a, b in _QUOTED.findall(strip_directives(prompt.last_user))]
    keys = [k for k in keys if re.fullmatch(r"\w+", k)]
    return {k: k for k in keys} if keys else {"echo": prompt.last_user}


def _schema_in_prompt(prompt: Prompt) -> dict[str, Any] | None:
    """The JSON Schema a JSON-mode prompt carries after "JSON Schema:" (llmkit's ask where no schema mode exists)."""
    for text in prompt.texts:
        at = text.find(_SCHEMA_IN_PROMPT)
        start = text.find("{", at) if at >= 0 else -1
        if start >= 0:
            try:
                schema, _ = json.JSONDecoder().raw_decode(text[start:])
            except json.JSONDecodeError:
                continue
            if isinstance(schema, dict):
                return schema
    return None


def _violation(value: Any) -> Any:
    """Valid JSON that breaks the schema `value` was built from: its first field gets the wrong type."""
    if isinstance(value, dict) and value:
        first = next(iter(value))
        return {**value, first: 12345 if isinstance(value[first], str) else "not valid here"}
    return ["not", "valid", "here"]


def build_reply(prompt: Prompt, *, call_id: str, filtered: bool = False, mangle: str | None = None) -> Reply:
    """The whole answer: thinking first, then a tool call, JSON or the echo, cut to `max_tokens` words.

    `mangle` ("bad_json", "bad_schema" or "refuse") spoils a structured answer: a tool call's arguments (which the
    Anthropic and Gemini formats carry as objects, so "bad_json" breaks the schema there), or JSON text.
    """
    if filtered:
        return Reply(None, None, [], "content_filter", prompt.prompt_tokens)
    if mangle == "refuse":
        return Reply(None, None, [], "content_filter", prompt.prompt_tokens, refusal="I can't help with that.")
    thinking = f"Thinking about: {prompt.last_user}" if prompt.reasoning else None
    if thinking is not None and prompt.thinking_budget is not None:
        thinking = truncate(thinking, prompt.thinking_budget)
    text: str | None = None
    calls: list[ToolCall] = []
    tool = _pick_tool(prompt)
    if prompt.tool_result is not None:
        text = f"Tool result: {prompt.tool_result}"
    elif tool is not None:
        # A call forced by name is an answer format (structured output): a re-ask keeps the question's values.
        forced = prompt.tool_choice == tool.name and prompt.first_user not in ("", prompt.last_user)
        arguments = schema_instance(tool.schema, prompt.first_user if forced else prompt.last_user)
        calls = [ToolCall(call_id, tool.name, _violation(arguments) if mangle else arguments)]
    elif prompt.json_schema is not None or _schema_in_prompt(prompt) is not None:
        schema = prompt.json_schema or _schema_in_prompt(prompt) or {}
        source = prompt.last_user if prompt.first_user in ("", prompt.last_user) else prompt.first_user
        value = schema_instance(schema, source)
        text = json.dumps(_violation(value) if mangle == "bad_schema" else value, ensure_ascii=False)
        if mangle == "bad_json":
            text = text[: max(len(text) // 2, 1)]
    elif prompt.json_mode:
        text = json.dumps(_json_object_reply(prompt), ensure_ascii=False)
    else:
        text = f"Echo: {prompt.last_user}"
    finish = "tool_calls" if calls else "stop"
    budget = prompt.max_tokens
    if budget is not None:
        used = count_words(thinking or "")
        if thinking is not None and used >= budget:
            # Thinking spends the budget first; nothing is left for the answer (Gemini 2.5's thought-only
            # MAX_TOKENS reply).
            thinking, text, calls, finish = truncate(thinking, budget), None, [], "length"
        elif text is not None and count_words(text) > budget - used:
            text, finish = truncate(text, budget - used) or None, "length"
    return Reply(thinking, text, calls, finish, prompt.prompt_tokens)


@dataclass(frozen=True)
class Meta:
    """Per-request facts a format needs besides the reply: a stable id, a timestamp and the prompt-cache memory."""

    rid: str
    created: int
    remember: Callable[[str], bool]
    """Record a prompt-cache key; True when it was seen before (since the last reset)."""


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]]


def token_logprobs(tokens: list[str], top_n: int) -> list[TokenLogprob]:
    """Per-token logprobs: the chosen token is the most likely, alternatives halve the rest, sum(p) < 1."""
    out = []
    for token in tokens:
        u = int(hashlib.sha256(token.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        p = 0.5 + 0.49 * u
        rest = 1.0 - p
        alts = [a for a in _ALTERNATIVES if a != token][: max(top_n - 1, 0)]
        top = [(token, math.log(p))] + [(a, math.log(rest * 0.5 ** (i + 1))) for i, a in enumerate(alts)]
        out.append(TokenLogprob(token, math.log(p), top[:top_n]))
    return out


class _Generator:
    """Instances of a JSON schema, filled from the prompt: numbers and quoted strings in order of use."""

    def __init__(self, root: dict[str, Any], prompt: str) -> None:
        text = strip_directives(prompt)
        self.root = root
        self.numbers = [float(n) for n in _NUMBER.findall(text)]
        self.strings = [a or b for a, b in _QUOTED.findall(text)]
        self.n_used = 0
        self.s_used = 0

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = self.root
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            return {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def number(self, schema: dict[str, Any], integer: bool) -> int | float:
        value = 1.0
        if self.numbers:
            value = self.numbers[self.n_used % len(self.numbers)]
            self.n_used += 1
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None:
            value = max(value, float(lo))
        if hi is not None:
            value = min(value, float(hi))
        return int(value) if integer or value.is_integer() else value

    def string(self, schema: dict[str, Any], name: str) -> str:
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2024-01-01T00:00:00Z"
        if fmt == "date":
            return "2024-01-01"
        if self.strings:
            value = self.strings[self.s_used % len(self.strings)]
            self.s_used += 1
        else:
            value = name
        return value.ljust(int(schema.get("minLength", 0)), "x")

    def make(self, schema: Any, name: str, depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > 12:
            return None
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = [o for o in schema.get(key) or [] if self.resolve(o).get("type") != "null"]
            if options:
                return self.make(options[0], name, depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                part = self.resolve(part)
                merged = {
                    **merged,
                    **part,
                    "properties": {**merged.get("properties", {}), **part.get("properties", {})},
                }
            return self.make(merged, name, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if str(k).lower() != "null"), "null")
        kind = (
            str(kind).lower()
            if kind
            else ("object" if "properties" in schema else "array" if "items" in schema else "string")
        )
        if kind == "object":
            # Past a few levels only required properties, so recursive schemas (a tree of nodes) stay finite.
            required = schema.get("required") or []
            return {
                k: self.make(v, k, depth + 1)
                for k, v in (schema.get("properties") or {}).items()
                if depth < 6 or k in required
            }
        if kind == "array":
            count = max(int(schema.get("minItems", 0)), 1 if depth < 6 else 0)
            return [self.make(schema.get("items", {}), name, depth + 1) for _ in range(count)]
        if kind in ("integer", "number"):
            return self.number(schema, kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(schema, name)


def schema_instance(schema: dict[str, Any], prompt: str) -> Any:
    """An instance of `schema` (JSON Schema or Gemini's OpenAPI subset), deterministic for a given prompt.

    Every property is filled (only required ones deep down); integers and numbers come from the numbers in the prompt
    in order ("magic_function(3)" gives 3), else 1; strings from quoted phrases, else the property name; enums
    take their first value; arrays get one item; `$ref`, `anyOf`, `allOf` and nullable types are followed.
    """
    return _Generator(schema, prompt).make(schema, "value")


class Wire(Protocol):
    """What the server needs from a wire-format module: parse a request body, render replies and errors."""

    name: str
    call_prefix: str
    auth_status: int

    def api_key(self, headers: Any, query: Any) -> str | None: ...
    def model(self, body: dict[str, Any], path_model: str | None) -> str: ...
    def is_stream(self, body: dict[str, Any], query: Any) -> bool: ...
    def parse(self, body: dict[str, Any], model: str) -> Prompt: ...
    def validate(self, body: dict[str, Any]) -> str | None: ...
    def error(
        self, status: int, kind: str, *, model: str = "", prompt_tokens: int = 0, message: str | None = None
    ) -> dict[str, Any]: ...
    def render(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> dict[str, Any]: ...
    def render_stream(self, prompt: Prompt, reply: Reply, meta: Meta, body: dict[str, Any]) -> list[str]: ...
    def empty(self, model: str) -> dict[str, Any]: ...
