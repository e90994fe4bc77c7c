"""``LLMKitEmbeddings``: LangChain's ``Embeddings`` over ``LLMClient.embed`` (re-exported by ``llmkit.langchain``).

Conversion only: packing, the per-text cache, rate limits and retries are the client's. ``aembed_documents`` is
native async, so LangChain's async paths keep the client's limiter and cache (the default would run the sync method
in a thread pool).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator
from typing_extensions import Self

from . import ConfigError, EmbeddingOptions, LLMClient, Model, RateLimits, ResponseCache, RetryPolicy
from ._lc_convert import env_key

__all__ = ["LLMKitEmbeddings"]

_CLIENT_OWNS = frozenset({"model", "api_key", "base_url", "max_retries", "limits", "cache"})


class LLMKitEmbeddings(BaseModel, Embeddings):
    """``LLMKitEmbeddings(model="openai/text-embedding-3-small")``, or ``client=LLMClient(...)``."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: str | None = None
    """A LiteLLM embedding model string, e.g. 'openai/text-embedding-3-small'."""
    api_key: SecretStr | None = None
    """The provider key; default: the provider's environment variable (OPENAI_API_KEY, GEMINI_API_KEY, ...)."""
    base_url: str | None = None
    """Endpoint override (a proxy, a local server, the FakeProvider)."""
    dimensions: int | None = None
    """Output size, for models that take it (text-embedding-3, Gemini)."""
    max_retries: int | None = None
    """Retries after the first attempt (llmkit's; nothing else retries). Default: llmkit's RetryPolicy."""
    limits: RateLimits | None = None
    """Client-side rate limits (tokens per minute count the input tokens)."""
    cache: ResponseCache | str | Path | None = None
    """A ``ResponseCache`` or directory: vectors are cached per text."""
    options: EmbeddingOptions | None = None
    """Everything else ``embed`` takes (input_type, provider_options, batch_size)."""
    client: LLMClient | None = None
    """A configured client; then model, api_key, base_url, max_retries, limits and cache belong to it."""

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        if self.client is not None:
            clash = sorted(self.model_fields_set & _CLIENT_OWNS)
            if clash:
                raise ConfigError(f"LLMKitEmbeddings(client=...) was also given {clash}; set those on the LLMClient")
            self.model = self.client.models[0].name
        elif not self.model:
            raise ConfigError("LLMKitEmbeddings needs model='openai/text-embedding-3-small' or client=LLMClient(...)")
        elif self.api_key is None and (var := env_key(self.model)) and os.environ.get(var):
            self.api_key = SecretStr(os.environ[var])
        _ = self._options  # a bad dimensions fails here, not on the first call
        return self

    @cached_property
    def _client(self) -> LLMClient:
        if self.client is not None:
            return self.client
        retry = RetryPolicy(max_attempts=self.max_retries + 1) if self.max_retries is not None else None
        model = Model(self.model or "", api_base=self.base_url, api_key=self.api_key)
        return LLMClient(model, limits=self.limits, retry=retry, cache=self.cache)

    @cached_property
    def _options(self) -> EmbeddingOptions | None:
        if self.dimensions is None:
            return self.options
        given = self.options.model_dump(exclude_unset=True) if self.options else {}
        return EmbeddingOptions(**{**given, "dimensions": self.dimensions})

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; raises the first failure (LangChain has no per-item errors)."""
        return self._vectors(self._client.embed(texts, options=self._options, raise_on_error=True).vectors)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        result = await self._client.aembed(texts, options=self._options, raise_on_error=True)
        return self._vectors(result.vectors)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]

    @staticmethod
    def _vectors(vectors: list[list[float] | None]) -> list[list[float]]:
        return [v for v in vectors if v is not None]  # raise_on_error: none is None
