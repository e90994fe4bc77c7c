"""Fixtures for the LangChain tests: offline media for langchain_tests, cassettes, and a model factory.

``fake_provider`` comes from llmkit's pytest plugin (the ``pytest11`` entry point).

Every module here marks its tests ``allow_hosts(["127.0.0.1"])`` (pytest-socket), so a connection to any other host
fails the test instead of leaving the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lc_support import API_KEY, MODELS, OfflineHttpx

from llmkit.langchain import ChatLLMKit
from llmkit.testing import FakeProvider


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vcr: langchain_tests' marker for pytest-recording (not used here)")


@pytest.fixture(autouse=True)
def offline_media(monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain_tests.integration_tests.chat_models as standard

    monkeypatch.setattr(standard, "httpx", OfflineHttpx)
    monkeypatch.setenv("LANGCHAIN_TESTS_USER_AGENT", "llmkit-tests (offline)")  # nothing is downloaded


@pytest.fixture
def vcr(request: pytest.FixtureRequest) -> Iterator[Any]:
    """pytest-recording's fixture (this repo runs ``-p no:recording``), for langchain_tests' test_stream_time.

    Replays ``cassettes/<class>.<test>.yaml``, recorded once from the FakeProvider (delete a file to re-record it),
    so the benchmark times ChatLLMKit, llmkit and LiteLLM rather than a server.
    Requests match on method, path and body, since the fake's port changes every run; no key header is stored.
    """
    import vcr as vcrpy

    recorder = vcrpy.VCR(
        cassette_library_dir=str(Path(__file__).parent / "cassettes"),
        record_mode="once",
        match_on=["method", "path", "body"],
        filter_headers=["authorization", "x-api-key", "x-goog-api-key"],
        filter_query_parameters=["key"],
        decode_compressed_response=True,
    )
    name = f"{request.cls.__name__}.{request.node.name}.yaml"
    with recorder.use_cassette(name, allow_playback_repeats=True) as cassette:  # the benchmark replays it often
        yield cassette


@pytest.fixture
def chat(fake_provider: FakeProvider) -> Callable[..., ChatLLMKit]:
    """``chat("anthropic", temperature=0)``: a ChatLLMKit on the fake, retries off unless given."""

    def make(provider: str = "openai", **params: Any) -> ChatLLMKit:
        params.setdefault("model", MODELS[provider])
        params.setdefault("max_retries", 0)
        params.setdefault("api_key", API_KEY)
        return ChatLLMKit(base_url=fake_provider.api_base(provider), **params)

    return make
