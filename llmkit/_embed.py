"""Embeddings: texts packed into requests up to each provider's limits (``_embed_pack``), cached per text
(``_vector_cache``), sent like completions.

Every text has its own cache entry (key: the text, the model and the options), so a corpus that is 90% cached sends
only the rest, packed densely. Duplicates inside one call are sent once. Requests go through the
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
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, computed_field

from . import _transport
from ._batch import _Progress
from ._cache import disk_tier
from ._embed_pack import Batch, Limits, Packer, limits_for, tokens
from ._params import Model, _Params
from ._result import Usage
from ._vector_cache import VectorStore, as_float32
from .errors import AuthenticationError, BadRequestError, ConfigError, LLMError, ModelNotFoundError

if TYPE_CHECKING:
    import numpy

    from ._client import LLMClient

__all__ = ["EmbeddingOptions", "EmbeddingResult", "aembed", "embed_as_completed"]

_KEY_VERSION = "llmkit-embed-1"
# Requests in flight when neither max_in_flight nor limits.max_concurrency says: each carries up to a provider's
# whole batch (2,048 texts for OpenAI), so this bounds memory at ~33,000 texts while keeping 16 requests busy.
_DEFAULT_IN_FLIGHT = 16
# Texts pulled from the input at a time: one cache query each.
_LOOKUP_CHUNK = 256
# Without a cache, this many recent vectors are kept so a nearby repeat is not sent again (bounded memory).
_RECENT = 4096


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

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)

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

    def add(self, reply: _transport.EmbedReply) -> None:
        self.usage += reply.input_tokens
        if self.cost_usd is not None:
            self.cost_usd = None if reply.cost_usd is None else self.cost_usd + reply.cost_usd


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
    limits: Limits
    cache: VectorStore | None
    salt: bytes
    totals: _Totals = field(default_factory=_Totals)
    checked: bool = False

    @property
    def model(self) -> Model:
        return self.client._deployments[self.candidates[0]]

    def key(self, text: str) -> bytes:
        return hashlib.sha256(self.salt + text.encode("utf-8", "surrogatepass")).digest()


def _resolve(client: LLMClient, options: EmbeddingOptions | None, model: str | None) -> _Run:
    options = options or EmbeddingOptions()
    name = model or client.models[0].name
    candidates = [i for i, m in enumerate(client.models) if m.name == name]
    if not candidates:
        raise ConfigError(
            f"model={name!r} is not in this client's pool ({', '.join(m.name for m in client.models)}); "
            "pass one of those names, or add it to the client's models"
        )
    rate_limits = [client.limits, *(client._deployments[i].limits for i in candidates)]
    tokens_per_minute = [limits.tokens_per_minute for limits in rate_limits if limits is not None]
    limits = limits_for(client._deployments[candidates[0]].provider, options.batch_size, tokens_per_minute)
    salt = json.dumps([_KEY_VERSION, name, options.key_part()]).encode() + b"\x00"
    disk = disk_tier(client.cache)
    return _Run(client, options, candidates, limits, disk.vectors if disk is not None else None, salt)


def _bad_input(run: _Run, text: object) -> ConfigError | None:
    if not isinstance(text, str):
        return ConfigError(f"an embedding input must be a str, got {type(text).__name__}; convert it with str()")
    if not text:
        return ConfigError("an embedding input is an empty string; providers refuse it: drop it")
    problem = _transport.embed_input_problem(run.model, text)
    return ConfigError(problem) if problem else None


Outcome = tuple[int, "array[float] | LLMError", bool]  # (input index, vector or error, answered without a request)
Answer = tuple[bytes, "array[float] | LLMError"]  # one key's vector or error from a request


class _Flow:
    """One ``_stream``'s state: the indexes waiting for each key, the packer, the requests in flight and the commit
    of their vectors (a request's slot frees when its reply arrives; its texts are reported once committed).

    One commit at a time (SQLite has one writer): the requests answered while it runs are committed together in the
    next one, so a busy run writes fewer, larger transactions (a random-key insert dirties the same index pages
    whether one request or four share the transaction; docs/benchmarks.md)."""

    def __init__(self, run: _Run, remember: int | None) -> None:
        self.run = run
        self.packer = Packer(run.limits)
        self.tasks: set[asyncio.Task[list[Answer]]] = set()
        self.commit: asyncio.Task[list[Answer]] | None = None
        self.unsaved: list[list[Answer]] = []  # answered requests whose vectors wait for the next commit
        self.saving = 0  # requests in the running commit
        self.done: asyncio.Queue[asyncio.Task[list[Answer]]] = asyncio.Queue()
        self._waiting: dict[bytes, list[int]] = {}
        self._recent: OrderedDict[bytes, array[float]] = OrderedDict()
        self._remember = remember

    def take(self, chunk: list[tuple[int, str]]) -> Iterator[Outcome]:
        """Answer what needs no request (a bad input, a cache hit, a repeat of a text already waiting); pack the rest.

        Without a cache, the last ``remember`` vectors (None: all) answer repeats of texts already sent."""
        keyed: list[tuple[int, str, bytes]] = []
        for index, text in chunk:
            if (bad := _bad_input(self.run, text)) is not None:
                yield index, bad, False
            else:
                keyed.append((index, text, self.run.key(text)))
        # One query for the chunk: a lookup per text cost ~40 µs, the budget of a 20,000 texts/s rerun.
        hits = self.run.cache.get_many([key for _, _, key in keyed]) if self.run.cache is not None else self._recent
        for index, text, key in keyed:
            if key in self._waiting:
                self._waiting[key].append(index)
            elif (hit := hits.get(key)) is not None:
                yield index, hit, True
            else:
                self._waiting[key] = [index]
                self.packer.add(key, text)

    def send(self, batch: Batch) -> None:
        if not self.run.checked:  # before the first request: a cached rerun never imports litellm
            _transport.check_embed(self.run.model, self.run.options.checked_params())
            self.run.checked = True
        task = asyncio.ensure_future(_send(self.run, batch))
        task.add_done_callback(self.done.put_nowait)
        self.tasks.add(task)

    def answered(self, task: asyncio.Task[list[Answer]]) -> Iterator[Outcome]:
        """A finished request's outcomes once its vectors are committed (now, without a cache), or a commit's."""
        if task in self.tasks:
            self.tasks.discard(task)
            if self.run.cache is not None:
                self.unsaved.append(task.result())
                self._commit(self.run.cache)
                return
        if task is self.commit:
            self.commit, self.saving = None, 0
            self._commit(cast(VectorStore, self.run.cache))
        for key, outcome in task.result():
            if self.run.cache is None and isinstance(outcome, array):
                self._recent[key] = outcome
                if self._remember is not None and len(self._recent) > self._remember:
                    self._recent.popitem(last=False)
            for index in self._waiting.pop(key):
                yield index, outcome, False

    @property
    def uncommitted(self) -> int:
        """Answered requests whose texts wait for a commit."""
        return self.saving + len(self.unsaved)

    def _commit(self, cache: VectorStore) -> None:
        """Start a commit of every unsaved request's vectors, unless one is running (it starts the next when done)."""
        if self.commit is not None or not self.unsaved:
            return
        answers = [answer for request in self.unsaved for answer in request]
        vectors = [(key, outcome) for key, outcome in answers if isinstance(outcome, array)]
        self.saving, self.unsaved = len(self.unsaved), []
        self.commit = asyncio.ensure_future(_committed(cache, vectors, answers))
        self.commit.add_done_callback(self.done.put_nowait)

    async def close(self) -> None:
        pending = self.tasks | ({self.commit} if self.commit is not None else set())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def _committed(
    cache: VectorStore, vectors: list[tuple[bytes, array[float]]], answers: list[Answer]
) -> list[Answer]:
    """``answers``, once ``vectors`` are on disk: in a worker thread, since a commit (and now and then SQLite's WAL
    checkpoint) blocks for milliseconds. Nothing answered is lost to a crash after its texts are reported."""
    await asyncio.to_thread(cache.put_many, vectors)
    return answers


async def _stream(
    run: _Run, texts: Iterable[str], max_in_flight: int | None, remember: int | None = _RECENT
) -> AsyncGenerator[Outcome, None]:
    """``(index, vector or error, answered without a request)`` as answers arrive, at most ``max_in_flight``
    requests at once; the iterable is pulled only when a request can start."""
    concurrency = run.client.limits.max_concurrency if run.client.limits else None
    limit = max_in_flight or concurrency or _DEFAULT_IN_FLIGHT
    source = enumerate(texts)
    flow = _Flow(run, remember)
    exhausted = False
    try:
        while True:
            # New requests wait while a backlog of answered requests waits for its commit.
            while len(flow.tasks) < limit and flow.uncommitted <= limit and (flow.packer.ready or not exhausted):
                if flow.packer.ready:
                    flow.send(flow.packer.ready.popleft())
                    continue
                chunk = list(itertools.islice(source, _LOOKUP_CHUNK))
                for outcome in flow.take(chunk):
                    yield outcome
                if not chunk:
                    exhausted = True
                    flow.packer.flush()
            if not flow.tasks and flow.commit is None:
                return
            for outcome in flow.answered(await flow.done.get()):
                yield outcome
    finally:
        await flow.close()


# A request refused with one of these is split to find the text at fault; others fail every text of the request.
_SPLIT_ON = BadRequestError
_NO_SPLIT = (AuthenticationError, ModelNotFoundError)


async def _send(run: _Run, batch: Batch) -> list[Answer]:
    """One request's texts: their vectors, or each text's error when the request failed."""
    try:
        reply = await _attempts(run, [text for _, text in batch])
    except LLMError as exc:
        if len(batch) > 1 and isinstance(exc, _SPLIT_ON) and not isinstance(exc, _NO_SPLIT):
            half = len(batch) // 2
            return await _send(run, batch[:half]) + await _send(run, batch[half:])
        return [(key, exc) for key, _ in batch]
    run.totals.add(reply)
    return [(key, as_float32(vector)) for (key, _), vector in zip(batch, reply.vectors, strict=True)]


async def _attempts(run: _Run, texts: list[str]) -> _transport.EmbedReply:
    """The client's retry loop (``LLMClient._retried``) around an embedding request."""
    from ._client import _Tries

    tries = _Tries()
    slots = _Slots(dict.fromkeys(run.candidates), sum(map(tokens, texts)))
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
