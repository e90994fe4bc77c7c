"""``LLMClient``: runs the layers in order for each call.

params -> fingerprint/cache -> rate limiter -> router -> transport -> normalize -> result. Async methods are the
implementation; each sync twin is a one-line wrapper over ``_sync``.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from . import _sync
from ._budget import (
    Account,
    AttemptTimer,
    Budget,
    Reservation,
    Scope,
    WaitRefused,
    check_wait,
    deadline_at,
    declared_cost,
)
from ._cache import ResponseCache, disk_tier
from ._fingerprint import fingerprint
from ._lazy import LazyMethod
from ._limiter import Permit, RateLimiter
from ._messages import to_messages
from ._output import (
    Invalid,
    Mode,
    OutputSpec,
    Spent,
    answer_text,
    choose_mode,
    output_spec,
    reask_messages,
    request_fields,
    revalidate,
)
from ._output import validate as validate_output
from ._params import (
    Model,
    RateLimits,
    RequestOptions,
    RetryPolicy,
    SamplingParams,
    as_params,
    explain_keywords,
    merge,
    with_output,
)
from ._result import Completion, StreamDelta, ToolCallChunk
from ._retry import out_of_attempts, retrying, wait_s
from ._router import Router
from ._status import StatusTracker
from ._trace import (
    AttemptFailed,
    AttemptStarted,
    CacheHit,
    CallCompleted,
    Decision,
    Hooks,
    HookSet,
    Tracer,
    WaitStarted,
)
from ._transport import Request, Transport, model_price, output_support
from ._types import Message, MessagesInput
from .errors import (
    AuthenticationError,
    ConfigError,
    ContextWindowExceededError,
    LLMError,
    ModelNotFoundError,
    NoModelAvailableError,
    OutputValidationError,
    RateLimitError,
    TimeoutError,
    UnsupportedFeatureError,
)

if TYPE_CHECKING:
    from . import _batch, _embed, _provider_batch, _workers
    from ._redis import RedisState, SharedCache
    from ._uploads import FileUploads

__all__ = ["DEFAULT_TIMEOUT_S", "LLMClient"]

logger = logging.getLogger("llmkit")
T = TypeVar("T")
# AttemptTimer (3.11+: Task.uncancel) bounds an await without wrapping it in a new task, as asyncio.wait_for does
# before 3.12.
_HAS_UNCANCEL = hasattr(asyncio.Task, "uncancel")


@functools.cache
def _no_options() -> RequestOptions:
    """One shared instance (frozen) saves validating a new one per call. Made at the first call, not at import: the
    first ``RequestOptions()`` builds its pydantic validator, and pydantic scans every installed package's entry
    points for plugins then (~15 ms of ``import llmkit``)."""
    return RequestOptions()


_DEFAULT_OUTPUT_ESTIMATE = 256
_CHARS_PER_TOKEN = 4
DEFAULT_TIMEOUT_S = 600.0
"""Each attempt's deadline unless a call or the client sets one: the OpenAI and Anthropic SDKs' own default. LiteLLM's
is 6,000 s, and per read, so a stalled or trickling reply could hold a prompt for hours."""


@dataclass(slots=True)  # one per call, alive for the whole call: small and quick to read
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
    first_send: float | None = None  # perf_counter at the first attempt's send: where latency_s starts
    deadline: float | None = None
    accounts: tuple[Account, ...] = ()
    reservation: Reservation | None = None
    last_error: LLMError | None = None
    # Only with hooks: the ids and timings their events carry.
    call_id: str = ""
    metadata: dict[str, Any] | None = None
    request: Request | None = None
    attempt_start: float = 0.0

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
    ``output`` is the ``output=`` this call asks for (one per call: every deployment shares the options).
    """

    requests: dict[int, Request]
    fingerprints: dict[int, str]
    tokens: int
    prefer: str | None
    fallbacks: tuple[int, ...] = ()
    output: OutputSpec | None = None

    def only(self, indexes: Collection[int]) -> _Plan:
        return replace(self, requests={i: self.requests[i] for i in indexes}, fallbacks=())

    @property
    def output_modes(self) -> dict[str, Mode]:
        """How each deployment will be asked for ``output=`` (asks LiteLLM what each model supports)."""
        if self.output is None:
            return {}
        return {r.model.name: r.options.output_mode or output_mode(r.model) for r in self.requests.values()}

    def reasked(self, messages: list[Message], **sampling: Any) -> _Plan:
        """The same call with ``messages`` appended (and ``sampling`` overridden); cached under the same keys."""
        requests = {
            i: replace(
                r,
                messages=[*r.messages, *messages],
                sampling=merge(r.sampling, SamplingParams(**sampling)) if sampling else r.sampling,
            )
            for i, r in self.requests.items()
        }
        return replace(self, requests=requests)


def output_mode(model: Model) -> Mode:
    """Native JSON schema, a forced tool call, or JSON mode: what ``model`` declares, else what LiteLLM knows of it."""
    if model.supports is not None:
        return choose_mode(model.supports, False, False)
    return choose_mode(None, *output_support(model.name))


def _output_retries(plan: _Plan) -> int:
    return next(iter(plan.requests.values())).options.max_output_retries


def _shaped(request: Request) -> Request:
    """The request as sent: the ``output=`` type turned into this deployment's response format, tool or prompt."""
    output = request.options.output
    if output is None:
        return request
    if request.sampling.json_mode:
        raise ConfigError("output= already asks for JSON; drop json_mode=True")
    mode = request.options.output_mode or output_mode(request.model)
    messages, fields = request_fields(output_spec(output), mode, request.messages)
    # model_copy: RequestOptions refuses output= next to tools/response_format from a user, not from here.
    return replace(request, messages=messages, options=request.options.model_copy(update=fields))


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


def _as_cache(
    cache: ResponseCache | SharedCache | str | os.PathLike[str] | None,
) -> ResponseCache | SharedCache | None:
    if cache is None or not isinstance(cache, (str, os.PathLike)):
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


async def bounded(timeout_s: float | None, model: Model, awaitable: Awaitable[T]) -> T:
    """``awaitable`` within ``timeout_s`` seconds (None: no bound), else llmkit's retryable ``TimeoutError``.

    LiteLLM's ``timeout`` is per read: a reply trickling a few bytes at a time never trips it. This bounds the whole
    attempt (connect, wait and read), and cancelling the task closes the connection.
    """
    if timeout_s is None:
        return await awaitable
    if not _HAS_UNCANCEL:  # Python 3.10
        try:
            return await asyncio.wait_for(awaitable, timeout_s)
        except asyncio.TimeoutError:
            pass
    else:
        timer = AttemptTimer(timeout_s)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not timer.expired():
                raise  # cancelled from elsewhere
        finally:
            timer.stop()
    raise TimeoutError(
        f"{model.name} did not answer within {timeout_s:g} s (the whole attempt: connect, wait and read); "
        "for long answers raise RequestOptions(timeout_s=...), LLMClient(timeout_s=...) or --timeout",
        model=model.name,
        provider=model.provider,
    )


def _tokens_used(completion: Completion) -> int | None:
    return completion.usage.total_tokens or None


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
    ``RequestOptions.timeout_s`` says otherwise; None waits forever. ``budget``: the most this client may ever spend
    (``Budget``); a batch may add its own. ``hooks``: ``Hooks`` (a ``Tracer`` among them) told of every attempt,
    answer, cache hit and wait. ``shared``: a ``RedisState`` that holds the limits and cooldowns for every process
    using it. ``uploads``: when a ``File`` is uploaded through the provider's files API instead of sent inline
    (``FileUploads``; by default files of 10 MB or more). ``transport``, ``sleep``, ``clock`` and ``seed`` are for
    tests.
    """

    def __init__(
        self,
        models: Model | str | Sequence[Model | str],
        *,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        limits: RateLimits | Mapping[str, Any] | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        cache: ResponseCache | SharedCache | str | os.PathLike[str] | None = None,
        context_window_fallbacks: Model | str | Sequence[Model | str] | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        budget: Budget | None = None,
        hooks: Hooks | Sequence[Hooks] | None = None,
        shared: RedisState | None = None,
        uploads: FileUploads | Mapping[str, Any] | None = None,
        transport: Transport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        sampling = as_params(SamplingParams, sampling, "sampling")
        limits = as_params(RateLimits, limits, "limits")
        retry = as_params(RetryPolicy, retry, "retry")
        self.models = _as_models(models)
        if not self.models:
            raise ConfigError("LLMClient needs at least one model: LLMClient(models=[Model('openai/gpt-4o-mini')])")
        self.context_window_fallbacks = _as_models(context_window_fallbacks)
        self.timeout_s = _checked_timeout(timeout_s)
        self.sampling = sampling
        self.limits = limits
        self.retry = retry or RetryPolicy()
        self.cache = _as_cache(cache)
        # Imported here, not with llmkit: a program that imports llmkit without building a client skips them (#16).
        from ._fastpath import FastPathTransport
        from ._uploads import FileUploads, Uploads

        self._uploads = Uploads(as_params(FileUploads, uploads, "uploads") or FileUploads(), disk_tier(self.cache))
        self.status = StatusTracker()
        self._hooks = HookSet(hooks)
        self.budget = budget
        self._account = Account(budget) if budget is not None else None
        self._transport = transport or FastPathTransport()
        self._sleep = sleep
        # One index space for every deployment: the pool's first, then the fallbacks (a 429 cools them down and a bad
        # key takes them out, as for any deployment, but routing only reaches them through _fallbacks).
        self._deployments = [*self.models, *self.context_window_fallbacks]
        self._router = Router(self._deployments, rng=random.Random(seed), clock=clock, pool_size=len(self.models))
        self.shared = shared
        self._shared_routing = shared.routing(self._router, self._deployments) if shared is not None else None
        self._limiter = self._new_limiter(limits, clock)
        self._model_limiters = [self._new_limiter(m.limits, clock, m) for m in self._deployments]
        self._default_sampling = [merge(m.sampling, sampling) for m in self._deployments]
        self._declared = [m.input_cost_per_token is not None for m in self._deployments]  # see declared_cost

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, pool: str = "default") -> LLMClient:
        """A client for a pool of a YAML config file (found as ``LLMKIT_CONFIG``, ./llmkit.yaml, ~/.config/...)."""
        from ._settings import client_from_config

        return client_from_config(path, pool)

    def _new_limiter(
        self, limits: RateLimits | None, clock: Callable[[], float], model: Model | None = None
    ) -> RateLimiter | None:
        """A limiter for the client (``model`` None) or one deployment; in Redis when the client has ``shared``."""
        if limits is None:
            return None
        if self.shared is not None:
            from ._redis import deployment_id

            scope = "client" if model is None else deployment_id(model)
            return self.shared.limiter(limits, scope, clock=clock, sleep=self._sleep, on_wait=self._limit_wait)
        return RateLimiter(limits, clock=clock, sleep=self._sleep, on_wait=self._limit_wait)

    def _limit_wait(self, limit: str, seconds: float) -> None:
        self.status.waited(limit, seconds)
        if self._hooks:
            self._hooks.emit("wait_started", WaitStarted(limit, seconds, None, None))

    def __repr__(self) -> str:
        cache = self.cache.path if self.cache is not None else None
        fallbacks = [m.name for m in self.context_window_fallbacks]
        return (
            f"LLMClient(models={[m.name for m in self.models]!r}, "
            + (f"context_window_fallbacks={fallbacks!r}, " if fallbacks else "")
            + f"cache={cache})"
        )

    # -- one call ---------------------------------------------------------------------------------------------

    @explain_keywords
    async def acomplete(
        self,
        prompt: MessagesInput,
        *,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        options: RequestOptions | Mapping[str, Any] | None = None,
        prefer_model: str | None = None,
        output: Any = None,
    ) -> Completion:
        """One answer. Raises ``LLMError`` when it fails after every retry (``batch`` records errors instead).

        ``output``: the answer's type (see ``RequestOptions.output``); ``Completion.parsed`` holds the value.
        """
        options = with_output(as_params(RequestOptions, options, "options"), output)
        completion = await self._complete(self.plan(prompt, sampling, options, prefer_model))
        if completion.error is not None:
            raise completion.error
        return completion

    complete = _sync.sync_twin(acomplete)

    @explain_keywords
    async def astream(
        self,
        prompt: MessagesInput,
        *,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        options: RequestOptions | Mapping[str, Any] | None = None,
        prefer_model: str | None = None,
        output: Any = None,
    ) -> AsyncIterator[StreamDelta | Completion]:
        """Text, thinking and tool-call deltas as they arrive, then the final ``Completion``.

        Failures before the first delta are retried like ``acomplete``; once text has been yielded a failure raises.
        With ``output``, an answer that does not validate is re-asked (its deltas came first) and the final
        ``Completion`` carries ``parsed``; ``OutputValidationError`` when the re-asks are spent.
        """
        options = with_output(as_params(RequestOptions, options, "options"), output)
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
        stream = self._stream(plan) if plan.output is None else self._structured_stream(plan)
        async for item in stream:
            yield item

    @explain_keywords
    def stream(
        self,
        prompt: MessagesInput,
        *,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        options: RequestOptions | Mapping[str, Any] | None = None,
        prefer_model: str | None = None,
        output: Any = None,
    ) -> Iterator[StreamDelta | Completion]:
        """Sync twin of ``astream``."""
        return _sync.iterate(
            self.astream(prompt, sampling=sampling, options=options, prefer_model=prefer_model, output=output)
        )

    # -- the pipeline -----------------------------------------------------------------------------------------

    @explain_keywords
    def plan(
        self,
        prompt: MessagesInput,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        options: RequestOptions | Mapping[str, Any] | None = None,
        prefer_model: str | None = None,
    ) -> _Plan:
        """Resolve a call without sending it: merged parameters and cache key per deployment of the pool.

        Capabilities are checked later, on a cache miss (``_capable``): a cached rerun never needs litellm.
        """
        messages = to_messages(prompt)
        sampling = as_params(SamplingParams, sampling, "sampling")
        options = as_params(RequestOptions, options, "options") or _no_options()
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
        tokens = _estimate_tokens(messages, first.sampling)
        output = None if options.output is None else output_spec(options.output)
        return _Plan(requests, fingerprints, tokens, prefer_model, fallbacks, output)

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
        (``AuthenticationError``: the deployment leaves the pool, as after a 401); the first refusal if none can.

        An ``output=`` request is shaped here, per deployment, into what is sent (``_shaped``).
        """
        refusals: list[UnsupportedFeatureError | AuthenticationError] = []
        requests: dict[int, Request] = {}
        shaped = False
        for index, request in plan.requests.items():
            sent = request if request.options.output is None else _shaped(request)
            shaped = shaped or sent is not request
            try:
                self._transport.check(sent)
                self._uploads.check(sent)
            except AuthenticationError as exc:
                self._router.on_failure(index, exc)
                refusals.append(exc)
            except UnsupportedFeatureError as exc:
                refusals.append(exc)
            else:
                requests[index] = sent
        if not requests:
            raise refusals[0]
        return replace(plan, requests=requests) if refusals or shaped else plan

    def _cached(self, plan: _Plan) -> Completion | None:
        if self.cache is None:
            return None
        spec = plan.output
        validate = None if spec is None else (lambda completion: revalidate(completion, spec))
        hit = self.cache.get(list(dict.fromkeys(plan.fingerprints.values())), validate)
        if hit is not None:
            metadata = next(iter(plan.requests.values())).options.metadata
            if hit.metadata != metadata:  # not part of the cache key: the answer carries this call's own
                hit = hit.model_copy(update={"metadata": metadata})
            self.status.record(hit)
            if self._hooks:
                self._hooks.emit("cache_hit", CacheHit(hit, metadata))
        return hit

    def _store(self, plan: _Plan, index: int | None, completion: Completion) -> None:
        self.status.record(completion)
        # An output= answer is cached only once validated (parsed set): never one a re-ask may still replace.
        validated = completion.parsed is not None or plan.output is None
        if self.cache is not None and index is not None and completion.ok and validated:
            self.cache.put(plan.fingerprints[index], completion)

    async def _complete(self, plan: _Plan, scope: Scope | None = None, looked_up: bool = False) -> Completion:
        """Cache (unless the caller ``looked_up`` already), then attempts with retries; a final failure comes back as
        a ``Completion`` with ``error`` set."""
        if not looked_up and (hit := self._cached(plan)) is not None:
            return hit
        start = time.perf_counter()
        tries = self._tries(plan, scope)
        index: int | None = None
        try:
            if plan.output is not None:
                routed = self._structured(plan, plan.output, tries)
            elif plan.fallbacks:
                routed = self._routed(plan, tries)
            else:  # no fallback to hand a too-long prompt to: _routed would only add a coroutine
                routed = self._attempts(self._pool(plan), tries)
            if tries.deadline is None:  # one coroutine less per call; a refused wait is handled below
                index, completion = await routed
            else:
                index, completion = await self._within_deadline(routed, tries)
        except WaitRefused as refused:
            exc = refused.error
            index, completion = None, Completion(finish_reason="error", error=exc, model=exc.model)
        except LLMError as exc:
            index, completion = None, Completion(finish_reason="error", error=exc, model=exc.model)
        finally:
            if tries.reservation is not None:
                tries.reservation.release()
        # From the first send: not LiteLLM's lazy import and capability checks (seconds on a first call) nor the
        # rate-limit wait before it; retries and their backoff are part of the answer's latency.
        latency_s = time.perf_counter() - (tries.first_send or start)
        completion = completion.model_copy(
            update={"attempts": tries.total, "latency_s": latency_s, "metadata": tries.metadata}
        )
        self._store(plan, index, completion)
        if self._hooks:
            self._finished(tries, index, completion)
        return completion

    def _finished(self, tries: _Tries, index: int | None, completion: Completion) -> None:
        if self._hooks:
            request = tries.request if completion.ok else None
            fallback = index is not None and index >= len(self.models)
            self._hooks.emit("completed", CallCompleted(tries.call_id, completion, request, fallback, tries.metadata))

    def _tries(self, plan: _Plan, scope: Scope | None = None) -> _Tries:
        """A call's state, with the budgets and the deadline that bound it (the client's, the call's, the batch's)."""
        options = next(iter(plan.requests.values())).options
        tries = _Tries(metadata=options.metadata)
        if self._account is not None:
            tries.accounts = (self._account,)
        if scope is not None:
            tries.accounts += scope.accounts
        if options.deadline_s is not None or (scope is not None and scope.deadline is not None):
            tries.deadline = deadline_at(options.deadline_s, scope.deadline if scope else None)
        if self._hooks:
            tries.call_id = os.urandom(8).hex()
        return tries

    async def _within_deadline(self, call: Awaitable[tuple[int, Completion]], tries: _Tries) -> tuple[int, Completion]:
        """The call, cut off at its deadline: attempts in flight are cancelled (their connections closed)."""
        try:
            if tries.deadline is None:
                return await call
            async with asyncio.timeout(tries.deadline - time.monotonic()):
                return await call
        except WaitRefused as refused:
            raise refused.error from refused.error.__cause__
        except TimeoutError:
            raise
        except builtins.TimeoutError:
            model = tries.last_error.model if tries.last_error is not None else None
            raise TimeoutError(f"the call's deadline passed after {tries.total} attempt(s)", model=model) from (
                tries.last_error
            )

    async def _wait(self, tries: _Tries, reason: str, seconds: float, index: int | None = None) -> None:
        """Sleep for a backoff or a cooldown, unless it would end after the deadline or is over ``max_wait_s``.

        Refused, it raises what caused the wait: a cooldown's ``RateLimitError`` (with ``retry_after``) even when
        another call's 429 started it.
        """
        cause = tries.last_error
        if index is not None and not isinstance(cause, RateLimitError):
            model = self._deployments[index]
            cause = RateLimitError(
                f"{model.name} is cooling down for {seconds:.1f} s after a 429",
                retry_after=seconds,
                model=model.name,
                provider=model.provider,
            )
        cap = self.retry.max_wait_s if reason == "cooldown" else None
        check_wait(reason, seconds, tries.deadline, cap, cause)
        if self._hooks and seconds > 0:
            name = self._deployments[index].name if index is not None else None
            self._hooks.emit("wait_started", WaitStarted(reason, seconds, name, tries.call_id))
        self.status.waited(reason, seconds)
        await self._sleep(seconds)

    def _reserve(self, plan: _Plan, index: int, tries: _Tries) -> None:
        """Hold this attempt's estimate on every budget that applies, before it is sent."""
        if tries.reservation is not None:
            tries.reservation.release()
        request = plan.requests[index]
        out = request.sampling.max_tokens or _DEFAULT_OUTPUT_ESTIMATE
        prompt = _estimate_tokens(request.messages, request.sampling) - out
        tries.reservation = Reservation.make(tries.accounts, request.model, model_price, prompt, out)

    def _settled(self, index: int, completion: Completion, tries: _Tries) -> Completion:
        """The answer at the model's declared price (if any), settled on the budgets."""
        completion = declared_cost(self._deployments[index], completion)
        if tries.reservation is not None:
            tries.reservation.settle(completion)
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

    async def _structured(self, plan: _Plan, spec: OutputSpec, tries: _Tries) -> tuple[int, Completion]:
        """``_routed`` until the answer validates, up to ``max_output_retries`` re-asks (instructor's loop, around
        the whole routed call); each re-ask gets a fresh transport-retry budget. The answer's usage and cost are
        those of every send."""
        view, failure, spent = plan, None, Spent()
        for reasks in range(_output_retries(plan) + 1):
            if reasks:
                tries.next_group()
                self.status.add("reasked")
            index, completion = await self._routed(view, tries)
            spent.add(completion)
            validated, view, failure = self._validated(view, index, completion, spec, reasks + 1)
            if validated is not None:
                return index, spent.charge(validated)
        assert failure is not None
        raise failure

    def _validated(
        self, view: _Plan, index: int, completion: Completion, spec: OutputSpec, sends: int
    ) -> tuple[Completion | None, _Plan, OutputValidationError | None]:
        """The answer validated, or (None, the call to send next, the error if no send is left).

        An invalid answer is re-asked with its errors; a cut one is sent again with max_tokens doubled when the call
        set max_tokens (else it fails at once, as does a refusal: re-asking those blindly would not help).
        """
        mode = view.requests[index].options.output_mode or output_mode(self._deployments[index])
        try:
            return validate_output(completion, spec, mode), view, None
        except Invalid as exc:
            text = answer_text(completion, spec, mode)
            failure = OutputValidationError(
                f"{completion.model}'s answer did not validate after {sends} sends: {exc}"[:1000],
                text=text,
                errors=exc.errors,
                model=completion.model,
            )
            return None, view.reasked(reask_messages(text, exc.errors)), failure
        except OutputValidationError as exc:
            max_tokens = view.requests[index].sampling.max_tokens
            if exc.reason != "length" or max_tokens is None:
                raise
            return None, view.reasked([], max_tokens=max_tokens * 2), exc

    async def _structured_stream(self, plan: _Plan) -> AsyncIterator[StreamDelta | Completion]:
        """``_stream`` until the final answer validates: the deltas of every send, then one validated Completion."""
        spec = plan.output
        assert spec is not None
        view, failure, sent, spent = plan, None, 0, Spent()
        for reasks in range(_output_retries(plan) + 1):
            if reasks:
                self.status.add("reasked")
            final: Completion | None = None
            async for item in self._stream(view):
                if isinstance(item, Completion):
                    final = item
                elif item.tool_call is None:
                    yield item
                elif item.tool_call.arguments:  # output= allows no tools of its own: this is the forced answer
                    yield StreamDelta(text=item.tool_call.arguments)
            assert final is not None
            sent += final.attempts
            spent.add(final)
            index = next(i for i, r in view.requests.items() if r.model.name == final.model)
            validated, view, failure = self._validated(view, index, final, spec, reasks + 1)
            if validated is not None:
                validated = spent.charge(validated).model_copy(update={"attempts": sent})
                if self.cache is not None:
                    self.cache.put(plan.fingerprints[index], validated)
                yield validated
                return
        assert failure is not None
        self.status.record(Completion(finish_reason="error", error=failure))
        raise failure

    async def _attempts(self, plan: _Plan, tries: _Tries) -> tuple[int, Completion]:
        try:  # ``_retried``'s first attempt, inlined: most calls end here
            return await self._attempt(plan, tries)
        except LLMError as exc:
            failed = exc
        return await self._retry(tries, failed, lambda: self._attempt(plan, tries))

    async def _retried(self, tries: _Tries, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` under the retry policy (completions and embeddings alike): the first runs bare; after a
        retryable failure, tenacity runs the rest.

        Most calls succeed at once, and tenacity's per-call state is ~40 objects in reference cycles that live through
        the whole request: in a batch that cost ~200 µs of CPU per prompt, most of it garbage collection
        (``bench_core.py --only inflight``).
        """
        try:
            return await attempt()
        except LLMError as exc:
            failed = exc
        return await self._retry(tries, failed, attempt)

    async def _retry(self, tries: _Tries, failed: LLMError, attempt: Callable[[], Awaitable[T]]) -> T:
        """After the first attempt ``failed``: the backoff, then tenacity's attempts (or ``failed`` if none is left)."""
        if not failed.retryable or out_of_attempts(self.retry, tries.count, tries.charged):
            raise failed
        await self._wait(tries, "backoff", wait_s(self.retry, failed, tries.count))

        async def backoff(seconds: float) -> None:
            await self._wait(tries, "backoff", seconds)

        async for retry in retrying(self.retry, backoff, lambda: (tries.count, tries.charged)):
            with retry:
                result = await attempt()
        return result

    async def _acquire(self, plan: _Plan, tries: _Tries) -> tuple[int, list[Permit]]:
        """Client limits, then a deployment and its cooldown, then the deployment's own limits."""
        permits: list[Permit] = []
        for account in tries.accounts:
            account.check()
        try:
            if self._limiter is not None:
                permits.append(await self._limiter.acquire(plan.tokens))
            if self._shared_routing is not None:
                await self._shared_routing.refresh()
            index, wait = self._router.pick(plan.requests.keys(), avoid=tries.last_failed, prefer=plan.prefer)
            if tries.accounts:
                self._reserve(plan, index, tries)
            if wait > 0:
                await self._wait(tries, "cooldown", wait, index)
            limiter = self._model_limiters[index]
            if limiter is not None:
                permits.append(await limiter.acquire(plan.tokens))
        except BaseException:
            for permit in permits:
                permit.release()
            raise
        tries.count += 1
        tries.sent_at = self._router.clock()
        tries.first_send = tries.first_send or time.perf_counter()
        if tries.count > 1:
            self.status.add("retried")
        self.status.add("requests_sent")
        if self._hooks:
            self._started(plan, index, tries)
        return index, permits

    def _started(self, plan: _Plan, index: int, tries: _Tries) -> None:
        tries.request, tries.attempt_start = plan.requests[index], time.perf_counter()
        event = AttemptStarted(tries.call_id, tries.total, tries.request, index >= len(self.models), tries.metadata)
        self._hooks.emit("attempt_started", event)

    async def _attempt(self, plan: _Plan, tries: _Tries) -> tuple[int, Completion]:
        index, permits = await self._acquire(plan, tries)
        request = plan.requests[index]
        sent = bounded(request.timeout_s, request.model, self._uploads.acomplete(request, self._transport))
        completion = await self._sent(index, permits, tries, sent, _tokens_used)
        if self._declared[index] or tries.reservation is not None:
            completion = self._settled(index, completion, tries)
        return index, completion

    async def _sent(
        self,
        index: int,
        permits: list[Permit],
        tries: _Tries,
        request: Awaitable[T],
        tokens: Callable[[T], int | None],
    ) -> T:
        """Await one request on deployment ``index`` (a completion or an embedding): counted in flight, its permits
        released with the ``tokens`` it really used, the router and the retry state told how it went."""
        used: int | None = None
        self.status.add("in_flight")
        try:
            result = await request
            used = tokens(result)
        except LLMError as exc:
            self._failed(index, exc, tries)
            raise
        finally:
            self.status.add("in_flight", -1)
            for permit in permits:
                permit.release(used)
        self._router.on_success(index)
        return result

    def _failed(self, index: int, exc: LLMError, tries: _Tries) -> None:
        # Why a batch retried is otherwise invisible: status counts retries, not their causes. INFO is off by default.
        name = self._deployments[index].name
        logger.info("attempt %d on %s failed: %s: %s", tries.total, name, type(exc).__name__, exc.message[:200])
        if not self._router.on_failure(index, exc, sent_at=tries.sent_at):
            tries.uncharged += 1
        if self._shared_routing is not None:
            self._shared_routing.publish(index)
        tries.last_failed = index
        tries.last_error = exc
        if tries.reservation is not None:
            tries.reservation.release()
        if isinstance(exc, RateLimitError):
            self.status.add("rate_limited")
        if self._hooks and tries.request is not None:
            self._hooks.emit("attempt_failed", self._failure(index, exc, tries, tries.request))

    def _failure(self, index: int, exc: LLMError, tries: _Tries, request: Request) -> AttemptFailed:
        latency = time.perf_counter() - tries.attempt_start
        decision = self._decision(index, exc, tries)
        return AttemptFailed(
            tries.call_id, tries.total, request, exc, latency, decision, index >= len(self.models), tries.metadata
        )

    def _decision(self, index: int, exc: LLMError, tries: _Tries) -> Decision:
        """What follows a failed attempt, as ``_routed`` and ``_attempts`` will decide it (for hooks and traces)."""
        if isinstance(exc, _NEXT_FALLBACK) and index < len(self._deployments) - 1 and self.context_window_fallbacks:
            if index >= len(self.models) or isinstance(exc, ContextWindowExceededError):
                return "fallback"
        if exc.retryable and not out_of_attempts(self.retry, tries.count, tries.charged):
            return "retry"
        return "give up"

    async def _stream(self, plan: _Plan) -> AsyncIterator[StreamDelta | Completion]:
        """``_routed`` for a stream: every refusal that moves on to a fallback comes before the first delta."""
        tries = self._tries(plan)
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
            self._stream_failed(tries, exc)
            raise
        except WaitRefused as refused:
            self._stream_failed(tries, refused.error)
            raise refused.error from refused.error.__cause__
        finally:
            if tries.reservation is not None:
                tries.reservation.release()

    def _stream_failed(self, tries: _Tries, exc: LLMError) -> None:
        completion = Completion(finish_reason="error", error=exc, model=exc.model, metadata=tries.metadata)
        self.status.record(completion)
        self._finished(tries, None, completion.model_copy(update={"attempts": tries.total}))

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
                await self._wait(tries, "backoff", wait_s(self.retry, exc, tries.count))

    async def _stream_once(self, plan: _Plan, tries: _Tries) -> AsyncIterator[StreamDelta | Completion]:
        index, permits = await self._acquire(plan, tries)
        used: int | None = None
        start = time.perf_counter()
        request = plan.requests[index]
        stream = self._uploads.astream(request, self._transport)
        try:
            # The attempt's deadline covers the wait for the first item; later gaps are LiteLLM's per-read timeout.
            first = await bounded(request.timeout_s, request.model, anext(stream))
            async for item in _prepend(first, stream):
                if isinstance(item, Completion):
                    used = item.usage.total_tokens or None
                    item = item.model_copy(update={"attempts": tries.total, "latency_s": time.perf_counter() - start})
                    item = self._settled(index, item, tries).model_copy(update={"metadata": tries.metadata})
                    self._router.on_success(index)
                    self._store(plan, index, item)
                    self._finished(tries, index, item)
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

    if TYPE_CHECKING:
        abatch = _batch.abatch
        batch = _sync.sync_twin(_batch.abatch)
        as_completed = _batch.as_completed
    else:  # loaded at first use (_lazy), as the methods below: ``import llmkit`` stays fast
        abatch = LazyMethod("_batch", "abatch")
        batch = LazyMethod("_batch", "abatch", _sync.sync_twin)
        as_completed = LazyMethod("_batch", "as_completed")

    # -- the same batch sharded across worker processes (one core each): implemented in _workers ---------------

    if TYPE_CHECKING:
        abatch_in_workers = _workers.abatch_in_workers
        batch_in_workers = _sync.sync_twin(_workers.abatch_in_workers)
        as_completed_in_workers = _workers.as_completed_in_workers
    else:
        abatch_in_workers = LazyMethod("_workers", "abatch_in_workers")
        batch_in_workers = LazyMethod("_workers", "abatch_in_workers", _sync.sync_twin)
        as_completed_in_workers = LazyMethod("_workers", "as_completed_in_workers")

    # -- provider batch APIs (half price, within 24 h): implemented in _provider_batch -----------------------

    if TYPE_CHECKING:
        asubmit_batch = _provider_batch.asubmit_batch
        submit_batch = _sync.sync_twin(_provider_batch.asubmit_batch)
    else:
        asubmit_batch = LazyMethod("_provider_batch", "asubmit_batch")
        submit_batch = LazyMethod("_provider_batch", "asubmit_batch", _sync.sync_twin)

    # -- embeddings: implemented in _embed as functions of the client ---------------------------------------

    if TYPE_CHECKING:
        aembed = _embed.aembed
        embed = _sync.sync_twin(_embed.aembed)
        embed_as_completed = _embed.embed_as_completed
    else:
        aembed = LazyMethod("_embed", "aembed")
        embed = LazyMethod("_embed", "aembed", _sync.sync_twin)
        embed_as_completed = LazyMethod("_embed", "embed_as_completed")

    def close(self) -> None:
        """Close the cache's files (the client is unusable for cached calls afterwards), the trace files and the
        transport's HTTP sessions (a later call opens new ones)."""
        if self.cache is not None:
            self.cache.close()
        for hook in self._hooks.hooks:
            if isinstance(hook, Tracer):
                hook.close()
        if (close := getattr(self._transport, "close", None)) is not None:
            close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
