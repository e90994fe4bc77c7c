"""Batches: many prompts through one client, in bounded flight, in order or as they finish.

The input iterable is pulled lazily, so a generator of a million prompts never becomes a million tasks. Cache hits
are answered inline without a task. Identical requests inside one batch are sent once. A failed prompt becomes a
``Completion`` with ``error`` set and never stops the batch (unless ``raise_on_error``). Cancelling (Ctrl-C) stops
dispatch and cancels what is in flight; every completion that finished is already in the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._params import Prompt, RequestOptions, SamplingParams, merge, with_output
from ._result import Completion
from ._types import MessagesInput
from .errors import LLMError

if TYPE_CHECKING:
    from ._client import LLMClient

__all__ = ["abatch", "as_completed"]

_DEFAULT_IN_FLIGHT = 100
# Without a cache, this many recent answers are kept for in-batch dedupe: enough for repeats that sit near each other,
# bounded so a million-prompt batch does not keep every answer alive.
_RECENT_ANSWERS = 1024
_PROGRESS_EVERY_S = 0.25

OnResult = Callable[[int, Completion], Any]


def _in_flight_limit(client: LLMClient, max_in_flight: int | None) -> int:
    if max_in_flight is not None:
        return max_in_flight
    concurrency = client.limits.max_concurrency if client.limits else None
    return concurrency or _DEFAULT_IN_FLIGHT


class _Progress:
    """A tqdm.auto bar (it renders in notebooks) whose postfix shows what the client is doing."""

    def __init__(self, client: LLMClient, total: int | None, show: bool) -> None:
        self._client = client
        self._bar = None
        self._shown = 0.0
        if show:
            import warnings

            from tqdm import TqdmWarning
            from tqdm.auto import tqdm

            with warnings.catch_warnings():
                # In Jupyter without ipywidgets tqdm.auto warns, then falls back to a text bar: that bar is fine.
                warnings.simplefilter("ignore", TqdmWarning)
                self._bar = tqdm(total=total, unit="prompt", dynamic_ncols=True)

    def update(self, errors: int) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.monotonic()
        if now - self._shown >= _PROGRESS_EVERY_S:
            self._shown = now
            self._bar.set_postfix_str(self._postfix(errors), refresh=False)

    def _postfix(self, errors: int) -> str:
        s = self._client.status
        parts = [
            f"in_flight={s.in_flight}",
            f"hits={s.cache_hits}",
            f"errors={errors}",
            f"retries={s.retried}",
            f"tokens={s.usage.total_tokens:,}",
            f"cost=${s.cost_usd:.4f}",
        ]
        if s.binding_limit:
            parts.append(f"limit={s.binding_limit}")
        return " ".join(parts)

    def close(self, errors: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(errors), refresh=False)
            self._bar.close()


async def as_completed(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    *,
    sampling: SamplingParams | None = None,
    options: RequestOptions | None = None,
    show_progress: bool = False,
    on_result: OnResult | None = None,
    max_in_flight: int | None = None,
    output: Any = None,
) -> AsyncGenerator[tuple[int, Completion], None]:
    """``(index, completion)`` pairs as prompts finish, at most ``max_in_flight`` requests at once.

    Memory stays flat for any number of prompts: the iterable is pulled only as requests finish. ``output``: every
    answer's type, as for ``complete`` (a ``Prompt``'s own options keep their own ``output``).
    """
    limit = _in_flight_limit(client, max_in_flight)
    total = len(prompts) if hasattr(prompts, "__len__") else None  # type: ignore[arg-type]
    progress = _Progress(client, total, show_progress)
    source = enumerate(prompts)
    waiting: dict[asyncio.Task[Completion], list[int]] = {}
    by_key: dict[tuple[str, ...], asyncio.Task[Completion]] = {}
    key_of: dict[asyncio.Task[Completion], tuple[str, ...]] = {}
    # Without a cache, recent answers are kept so a nearby repeat in this batch is not sent again.
    finished: OrderedDict[tuple[str, ...], Completion] | None = OrderedDict() if client.cache is None else None
    # Tasks report themselves here when done: waiting on one queue is O(1) per completion, where asyncio.wait
    # would add and remove a callback on every in-flight task each time (O(max_in_flight)).
    done: asyncio.Queue[asyncio.Task[Completion]] = asyncio.Queue()
    errors = 0
    exhausted = False

    def emit(index: int, completion: Completion) -> tuple[int, Completion]:
        nonlocal errors
        errors += not completion.ok
        progress.update(errors)
        if on_result is not None:
            on_result(index, completion)
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
                    yield emit(index, _failed(client, exc))
                    continue
                if (hit := client._cached(plan)) is not None:
                    yield emit(index, hit)
                    continue
                key = tuple(plan.fingerprints.values())
                if finished is not None and key in finished:
                    finished.move_to_end(key)
                    yield emit(index, finished[key])
                    continue
                task = by_key.get(key)
                if task is None:
                    task = asyncio.ensure_future(client._complete(plan))
                    task.add_done_callback(done.put_nowait)
                    by_key[key] = task
                    key_of[task] = key
                    waiting[task] = []
                waiting[task].append(index)
            if not waiting:
                return
            task = await done.get()
            key = key_of.pop(task)
            del by_key[key]
            completion = task.result()
            if finished is not None and completion.ok:
                _remember(finished, key, completion)
            for index in waiting.pop(task):
                yield emit(index, completion)
    finally:
        for task in waiting:
            task.cancel()
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        progress.close(errors)


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


async def abatch(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    *,
    sampling: SamplingParams | None = None,
    options: RequestOptions | None = None,
    show_progress: bool = False,
    return_completions_only: bool = False,
    raise_on_error: bool = False,
    on_result: OnResult | None = None,
    max_in_flight: int | None = None,
    output: Any = None,
) -> list[Any]:
    """Every prompt's ``Completion`` in input order (``return_completions_only``: its text, None on failure; with
    ``output``, its parsed value, None on failure).

    A failed prompt's completion has ``error`` set and the batch goes on, unless ``raise_on_error``. At most
    ``max_in_flight`` requests at once (default: ``limits.max_concurrency``, else 100). Cancelling (Ctrl-C for
    ``batch``) stops dispatch; what finished is already cached.
    """
    results: dict[int, Completion] = {}
    stream = as_completed(
        client,
        prompts,
        sampling=sampling,
        options=options,
        show_progress=show_progress,
        on_result=on_result,
        max_in_flight=max_in_flight,
        output=output,
    )
    try:
        async for index, completion in stream:
            if raise_on_error and completion.error is not None:
                raise completion.error
            results[index] = completion
    finally:
        await stream.aclose()
    ordered = [results[i] for i in range(len(results))]
    if not return_completions_only:
        return ordered
    structured = output is not None or (options is not None and options.output is not None)
    return [c.parsed for c in ordered] if structured else [c.text for c in ordered]
