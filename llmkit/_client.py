"""``LLMClient``: runs the layers in order for each call.

params -> fingerprint/cache -> rate limiter -> router -> transport -> normalize -> result. Async methods are the
implementation; each sync twin is a one-line wrapper over ``_sync``.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from . import _batch, _sync
from ._cache import ResponseCache
from ._fastpath import FastPathTransport
from ._fingerprint import fingerprint
from ._limiter import Permit, RateLimiter
from ._messages import to_messages
from ._params import Model, RateLimits, RequestOptions, RetryPolicy, SamplingParams, merge
from ._result import Completion, StreamDelta, ToolCallChunk
from ._retry import out_of_attempts, retrying, wait_s
from ._router import Router
from ._status import StatusTracker
from ._transport import Request, Transport
from ._types import Message, MessagesInput
from .errors import (
    AuthenticationError,
    ConfigError,
    ContextWindowExceededError,
    LLMError,
    ModelNotFoundError,
    NoModelAvailableError,
    RateLimitError,
    TimeoutError,
    UnsupportedFeatureError,
)

__all__ = ["DEFAULT_TIMEOUT_S", "LLMClient"]

logger = logging.getLogger("llmkit")
T = TypeVar("T")
# asyncio.timeout (3.11+) bounds an await without wrapping it in a new task, as asyncio.wait_for does before 3.12.
_timeout_scope = getattr(asyncio, "timeout", None)

_DEFAULT_OUTPUT_ESTIMATE = 256
_CHARS_PER_TOKEN = 4
DEFAULT_TIMEOUT_S = 600.0
"""Each attempt's deadline unless a call or the client sets one: the OpenAI and Anthropic SDKs' own default. LiteLLM's
is 6,000 s, and per read, so a stalled or trickling reply could hold a prompt for hours."""


@dataclass
class _Tries:
    """One call's attempts so far, and the deployment that failed last (the retry avoids it).

    ``count`` is per group of deployments (the pool, or one context-window fallback), each with its own retry budget;
    ``earlier`` holds the attempts made on the groups before.
    """

    count: int = 0
    uncharged: int = 0
    last_failed: int | None = None
    sent_at: float | None = None
    earlier: int = 0

    @property
    def charged(self) -> int:
        """The attempts that count against ``max_attempts`` (see ``_retry``)."""
        return self.count - self.uncharged

    @property
    def total(self) -> int:
        return self.earlier + self.count

    def next_group(self) -> None:
        self.earlier += self.count
        self.count = self.uncharged = 0
        self.last_failed = None


@dataclass(frozen=True)
class _Plan:
    """One call, resolved: a request per deployment and the cache keys to look under.

    ``fallbacks`` are the indexes in ``requests`` of the context-window fallbacks, in order; routing never picks them.
    """

    requests: dict[int, Request]
    fingerprints: dict[int, str]
    tokens: int
    prefer: str | None
    fallbacks: tuple[int, ...] = ()

    def only(self, indexes: Collection[int]) -> _Plan:
        return replace(self, requests={i: self.requests[i] for i in indexes}, fallbacks=())


def _as_models(models: Model | str | dict[str, Any] | Sequence[Model | str | dict[str, Any]] | None) -> list[Model]:
    """Models as given: a ``Model``, a LiteLLM model string, or a dict of ``Model`` fields (validated the same way)."""
    if isinstance(models, (Model, str, dict)):
        models = [models]
    return [_as_model(m) for m in models or ()]


def _as_model(model: object) -> Model:
    if isinstance(model, Model):
        return model
    if isinstance(model, str):
        return Model(model)
    if isinstance(model, dict):
        return Model(**model)
    raise ConfigError(
        f"a model must be a Model, a model string or a dict of Model fields, got {type(model).__name__} {model!r:.60}; "
        "e.g. Model('openai/gpt-4o-mini') or {'name': 'openai/gpt-4o-mini'}"
    )


def _as_cache(cache: ResponseCache | str | os.PathLike[str] | None) -> ResponseCache | None:
    if cache is None or isinstance(cache, ResponseCache):
        return cache
    return ResponseCache(cache)


# A context-window fallback that raises one of these hands the prompt on to the next fallback.
_NEXT_FALLBACK = (ContextWindowExceededError, AuthenticationError, ModelNotFoundError, NoModelAvailableError)


def _next_fallback(error: LLMError, refusal: ContextWindowExceededError) -> ContextWindowExceededError:
    """The refusal to raise if no later fallback answers: the newest too-long one."""
    logger.debug("context-window fallback %s did not answer (%s); trying the next", error.model, type(error).__name__)
    return error if isinstance(error, ContextWindowExceededError) else refusal


def _checked_timeout(timeout_s: float | None) -> float | None:
    if timeout_s is not None and (isinstance(timeout_s, bool) or not 0 < timeout_s < float("inf")):
        raise ConfigError(f"timeout_s={timeout_s!r}: must be a number of seconds > 0, or None to wait forever")
    return timeout_s


async def _within(request: Request, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or llmkit's ``TimeoutError`` once the attempt's deadline passes.

    LiteLLM's ``timeout`` is per read: a reply trickling a few bytes at a time never trips it. This bounds the whole
    attempt (connect, wait and read), and cancelling the task closes the connection.
    """
    if request.timeout_s is None:
        return await awaitable
    if _timeout_scope is None:  # Python 3.10
        try:
            return await asyncio.wait_for(awaitable, request.timeout_s)
        except asyncio.TimeoutError:
            pass
    else:
        try:
            async with _timeout_scope(request.timeout_s) as scope:
                return await awaitable
        except builtins.TimeoutError:
            if not scope.expired():
                raise  # the transport's own timeout error, already mapped
    model = request.model
    raise TimeoutError(
        f"{model.name} did not answer within {request.timeout_s:g} s (the whole attempt: connect, wait and read); "
        "for long answers raise RequestOptions(timeout_s=...), LLMClient(timeout_s=...) or --timeout",
        model=model.name,
        provider=model.provider,
    )


async def _prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    yield first
    async for item in rest:
        yield item


def _estimate_tokens(messages: list[Message], sampling: SamplingParams) -> int:
    """Prompt characters / 4 plus max_tokens: what providers count against tokens-per-minute before answering."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return chars // _CHARS_PER_TOKEN + (sampling.max_tokens or _DEFAULT_OUTPUT_ESTIMATE)


class LLMClient:
    """Many models behind one call: cached, rate-limited, retried and routed.

    ``models``: deployments (or model strings) routed by weight. ``sampling``: defaults for every call (a call's own
    sampling overrides it; a model's ``sampling`` is the lowest layer). ``cache``: a ``ResponseCache`` or a directory,
    None for no cache. ``context_window_fallbacks``: models tried in order, only for a prompt that a pool model
    refused as too long. ``timeout_s``: each attempt's deadline (connect, wait and read) unless a call's
    ``RequestOptions.timeout_s`` says otherwise; None waits forever. ``transport``, ``sleep``, ``clock`` and ``seed``
    are for tests.
    """

    def __init__(
        self,
        models: Model | str | Sequence[Model | str],
        *,
        sampling: SamplingParams | None = None,
        limits: RateLimits | None = None,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | str | os.PathLike[str] | None = None,
        context_window_fallbacks: Model | str | Sequence[Model | str] | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        transport: Transport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self.models = _as_models(models)
        if not self.models:
            raise ConfigError("LLMClient needs at least one model: LLMClient(models=[Model('openai/gpt-4o-mini')])")
        self.context_window_fallbacks = _as_models(context_window_fallbacks)
        self.timeout_s = _checked_timeout(timeout_s)
        self.sampling = sampling
        self.limits = limits
        self.retry = retry or RetryPolicy()
        self.cache = _as_cache(cache)
        self.status = StatusTracker()
        self._transport = transport or FastPathTransport()
        self._sleep = sleep
        # One index space for every deployment: the pool's first, then the fallbacks (a 429 cools them down and a bad
        # key takes them out, as for any deployment, but routing only reaches them through _fallbacks).
        self._deployments = [*self.models, *self.context_window_fallbacks]
        self._router = Router(self._deployments, rng=random.Random(seed), clock=clock, pool_size=len(self.models))
        self._limiter = self._new_limiter(limits, clock)
        self._model_limiters = [self._new_limiter(m.limits, clock) for m in self._deployments]
        self._default_sampling = [merge(m.sampling, sampling) for m in self._deployments]

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, pool: str = "default") -> LLMClient:
        """A client for a pool of a YAML config file (found as ``LLMKIT_CONFIG``, ./llmkit.yaml, ~/.config/...)."""
        from ._settings import client_from_config

        return client_from_config(path, pool)

    def _new_limiter(self, limits: RateLimits | None, clock: Callable[[], float]) -> RateLimiter | None:
        if limits is None:
            return None
        return RateLimiter(limits, clock=clock, sleep=self._sleep, on_wait=self.status.waited)

    def __repr__(self) -> str:
        cache = self.cache.path if self.cache is not None else None
        fallbacks = [m.name for m in self.context_window_fallbacks]
        return (
            f"LLMClient(models={[m.name for m in self.models]!r}, "
            + (f"context_window_fallbacks={fallbacks!r}, " if fallbacks else "")
            + f"cache={cache})"
        )

    # -- one call ---------------------------------------------------------------------------------------------

    async def acomplete(
        self,
        prompt: MessagesInput,
        *,
        sampling: SamplingParams | None = None,
        options: RequestOptions | None = None,
        prefer_model: str | None = None,
    ) -> Completion:
        """One answer. Raises ``LLMError`` when it fails after every retry (``batch`` records errors instead)."""
        completion = await self._complete(self.plan(prompt, sampling, options, prefer_model))
        if completion.error is not None:
            raise completion.error
        return completion

    complete = _sync.sync_twin(acomplete)

    async def astream(
        self,
        prompt: MessagesInput,
        *,
        sampling: SamplingParams | None = None,
        options: RequestOptions | None = None,
        prefer_model: str | None = None,
    ) -> AsyncIterator[StreamDelta | Completion]:
        """Text, thinking and tool-call deltas as they arrive, then the final ``Completion``.

        Failures before the first delta are retried like ``acomplete``; once text has been yielded a failure raises.
        """
        plan = self.plan(prompt, sampling, options, prefer_model)
        if (hit := self._cached(plan)) is not None:
            if hit.thinking:
                yield StreamDelta(thinking=hit.thinking)
            if hit.text:
                yield StreamDelta(text=hit.text)
            for index, call in enumerate(hit.tool_calls):
                yield StreamDelta(
                    tool_call=ToolCallChunk(index=index, id=call.id, name=call.name, arguments=call.raw_arguments)
                )
            yield hit
            return
        async for item in self._stream(plan):
            yield item

    def stream(
        self,
        prompt: MessagesInput,
        *,
        sampling: SamplingParams | None = None,
        options: RequestOptions | None = None,
        prefer_model: str | None = None,
    ) -> Iterator[StreamDelta | Completion]:
        """Sync twin of ``astream``."""
        return _sync.iterate(self.astream(prompt, sampling=sampling, options=options, prefer_model=prefer_model))

    # -- the pipeline -----------------------------------------------------------------------------------------

    def plan(
        self,
        prompt: MessagesInput,
        sampling: SamplingParams | None = None,
        options: RequestOptions | None = None,
        prefer_model: str | None = None,
    ) -> _Plan:
        """Resolve a call without sending it: merged parameters and cache key per deployment of the pool.

        Capabilities are checked later, on a cache miss (``_capable``): a cached rerun never needs litellm.
        """
        messages = to_messages(prompt)
        options = options or RequestOptions()
        timeout_s = options.timeout_s if options.timeout_s is not None else self.timeout_s
        requests: dict[int, Request] = {}
        fingerprints: dict[int, str] = {}
        by_key: dict[tuple[str, SamplingParams, str], str] = {}
        pool = len(self.models)
        alive = self._router.available()
        # With every pool model removed, the plan keeps them all, so routing raises NoModelAvailableError with reasons.
        routed = [i for i in alive if i < pool] or range(pool)
        fallbacks = tuple(i for i in alive if i >= pool)
        for index in [*routed, *fallbacks]:
            model = self._deployments[index]
            merged = (
                self._default_sampling[index] if sampling is None else merge(model.sampling, self.sampling, sampling)
            )
            requests[index] = Request(model, messages, merged, options, timeout_s)
            key = (model.name, merged, json.dumps(model.provider_options, sort_keys=True, default=str))
            if key not in by_key:
                by_key[key] = fingerprint(
                    messages,
                    model=model.name,
                    sampling=merged,
                    options=options,
                    provider_options=model.provider_options,
                )
            fingerprints[index] = by_key[key]
        first = next(iter(requests.values()))
        return _Plan(requests, fingerprints, _estimate_tokens(messages, first.sampling), prefer_model, fallbacks)

    def _pool(self, plan: _Plan) -> _Plan:
        """The plan's capable pool deployments: what routing picks from."""
        return self._capable(plan.only(plan.requests.keys() - set(plan.fallbacks)) if plan.fallbacks else plan)

    def _fallbacks(self, plan: _Plan) -> Iterator[_Plan]:
        """Each capable context-window fallback alone, in order; checked only once a prompt needs them."""
        for index in plan.fallbacks:
            try:
                yield self._capable(plan.only((index,)))
            except UnsupportedFeatureError as exc:
                logger.debug("context-window fallback %s skipped: %s", exc.model, exc.message)

    def _capable(self, plan: _Plan) -> _Plan:
        """The plan without the deployments that cannot do what it asks (``UnsupportedFeatureError``) or have no key
        (``AuthenticationError``: the deployment leaves the pool, as after a 401); the first refusal if none can."""
        refusals: list[UnsupportedFeatureError | AuthenticationError] = []
        requests: dict[int, Request] = {}
        for index, request in plan.requests.items():
            try:
                self._transport.check(request)
            except AuthenticationError as exc:
                self._router.on_failure(index, exc)
                refusals.append(exc)
            except UnsupportedFeatureError as exc:
                refusals.append(exc)
            else:
                requests[index] = request
        if not requests:
            raise refusals[0]
        return replace(plan, requests=requests) if refusals else plan

    def _cached(self, plan: _Plan) -> Completion | None:
        if self.cache is None:
            return None
        hit = self.cache.get(list(dict.fromkeys(plan.fingerprints.values())))
        if hit is not None:
            self.status.record(hit)
        return hit

    def _store(self, plan: _Plan, index: int | None, completion: Completion) -> None:
        self.status.record(completion)
        if self.cache is not None and index is not None and completion.ok:
            self.cache.put(plan.fingerprints[index], completion)

    async def _complete(self, plan: _Plan) -> Completion:
        """Cache, then attempts with retries; a final failure comes back as a ``Completion`` with ``error`` set."""
        if (hit := self._cached(plan)) is not None:
            return hit
        start = time.perf_counter()
        tries = _Tries()
        index: int | None = None
        try:
            index, completion = await self._routed(plan, tries)
        except LLMError as exc:
            index, completion = None, Completion(finish_reason="error", error=exc, model=exc.model)
        completion = completion.model_copy(update={"attempts": tries.total, "latency_s": time.perf_counter() - start})
        self._store(plan, index, completion)
        return completion

    async def _routed(self, plan: _Plan, tries: _Tries) -> tuple[int, Completion]:
        """The pool's attempts; a prompt too long for it goes to each context-window fallback in turn.

        A fallback that is itself too small, or broken (bad key, unknown model), hands on to the next; when none
        answers, the last too-long refusal is the error.
        """
        try:
            return await self._attempts(self._pool(plan), tries)
        except ContextWindowExceededError as exc:
            if not plan.fallbacks:
                raise
            refusal = exc
        for view in self._fallbacks(plan):
            tries.next_group()
            try:
                return await self._attempts(view, tries)
            except _NEXT_FALLBACK as exc:
                refusal = _next_fallback(exc, refusal)
        raise refusal

    async def _attempts(self, plan: _Plan, tries: _Tries) -> tuple[int, Completion]:
        """The first attempt runs bare; after a retryable failure, tenacity runs the rest.

        Most calls succeed at once, and tenacity's per-call state is ~40 objects in reference cycles that live through
        the whole request: in a batch that cost ~200 µs of CPU per prompt, most of it garbage collection
        (``bench_core.py --only inflight``).
        """
        try:
            return await self._attempt(plan, tries)
        except LLMError as exc:
            if not exc.retryable or out_of_attempts(self.retry, tries.count, tries.charged):
                raise
            await self._sleep(wait_s(self.retry, exc, tries.count))
        async for attempt in retrying(self.retry, self._sleep, lambda: (tries.count, tries.charged)):
            with attempt:
                result = await self._attempt(plan, tries)
        return result

    async def _acquire(self, plan: _Plan, tries: _Tries) -> tuple[int, list[Permit]]:
        """Client limits, then a deployment and its cooldown, then the deployment's own limits."""
        permits: list[Permit] = []
        try:
            if self._limiter is not None:
                permits.append(await self._limiter.acquire(plan.tokens))
            index, wait = self._router.pick(plan.requests.keys(), avoid=tries.last_failed, prefer=plan.prefer)
            if wait > 0:
                self.status.waited("cooldown", wait)
                await self._sleep(wait)
            limiter = self._model_limiters[index]
            if limiter is not None:
                permits.append(await limiter.acquire(plan.tokens))
        except BaseException:
            for permit in permits:
                permit.release()
            raise
        tries.count += 1
        tries.sent_at = self._router.clock()
        if tries.count > 1:
            self.status.add("retried")
        self.status.add("requests_sent")
        return index, permits

    async def _attempt(self, plan: _Plan, tries: _Tries) -> tuple[int, Completion]:
        index, permits = await self._acquire(plan, tries)
        used: int | None = None
        self.status.add("in_flight")
        request = plan.requests[index]
        try:
            completion = await _within(request, self._transport.acomplete(request))
            used = completion.usage.total_tokens or None
        except LLMError as exc:
            self._failed(index, exc, tries)
            raise
        finally:
            self.status.add("in_flight", -1)
            for permit in permits:
                permit.release(used)
        self._router.on_success(index)
        return index, completion

    def _failed(self, index: int, exc: LLMError, tries: _Tries) -> None:
        # Why a batch retried is otherwise invisible: status counts retries, not their causes. INFO is off by default.
        name = self._deployments[index].name
        logger.info("attempt %d on %s failed: %s: %s", tries.total, name, type(exc).__name__, exc.message[:200])
        if not self._router.on_failure(index, exc, sent_at=tries.sent_at):
            tries.uncharged += 1
        tries.last_failed = index
        if isinstance(exc, RateLimitError):
            self.status.add("rate_limited")

    async def _stream(self, plan: _Plan) -> AsyncIterator[StreamDelta | Completion]:
        """``_routed`` for a stream: every refusal that moves on to a fallback comes before the first delta."""
        tries = _Tries()
        started = False
        try:
            try:
                async for item in self._stream_attempts(self._pool(plan), tries):
                    started = True
                    yield item
                return
            except ContextWindowExceededError as exc:
                if started or not plan.fallbacks:
                    raise
                refusal = exc
            for view in self._fallbacks(plan):
                tries.next_group()
                started = False
                try:
                    async for item in self._stream_attempts(view, tries):
                        started = True
                        yield item
                    return
                except _NEXT_FALLBACK as exc:
                    if started:
                        raise
                    refusal = _next_fallback(exc, refusal)
            raise refusal
        except LLMError as exc:
            self.status.record(Completion(finish_reason="error", error=exc))
            raise

    async def _stream_attempts(self, plan: _Plan, tries: _Tries) -> AsyncIterator[StreamDelta | Completion]:
        """Attempts for a stream: the same waits as ``retrying``, but none once a delta has been yielded."""
        while True:
            started = False
            try:
                async for item in self._stream_once(plan, tries):
                    started = started or not isinstance(item, Completion)
                    yield item
                return
            except LLMError as exc:
                if started or not exc.retryable or out_of_attempts(self.retry, tries.count, tries.charged):
                    raise
                await self._sleep(wait_s(self.retry, exc, tries.count))

    async def _stream_once(self, plan: _Plan, tries: _Tries) -> AsyncIterator[StreamDelta | Completion]:
        index, permits = await self._acquire(plan, tries)
        used: int | None = None
        start = time.perf_counter()
        request = plan.requests[index]
        stream = self._transport.astream(request)
        try:
            # The attempt's deadline covers the wait for the first item; later gaps are LiteLLM's per-read timeout.
            first = await _within(request, anext(stream))
            async for item in _prepend(first, stream):
                if isinstance(item, Completion):
                    used = item.usage.total_tokens or None
                    item = item.model_copy(update={"attempts": tries.total, "latency_s": time.perf_counter() - start})
                    self._router.on_success(index)
                    self._store(plan, index, item)
                yield item
        except LLMError as exc:
            self._failed(index, exc, tries)
            raise
        finally:
            if (aclose := getattr(stream, "aclose", None)) is not None:
                await aclose()  # closes the connection when the consumer stops early or the deadline passed
            for permit in permits:
                permit.release(used)

    # -- batches: implemented in _batch as functions of the client ------------------------------------------

    abatch = _batch.abatch
    batch = _sync.sync_twin(_batch.abatch)
    as_completed = _batch.as_completed

    def close(self) -> None:
        """Close the cache's files (the client is unusable for cached calls afterwards) and the transport's HTTP
        sessions (a later call opens new ones)."""
        if self.cache is not None:
            self.cache.close()
        if (close := getattr(self._transport, "close", None)) is not None:
            close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
