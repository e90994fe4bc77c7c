"""Files on the fake: what an image, PDF or audio part carried, and uploads.

A media part is echoed as `[<mime> <bytes> bytes sha256:<12 hex>]`, so a test proves the bytes arrived intact for each
wire format; a part that references an upload is echoed the same way from the uploaded bytes, plus the id. Uploads
are kept in memory. Shapes: https://platform.openai.com/docs/api-reference/files/create,
https://docs.anthropic.com/en/api/files-create, https://ai.google.dev/api/files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["UPLOADS", "Uploads", "describe_part"]


@dataclass(frozen=True)
class Upload:
    id: str
    data: bytes
    mime_type: str
    filename: str


class Uploads:
    """The files uploaded to one fake server, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, Upload] = {}
        self._ids = itertools.count(1)

    def add(self, prefix: str, data: bytes, mime_type: str, filename: str) -> Upload:
        with self._lock:
            upload = Upload(f"{prefix}{next(self._ids):06d}", data, mime_type, filename)
            self._files[upload.id] = upload
            return upload

    def get(self, file_id: str) -> Upload | None:
        with self._lock:
            return self._files.get(file_id.rsplit("/", 1)[-1]) or self._files.get(file_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()


# One store for the process: the wires parse requests with pure functions, and ids never repeat, so servers
# cannot mix their files up.
UPLOADS = Uploads()


def _echo(mime: str, data: bytes, file_id: str | None = None) -> str:
    ref = f" {file_id}" if file_id else ""
    return f"[{mime} {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}{ref}]"


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


def _by_id(uploads: Uploads, file_id: str) -> str:
    upload = uploads.get(file_id)
    return _echo(upload.mime_type, upload.data, upload.id) if upload else f"[unknown file {file_id}]"


def _get(obj: dict[str, Any], camel: str) -> Any:
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()
    return obj.get(camel, obj.get(snake))


def describe_part(part: Any, uploads: Uploads) -> str | None:
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
        return _by_id(uploads, str(file.get("file_id", "")))
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
            return _by_id(uploads, str(source.get("file_id", "")))
        return f"[{kind} {source.get('url', '?')}]"
    inline = _get(part, "inlineData")  # Gemini
    if isinstance(inline, dict):
        data = _b64(inline.get("data", ""))
        return _echo(_get(inline, "mimeType"), data) if data is not None else None
    file_data = _get(part, "fileData")
    if isinstance(file_data, dict):
        return _by_id(uploads, str(_get(file_data, "fileUri")))
    return None
