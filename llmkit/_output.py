"""Structured output: an ``output=`` type as a JSON schema and a validator, the mode per deployment, re-ask messages.

Pydantic's ``TypeAdapter`` covers models, ``list[Model]``, TypedDicts, dataclasses, ``Literal`` and ``Enum``; a raw
JSON Schema dict is checked with the ``jsonschema`` package. A schema whose root is not an object is wrapped as
``{"value": ...}`` on the wire (OpenAI's strict mode and forced tool calls take objects only) and unwrapped here.
No litellm: what a model supports is asked in ``_transport`` and passed in as booleans.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError, create_model

from ._result import Completion, Usage
from ._types import Message
from .errors import ConfigError, OutputValidationError

__all__ = [
    "Mode",
    "OutputSpec",
    "Spent",
    "choose_mode",
    "load_output",
    "output_spec",
    "reask_messages",
    "request_fields",
    "validate",
]

Mode = Literal["json_schema", "tool", "json"]
"""How an answer is asked for: native JSON schema, a forced tool call, or JSON mode with the schema in the prompt."""

_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_SCHEMA_INTRO = "Answer with one JSON value, and nothing else, that validates against this JSON Schema:\n"


class Invalid(Exception):
    """An answer that did not validate: ``errors`` are ``{"loc": "cast.0.name", "msg": ...}``."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['loc']}: {e['msg']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class OutputSpec:
    """One ``output=`` target, resolved once: the schema sent, its cache-key text and the validator."""

    target: Any
    name: str
    schema: dict[str, Any]
    wrapped: bool
    key: str
    check: Callable[[str], Any]

    @functools.cached_property
    def strict_schema(self) -> dict[str, Any] | None:
        """The schema as OpenAI's strict mode takes it, or None (built once: a deep copy costs ~0.1 ms)."""
        return _strict(self.schema)

    def parse(self, text: str | None) -> Any:
        """The validated value of a raw JSON answer; raises ``Invalid``."""
        if not text:
            raise Invalid([{"loc": "(root)", "msg": "the answer is empty"}])
        return self.check(text)


def output_spec(output: Any) -> OutputSpec:
    """The spec for a type or a JSON Schema dict; ``ConfigError`` when it is neither. Cached per target."""
    if isinstance(output, OutputSpec):
        return output
    if isinstance(output, dict):
        return _dict_spec(json.dumps(output, sort_keys=True, default=str))
    try:
        return _type_spec(output)
    except TypeError:  # unhashable: not a type
        raise ConfigError(_bad_output(output, "it is not a type")) from None


def load_output(spec: str) -> Any:
    """An ``output=`` target named on a command line: a JSON Schema file, or ``module:Class`` (importable from cwd).

    Raises ``ConfigError`` saying which it tried and why it failed; checked before anything is sent.
    """
    path = Path(spec)
    if path.is_file():
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--schema {spec}: not a JSON Schema file ({exc})") from None
        if not isinstance(schema, dict):
            raise ConfigError(f"--schema {spec}: a JSON Schema is an object, not {type(schema).__name__}")
        output_spec(schema)
        return schema
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ConfigError(f"--schema {spec}: no such file, and not module:Class (e.g. myapp.models:Movie)")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--schema {spec}: cannot import {attribute} from {module_name} ({exc})") from None
    output_spec(target)
    return target


def _bad_output(output: Any, why: str) -> str:
    return (
        f"output={output!r} cannot be used: {why}. Give a pydantic model, list[Model], a TypedDict, a dataclass, "
        "a Literal or Enum, or a JSON Schema dict"
    )


@functools.lru_cache(maxsize=256)
def _type_spec(output: Any) -> OutputSpec:
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(output)
        schema = adapter.json_schema()
    except Exception as exc:  # pydantic raises several kinds for a type it cannot describe
        raise ConfigError(_bad_output(output, str(exc).splitlines()[0].rstrip("."))) from None
    name = _name(schema.get("title") or getattr(output, "__name__", None))
    if schema.get("type") == "object":
        return OutputSpec(output, name, schema, False, _key(schema), _pydantic_check(adapter, wrapped=False))
    wrapper = create_model("Answer", value=(output, ...))
    wrapped_adapter: TypeAdapter[Any] = TypeAdapter(wrapper)
    wrapped_schema = wrapped_adapter.json_schema()
    return OutputSpec(output, name, wrapped_schema, True, _key(wrapped_schema), _pydantic_check(wrapped_adapter, True))


def _pydantic_check(adapter: TypeAdapter[Any], wrapped: bool) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        try:
            value = adapter.validate_json(text)
        except ValidationError as exc:
            raise Invalid([_pydantic_error(e, wrapped) for e in exc.errors(include_url=False)]) from None
        return value.value if wrapped else value

    return check


def _pydantic_error(error: Any, wrapped: bool) -> dict[str, str]:
    loc = list(error["loc"])
    if wrapped and loc[:1] == ["value"]:
        loc = loc[1:]
    return {"loc": ".".join(str(p) for p in loc) or "(root)", "msg": error["msg"]}


@functools.lru_cache(maxsize=256)
def _dict_spec(text: str) -> OutputSpec:
    import jsonschema

    schema = json.loads(text)
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(_bad_output(schema, f"it is not a valid JSON Schema ({exc.message})")) from None
    validator = validator_class(schema)
    wrapped = schema.get("type") != "object"
    sent = _wrap(schema) if wrapped else schema

    def check(answer: str) -> Any:
        try:
            value = json.loads(answer)
        except json.JSONDecodeError as exc:
            raise Invalid([{"loc": "(root)", "msg": f"Invalid JSON: {exc}"}]) from None
        if wrapped:
            if not isinstance(value, dict) or "value" not in value:
                raise Invalid([{"loc": "value", "msg": "Field required"}])
            value = value["value"]
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            raise Invalid([{"loc": ".".join(map(str, e.absolute_path)) or "(root)", "msg": e.message} for e in errors])
        return value

    return OutputSpec(schema, _name(schema.get("title")), sent, wrapped, _key(sent), check)


def _wrap(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"value": schema}``, with the definitions moved to the root so ``#/$defs/...`` still resolves."""
    inner = {k: v for k, v in schema.items() if k not in ("$defs", "definitions", "$schema")}
    wrapped: dict[str, Any] = {"type": "object", "properties": {"value": inner}, "required": ["value"]}
    for defs in ("$defs", "definitions"):
        if defs in schema:
            wrapped[defs] = schema[defs]
    return wrapped


def _name(title: Any) -> str:
    """A tool/schema name every provider takes (``^[a-zA-Z0-9_-]{1,64}$``)."""
    return _NAME.sub("_", str(title or "answer"))[:64] or "answer"


def _key(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class Spent:
    """Tokens and cost of every send of one ``output=`` call: a re-asked answer's price includes the bad answers."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0

    def add(self, completion: Completion) -> None:
        self.usage = self.usage + completion.usage
        unpriced = self.cost_usd is None or completion.cost_usd is None
        self.cost_usd = None if unpriced else (self.cost_usd or 0.0) + (completion.cost_usd or 0.0)

    def charge(self, completion: Completion) -> Completion:
        return completion.model_copy(update={"usage": self.usage, "cost_usd": self.cost_usd})


def choose_mode(declared: frozenset[str] | None, native_schema: bool, tools: bool) -> Mode:
    """Native JSON schema where the model has it, else a forced tool call, else JSON mode with the schema in the prompt.

    ``declared`` is ``Model.supports`` (for local servers LiteLLM does not know); it wins over LiteLLM's facts.
    """
    if declared is not None:
        native_schema, tools = "json_schema" in declared, "tools" in declared
    if native_schema:
        return "json_schema"
    return "tool" if tools else "json"


def request_fields(spec: OutputSpec, mode: Mode, messages: list[Message]) -> tuple[list[Message], dict[str, Any]]:
    """The messages and ``RequestOptions`` fields that ask for ``spec`` in ``mode``."""
    if mode == "json_schema":
        strict = spec.strict_schema
        body = {"name": spec.name, "schema": strict or spec.schema, "strict": strict is not None}
        return messages, {"response_format": {"type": "json_schema", "json_schema": body}}
    if mode == "tool":
        tool = {
            "type": "function",
            "function": {"name": spec.name, "description": "Give the answer.", "parameters": spec.schema},
        }
        return messages, {"tools": (tool,), "tool_choice": spec.name}
    intro: Message = {"role": "system", "content": _SCHEMA_INTRO + json.dumps(spec.schema, ensure_ascii=False)}
    return [intro, *messages], {"response_format": {"type": "json_object"}}


def _strict(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema as OpenAI's strict mode takes it (every object closed, every property required), or None.

    A default is dropped from the schema sent (strict mode asks for every field); validation still uses the type.
    Open objects (``dict[str, X]``) cannot be strict: the schema is then sent with ``strict: false``.
    """
    strict = copy.deepcopy(schema)

    def close(node: Any) -> bool:
        if isinstance(node, list):
            return all(close(item) for item in node)
        if not isinstance(node, dict):
            return True
        node.pop("default", None)
        if node.get("type") == "object":
            if node.get("additionalProperties") not in (None, False) or "properties" not in node:
                return False
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
        return all(close(value) for key, value in node.items() if key not in ("enum", "const"))

    return strict if close(strict) else None


def answer_text(completion: Completion, spec: OutputSpec, mode: Mode) -> str | None:
    """The raw JSON of an answer: the forced tool call's arguments in tool mode (or text if it wrote text)."""
    if mode == "tool":
        for call in completion.tool_calls:
            if call.name == spec.name:
                return call.raw_arguments or json.dumps(call.arguments)
    return completion.text


def validate(completion: Completion, spec: OutputSpec, mode: Mode | None) -> Completion:
    """The completion with ``parsed`` set and ``text`` the raw JSON; raises ``Invalid`` or ``OutputValidationError``.

    A refusal or a cut answer raises ``OutputValidationError`` at once: re-asking the same thing rarely helps.
    """
    text = answer_text(completion, spec, mode or "json")
    refusal = _refusal(completion)
    if completion.finish_reason == "content_filter" or refusal is not None:
        raise OutputValidationError(
            f"{completion.model} refused to answer{': ' + refusal[:200] if refusal else ''}",
            text=text,
            reason="refusal",
            model=completion.model,
        )
    try:
        value = spec.parse(text)
    except Invalid:
        if completion.finish_reason == "length":
            raise OutputValidationError(
                f"{completion.model} was cut at max_tokens before its JSON answer ended; raise max_tokens",
                text=text,
                reason="length",
                model=completion.model,
            ) from None
        raise
    update: dict[str, Any] = {"parsed": value, "text": text}
    if mode == "tool":
        update["tool_calls"] = [c for c in completion.tool_calls if c.name != spec.name]
    return completion.model_copy(update=update)


def _refusal(completion: Completion) -> str | None:
    """OpenAI's ``message.refusal`` text, when the provider sent one."""
    message = ((completion.raw or {}).get("choices") or [{}])[0].get("message") or {}
    refusal = message.get("refusal")
    return str(refusal) if refusal else None


def revalidate(completion: Completion, spec: OutputSpec) -> Completion | None:
    """A cached answer parsed again (the type may have changed since); None when it no longer validates."""
    try:
        return completion.model_copy(update={"parsed": spec.parse(completion.text)})
    except Invalid:
        return None


def reask_messages(text: str | None, errors: list[dict[str, str]]) -> list[Message]:
    """The bad answer and what was wrong with it (field path and message, never the schema again)."""
    problems = "\n".join(f"- {e['loc']}: {e['msg']}" for e in errors[:20])
    return [
        {"role": "assistant", "content": text or ""},
        {
            "role": "user",
            "content": "That answer did not validate:\n"
            f"{problems}\nAnswer again with the corrected JSON only, in the same format.",
        },
    ]
