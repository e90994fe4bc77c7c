"""``File``: an image, PDF or audio clip as a content part, identified by its content hash.

A ``File`` reads its bytes when built (a missing or unreadable path is a ``ConfigError`` naming it, before anything
is sent), sniffs the MIME type from the bytes when none is given, and is keyed by the sha256 of its content: the
same PDF read from two paths is the same request to the cache. The content part LiteLLM expects is built at the
transport edge (``content_part``); LiteLLM translates it per provider: ``image_url`` (OpenAI, and Anthropic
``image`` / Gemini ``inline_data``), ``file`` with ``file_data`` for documents (OpenAI ``file``, Anthropic
``document``, Gemini ``inline_data``), ``input_audio`` for audio (https://docs.litellm.ai/docs/completion/vision,
.../document_understanding, .../audio). Whether a file goes inline or by an uploaded id is decided per attempt by
``_uploads`` (``FileUploads``), which replaces the ``File`` with a reference to its upload.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["File", "FileKind"]

FileKind = Literal["image", "pdf", "audio", "other"]

# Magic numbers: (offset, bytes, MIME type). RIFF containers are told apart by their form type at offset 8.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (0, b"%PDF-", "application/pdf"),
    (8, b"WAVE", "audio/wav"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"\xff\xf3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"OggS", "audio/ogg"),
)
# input_audio's "format" field: OpenAI takes "wav" and "mp3" (https://platform.openai.com/docs/guides/audio).
_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}


def sniff_mime(data: bytes) -> str | None:
    """The MIME type the leading bytes announce, or None."""
    for offset, magic, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return mime
    return None


class File:
    """``File(path | bytes | url, mime_type=None)``: a content part for a prompt.

    ``path`` (str or ``os.PathLike``) is read now; ``bytes`` are taken as they are; an ``http(s)://`` URL is sent
    as a reference (the provider fetches it). ``mime_type`` defaults to what the bytes announce, then the file name's
    extension. Raises ``ConfigError`` for a missing or unreadable path, or a type that cannot be told.
    """

    __slots__ = ("data", "url", "mime_type", "name", "sha256")

    def __init__(self, source: str | os.PathLike[str] | bytes, mime_type: str | None = None) -> None:
        self.data: bytes | None = None
        self.url: str | None = None
        self.name: str | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
        elif isinstance(source, str) and source.startswith(("http://", "https://")):
            self.url = source
        elif isinstance(source, (str, os.PathLike)):
            self.data, self.name = _read(Path(source)), Path(source).name
        else:
            raise ConfigError(f"File() takes a path, bytes or an http(s) URL, got {type(source).__name__}")
        self.mime_type = mime_type or self._guess_mime()
        content = self.data if self.data is not None else (self.url or "").encode()
        self.sha256 = hashlib.sha256(content).hexdigest()

    def _guess_mime(self) -> str:
        sniffed = sniff_mime(self.data) if self.data is not None else None
        guessed = sniffed or mimetypes.guess_type(self.name or self.url or "")[0]
        if guessed is None:
            where = self.name or self.url or f"{len(self.data or b'')} bytes"
            raise ConfigError(
                f"cannot tell the type of File({where!r}) from its bytes or name; pass mime_type='image/png' "
                "(or application/pdf, audio/wav, ...)"
            )
        return guessed

    @property
    def kind(self) -> FileKind:
        if self.mime_type.startswith("image/"):
            return "image"
        if self.mime_type == "application/pdf":
            return "pdf"
        if self.mime_type.startswith("audio/"):
            return "audio"
        return "other"

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0

    def fingerprint(self) -> dict[str, str]:
        """What the cache key sees: the content hash and type, never a path or an upload id."""
        return {"type": "file", "mime_type": self.mime_type, "sha256": self.sha256}

    def data_url(self) -> str:
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data or b'').decode()}"

    def content_part(self) -> dict[str, Any]:
        """The OpenAI-format part LiteLLM translates for each provider: the bytes inline, or the URL."""
        if self.kind == "image":
            return {"type": "image_url", "image_url": {"url": self.url or self.data_url()}}
        if self.url is not None:
            return {"type": "file", "file": {"file_id": self.url, "format": self.mime_type}}
        if self.kind == "audio" and self.mime_type in _AUDIO_FORMATS:
            data = base64.b64encode(self.data or b"").decode()
            return {"type": "input_audio", "input_audio": {"data": data, "format": _AUDIO_FORMATS[self.mime_type]}}
        return {"type": "file", "file": {"file_data": self.data_url(), "filename": self.name or f"file.{self.kind}"}}

    def __repr__(self) -> str:
        where = self.name or self.url or "bytes"
        return f"File({where!r}, mime_type={self.mime_type!r}, size={self.size}, sha256={self.sha256[:12]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and (other.sha256, other.mime_type) == (self.sha256, self.mime_type)

    def __hash__(self) -> int:
        return hash((self.sha256, self.mime_type))


def _read(path: Path) -> bytes:
    try:
        return path.expanduser().read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"File({str(path)!r}): no such file; check the path (relative to {os.getcwd()})") from None
    except OSError as exc:
        raise ConfigError(f"File({str(path)!r}) cannot be read: {exc.strerror or exc}; check its permissions") from None


def files_in(messages: list[dict[str, Any]]) -> list[File]:
    """Every ``File`` part of the messages, in order."""
    return [p for m in messages if isinstance(m.get("content"), list) for p in m["content"] if isinstance(p, File)]


def with_parts(messages: list[dict[str, Any]], part_for: Any) -> list[dict[str, Any]]:
    """The messages with each ``File`` replaced by ``part_for(file)`` (others returned unchanged, not copied)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(p, File) for p in content):
            message = {**message, "content": [part_for(p) if isinstance(p, File) else p for p in content]}
        out.append(message)
    return out
