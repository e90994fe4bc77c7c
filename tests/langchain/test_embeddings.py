"""LangChain's standard embeddings suites for ``LLMKitEmbeddings``: unit once, integration per wire format."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from lc_support import API_KEY

from llmkit import LLMClient, Model
from llmkit.langchain import LLMKitEmbeddings
from llmkit.testing import FakeProvider

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

MODELS = {"openai": "openai/text-embedding-3-small", "gemini": "gemini/text-embedding-004"}


class TestLLMKitEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[LLMKitEmbeddings]:
        return LLMKitEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MODELS["openai"], "base_url": "http://127.0.0.1:9/v1"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return {"GEMINI_API_KEY": "env-key"}, {"model": MODELS["gemini"]}, {"api_key": "env-key"}


class _OnFakeProvider(EmbeddingsIntegrationTests):
    provider = "openai"

    @pytest.fixture(autouse=True)
    def _serve(self, fake_provider: FakeProvider) -> None:
        self.fake = fake_provider

    @property
    def embeddings_class(self) -> type[LLMKitEmbeddings]:
        return LLMKitEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MODELS[self.provider], "base_url": self.fake.api_base(self.provider), "api_key": API_KEY}


class TestLLMKitEmbeddingsOpenAI(_OnFakeProvider):
    provider = "openai"


class TestLLMKitEmbeddingsGemini(_OnFakeProvider):
    provider = "gemini"


async def test_documents_go_through_the_clients_cache_and_packing(fake_provider: FakeProvider, tmp_path) -> None:
    embeddings = LLMKitEmbeddings(
        model=MODELS["gemini"], base_url=fake_provider.api_base("gemini"), api_key=API_KEY, cache=tmp_path / "c"
    )
    docs = [f"doc {i}" for i in range(150)]
    first = await embeddings.aembed_documents(docs)
    assert sorted(len(r.body["requests"]) for r in fake_provider.requests) == [50, 100]
    assert embeddings.embed_documents(docs) == first and fake_provider.count == 2  # all from the cache
    assert embeddings.embed_query("doc 3") == first[3]


def test_dimensions_and_a_shared_client(fake_provider: FakeProvider) -> None:
    base = fake_provider.api_base("openai")
    assert (
        len(LLMKitEmbeddings(model=MODELS["openai"], base_url=base, api_key=API_KEY, dimensions=5).embed_query("x"))
        == 5
    )
    client = LLMClient(Model(MODELS["openai"], api_base=base, api_key=API_KEY))
    assert len(LLMKitEmbeddings(client=client).embed_query("x")) == 16
    with pytest.raises(ValueError, match="set those on the LLMClient"):  # pydantic wraps the ConfigError
        LLMKitEmbeddings(client=client, model="openai/other")
