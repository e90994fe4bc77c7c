"""Files on the fake: what an image, PDF or audio part carried.

A media part is echoed as `[<mime> <bytes> bytes sha256:<12 hex>]`, so a test proves the bytes arrived intact for each
wire format; a part that references a file by id or URL is echoed as that reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

__all__ = ["describe_part"]


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
        return f"[file {file.get('file_id', '?')}]"
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
            return f"[{kind} {source.get('file_id', '?')}]"
        return f"[{kind} {source.get('url', '?')}]"
    inline = _get(part, "inlineData")  # Gemini
    if isinstance(inline, dict):
        data = _b64(inline.get("data", ""))
        return _echo(_get(inline, "mimeType"), data) if data is not None else None
    file_data = _get(part, "fileData")
    if isinstance(file_data, dict):
        return f"[file {_get(file_data, 'fileUri')}]"
    return None
