"""Shared fixtures: an isolated environment for every test and an in-process scripted transport (unit tier)."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS"] = "True"

from llmkit import Completion, StreamDelta, Usage  # noqa: E402
from llmkit._transport import Request  # noqa: E402

PROVIDER_KEY_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "MISTRAL_API_KEY",
    "OPENROUTER_API_KEY",
    "LLMKIT_CONFIG",
    "LLMKIT_CACHE_DIR",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No real key can leak into a test, and nothing writes outside tmp_path."""
    for name in PROVIDER_KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@dataclass
class ScriptedTransport:
    """Replies from a script, in order: a Completion, an LLMError to raise, or a callable(request) -> either.

    With the script empty it echoes the prompt. ``calls`` records every request that reached it.
    """

    script: deque = field(default_factory=deque)
    calls: list[Request] = field(default_factory=list)
    delay_s: float = 0.0
    unsupported: dict[str, Exception] = field(default_factory=dict)

    def enqueue(self, *items: object) -> ScriptedTransport:
        self.script.extend(items)
        return self

    def check(self, request: Request) -> None:
        if request.model.name in self.unsupported:
            raise self.unsupported[request.model.name]

    async def acomplete(self, request: Request) -> Completion:
        self.calls.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        item = self.script.popleft() if self.script else None
        if callable(item):
            item = item(request)
        if isinstance(item, BaseException):
            raise item
        if item is None:
            text = str(request.messages[-1]["content"])
            item = Completion(text=f"echo: {text}", finish_reason="stop", usage=Usage(input_tokens=3, output_tokens=2))
        return item.model_copy(update={"model": request.model.name})

    async def astream(self, request: Request) -> AsyncIterator[StreamDelta | Completion]:
        completion = await self.acomplete(request)
        for word in (completion.text or "").split(" "):
            yield StreamDelta(text=word + " ")
        yield completion


@pytest.fixture
def transport() -> ScriptedTransport:
    return ScriptedTransport()


class FakeSleep:
    """An injected sleep that records waits and advances a fake clock instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture(scope="session")
def llama_cpp_installed() -> None:
    """For the real-model tests: skip only when llama_cpp does not import and LLMKIT_REQUIRE_LOCAL is unset (CI sets
    it, so a broken ``llmkit[local]`` install fails there instead of going green)."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        if os.environ.get("LLMKIT_REQUIRE_LOCAL"):
            pytest.fail(f"LLMKIT_REQUIRE_LOCAL is set but llama_cpp does not import: {exc!r}", pytrace=False)
        pytest.skip(f"llama_cpp does not import ({exc}); pip install -e '.[local]'")
