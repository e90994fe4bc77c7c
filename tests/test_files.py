"""Files as content parts, end to end through real LiteLLM to the fake, which echoes what each part carried."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import pytest

from llmkit import ConfigError, File, LLMClient, Model, UnsupportedFeatureError, fingerprint
from llmkit.testing import FakeProvider

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
KEY = "sk-files-marker-key-9e2b"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
WAV = b"RIFF" + struct.pack("<I", 36 + 800) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
WAV += b"data" + struct.pack("<I", 800) + bytes(800)


def echo(mime: str, data: bytes) -> str:
    """What the fake says it received: type, byte count and a short hash of the bytes."""
    return f"[{mime} {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}]"


def client(fake: FakeProvider, wire: str, **kwargs) -> LLMClient:
    return LLMClient(Model(MODELS[wire], api_base=fake.api_base(wire), api_key=KEY), **kwargs)


@pytest.mark.parametrize("wire", list(MODELS))
async def test_an_image_arrives_intact_on_every_wire(fake_provider: FakeProvider, wire: str) -> None:
    reply = await client(fake_provider, wire).acomplete(["What is in this picture?", File(PNG)])
    assert reply.text == f"Echo: What is in this picture? {echo('image/png', PNG)}"


@pytest.mark.parametrize("wire", list(MODELS))
async def test_a_pdf_from_a_path_arrives_intact_on_every_wire(fake_provider: FakeProvider, wire, tmp_path) -> None:
    (tmp_path / "report.pdf").write_bytes(PDF)
    prompt = [{"role": "user", "content": ["Summarize this", File(tmp_path / "report.pdf")]}]
    reply = await client(fake_provider, wire).acomplete(prompt)
    assert reply.text == f"Echo: Summarize this {echo('application/pdf', PDF)}"


async def test_audio_goes_to_a_model_that_takes_it(fake_provider: FakeProvider) -> None:
    reply = await client(fake_provider, "gemini").acomplete(["Transcribe", File(WAV)])
    assert reply.text == f"Echo: Transcribe {echo('audio/wav', WAV)}"
    with pytest.raises(UnsupportedFeatureError, match="audio"):
        await client(fake_provider, "anthropic").acomplete(["Transcribe", File(WAV)])


async def test_a_model_without_vision_fails_before_sending(fake_provider: FakeProvider) -> None:
    blind = LLMClient(Model("openai/gpt-3.5-turbo", api_base=fake_provider.api_base("openai"), api_key=KEY))
    with pytest.raises(UnsupportedFeatureError, match="vision"):
        await blind.acomplete(["What is this?", File(PNG)])
    assert fake_provider.count == 0
    declared = LLMClient(
        Model("openai/my-vlm", api_base=fake_provider.api_base("openai"), api_key=KEY, supports={"vision"})
    )
    assert echo("image/png", PNG) in (await declared.acomplete(["What is this?", File(PNG)])).text


async def test_the_cache_key_is_the_content_not_the_path(fake_provider: FakeProvider, tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(PDF)
    (tmp_path / "b.pdf").write_bytes(PDF)
    (tmp_path / "c.pdf").write_bytes(PDF + b"changed")
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    first = await emb.acomplete(["Summarize", File(tmp_path / "a.pdf")])
    again = await emb.acomplete(["Summarize", File(tmp_path / "b.pdf")])
    assert again.cache_hit and again.text == first.text and fake_provider.count == 1
    await emb.acomplete(["Summarize", File(tmp_path / "c.pdf")])
    assert fake_provider.count == 2
    key = fingerprint(["Summarize", File(tmp_path / "a.pdf")], model="m")
    assert key == fingerprint(["Summarize", File(PDF, mime_type="application/pdf")], model="m")


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0" + bytes(20), "image/jpeg"),
        (b"GIF89a" + bytes(20), "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(20), "image/webp"),
        (PDF, "application/pdf"),
        (WAV, "audio/wav"),
        (b"ID3\x03" + bytes(20), "audio/mpeg"),
    ],
)
def test_the_mime_type_is_sniffed_from_the_bytes(data: bytes, mime: str, tmp_path: Path) -> None:
    assert File(data).mime_type == mime
    (tmp_path / "no-extension").write_bytes(data)
    assert File(tmp_path / "no-extension").mime_type == mime
    assert File(data, mime_type="image/x-mine").mime_type == "image/x-mine"


def test_bad_files_are_config_errors_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.pdf"):
        File(tmp_path / "missing.pdf")
    with pytest.raises(ConfigError, match="a-directory"):
        (tmp_path / "a-directory").mkdir()
        File(tmp_path / "a-directory")
    with pytest.raises(ConfigError, match="mime_type"):
        File(b"no magic here")
    assert File(b"x", mime_type="text/plain").kind == "other"
