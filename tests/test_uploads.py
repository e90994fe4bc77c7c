"""Uploading files instead of sending them inline, end to end through real LiteLLM's files API to the fake.

The fake stores every upload and echoes a part that references one with the stored bytes' type, size and hash, so
each test proves the bytes that arrived are the file's; its upload counters prove how often a file went up.
"""

from __future__ import annotations

import hashlib
import traceback
from pathlib import Path
from typing import Any

import pytest

from llmkit import (
    ConfigError,
    File,
    FileUploads,
    LLMClient,
    LLMError,
    Model,
    ModelNotFoundError,
    ProviderError,
    RetryPolicy,
    UnsupportedFeatureError,
)
from llmkit.testing import FakeProvider

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
KEY = "sk-uploads-marker-key-41c7"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
SMALL_PDF = b"%PDF-1.4\n" + bytes(range(200)) + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2


def echo(mime: str, data: bytes) -> str:
    """What the fake says it received: type, byte count and a short hash of the bytes."""
    return f"[{mime} {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}]"


def client(fake: FakeProvider, wire: str, uploads: Any = None, **kwargs: Any) -> LLMClient:
    model = Model(MODELS[wire], api_base=fake.api_base(wire), api_key=KEY)
    return LLMClient(model, uploads=uploads, **kwargs)


def sent_parts(fake: FakeProvider) -> str:
    """The last chat request's body as text: whether it carried a file inline or by reference."""
    return str(fake.requests[-1].body)


async def test_the_threshold_picks_inline_or_upload(fake_provider: FakeProvider) -> None:
    c = client(fake_provider, "openai", FileUploads(threshold_bytes=1_000))
    small = await c.acomplete(["Summarize", File(SMALL_PDF)])
    assert small.text == f"Echo: Summarize {echo('application/pdf', SMALL_PDF)}"
    assert fake_provider.uploads.count == 0 and "file_data" in sent_parts(fake_provider)
    big = await c.acomplete(["Summarize", File(PDF)])
    assert big.text == f"Echo: Summarize {echo('application/pdf', PDF)}"
    assert fake_provider.uploads.count == 1
    assert "file_id" in sent_parts(fake_provider) and "file_data" not in sent_parts(fake_provider)


@pytest.mark.parametrize("wire", list(MODELS))
async def test_an_upload_arrives_intact_on_every_wire(fake_provider: FakeProvider, wire: str) -> None:
    reply = await client(fake_provider, wire, FileUploads(mode="always")).acomplete(["Summarize", File(PDF)])
    assert reply.text == f"Echo: Summarize {echo('application/pdf', PDF)}"
    assert fake_provider.uploads.requests[f"{wire} upload"] == 1
    body = sent_parts(fake_provider)
    assert "base64" not in body and "JVBERi" not in body  # the PDF's base64 starts with JVBERi
    reference = {"openai": "'file_id': 'file-", "anthropic": "'type': 'file', 'file_id': 'file_", "gemini": "file_uri"}
    assert reference[wire] in body


@pytest.mark.parametrize(("wire", "uploads"), [("openai", 0), ("anthropic", 1), ("gemini", 1)])
async def test_an_image_is_uploaded_only_where_the_chat_route_takes_it_by_id(
    fake_provider: FakeProvider, wire: str, uploads: int
) -> None:
    reply = await client(fake_provider, wire, {"mode": "always"}).acomplete(["What is this?", File(PNG)])
    assert reply.text == f"Echo: What is this? {echo('image/png', PNG)}"
    assert fake_provider.uploads.count == uploads  # OpenAI Chat Completions takes images inline or by URL only


async def test_one_upload_for_100_prompts_that_share_a_file(fake_provider: FakeProvider, tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(PDF)
    report = File(tmp_path / "report.pdf")
    c = client(fake_provider, "gemini", FileUploads(mode="always"), cache=tmp_path / "cache")
    results = await c.abatch([[f"Question {n} about", report] for n in range(100)])
    assert [r.text for r in results] == [f"Echo: Question {n} about {echo('application/pdf', PDF)}" for n in range(100)]
    assert fake_provider.uploads.count == 1
    assert fake_provider.uploads.requests["gemini retrieve"] == 0  # nothing remembered yet: nothing to check


@pytest.mark.parametrize("wire", list(MODELS))
async def test_a_rerun_on_the_same_cache_uploads_nothing_and_an_expired_upload_goes_up_once_more(
    fake_provider: FakeProvider, wire: str, tmp_path: Path
) -> None:
    uploads = FileUploads(mode="always")
    await client(fake_provider, wire, uploads, cache=tmp_path).acomplete(["First", File(PDF)])
    assert fake_provider.uploads.count == 1
    # A new client (a rerun) on the same cache directory: the upload is checked once and reused.
    rerun = client(fake_provider, wire, uploads, cache=tmp_path)
    for n in range(3):
        reply = await rerun.acomplete([f"Rerun {n}", File(PDF)])
        assert reply.text == f"Echo: Rerun {n} {echo('application/pdf', PDF)}"
    assert fake_provider.uploads.count == 1 and fake_provider.uploads.requests[f"{wire} retrieve"] == 1
    # The provider deleted it (expired): the next run's check says so, and the file goes up once more.
    fake_provider.uploads.expire()
    for n in range(2):
        reply = await client(fake_provider, wire, uploads, cache=tmp_path).acomplete([f"Later {n}", File(PDF)])
        assert reply.text == f"Echo: Later {n} {echo('application/pdf', PDF)}"
    assert fake_provider.uploads.count == 2


async def test_reuse_off_uploads_again_in_each_client(fake_provider: FakeProvider, tmp_path: Path) -> None:
    uploads = FileUploads(mode="always", reuse=False)
    for n in range(2):
        await client(fake_provider, "openai", uploads, cache=tmp_path).acomplete([f"Run {n}", File(PDF)])
    assert fake_provider.uploads.count == 2


async def test_the_cache_key_is_the_content_whether_inline_or_uploaded(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    (tmp_path / "a.pdf").write_bytes(PDF)
    (tmp_path / "b.pdf").write_bytes(PDF)
    cache = tmp_path / "cache"
    first = await client(fake_provider, "openai", {"mode": "always"}, cache=cache).acomplete(
        ["Summarize", File(tmp_path / "a.pdf")]
    )
    inline = client(fake_provider, "openai", {"mode": "never"}, cache=cache)
    again = await inline.acomplete(["Summarize", File(tmp_path / "b.pdf")])
    assert again.cache_hit and again.text == first.text
    assert fake_provider.count == 1 and fake_provider.uploads.count == 1


async def test_a_stream_sends_the_upload(fake_provider: FakeProvider) -> None:
    c = client(fake_provider, "gemini", FileUploads(mode="always"))
    items = [item async for item in c.astream(["Summarize", File(PDF)])]
    assert items[-1].text == f"Echo: Summarize {echo('application/pdf', PDF)}"
    assert fake_provider.uploads.count == 1


async def test_a_file_too_big_for_inline_that_cannot_be_uploaded_fails_before_sending(
    fake_provider: FakeProvider,
) -> None:
    big_png = b"\x89PNG\r\n\x1a\n" + bytes(25_000_000)  # 33.3 MB as base64: over OpenAI's 32 MB
    with pytest.raises(UnsupportedFeatureError, match="inline limit.*Gemini takes every kind"):
        await client(fake_provider, "openai").acomplete(["What is this?", File(big_png)])
    big_pdf = b"%PDF-1.4\n" + bytes(16_000_000)  # 21.3 MB as base64: over Gemini's 20 MB
    with pytest.raises(UnsupportedFeatureError, match=r"FileUploads\(providers=\{'gemini': 'auto'\}\)"):
        await client(fake_provider, "gemini", {"providers": {"gemini": "never"}}).acomplete(["Read", File(big_pdf)])
    assert fake_provider.count == 0 and fake_provider.uploads.count == 0


async def test_auto_uploads_a_file_over_the_inline_limit_even_below_the_threshold(
    fake_provider: FakeProvider,
) -> None:
    big_pdf = b"%PDF-1.4\n" + bytes(16_000_000)
    c = client(fake_provider, "gemini", FileUploads(threshold_bytes=10**9))
    reply = await c.acomplete(["Read", File(big_pdf)])
    assert reply.text == f"Echo: Read {echo('application/pdf', big_pdf)}"
    assert fake_provider.uploads.count == 1


async def test_an_upload_failure_is_retried_by_the_client_policy(fake_provider: FakeProvider) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    fake_provider.uploads.fail_next(1, status=500)
    c = client(fake_provider, "anthropic", FileUploads(mode="always"), retry=RetryPolicy(max_attempts=2), sleep=sleep)
    reply = await c.acomplete(["Summarize", File(PDF)])
    assert reply.text == f"Echo: Summarize {echo('application/pdf', PDF)}" and reply.attempts == 2
    assert fake_provider.uploads.requests["anthropic failed"] == 1 and fake_provider.uploads.count == 1
    assert len(waits) == 1


@pytest.mark.parametrize("wire", list(MODELS))
async def test_no_key_in_an_upload_error(fake_provider: FakeProvider, wire: str) -> None:
    fake_provider.uploads.fail_next(1, status=400, echo_key=True)
    c = client(fake_provider, wire, FileUploads(mode="always"), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(LLMError) as caught:
        await c.acomplete(["Summarize", File(PDF)])
    assert caught.value.status == 400 and not caught.value.retryable
    seen = "".join(traceback.format_exception(caught.value)) + repr(caught.value) + str(caught.value.to_dict())
    assert KEY not in seen and fake_provider.uploads.requests[f"{wire} failed"] == 1
    assert fake_provider.count == 0  # the chat request was never sent


async def test_a_404_from_the_files_api_does_not_take_the_model_out_of_the_pool(fake_provider: FakeProvider) -> None:
    fake_provider.uploads.fail_next(1, status=404)
    c = client(fake_provider, "openai", FileUploads(mode="always"), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ProviderError, match="files API") as caught:
        await c.acomplete(["Summarize", File(PDF)])
    assert caught.value.status == 404 and not isinstance(caught.value, ModelNotFoundError)
    reply = await c.acomplete(["Summarize", File(PDF)])
    assert reply.text == f"Echo: Summarize {echo('application/pdf', PDF)}"


async def test_a_pool_skips_the_deployment_that_cannot_take_a_big_file(fake_provider: FakeProvider) -> None:
    big_png = b"\x89PNG\r\n\x1a\n" + bytes(25_000_000)
    pool = [
        Model(MODELS["openai"], api_base=fake_provider.api_base("openai"), api_key=KEY, weight=1000),
        Model(MODELS["gemini"], api_base=fake_provider.api_base("gemini"), api_key=KEY, weight=0.001),
    ]
    reply = await LLMClient(pool).acomplete(["What is this?", File(big_png)])
    assert reply.model == MODELS["gemini"] and reply.text == f"Echo: What is this? {echo('image/png', big_png)}"
    assert fake_provider.count == 1 and fake_provider.uploads.count == 1


def test_a_missing_file_is_a_config_error_before_anything_is_uploaded(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    c = client(fake_provider, "openai", FileUploads(mode="always"))
    with pytest.raises(ConfigError, match="missing.pdf"):
        c.complete(["Summarize", File(tmp_path / "missing.pdf")])
    assert fake_provider.uploads.count == 0


def test_upload_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="uploads files to anthropic, gemini, openai only, not 'mistral'"):
        FileUploads(providers={"mistral": "always"})
    with pytest.raises(ConfigError, match="threshold_bytes"):
        FileUploads(threshold_bytes=-1)
    assert FileUploads(providers={"mistral": "never"}).mode_for("mistral") == "never"
    with pytest.raises(ConfigError, match="mode"):
        LLMClient("openai/gpt-4o-mini", uploads={"mode": "sometimes"})
