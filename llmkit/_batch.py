"""Batches: many prompts through one client, in bounded flight, in order or as they finish.

The input iterable is pulled lazily, so a generator of a million prompts never becomes a million tasks. Cache hits
are answered inline without a task. Identical requests inside one batch are sent once. A failed prompt becomes a
``Completion`` with ``error`` set and never stops the batch (unless ``raise_on_error``). Cancelling (Ctrl-C) stops
dispatch and cancels what is in flight; every completion that finished is already in the cache.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._budget import Budget, Scope
from ._params import Prompt, RequestOptions, SamplingParams, as_params, explain_keywords, merge, with_output
from ._result import Completion
from ._types import MessagesInput
from .errors import ConfigError, LLMError

if TYPE_CHECKING:
    from ._client import LLMClient, _Plan

__all__ = ["abatch", "as_completed", "in_order"]

_DEFAULT_IN_FLIGHT = 100
# Without a cache, this many recent answers are kept for in-batch dedupe: enough for repeats that sit near each other,
# bounded so a million-prompt batch does not keep every answer alive.
_RECENT_ANSWERS = 1024
_PROGRESS_EVERY_S = 0.25
_REDRAW_WHILE_WAITING_S = 1.0

OnResult = Callable[[int, Completion], Any]


def _in_flight_limit(client: LLMClient, max_in_flight: int | None) -> int:
    """The bound on requests in flight; a 0 or negative one would send nothing and return nothing, silently."""
    if max_in_flight is not None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ConfigError(
                f"max_in_flight={max_in_flight!r}: must be a whole number >= 1 (prompts in flight at once); leave it "
                "out for the default (limits.max_concurrency, else 100)"
            )
        return max_in_flight
    concurrency = client.limits.max_concurrency if client.limits else None
    return concurrency or _DEFAULT_IN_FLIGHT


class _Progress:
    """A tqdm.auto bar (it renders in notebooks) whose postfix shows what the client is doing for this batch.

    Tokens and cost are this batch's spending (the client's totals may include earlier calls); answers served from
    the cache are shown apart, as saved: the tokens and cost they took when first answered.
    """

    def __init__(self, client: LLMClient, total: int | None, show: bool, scope: Scope | None = None) -> None:
        self._client = client
        self._scope = scope
        self._bar = None
        self._shown = 0.0
        status = client.status
        self._before = (status.retried, status.usage.total_tokens, status.cost_usd)
        self._hits = self._saved_tokens = 0
        self._saved_cost = 0.0
        if show:
            import warnings

            from tqdm import TqdmWarning

            with warnings.catch_warnings():
                # In Jupyter without ipywidgets tqdm.auto warns (when imported, and when a bar starts), then falls
                # back to a text bar: that bar is fine.
                warnings.simplefilter("ignore", TqdmWarning)
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, unit="prompt", dynamic_ncols=True)

    def update(self, completion: Completion | None, errors: int) -> None:
        """One more item done; ``completion`` (None for an embedded text) tells a cache hit's saved work."""
        if self._bar is None:
            return
        if completion is not None and completion.cache_hit:
            self._hits += 1
            self._saved_tokens += completion.usage.total_tokens
            self._saved_cost += completion.cost_usd or 0.0
        self._bar.update(1)
        now = time.monotonic()
        if now - self._shown >= _PROGRESS_EVERY_S:
            self._shown = now
            self._bar.set_postfix_str(self._postfix(errors), refresh=False)

    def _postfix(self, errors: int) -> str:
        s = self._client.status
        retried, tokens, cost = self._before
        parts = [
            f"in_flight={s.in_flight}",
            f"hits={self._hits}",
            f"errors={errors}",
            f"retries={s.retried - retried}",
            f"tokens={s.usage.total_tokens - tokens:,}",
            f"cost=${s.cost_usd - cost:.4f}",
        ]
        if self._saved_tokens or self._saved_cost:
            parts.append(f"saved(tokens={self._saved_tokens:,} cost=${self._saved_cost:.4f})")
        if s.binding_limit:
            parts.append(f"limit={s.binding_limit}")
        if waiting := s.waiting_now():
            parts.append(f"waiting={waiting}")
        account = self._client._account
        if (self._scope and self._scope.refused) or (account and account.refused):
            parts.append("BUDGET SPENT: sending stopped")
        return " ".join(parts)

    def refresh(self, errors: int) -> None:
        """Redraw the postfix while nothing finishes (a long wait must not look like a frozen bar)."""
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(errors), refresh=True)

    async def next_done(self, done: asyncio.Queue[asyncio.Task[Completion]], errors: int) -> asyncio.Task[Completion]:
        """The next finished task; with a bar shown, redraw it every second until one finishes."""
        if self._bar is None:
            return await done.get()
        while True:
            try:
                return await asyncio.wait_for(done.get(), _REDRAW_WHILE_WAITING_S)
            except asyncio.TimeoutError:
                self.refresh(errors)

    def close(self, errors: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(errors), refresh=False)
            self._bar.close()


@explain_keywords
def as_completed(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    *,
    sampling: SamplingParams | Mapping[str, Any] | None = None,
    options: RequestOptions | Mapping[str, Any] | None = None,
    show_progress: bool = False,
    on_result: OnResult | None = None,
    max_in_flight: int | None = None,
    budget: Budget | None = None,
    deadline_s: float | None = None,
    output: Any = None,
) -> AsyncGenerator[tuple[int, Completion], None]:
    """``(index, completion)`` pairs as prompts finish, at most ``max_in_flight`` requests at once.

    Memory stays flat for any number of prompts: the iterable is pulled only as requests finish. ``on_result`` may be
    a function or a coroutine function (awaited before the pair is yielded). ``budget`` bounds this batch's spending,
    ``deadline_s`` its wall time (on top of the client's budget and each prompt's own deadline). ``output``: every
    answer's type, as for ``complete`` (a ``Prompt``'s own options keep their own ``output``). Raises ``ConfigError``
    at once for a bad ``max_in_flight``.
    """
    sampling, options = as_params(SamplingParams, sampling, "sampling"), as_params(RequestOptions, options, "options")
    limit = _in_flight_limit(client, max_in_flight)
    scope = Scope.of(budget, deadline_s) if budget is not None or deadline_s is not None else None
    return _as_completed(client, prompts, sampling, options, show_progress, on_result, limit, scope, output)


async def _as_completed(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    sampling: SamplingParams | None,
    options: RequestOptions | None,
    show_progress: bool,
    on_result: OnResult | None,
    limit: int,
    scope: Scope | None,
    output: Any,
) -> AsyncGenerator[tuple[int, Completion], None]:
    total = len(prompts) if hasattr(prompts, "__len__") else None  # type: ignore[arg-type]
    progress = _Progress(client, total, show_progress, scope)
    source = enumerate(prompts)
    # Each task's prompts: (index, metadata); a repeat shares the answer but keeps its own metadata.
    waiting: dict[asyncio.Task[Completion], list[tuple[int, dict[str, Any] | None]]] = {}
    by_key: dict[tuple[str, ...], asyncio.Task[Completion]] = {}
    key_of: dict[asyncio.Task[Completion], tuple[str, ...]] = {}
    # Without a cache, recent answers are kept so a nearby repeat in this batch is not sent again.
    finished: OrderedDict[tuple[str, ...], Completion] | None = OrderedDict() if client.cache is None else None
    # Tasks report themselves here when done: waiting on one queue is O(1) per completion, where asyncio.wait
    # would add and remove a callback on every in-flight task each time (O(max_in_flight)).
    done: asyncio.Queue[asyncio.Task[Completion]] = asyncio.Queue()
    errors = 0
    exhausted = False

    async def emit(index: int, completion: Completion) -> tuple[int, Completion]:
        nonlocal errors
        errors += not completion.ok
        progress.update(completion, errors)
        if on_result is not None:
            outcome = on_result(index, completion)
            if inspect.isawaitable(outcome):
                await outcome
        return index, completion

    try:
        while True:
            while not exhausted and len(waiting) < limit:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                index, prompt = item
                try:
                    plan = client.plan(*_call(prompt, sampling, options, output))
                except LLMError as exc:
                    yield await emit(index, _failed(client, exc))
                    continue
                if (hit := client._cached(plan)) is not None:
                    yield await emit(index, hit)
                    continue
                key = tuple(plan.fingerprints.values())
                if finished is not None and key in finished:
                    finished.move_to_end(key)
                    yield await emit(index, _with_metadata(finished[key], _metadata(plan)))
                    continue
                task = by_key.get(key)
                if task is None:
                    task = asyncio.ensure_future(client._complete(plan, scope, looked_up=True))
                    task.add_done_callback(done.put_nowait)
                    by_key[key] = task
                    key_of[task] = key
                    waiting[task] = []
                waiting[task].append((index, _metadata(plan)))
            if not waiting:
                return
            task = await progress.next_done(done, errors)
            key = key_of.pop(task)
            del by_key[key]
            completion = task.result()
            if finished is not None and completion.ok:
                _remember(finished, key, completion)
            for index, metadata in waiting.pop(task):
                yield await emit(index, _with_metadata(completion, metadata))
    finally:
        for task in waiting:
            task.cancel()
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        progress.close(errors)


def _metadata(plan: _Plan) -> dict[str, Any] | None:
    return next(iter(plan.requests.values())).options.metadata


def _with_metadata(completion: Completion, metadata: dict[str, Any] | None) -> Completion:
    """The shared answer with this prompt's own ``RequestOptions.metadata``."""
    return completion if completion.metadata == metadata else completion.model_copy(update={"metadata": metadata})


def _remember(finished: OrderedDict[tuple[str, ...], Completion], key: tuple[str, ...], answer: Completion) -> None:
    finished[key] = answer
    if len(finished) > _RECENT_ANSWERS:
        finished.popitem(last=False)


def _call(
    prompt: MessagesInput | Prompt, sampling: SamplingParams | None, options: RequestOptions | None, output: Any = None
) -> tuple[MessagesInput, SamplingParams | None, RequestOptions | None, str | None]:
    """A batch item's arguments for ``client.plan``; a ``Prompt``'s own parameters win over the batch's."""
    if not isinstance(prompt, Prompt):
        return prompt, sampling, with_output(options, output), None
    own_sampling = merge(sampling, prompt.sampling) if prompt.sampling is not None else sampling
    own_options = prompt.options or options
    if own_options is None or own_options.output is None:
        own_options = with_output(own_options, output)
    return prompt.messages, own_sampling, own_options, prompt.prefer_model  # type: ignore[return-value]


def _failed(client: LLMClient, exc: LLMError) -> Completion:
    completion = Completion(finish_reason="error", error=exc, model=exc.model)
    client.status.record(completion)
    return completion


@explain_keywords
async def abatch(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    *,
    sampling: SamplingParams | Mapping[str, Any] | None = None,
    options: RequestOptions | Mapping[str, Any] | None = None,
    show_progress: bool = False,
    return_completions_only: bool = False,
    raise_on_error: bool = False,
    on_result: OnResult | None = None,
    max_in_flight: int | None = None,
    budget: Budget | None = None,
    deadline_s: float | None = None,
    output: Any = None,
) -> list[Any]:
    """Every prompt's ``Completion`` in input order (``return_completions_only``: its text, None on failure; with
    ``output``, its parsed value, None on failure).

    A failed prompt's completion has ``error`` set and the batch goes on, unless ``raise_on_error``. At most
    ``max_in_flight`` requests at once (default: ``limits.max_concurrency``, else 100). Cancelling (Ctrl-C for
    ``batch``) stops dispatch; what finished is already cached. ``budget`` and ``deadline_s``: see ``as_completed``.
    """
    stream = as_completed(
        client,
        prompts,
        sampling=sampling,
        options=options,
        show_progress=show_progress,
        on_result=on_result,
        max_in_flight=max_in_flight,
        budget=budget,
        deadline_s=deadline_s,
        output=output,
    )
    return await in_order(
        stream, raise_on_error=raise_on_error, completions_only=return_completions_only, options=options, output=output
    )


async def in_order(
    stream: AsyncGenerator[tuple[int, Completion], None],
    *,
    raise_on_error: bool,
    completions_only: bool,
    options: RequestOptions | Mapping[str, Any] | None,
    output: Any,
) -> list[Any]:
    """``(index, completion)`` pairs as they finish, returned in input order as ``abatch`` returns them: completions,
    or texts (parsed values with ``output``) for ``completions_only``. Shared by ``abatch`` and its worker twin."""
    results: dict[int, Completion] = {}
    try:
        async for index, completion in stream:
            if raise_on_error and completion.error is not None:
                raise completion.error
            results[index] = completion
    finally:
        await stream.aclose()
    ordered = [results[i] for i in range(len(results))]
    if not completions_only:
        return ordered
    given = as_params(RequestOptions, options, "options")
    structured = output is not None or (given is not None and given.output is not None)
    return [c.parsed for c in ordered] if structured else [c.text for c in ordered]
