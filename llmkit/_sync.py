"""Run llmkit's coroutines from sync code, including inside a running event loop (Jupyter).

All sync calls share one long-lived loop in a daemon thread: ``asyncio.run`` cannot run inside a running loop, and a
fresh loop per call would strand LiteLLM's pooled HTTP clients on closed loops. nest_asyncio is avoided: it patches
every loop in the process.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from .errors import ConfigError

__all__ = ["iterate", "run", "sync_twin"]

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pending: set[asyncio.Future[Any]] = set()


def _kept_task(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """The background loop's task factory: a task stays referenced until it is done. LiteLLM's logging worker
    abandons its task on this loop when a later call on another loop (a user's ``asyncio.run``) takes it over; asyncio
    holds tasks only weakly, so the next garbage collection destroyed it mid-wait and asyncio printed "Task was
    destroyed but it is pending!" to stderr. Kept, it waits harmlessly until ``_cancel_pending`` ends it at exit."""
    task = asyncio.Task(coro, loop=loop, **kwargs)
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return task


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _loop.set_task_factory(_kept_task)
            threading.Thread(target=_loop.run_forever, name="llmkit-loop", daemon=True).start()
            atexit.register(_cancel_pending, _loop)
        return _loop


def _cancel_pending(loop: asyncio.AbstractEventLoop, timeout_s: float = 5.0) -> None:
    """At exit, cancel the tasks still pending on the background loop and let them finish, as ``asyncio.run`` does
    for its own loop. LiteLLM starts a logging worker task on the loop of its first async call; when the loop of a
    later call (a user's ``asyncio.run``) takes the worker over, the old task waits here forever, and asyncio prints
    "Task was destroyed but it is pending!" when it is collected at exit."""

    async def cancel_all() -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    if loop.is_running():
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=timeout_s)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Block until ``coro`` is done. Ctrl-C cancels it (its ``finally`` blocks run) and re-raises.

    Raises ``ConfigError`` when called on the background loop's own thread (a sync call inside a batch's
    ``on_result`` callback): the loop would wait for itself forever.
    """
    loop = _background_loop()
    if _running_loop() is loop:
        coro.close()
        raise ConfigError(
            "a sync llmkit call (complete, batch, stream, ...) was made on llmkit's own event loop, e.g. inside an "
            "on_result callback of batch(); it would wait for itself forever. Make the callback async "
            "(async def on_result(index, completion): ... await client.acomplete(...)), or collect what you need "
            "and call after the batch"
        )
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        try:
            future.result(timeout=30)
        except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError, Exception):
            pass
        raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def iterate(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from sync code, one item at a time; closing the iterator closes the async one."""
    try:
        while True:
            try:
                yield run(agen.__anext__())  # type: ignore[arg-type]
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            run(aclose())


def sync_twin(method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]]) -> Callable[Concatenate[S, P], T]:
    """The blocking twin of an async method: same signature and docs, run on the background loop."""

    @functools.wraps(method)
    def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run(method(self, *args, **kwargs))

    twin.__name__ = twin.__qualname__ = method.__name__.removeprefix("a")
    twin.__doc__ = f"Sync twin of ``{method.__name__}``; works inside a running event loop (Jupyter) too.\n\n" + (
        method.__doc__ or ""
    )
    return twin
