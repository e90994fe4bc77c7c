"""Worker processes: one batch sharded across N processes (``LLMClient.abatch_in_workers``, ``llmkit run --workers``).

Why processes: one process spends ~0.7-1 ms of CPU per request on the fast path (translation, HTTP, llmkit's layers)
and so tops out near one core's worth of requests per second; N processes use N cores. Each worker is a fresh
interpreter (``spawn``: never ``fork`` after threads exist) that rebuilds the client from a recipe of plain values
(models with their keys, sent through the process's pipe, never argv), freezes the imported heap (``gc.freeze``) so
the collector stops walking LiteLLM's millions of objects, and runs the ordinary batch engine on its share.

- Work is handed out in chunks on demand: a worker asks for the next chunk while it still has one, so a slow worker
  takes fewer prompts and none waits on another. The parent yields ``(index, completion)`` as answers arrive;
  ``abatch_in_workers`` puts them in input order, ``llmkit run`` writes them in input order (``_InOrder``).
- Limits: without Redis each worker gets 1/N of the client's and each deployment's requests and tokens per minute
  and of ``max_concurrency``, and 1/N of ``max_in_flight``; with ``shared=RedisState`` the limits already hold
  across processes, so each worker takes them whole.
- Budgets (the client's and the batch's) are shared, not split: their totals live in shared memory
  (``SharedAccount``) and every worker reserves from them under one lock, so N workers stop where one process
  would, and no worker stops early while another has money left.
- The disk cache is shared (diskcache is process-safe): an answer is cached by the worker that got it, so after
  Ctrl-C or a crash a rerun sends only what is missing. A worker that dies takes only its unanswered prompts with it:
  they come back as retryable errors ("worker process exited") and the other workers take the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._batch import OnResult, _as_completed, _in_flight_limit, _Progress, in_order
from ._budget import Account, Budget, Scope, deadline_at
from ._cache import ResponseCache
from ._fastpath import FastPathTransport
from ._params import (
    Model,
    Prompt,
    RateLimits,
    RequestOptions,
    RetryPolicy,
    SamplingParams,
    as_params,
    explain_keywords,
)
from ._result import Completion
from ._types import MessagesInput
from .errors import ConfigError, ProviderError

if TYPE_CHECKING:
    import multiprocessing.context
    from multiprocessing.connection import Connection
    from multiprocessing.context import ForkServerProcess, SpawnProcess
    from multiprocessing.sharedctypes import SynchronizedArray

    from ._client import LLMClient

__all__ = ["SharedAccount", "abatch_in_workers", "as_completed_in_workers", "check_workers"]

logger = logging.getLogger("llmkit")

WORKERS_PER_CORE = 4
"""More workers than this per core only add memory (each holds its own LiteLLM, ~150 MB) and start-up time."""
GC_FREEZE = True
"""Workers call ``gc.freeze()`` once their imports are done (benchmarks turn it off to measure what it saves)."""
_CHUNK = 32  # prompts per message to a worker: few enough pickles, small enough that workers stay balanced
_AHEAD = 2  # chunks a worker keeps asked for, so it never waits on the parent between chunks
_FLUSH_S = 0.05  # a worker sends its answers at least this often (and at once when a chunk's worth is ready)
_STOP_S = 5.0  # a worker gets this long to exit after SIGTERM before it is killed
_COUNTERS = ("requests_sent", "retried", "rate_limited", "reasked", "in_flight")


def check_workers(workers: object) -> int:
    """``workers`` as a count of processes; ``ConfigError`` naming the fix for 0, a negative or an absurd number."""
    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(
            f"workers={workers!r}: must be a whole number >= 1 (processes to shard the batch over); 1 runs it in "
            f"this process, and more than {os.cpu_count() or 1} (this machine's cores) rarely helps"
        )
    if workers > most:
        raise ConfigError(
            f"workers={workers}: at most {most} on this machine ({WORKERS_PER_CORE} per core, {os.cpu_count()} "
            "cores); each worker is a whole process with its own LiteLLM, and one per core already uses every core"
        )
    return workers


def _context() -> multiprocessing.context.SpawnContext | multiprocessing.context.ForkServerContext:
    """``forkserver`` where the platform has it, else ``spawn``; never ``fork`` (this process may have threads).

    The fork server imports LiteLLM once (about 4 s of CPU) and forks every worker from that clean, single-threaded
    process: N workers start in milliseconds instead of N interpreters importing LiteLLM side by side, and later
    batches in this process reuse it. Each worker then takes this process's current environment (``_Job.environ``),
    not the server's, so a key exported after the first batch is still seen.
    """
    import multiprocessing  # here: ``import llmkit`` does not pay for it

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    # As _transport sets them before importing LiteLLM: its bundled price map, no fetch from GitHub at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    context = multiprocessing.get_context("forkserver")
    # Third-party modules only: before 3.12 the server imports its preloads on its own sys.path, not this
    # process's, so llmkit itself could come from another install; a worker imports it on this process's path.
    context.set_forkserver_preload(["litellm", "aiohttp"])
    return context


# -- limits: split without Redis, shared with it --------------------------------------------------------------------


def _share(limits: RateLimits | None, worker: int, workers: int, what: str) -> RateLimits | None:
    """Worker ``worker``'s part of ``limits``: 1/N of each rate, and the whole requests of ``max_concurrency``
    dealt out so the parts add up to it exactly. ``ConfigError`` when a worker would get no concurrency at all."""
    if limits is None:
        return None
    data = limits.model_dump(exclude_unset=True)
    for rate in ("requests_per_minute", "tokens_per_minute"):
        if data.get(rate) is not None:
            data[rate] = data[rate] / workers
    if data.get("max_concurrency") is not None:
        data["max_concurrency"] = _part(data["max_concurrency"], worker, workers, f"{what} max_concurrency")
    return RateLimits(**data)


def _part(total: int, worker: int, workers: int, what: str) -> int:
    if total < workers:
        raise ConfigError(
            f"{what}={total} cannot be split over {workers} worker processes (each needs at least 1): lower workers "
            f"to {total} or raise {what}"
        )
    return total // workers + (worker < total % workers)


# -- budgets: one ledger in shared memory --------------------------------------------------------------------------


_SPENT_USD, _SPENT_TOKENS, _RESERVED_USD, _RESERVED_TOKENS, _STOPPED = range(5)


class SharedAccount(Account):
    """An ``Account`` whose totals live in shared memory: every worker process reserves from the same budget, under
    one lock, exactly as the tasks of one process do. Made in the parent and handed to each worker at its start."""

    def __init__(self, budget: Budget, start: Account | None = None) -> None:  # noqa: D107 - Account's state, shared
        self.budget = budget
        self._cells: SynchronizedArray[float] = _context().Array("d", 5)
        self._lock = self._cells.get_lock()  # type: ignore[assignment]
        self._why: str | None = None
        if start is not None:  # the client's budget: what it spent before this batch still counts
            self.spent_usd, self.spent_tokens, self._why = start.spent_usd, start.spent_tokens, start.refused
            self._cells[_STOPPED] = float(start.refused is not None)

    def __getstate__(self) -> dict[str, Any]:
        return {"budget": self.budget, "cells": self._cells}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.budget, self._cells, self._why = state["budget"], state["cells"], None
        self._lock = self._cells.get_lock()  # type: ignore[assignment]

    def _get(self, cell: int) -> float:
        return float(self._cells.get_obj()[cell])

    def _set(self, cell: int, value: float) -> None:
        self._cells.get_obj()[cell] = value

    spent_usd = property(lambda self: self._get(_SPENT_USD), lambda self, v: self._set(_SPENT_USD, v))  # type: ignore[assignment]
    reserved_usd = property(lambda self: self._get(_RESERVED_USD), lambda self, v: self._set(_RESERVED_USD, v))  # type: ignore[assignment]
    spent_tokens = property(  # type: ignore[assignment]
        lambda self: int(self._get(_SPENT_TOKENS)), lambda self, v: self._set(_SPENT_TOKENS, v)
    )
    reserved_tokens = property(  # type: ignore[assignment]
        lambda self: int(self._get(_RESERVED_TOKENS)), lambda self, v: self._set(_RESERVED_TOKENS, v)
    )

    @property  # type: ignore[override]
    def refused(self) -> str | None:
        """This process's reason, or, when another worker's reservation was refused, that the budget is spent."""
        if self._why is not None:
            return self._why
        if self._get(_STOPPED):
            limit = self.budget
            what = f"${limit.max_cost_usd:g}" if limit.max_cost_usd is not None else f"{limit.max_tokens:,} tokens"
            return (
                f"budget of {what} reached (another worker process took the last of it: ${self.spent_usd:.4f}, "
                f"{self.spent_tokens:,} tokens spent); nothing more is sent (raise the budget to go on)"
            )
        return None

    @refused.setter
    def refused(self, why: str | None) -> None:
        self._why = why
        if why is not None:
            self._set(_STOPPED, 1.0)


# -- what a worker needs to rebuild the client ---------------------------------------------------------------------


@dataclass
class _Job:
    """Everything one worker needs, as plain picklable values (the keys travel inside ``models``, over the pipe)."""

    worker: int
    models: list[Model]
    fallbacks: list[Model]
    sampling: SamplingParams | None
    limits: RateLimits | None
    retry: RetryPolicy
    timeout_s: float | None
    cache: tuple[str, float | None, str | None] | None
    shared: tuple[str, str, bool] | None
    batch_sampling: SamplingParams | None
    options: RequestOptions | None
    output: Any
    max_in_flight: int
    deadline: float | None  # wall clock (time.time()): this process's monotonic clock is not the worker's
    client_account: SharedAccount | None
    batch_account: SharedAccount | None
    gc_freeze: bool = True
    full_collections_before: int = 0  # set in the worker: its count is the fork server's until then
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def _jobs(
    client: LLMClient,
    workers: int,
    max_in_flight: int,
    common: dict[str, Any],
) -> list[_Job]:
    """One job per worker: the client's recipe with the limits split (unless Redis shares them)."""
    from ._redis import SharedCache

    if client._hooks:
        raise ConfigError(
            "hooks (a Tracer, --trace) are not carried to worker processes; run without workers to trace, or trace "
            "a smaller sample"
        )
    if type(client._transport) is not FastPathTransport:
        raise ConfigError("a client built with its own transport= cannot be rebuilt in worker processes")
    cache = client.cache
    local = cache.local if isinstance(cache, SharedCache) else cache
    shared = client.shared
    jobs = []
    for k in range(workers):

        def split(limits: RateLimits | None, what: str, k: int = k) -> RateLimits | None:
            return limits if shared is not None else _share(limits, k, workers, what)

        jobs.append(
            _Job(
                worker=k,
                models=[m.model_copy(update={"limits": split(m.limits, f"{m.name} limits")}) for m in client.models],
                fallbacks=[
                    m.model_copy(update={"limits": split(m.limits, f"{m.name} limits")})
                    for m in client.context_window_fallbacks
                ],
                sampling=client.sampling,
                limits=split(client.limits, "limits"),
                retry=client.retry,
                timeout_s=client.timeout_s,
                cache=(str(local.path), local.ttl, local.namespace) if local is not None else None,
                shared=(shared.url, shared.namespace, isinstance(cache, SharedCache)) if shared is not None else None,
                max_in_flight=_part(max_in_flight, k, workers, "max_in_flight"),
                gc_freeze=GC_FREEZE,
                **common,
            )
        )
    return jobs


def _client_of(job: _Job) -> LLMClient:
    """The job's client, built in the worker: same models, keys, cache, retry and timeout; its share of the limits."""
    from ._client import LLMClient
    from ._redis import RedisState, SharedCache

    local = None
    if job.cache is not None:
        path, ttl, namespace = job.cache
        local = ResponseCache(path, ttl=ttl, namespace=namespace)
    cache: ResponseCache | SharedCache | None = local
    shared = None
    if job.shared is not None:
        url, namespace, share_cache = job.shared
        shared = RedisState(url, namespace=namespace)
        if share_cache and local is not None:
            cache = shared.cache(local)
    client = LLMClient(
        job.models,
        sampling=job.sampling,
        limits=job.limits,
        retry=job.retry,
        cache=cache,
        context_window_fallbacks=job.fallbacks,
        timeout_s=job.timeout_s,
        shared=shared,
    )
    if job.client_account is not None:
        client.budget, client._account = job.client_account.budget, job.client_account
    return client


# -- the worker process ------------------------------------------------------------------------------------------


def _worker_main(conn: Connection, job: _Job) -> None:
    """A worker's whole life: rebuild the client, freeze the imported heap, answer chunks until told to stop.

    SIGINT is ignored: Ctrl-C reaches the whole process group, and the parent decides (it stops the workers after
    keeping every answer they sent). A parent that dies closes the pipe: the worker finishes what it holds and exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    job.full_collections_before = gc.get_stats()[2]["collections"]
    os.environ.clear()
    os.environ.update(job.environ)
    client = _client_of(job)
    import aiohttp  # noqa: F401 - imported before the freeze, with LiteLLM: the heap the collector may skip

    from ._transport import _litellm

    _litellm()  # LiteLLM as llmkit imports it (its bundled price map, no network fetch)
    if job.gc_freeze:
        # No gc.collect() first: a full pass over LiteLLM's heap costs 0.5-1 s, and a fresh fork holds no garbage.
        gc.freeze()
    try:
        asyncio.run(_serve(conn, client, job))
    except (BrokenPipeError, EOFError, ConnectionResetError):
        pass  # the parent is gone: every answer is in the cache
    finally:
        client.close()
        if client.shared is not None:
            client.shared.close()


class _Inbox:
    """The prompts the parent hands this worker, pulled by the batch engine (which iterates lazily): asks for the
    next chunk as soon as one arrives, so a chunk is always on its way while the current one is sent."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.index_of: dict[int, int] = {}  # the batch engine's index -> the parent's

    def __iter__(self) -> Iterator[MessagesInput | Prompt]:
        for _ in range(_AHEAD):
            self.conn.send(("more",))
        local = 0
        while True:
            chunk = self.conn.recv()
            if chunk is None:
                return
            self.conn.send(("more",))
            for index, prompt in chunk:
                self.index_of[local] = index
                local += 1
                yield prompt


@dataclass
class _Outbox:
    """Answers on their way to the parent, sent a chunk's worth at a time or every ``_FLUSH_S``, with the client's
    counters (so the parent's progress bar and summary add up every worker)."""

    conn: Connection
    client: LLMClient
    ready: list[tuple[int, Completion]] = field(default_factory=list)

    def add(self, index: int, completion: Completion) -> None:
        self.ready.append((index, completion))
        if len(self.ready) >= _CHUNK:
            self.flush()

    def flush(self, kind: str = "results", **more: float) -> None:
        status = self.client.status
        counters = {name: getattr(status, name) for name in _COUNTERS} | {"waited_s": dict(status.waited_s)} | more
        self.conn.send((kind, self.ready, counters))
        self.ready = []

    async def flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            if self.ready:
                self.flush()


async def _serve(conn: Connection, client: LLMClient, job: _Job) -> None:
    inbox, outbox = _Inbox(conn), _Outbox(conn, client)
    left = None if job.deadline is None else max(0.0, job.deadline - time.time())
    scope = Scope((job.batch_account,) if job.batch_account else (), deadline_at(left))
    flusher = asyncio.ensure_future(outbox.flush_every(_FLUSH_S))
    stream = _as_completed(
        client, inbox, job.batch_sampling, job.options, False, None, job.max_in_flight, scope, job.output
    )
    try:
        async for local, completion in stream:
            outbox.add(inbox.index_of.pop(local), completion)
    finally:
        flusher.cancel()
        await stream.aclose()
    full = gc.get_stats()[2]["collections"] - job.full_collections_before
    outbox.flush("done", cpu_s=time.process_time(), full_collections=full)


# -- the parent -----------------------------------------------------------------------------------------------------


class _Pool:
    """The worker processes, one reader thread each (it answers a worker's "more" with the next chunk and hands its
    answers to the event loop), and which prompts each worker holds unanswered (they fail if it dies)."""

    def __init__(self, jobs: list[_Job], prompts: Iterable[MessagesInput | Prompt], loop: asyncio.AbstractEventLoop):
        self._source = enumerate(prompts)
        self._lock = threading.Lock()
        self._loop = loop
        self.inbox: asyncio.Queue[tuple[int, tuple[Any, ...]]] = asyncio.Queue()
        self.held: list[set[int]] = [set() for _ in jobs]
        self.exhausted = False
        context = _context()
        self._conns: list[Connection] = []
        self._child_ends: list[Connection] = []
        self._procs: list[SpawnProcess | ForkServerProcess] = []
        for job in jobs:
            ours, theirs = context.Pipe()
            proc = context.Process(target=_worker_main, args=(theirs, job), name=f"llmkit-worker-{job.worker}")
            proc.daemon = True
            self._conns.append(ours)
            self._child_ends.append(theirs)
            self._procs.append(proc)

    def start(self) -> None:
        for proc in self._procs:
            proc.start()
        for end in self._child_ends:
            end.close()  # the child has its own copy; ours would keep the pipe open after the child dies
        for k, conn in enumerate(self._conns):
            threading.Thread(target=self._read, args=(k, conn), name=f"llmkit-worker-{k}-reader", daemon=True).start()

    def _read(self, k: int, conn: Connection) -> None:
        try:
            while True:
                message = conn.recv()
                if message[0] == "more":
                    # A worker that got its last chunk stops listening and may exit before this answer to its
                    # request ahead is sent; its final answers are still in the pipe, so read on (EOF ends it).
                    with contextlib.suppress(OSError):
                        conn.send(self._take(k))
                    continue
                self._post(k, message)
                if message[0] == "done":
                    return
        except (EOFError, OSError):
            self._post(k, ("exited", self._procs[k]))
        except Exception as exc:  # noqa: BLE001 - the prompts iterable raised: the batch fails with it, as in-process
            self._post(k, ("raised", exc))

    def _post(self, k: int, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed (the batch was abandoned): nobody to tell
            self._loop.call_soon_threadsafe(self.inbox.put_nowait, (k, message))

    def _take(self, k: int) -> list[tuple[int, MessagesInput | Prompt]] | None:
        """The next chunk of prompts for worker ``k`` (None: there are no more)."""
        with self._lock:
            chunk = [] if self.exhausted else [item for _, item in zip(range(_CHUNK), self._source, strict=False)]
            self.exhausted = len(chunk) < _CHUNK
            self.held[k].update(index for index, _ in chunk)
        return chunk or None

    def answered(self, k: int, index: int) -> None:
        with self._lock:
            self.held[k].discard(index)

    def lost(self, k: int) -> list[int]:
        """The prompts worker ``k`` held when it died, and from now on nothing more goes to it."""
        with self._lock:
            lost, self.held[k] = sorted(self.held[k]), set()
        return lost

    def rest(self) -> Iterator[int]:
        """Indexes never handed out (every worker died first)."""
        while True:
            with self._lock:
                item = next(self._source, None)
            if item is None:
                return
            yield item[0]

    def stop(self, finished: bool) -> None:
        """Let finished workers exit (they close their cache and connections), or stop those still running (Ctrl-C,
        an error: what they answered is in the cache); a worker that does not exit in ``_STOP_S`` is killed."""
        deadline = time.monotonic() + _STOP_S
        for proc in self._procs:
            if finished:
                proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()


@dataclass
class _Totals:
    """The workers' latest counters, added into the parent client's status (requests sent, retries, waits)."""

    latest: dict[int, dict[str, Any]] = field(default_factory=dict)

    def update(self, client: LLMClient, k: int, counters: dict[str, Any]) -> None:
        before = self.latest.get(k, {})
        for name in _COUNTERS:
            client.status.add(name, counters[name] - before.get(name, 0))
        waited = before.get("waited_s", {})
        for limit, seconds in counters["waited_s"].items():
            client.status.waited(limit, seconds - waited.get(limit, 0.0))
        self.latest[k] = counters

    def clear(self, client: LLMClient, k: int) -> None:
        """A dead worker has nothing in flight any more."""
        client.status.add("in_flight", -self.latest.get(k, {}).get("in_flight", 0))
        self.latest.get(k, {})["in_flight"] = 0


def _log_done(k: int, counters: dict[str, Any]) -> None:
    """What a worker cost, at DEBUG (``extra["llmkit_worker"]`` holds the numbers: the benchmarks read them)."""
    numbers = {"worker": k, "cpu_s": counters["cpu_s"], "full_collections": counters["full_collections"]}
    logger.debug(
        "worker process %d done: %.2f s CPU, %d full collections",
        k,
        numbers["cpu_s"],
        numbers["full_collections"],
        extra={"llmkit_worker": numbers},
    )


def _lost(k: int, proc: SpawnProcess | ForkServerProcess) -> Completion:
    proc.join(1.0)
    code = proc.exitcode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
    error = ProviderError(
        f"worker process {k} {how} before this prompt was answered; a rerun sends it again (answers already "
        "received are kept and cached)",
        retryable=True,
    )
    return Completion(finish_reason="error", error=error)


@explain_keywords
def as_completed_in_workers(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    *,
    workers: int,
    sampling: SamplingParams | Mapping[str, Any] | None = None,
    options: RequestOptions | Mapping[str, Any] | None = None,
    show_progress: bool = False,
    on_result: OnResult | None = None,
    max_in_flight: int | None = None,
    budget: Budget | None = None,
    deadline_s: float | None = None,
    output: Any = None,
) -> AsyncGenerator[tuple[int, Completion], None]:
    """``as_completed`` with the batch sharded across ``workers`` processes: ``(index, completion)`` as answers come.

    Prompts, ``output`` and the answers cross process boundaries, so they must pickle (a pydantic class defined at a
    module's top level does; one defined in a notebook cell does not). ``on_result`` runs here, in this process.
    A script that calls this needs the ``if __name__ == "__main__":`` guard (workers are spawned, not forked).
    Raises ``ConfigError`` at once for a bad ``workers`` or ``max_in_flight``, or a limit too small to split.
    """
    workers = check_workers(workers)
    sampling, options = as_params(SamplingParams, sampling, "sampling"), as_params(RequestOptions, options, "options")
    limit = _in_flight_limit(client, max_in_flight)
    if workers == 1:
        scope = Scope.of(budget, deadline_s) if budget is not None or deadline_s is not None else None
        return _as_completed(client, prompts, sampling, options, show_progress, on_result, limit, scope, output)
    account = client._account
    common = {
        "batch_sampling": sampling,
        "options": options,
        "output": output,
        "deadline": None if deadline_s is None else time.time() + deadline_s,
        "client_account": SharedAccount(account.budget, account) if account is not None else None,
        "batch_account": SharedAccount(budget) if budget is not None else None,
    }
    jobs = _jobs(client, workers, limit, common)
    return _sharded(client, prompts, jobs, show_progress, on_result, common["batch_account"])


async def _sharded(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    jobs: list[_Job],
    show_progress: bool,
    on_result: OnResult | None,
    budget: SharedAccount | None,
) -> AsyncGenerator[tuple[int, Completion], None]:
    total = len(prompts) if hasattr(prompts, "__len__") else None  # type: ignore[arg-type]
    progress = _Progress(client, total, show_progress, Scope((budget,)) if budget is not None else None)
    pool = _Pool(jobs, prompts, asyncio.get_running_loop())
    totals, errors, running = _Totals(), 0, len(jobs)
    pool.start()
    try:
        while running:
            k, message = await _next(pool.inbox, progress, errors)
            kind = message[0]
            if kind == "raised":
                raise message[1]
            if kind == "exited":
                running -= 1
                totals.clear(client, k)
                logger.warning("llmkit: worker process %d exited early; its unanswered prompts fail (retryable)", k)
                answers = [(index, _lost(k, message[1])) for index in pool.lost(k)]
                if not running:
                    answers += [(index, _lost(k, message[1])) for index in pool.rest()]
            else:
                totals.update(client, k, message[2])
                if kind == "done":
                    running -= 1
                    _log_done(k, message[2])
                answers = message[1]
            for index, completion in answers:
                pool.answered(k, index)
                client.status.record(completion)
                errors += not completion.ok
                progress.update(completion, errors)
                if on_result is not None and inspect.isawaitable(outcome := on_result(index, completion)):
                    await outcome
                yield index, completion
    finally:
        pool.stop(finished=not running)
        progress.close(errors)
        _settle(client, jobs[0].client_account)


async def _next(
    inbox: asyncio.Queue[tuple[int, tuple[Any, ...]]], progress: _Progress, errors: int
) -> tuple[int, tuple[Any, ...]]:
    """The next message from a worker; the progress bar is redrawn every second while none comes."""
    while True:
        try:
            return await asyncio.wait_for(inbox.get(), 1.0)
        except asyncio.TimeoutError:
            progress.refresh(errors)


def _settle(client: LLMClient, shared: SharedAccount | None) -> None:
    """The client's own budget, after the batch: what every worker spent from it (and whether it stopped)."""
    account = client._account
    if account is None or shared is None:
        return
    account.spent_usd, account.spent_tokens = shared.spent_usd, shared.spent_tokens
    account.refused = account.refused or shared.refused


@explain_keywords
async def abatch_in_workers(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    *,
    workers: int,
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
    """``abatch``, sharded across ``workers`` processes that share the cache and the budget and split the limits
    (or share them through Redis): every prompt's ``Completion`` in input order. See ``as_completed_in_workers``."""
    stream = as_completed_in_workers(
        client,
        prompts,
        workers=workers,
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
