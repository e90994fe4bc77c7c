"""Type aliases shared by the layers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

JSON: TypeAlias = "dict[str, Any] | list[Any] | str | int | float | bool | None"
Message: TypeAlias = "dict[str, Any]"
MessagesInput: TypeAlias = "str | Sequence[Mapping[str, Any]]"
ToolSpec: TypeAlias = "dict[str, Any]"

__all__ = ["JSON", "Message", "MessagesInput", "ToolSpec"]
