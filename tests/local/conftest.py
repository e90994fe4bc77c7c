"""Real-model tier: one llama.cpp server with SmolLM2-135M for the whole session (``llmkit[local]``).

These tests skip only when llama_cpp cannot be imported and LLMKIT_REQUIRE_LOCAL is unset; CI sets it, so a broken
install fails there instead of going green.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmkit import LLMClient, Model, RetryPolicy, SamplingParams
from llmkit.local import LocalModelServer


@pytest.fixture(scope="session")
def local_server(llama_cpp_installed: None) -> Iterator[LocalModelServer]:
    with LocalModelServer() as server:
        yield server


@pytest.fixture
def local_model(local_server: LocalModelServer) -> Model:
    return local_server.model()


@pytest.fixture
def client(local_model: Model) -> Iterator[LLMClient]:
    """Greedy decoding, no cache, no retries: one call is one request and the same prompt gives the same text."""
    with LLMClient(
        local_model, sampling=SamplingParams(temperature=0, max_tokens=24), retry=RetryPolicy(max_attempts=1)
    ) as llm:
        yield llm
