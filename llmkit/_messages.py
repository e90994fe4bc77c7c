"""Turn what a caller passes (a string, a list of role/content dicts, or a list of str and ``File`` parts) into one
canonical message list. ``File`` parts stay ``File`` objects here: the fingerprint keys them by content hash and the
transport turns them into the part each provider takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._files import File
from ._types import Message, MessagesInput
from .errors import ConfigError

__all__ = ["to_messages"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def to_messages(prompt: MessagesInput) -> list[Message]:
    """A str becomes one user message; a list of dicts is checked and copied (never mutated)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, Mapping) or not hasattr(prompt, "__iter__"):
        raise ConfigError(
            f"a prompt must be a str or a list of messages, got {type(prompt).__name__}; "
            "wrap one message in a list: [{'role': 'user', 'content': ...}]"
        )
    items: list[Any] = list(prompt)
    if any(isinstance(item, File) for item in items) and all(isinstance(item, (str, File)) for item in items):
        # ["What is in this picture?", File(...)]: the parts of one user message.
        return [{"role": "user", "content": [_part(item) for item in items]}]
    messages = [_check(i, message) for i, message in enumerate(items)]
    if not messages:
        raise ConfigError("the message list is empty; give at least one message")
    return messages


def _part(item: str | File) -> dict[str, Any] | File:
    return {"type": "text", "text": item} if isinstance(item, str) else item


def _check(index: int, message: Any) -> Message:
    if not isinstance(message, Mapping):
        raise ConfigError(f"messages[{index}] is a {type(message).__name__}, expected a dict with 'role' and 'content'")
    role = message.get("role")
    if role not in _ROLES:
        raise ConfigError(f"messages[{index}].role={role!r} is not one of {sorted(_ROLES)}")
    if "content" not in message and not message.get("tool_calls"):
        raise ConfigError(f"messages[{index}] has no 'content'; give content (None only with tool_calls)")
    content = message.get("content")
    if isinstance(content, list) and any(isinstance(part, File) for part in content):
        content = [_part(part) if isinstance(part, str) else part for part in content]
        message = {**message, "content": content}
    _check_content(index, content, bool(message.get("tool_calls")))
    return dict(message)


def _check_content(index: int, content: Any, has_tool_calls: bool) -> None:
    """Content is text, a list of typed parts, or None beside tool calls: anything else would reach the provider and
    come back as a misleading error (``content=42`` was a retryable connection error, sent three times)."""
    if isinstance(content, str) or (content is None and has_tool_calls):
        return
    if isinstance(content, list) and content:
        for number, part in enumerate(content):
            if not (isinstance(part, File) or (isinstance(part, Mapping) and isinstance(part.get("type"), str))):
                raise ConfigError(
                    f"messages[{index}].content[{number}] is {_shown(part)}; a content part is a File or a dict with "
                    "a 'type', e.g. {'type': 'text', 'text': '...'} or {'type': 'image_url', 'image_url': {'url': ...}}"
                )
        return
    raise ConfigError(
        f"messages[{index}].content is {_shown(content)}; give a str, or a non-empty list of content parts "
        "({'type': 'text', 'text': '...'}, ...)"
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"
