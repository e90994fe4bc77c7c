"""Packing embedding inputs into requests: each provider's per-request limits (cited below), lowered by the caller's
batch size and tokens-per-minute, with a text's tokens estimated from its characters. No I/O."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Batch", "Limits", "Packer", "limits_for", "tokens"]

# A text's tokens are estimated as chars / 3: above the ~4 chars per token of English, so a packed request stays under
# a provider's token cap; a request refused anyway is split (``_embed._send``).
_CHARS_PER_TOKEN = 3

Batch = list[tuple[bytes, str]]  # one request's (cache key, text) pairs


@dataclass(frozen=True)
class Limits:
    inputs: int
    tokens: int | None


# Per request, by LiteLLM provider prefix.
_PROVIDER_LIMITS = {
    # "any array must be 2048 dimensions or less ... the max value summed across all inputs in a single request is
    # 300,000 tokens" (https://platform.openai.com/docs/api-reference/embeddings/create)
    "openai": Limits(2048, 300_000),
    "azure": Limits(2048, 300_000),
    # "BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch" (400 INVALID_ARGUMENT; e.g.
    # https://github.com/getzep/graphiti/issues/647); no total token cap, 2,048 tokens per text
    # (https://ai.google.dev/gemini-api/docs/models#gemini-embedding)
    "gemini": Limits(100, None),
    # "each request is limited to 250 input texts ... 20,000 tokens" (https://cloud.google.com/vertex-ai/
    # generative-ai/docs/embeddings/get-text-embeddings)
    "vertex_ai": Limits(250, 20_000),
    # "The maximum number of texts per call is 96" (https://docs.cohere.com/reference/embed)
    "cohere": Limits(96, None),
    # "The list can't exceed 1,000 ... total number of tokens ... 120K for voyage-3" (https://docs.voyageai.com/
    # docs/embeddings); 120K is the smallest of its models' caps
    "voyage": Limits(1000, 120_000),
}
# Other providers: a size every embedding API seen takes.
_DEFAULT_LIMITS = Limits(96, 100_000)


def tokens(text: str) -> int:
    """The estimated input tokens of ``text`` (what packing and the tokens-per-minute limiter count)."""
    return len(text) // _CHARS_PER_TOKEN + 1


def limits_for(provider: str, batch_size: int | None, tokens_per_minute: Iterable[float | None]) -> Limits:
    """A provider's caps per request, lowered to ``batch_size`` and to the smallest tokens-per-minute limit (a request
    over a minute's tokens could never be sent)."""
    provider_limits = _PROVIDER_LIMITS.get(provider, _DEFAULT_LIMITS)
    caps = [provider_limits.tokens, *(int(tpm) for tpm in tokens_per_minute if tpm)]
    inputs = min(provider_limits.inputs, batch_size or provider_limits.inputs)
    return Limits(inputs, min((cap for cap in caps if cap), default=None))


class Packer:
    """Texts into requests in arrival order, each within ``limits``; full requests wait in ``ready``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.ready: deque[Batch] = deque()
        self._batch: Batch = []
        self._tokens = 0

    def add(self, key: bytes, text: str) -> None:
        cost = tokens(text)
        if self._batch and (len(self._batch) >= self.limits.inputs or self._over(self._tokens + cost)):
            self.flush()
        self._batch.append((key, text))
        self._tokens += cost

    def flush(self) -> None:
        """The texts added so far become a request of their own."""
        if self._batch:
            self.ready.append(self._batch)
            self._batch, self._tokens = [], 0

    def _over(self, tokens: int) -> bool:
        return self.limits.tokens is not None and tokens > self.limits.tokens
