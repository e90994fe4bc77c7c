"""What the LangChain tests share: constants, a tool, a schema and offline stand-ins (a plain module to import)."""

from __future__ import annotations

import io
import struct
import wave
import zlib
from typing import Any

from langchain_core.tools import tool
from pydantic import BaseModel

API_KEY = "fake-key"
MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
REASONING_MODELS = {**MODELS, "openai": "openai/o4-mini"}


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"Sunny in {city}."


class Movie(BaseModel):
    """A film."""

    title: str
    year: int


def _png() -> bytes:
    """A valid 1x1 white PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff"))
        + chunk(b"IEND", b"")
    )


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\x00\x00" * 80)
    return buffer.getvalue()


_PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
MEDIA = {".png": _png(), ".wav": _wav(), ".pdf": _PDF}


class _Response:
    def __init__(self, content: bytes) -> None:
        self.content = content


class OfflineHttpx:
    """Stands in for ``httpx`` inside langchain_tests, which downloads sample media from public hosts."""

    @staticmethod
    def get(url: str, **_: Any) -> _Response:
        for suffix, content in MEDIA.items():
            if url.endswith(suffix):
                return _Response(content)
        raise AssertionError(f"a test tried to download {url}; add a local stand-in to MEDIA")
