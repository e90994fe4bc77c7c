"""Embeddings: texts packed into requests up to each provider's limits, cached per text, sent like completions.

Every text is looked up in the cache on its own (key: the text, the model and the options), so a corpus that is 90%
cached sends only the rest, packed densely. Duplicates inside one call are sent once. Requests go through the
client's limiter (tokens-per-minute counts the input tokens), router (cooldowns after a 429), retry policy and
status, exactly as completions do. A failed request fails only its own texts; a request the provider refuses as bad
is split in halves until the bad text is alone, so one oversized text cannot fail 2,047 others.

One call embeds with one model: vectors from different models live in different spaces, so a pool's other models
never stand in. The pool's other deployments of that model (more keys, regions) share the load.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from array import array
from collections import OrderedDict
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, computed_field

from . import _transport
from ._batch import _Progress
from ._cache import disk_tier
from ._params import Model, _Params
from ._result import Usage
from ._vector_cache import VectorCache, as_float32
from .errors import AuthenticationError, BadRequestError, ConfigError, LLMError, ModelNotFoundError

if TYPE_CHECKING:
    import numpy

    from ._client import LLMClient

__all__ = ["EmbeddingOptions", "EmbeddingResult", "aembed", "embed_as_completed"]

_KEY_VERSION = "llmkit-embed-1"
# Packing and tokens-per-minute estimate a text's tokens as chars / 3: above the ~4 chars per token of English, so a
# packed request stays under a provider's token cap; a request refused anyway is split (see ``_send``).
_CHARS_PER_TOKEN = 3
# Requests in flight when neither max_in_flight nor limits.max_concurrency says: each carries up to a provider's
# whole batch (2,048 texts for OpenAI), so this bounds memory at ~33,000 texts while keeping 16 requests busy.
_DEFAULT_IN_FLIGHT = 16
# Texts pulled from the input at a time: one cache query each.
_LOOKUP_CHUNK = 256
# Without a cache, this many recent vectors are kept so a nearby repeat is not sent again (bounded memory).
_RECENT = 4096


@dataclass(frozen=True)
class _Limits:
    inputs: int
    tokens: int | None


# Per request, by LiteLLM provider prefix.
_PROVIDER_LIMITS = {
    # "any array must be 2048 dimensions or less ... the max value summed across all inputs in a single request is
    # 300,000 tokens" (https://platform.openai.com/docs/api-reference/embeddings/create)
    "openai": _Limits(2048, 300_000),
    "azure": _Limits(2048, 300_000),
    # "BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch" (400 INVALID_ARGUMENT; e.g.
    # https://github.com/getzep/graphiti/issues/647); no total token cap, 2,048 tokens per text
    # (https://ai.google.dev/gemini-api/docs/models#gemini-embedding)
    "gemini": _Limits(100, None),
    # "each request is limited to 250 input texts ... 20,000 tokens" (https://cloud.google.com/vertex-ai/
    # generative-ai/docs/embeddings/get-text-embeddings)
    "vertex_ai": _Limits(250, 20_000),
    # "The maximum number of texts per call is 96" (https://docs.cohere.com/reference/embed)
    "cohere": _Limits(96, None),
    # "The list can't exceed 1,000 ... total number of tokens ... 120K for voyage-3" (https://docs.voyageai.com/
    # docs/embeddings); 120K is the smallest of its models' caps
    "voyage": _Limits(1000, 120_000),
}
# Other providers: a size every embedding API seen takes.
_DEFAULT_LIMITS = _Limits(96, 100_000)


class EmbeddingOptions(_Params):
    """How to embed. ``dimensions`` and ``input_type`` are mapped by LiteLLM per provider; a model that cannot take
    one fails before anything is sent (``UnsupportedFeatureError``)."""

    dimensions: int | None = Field(None, ge=1, description="Output size (text-embedding-3, Gemini); None: the model's.")
    input_type: str | None = Field(
        None,
        min_length=1,
        description="What the text is for, in the provider's words: Gemini task_type ('RETRIEVAL_QUERY', "
        "'RETRIEVAL_DOCUMENT'), Cohere/Voyage input_type ('search_query', 'query').",
    )
    provider_options: dict[str, Any] = Field(
        default_factory=dict, description="Provider-specific request fields, passed through unchanged (in the key)."
    )
    batch_size: int | None = Field(
        None, ge=1, description="Most texts per request; default and ceiling: the provider's limit. Not in the key."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Each request's deadline in seconds (default: the client's timeout_s). Not in the key."
    )

    def checked_params(self) -> dict[str, Any]:
        """The typed options as LiteLLM's ``aembedding`` keywords (what ``check_embed`` verifies)."""
        return {name: value for name in ("dimensions", "input_type") if (value := getattr(self, name)) is not None}

    def key_part(self) -> str:
        """Everything that changes a vector, as canonical JSON."""
        given = {**self.checked_params(), "provider_options": self.provider_options}
        return json.dumps(given, sort_keys=True, separators=(",", ":"), default=str)


class EmbeddingResult(BaseModel):
    """Vectors in input order (None where a text failed; its error is in ``errors`` under the same index).

    The vectors are held as float32 arrays; ``vectors`` builds the lists of floats on first use, and ``as_numpy()``
    builds its matrix straight from the float32 bytes.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    errors: dict[int, LLMError] = Field(default_factory=dict, exclude=True)
    usage: Usage = Field(default_factory=Usage, description="Input tokens of the requests this call sent.")
    cost_usd: float | None = Field(None, description="Price of the requests sent (0 if none); None when unknown.")
    cache_hits: int = Field(0, description="Texts answered from the cache.")
    model: str = ""
    requests: int = Field(0, description="Embedding requests sent (retries included).")
    _arrays: list[array[float] | None] = PrivateAttr(default_factory=list)
    _lists: list[list[float] | None] | None = PrivateAttr(None)

    @classmethod
    def of(cls, arrays: list[array[float] | None], **fields: Any) -> EmbeddingResult:
        result = cls(**fields)
        result._arrays = arrays
        return result

    # Not in the repr: asyncio.run() reprs its main task's result on the way out (Python 3.11's signal check), and
    # a million vectors as text took seconds.
    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def vectors(self) -> list[list[float] | None]:
        """One list of floats per text, in input order; None for a text that failed."""
        if self._lists is None:
            self._lists = [None if a is None else a.tolist() for a in self._arrays]
        return self._lists

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        return [("texts", len(self)), *super().__repr_args__()]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_numpy(self) -> numpy.ndarray[Any, Any]:
        """A float32 array (texts x dimensions); imports numpy only now. Raises the first error if a text failed."""
        import numpy as np

        if self.errors:
            raise self.errors[min(self.errors)]
        arrays = cast("list[array[float]]", self._arrays)
        flat = np.frombuffer(b"".join(a.tobytes() for a in arrays), dtype=np.float32)
        return flat.reshape(len(arrays), len(arrays[0]) if arrays else 0)


@dataclass
class _Totals:
    usage: int = 0
    cost_usd: float | None = 0.0
    requests: int = 0


@dataclass(frozen=True)
class _Slots:
    """What ``LLMClient._acquire`` reads of a plan: the candidate deployments, the token estimate, no preference."""

    requests: dict[int, None]
    tokens: int
    prefer: str | None = None


@dataclass
class _Run:
    """One call resolved: the model's deployments, the packing limits, the cache and the key salt."""

    client: LLMClient
    options: EmbeddingOptions
    candidates: list[int]
    limits: _Limits
    cache: VectorCache | None
    salt: bytes
    totals: _Totals = field(default_factory=_Totals)
    checked: bool = False

    @property
    def model(self) -> Model:
        return self.client._deployments[self.candidates[0]]

    def key(self, text: str) -> str:
        return hashlib.sha256(self.salt + text.encode("utf-8", "surrogatepass")).hexdigest()


def _resolve(client: LLMClient, options: EmbeddingOptions | None, model: str | None) -> _Run:
    options = options or EmbeddingOptions()
    name = model or client.models[0].name
    candidates = [i for i, m in enumerate(client.models) if m.name == name]
    if not candidates:
        raise ConfigError(
            f"model={name!r} is not in this client's pool ({', '.join(m.name for m in client.models)}); "
            "pass one of those names, or add it to the client's models"
        )
    first = client._deployments[candidates[0]]
    provider = _PROVIDER_LIMITS.get(first.provider, _DEFAULT_LIMITS)
    caps = [provider.tokens] + [
        limits.tokens_per_minute and int(limits.tokens_per_minute)
        for limits in (client.limits, *(client._deployments[i].limits for i in candidates))
        if limits is not None
    ]
    tokens = min((c for c in caps if c), default=None)
    inputs = min(provider.inputs, options.batch_size or provider.inputs)
    salt = json.dumps([_KEY_VERSION, name, options.key_part()]).encode() + b"\x00"
    disk = disk_tier(client.cache)
    cache = VectorCache(disk) if disk is not None else None
    return _Run(client, options, candidates, _Limits(inputs, tokens), cache, salt)


def _tokens(text: str) -> int:
    return len(text) // _CHARS_PER_TOKEN + 1


def _bad_input(run: _Run, text: object) -> ConfigError | None:
    if not isinstance(text, str):
        return ConfigError(f"an embedding input must be a str, got {type(text).__name__}; convert it with str()")
    if not text:
        return ConfigError("an embedding input is an empty string; providers refuse it: drop it")
    problem = _transport.embed_input_problem(run.model, text)
    return ConfigError(problem) if problem else None


Outcome = tuple[int, "array[float] | LLMError", bool]


async def _stream(
    run: _Run, texts: Iterable[str], max_in_flight: int | None, remember: int | None = _RECENT
) -> AsyncGenerator[Outcome, None]:
    """``(index, vector or error, from cache)`` as answers arrive; the iterable is pulled only as requests finish.

    Without a cache, the last ``remember`` vectors (None: all) answer repeats of texts already sent.
    """
    concurrency = run.client.limits.max_concurrency if run.client.limits else None
    limit = max_in_flight or concurrency or _DEFAULT_IN_FLIGHT
    source = enumerate(texts)
    waiting: dict[str, list[int]] = {}
    recent: OrderedDict[str, array[float]] = OrderedDict()
    batch: list[tuple[str, str]] = []
    batch_tokens = 0
    tasks: set[asyncio.Task[list[tuple[str, array[float] | LLMError]]]] = set()
    done: asyncio.Queue[asyncio.Task[list[tuple[str, array[float] | LLMError]]]] = asyncio.Queue()
    exhausted = False

    def dispatch() -> None:
        nonlocal batch, batch_tokens
        if not run.checked:  # before the first request: a cached rerun never imports litellm
            _transport.check_embed(run.model, run.options.checked_params())
            run.checked = True
        task = asyncio.ensure_future(_send(run, batch))
        task.add_done_callback(done.put_nowait)
        tasks.add(task)
        batch, batch_tokens = [], 0

    try:
        while True:
            while not exhausted and len(tasks) < limit:
                chunk = list(itertools.islice(source, _LOOKUP_CHUNK))
                if not chunk:
                    exhausted = True
                    if batch:
                        dispatch()
                    break
                keyed: list[tuple[int, str, str]] = []
                for index, text in chunk:
                    if (bad := _bad_input(run, text)) is not None:
                        yield index, bad, False
                    else:
                        keyed.append((index, text, run.key(text)))
                # One query for the chunk: a lookup per text cost ~40 µs, the budget of a 20,000 texts/s rerun.
                hits = run.cache.get_many([key for _, _, key in keyed]) if run.cache is not None else recent
                for index, text, key in keyed:
                    if key in waiting:
                        waiting[key].append(index)
                        continue
                    hit = hits.get(key)
                    if hit is not None:
                        yield index, hit, True
                        continue
                    waiting[key] = [index]
                    cost = _tokens(text)
                    if batch and (len(batch) >= run.limits.inputs or _over(run, batch_tokens + cost)):
                        dispatch()
                    batch.append((key, text))
                    batch_tokens += cost
            if not tasks:
                return
            task = await done.get()
            tasks.discard(task)
            for key, outcome in task.result():
                if run.cache is None and isinstance(outcome, array):
                    recent[key] = outcome
                    if remember is not None and len(recent) > remember:
                        recent.popitem(last=False)
                for index in waiting.pop(key):
                    yield index, outcome, False
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _over(run: _Run, tokens: int) -> bool:
    return run.limits.tokens is not None and tokens > run.limits.tokens


# A request refused with one of these is split to find the text at fault; others fail every text of the request.
_SPLIT_ON = BadRequestError
_NO_SPLIT = (AuthenticationError, ModelNotFoundError)


async def _send(run: _Run, batch: list[tuple[str, str]]) -> list[tuple[str, array[float] | LLMError]]:
    """One request's texts: vectors stored in the cache as they arrive; a failure becomes each text's error."""
    texts = [text for _, text in batch]
    try:
        reply = await _attempts(run, texts)
    except LLMError as exc:
        if len(batch) > 1 and isinstance(exc, _SPLIT_ON) and not isinstance(exc, _NO_SPLIT):
            half = len(batch) // 2
            return await _send(run, batch[:half]) + await _send(run, batch[half:])
        return [(key, exc) for key, _ in batch]
    run.totals.usage += reply.input_tokens
    if run.totals.cost_usd is not None:
        run.totals.cost_usd = None if reply.cost_usd is None else run.totals.cost_usd + reply.cost_usd
    out = [(key, as_float32(vector)) for (key, _), vector in zip(batch, reply.vectors, strict=True)]
    if run.cache is not None:
        # SQLite's commit blocks ~100 µs per vector: in a thread it overlaps the other requests' network waits.
        await asyncio.to_thread(run.cache.put_many, out)
    return cast("list[tuple[str, array[float] | LLMError]]", out)


async def _attempts(run: _Run, texts: list[str]) -> _transport.EmbedReply:
    """The client's retry loop (``LLMClient._retried``) around an embedding request."""
    from ._client import _Tries

    tries = _Tries()
    slots = _Slots(dict.fromkeys(run.candidates), sum(map(_tokens, texts)))
    return await run.client._retried(tries, lambda: _attempt(run, texts, slots, tries))


async def _attempt(run: _Run, texts: list[str], slots: _Slots, tries: Any) -> _transport.EmbedReply:
    """Limits and router as ``LLMClient._attempt`` (``_acquire``, ``_sent``); the request goes to ``_transport.aembed``,
    bounded as a whole like a completion (LiteLLM's timeout is per read)."""
    from ._client import bounded

    client = run.client
    index, permits = await client._acquire(cast(Any, slots), tries)
    run.totals.requests += 1
    model = client._deployments[index]
    timeout_s = run.options.timeout_s if run.options.timeout_s is not None else client.timeout_s
    sent = bounded(timeout_s, model, _transport.aembed(model, texts, _request_params(run.options), timeout_s))
    return await client._sent(index, permits, tries, sent, lambda reply: reply.input_tokens or None)


def _request_params(options: EmbeddingOptions) -> dict[str, Any]:
    return {**options.checked_params(), **options.provider_options}


async def embed_as_completed(
    client: LLMClient,
    texts: Iterable[str],
    *,
    options: EmbeddingOptions | None = None,
    model: str | None = None,
    max_in_flight: int | None = None,
) -> AsyncGenerator[tuple[int, list[float] | LLMError], None]:
    """``(index, vector)`` as texts are answered, ``(index, error)`` for a text that failed; flat memory.

    The iterable is pulled only as requests finish, so a generator of a million texts never sits in memory.
    ``model``: which model of the pool (default: the first). At most ``max_in_flight`` requests at once (default:
    ``limits.max_concurrency``, else 16).
    """
    run = _resolve(client, options, model)
    stream = _stream(run, texts, max_in_flight)
    try:
        async for index, outcome, _ in stream:
            yield index, outcome if isinstance(outcome, LLMError) else outcome.tolist()
    finally:
        await stream.aclose()


async def aembed(
    client: LLMClient,
    texts: Sequence[str],
    *,
    options: EmbeddingOptions | None = None,
    model: str | None = None,
    show_progress: bool = False,
    raise_on_error: bool = False,
    max_in_flight: int | None = None,
) -> EmbeddingResult:
    """Every text's vector in input order. A failed text's vector is None and its error is in ``errors`` (the
    call goes on), unless ``raise_on_error``. ``model``: which model of the pool (default: the first)."""
    if isinstance(texts, str):
        raise ConfigError("embed() takes a list of texts; wrap one text in a list: embed([text])")
    texts = list(texts)
    run = _resolve(client, options, model)
    vectors: list[array[float] | None] = [None] * len(texts)
    errors: dict[int, LLMError] = {}
    hits = 0
    progress = _Progress(client, len(texts), show_progress)
    # The result holds every vector anyway, so without a cache all are remembered: every repeat is sent once.
    stream = _stream(run, texts, max_in_flight, remember=None)
    try:
        async for index, outcome, from_cache in stream:
            if isinstance(outcome, LLMError):
                if raise_on_error:
                    raise outcome
                errors[index] = outcome
            else:
                vectors[index] = outcome
                hits += from_cache
            progress.update(None, len(errors))
    finally:
        await stream.aclose()
        progress.close(len(errors))
    totals = run.totals
    return EmbeddingResult.of(
        vectors,
        errors=errors,
        usage=Usage(input_tokens=totals.usage),
        cost_usd=totals.cost_usd,
        cache_hits=hits,
        model=run.model.name,
        requests=totals.requests,
    )
