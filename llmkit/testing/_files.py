"""Files on the fake: what an image, PDF or audio part carried.

A media part is echoed as `[<mime> <bytes> bytes sha256:<12 hex>]`, so a test proves the bytes arrived intact for each
wire format. A part that references a file uploaded to the fake (``testing._uploads``) is echoed the same way, from
the stored bytes, so a test proves an upload arrived intact too; any other reference (a URL, an unknown id) is echoed
as that reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

__all__ = ["describe_part", "stored_files"]

stored_files: ContextVar[Callable[[str], tuple[str, bytes] | None] | None] = ContextVar("stored_files", default=None)
"""The server's lookup of uploaded files by id, set for each request it handles."""


def _echo(mime: str, data: bytes) -> str:
    return f"[{mime} {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}]"


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


_DATA_URL = re.compile(r"data:(?P<mime>[^;,]+)(?:;[^,]*)?,(?P<data>.*)", re.S)


def _data_url(url: str) -> str | None:
    match = _DATA_URL.fullmatch(url)
    data = _b64(match["data"]) if match else None
    return _echo(match["mime"], data) if match and data is not None else None


def _by_id(file_id: Any, kind: str) -> str:
    """The echo of an uploaded file's stored bytes, or the reference itself when the fake holds no such file."""
    lookup = stored_files.get()
    stored = lookup(str(file_id)) if lookup is not None else None
    return _echo(*stored) if stored is not None else f"[{kind} {file_id}]"


def _get(obj: dict[str, Any], camel: str) -> Any:
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()
    return obj.get(camel, obj.get(snake))


def describe_part(part: Any) -> str | None:
    """The echo of a media part in any of the three wire formats, or None if it is not one."""
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind == "image_url":  # OpenAI
        url = (part.get("image_url") or {}).get("url", "")
        return _data_url(url) or f"[image {url}]"
    if kind == "file":  # OpenAI
        file = part.get("file") or {}
        if file.get("file_data"):
            return _data_url(file["file_data"])
        return _by_id(file.get("file_id", "?"), "file")
    if kind == "input_audio":  # OpenAI
        audio = part.get("input_audio") or {}
        data = _b64(audio.get("data", ""))
        return _echo(f"audio/{audio.get('format')}", data) if data is not None else None
    if kind in ("image", "document"):  # Anthropic
        source = part.get("source") or {}
        if source.get("type") == "base64":
            data = _b64(source.get("data", ""))
            return _echo(source.get("media_type", "?"), data) if data is not None else None
        if source.get("type") == "file":
            return _by_id(source.get("file_id", "?"), kind)
        return f"[{kind} {source.get('url', '?')}]"
    inline = _get(part, "inlineData")  # Gemini
    if isinstance(inline, dict):
        data = _b64(inline.get("data", ""))
        return _echo(_get(inline, "mimeType"), data) if data is not None else None
    file_data = _get(part, "fileData")
    if isinstance(file_data, dict):
        return _by_id(_get(file_data, "fileUri"), "file")
    return None
