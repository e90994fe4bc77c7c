"""Budgets and deadlines: what an unattended run may spend, and how long one call may take in all.

A ``Budget`` is checked before each attempt is sent: the attempt reserves its estimate (prompt tokens plus
``max_tokens`` at the deployment's price) and settles to what the provider reported once it answers, so concurrent
requests cannot overshoot by more than the gap between their estimates and their real usage. A failed attempt
releases its reservation (providers do not bill a 429 or a 5xx). Once a reservation is refused the budget is spent:
nothing more is sent, and every later call fails at once with ``BudgetExceededError`` (cache hits still answer).

A deadline is an absolute ``time.monotonic()`` instant. ``check_wait`` refuses a wait that would end after it (or,
for a provider-imposed cooldown, one longer than ``RetryPolicy.max_wait_s``), so a ``Retry-After: 3600`` fails the
call at once with its ``RateLimitError`` instead of parking it for an hour. ``StreamTimer`` bounds a stream's wait for
its first chunk and the gaps between chunks. ``AttemptTimer`` bounds one attempt as a whole, with one event-loop timer
shared by every attempt in flight that has the same timeout (``asyncio.timeout`` costs one timer per attempt).
"""

from __future__ import annotations

import asyncio
import builtins
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import Field, model_validator

from ._params import Model, _Params
from ._result import Completion, Usage
from .errors import BudgetExceededError, ConfigError, LLMError, TimeoutError

__all__ = [
    "Account",
    "AttemptTimer",
    "Budget",
    "Price",
    "Reservation",
    "Scope",
    "StreamTimer",
    "WaitRefused",
    "check_wait",
    "deadline_at",
    "declared_cost",
]

T = TypeVar("T")
Price = tuple[float, float]
"""USD per (prompt token, output token)."""


class Budget(_Params):
    """The most a client, a batch or a CLI run may spend; ``None`` is unlimited."""

    max_cost_usd: float | None = Field(None, gt=0, description="USD, at LiteLLM's price or the Model's declared one.")
    max_tokens: int | None = Field(None, ge=1, description="Prompt plus output tokens, as the providers count them.")

    @model_validator(mode="after")
    def _something_limited(self) -> Budget:
        if self.max_cost_usd is None and self.max_tokens is None:
            raise ValueError("give max_cost_usd, max_tokens or both (a Budget with neither limits nothing)")
        return self


def declared_price(model: Model) -> Price | None:
    """The price the user declared on the ``Model``, if both halves are given."""
    if model.input_cost_per_token is None or model.output_cost_per_token is None:
        return None
    return model.input_cost_per_token, model.output_cost_per_token


def declared_cost(model: Model, completion: Completion) -> Completion:
    """The completion priced at the ``Model``'s declared price, which wins over LiteLLM's (it is the user's word)."""
    price = declared_price(model)
    if price is None or not completion.ok:
        return completion
    usage = completion.usage
    return completion.model_copy(update={"cost_usd": usage.input_tokens * price[0] + usage.output_tokens * price[1]})


class Account:
    """One budget's running totals: settled spending plus what attempts in flight have reserved."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.spent_usd = 0.0
        self.spent_tokens = 0
        self.reserved_usd = 0.0
        self.reserved_tokens = 0
        self.refused: str | None = None
        """Why the budget stopped sending (None while it still sends)."""
        self._lock = threading.Lock()

    def check(self, model: str | None = None) -> None:
        """Raise ``BudgetExceededError`` if this budget already stopped sending."""
        if self.refused is not None:
            raise BudgetExceededError(self.refused, model=model)

    def reserve(self, cost_usd: float, tokens: int, model: str) -> None:
        with self._lock:
            self.check(model)
            limit = self.budget
            if limit.max_cost_usd is not None and self.spent_usd + self.reserved_usd + cost_usd > limit.max_cost_usd:
                self.refused = (
                    f"budget of ${limit.max_cost_usd:g} reached: ${self.spent_usd:.4f} spent, "
                    f"${self.reserved_usd:.4f} reserved in flight, the next request to {model} needs up to "
                    f"${cost_usd:.4f}; nothing more is sent (raise max_cost_usd to go on)"
                )
            elif limit.max_tokens is not None and self.spent_tokens + self.reserved_tokens + tokens > limit.max_tokens:
                self.refused = (
                    f"budget of {limit.max_tokens:,} tokens reached: {self.spent_tokens:,} spent, "
                    f"{self.reserved_tokens:,} reserved in flight, the next request to {model} needs up to {tokens:,}; "
                    "nothing more is sent (raise max_tokens to go on)"
                )
            self.check(model)
            self.reserved_usd += cost_usd
            self.reserved_tokens += tokens

    def settle(self, reserved_usd: float, reserved_tokens: int, cost_usd: float, tokens: int) -> None:
        with self._lock:
            self.reserved_usd -= reserved_usd
            self.reserved_tokens -= reserved_tokens
            self.spent_usd += cost_usd
            self.spent_tokens += tokens

    def __repr__(self) -> str:
        return (
            f"Account(spent_usd={self.spent_usd:.6f}, spent_tokens={self.spent_tokens}, "
            f"reserved_usd={self.reserved_usd:.6f}, reserved_tokens={self.reserved_tokens}, "
            f"stopped={bool(self.refused)})"
        )


@dataclass
class Reservation:
    """One attempt's hold on every budget that applies to it, until it is settled (answered) or released (failed)."""

    accounts: tuple[Account, ...]
    cost_usd: float
    tokens: int
    _done: bool = False

    @classmethod
    def make(
        cls, accounts: tuple[Account, ...], model: Model, price: Callable[[Model], Price | None], prompt: int, out: int
    ) -> Reservation:
        """Reserve ``prompt`` + ``out`` tokens at the model's price on each account (all or none)."""
        cost = 0.0
        if any(a.budget.max_cost_usd is not None for a in accounts):
            unit = declared_price(model) or price(model)
            if unit is None:
                raise ConfigError(
                    f"a cost budget is set but LiteLLM has no price for {model.name}, so its spending cannot be "
                    f"counted; declare it: Model({model.name!r}, input_cost_per_token=..., output_cost_per_token=...)",
                    model=model.name,
                )
            cost = prompt * unit[0] + out * unit[1]
        taken: list[Account] = []
        try:
            for account in accounts:
                account.reserve(cost, prompt + out, model.name)
                taken.append(account)
        except LLMError:
            for account in taken:
                account.settle(cost, prompt + out, 0.0, 0)
            raise
        return cls(accounts, cost, prompt + out)

    def settle(self, completion: Completion) -> None:
        """Replace the estimate by what the answer really cost (unpriced answers count their tokens only)."""
        if not self._done:
            self._done = True
            usage: Usage = completion.usage
            for account in self.accounts:
                account.settle(self.cost_usd, self.tokens, completion.cost_usd or 0.0, usage.total_tokens)

    def release(self, actual_tokens: int | None = None) -> None:
        """A failed or abandoned attempt spends nothing; same signature as ``Permit.release``."""
        if not self._done:
            self._done = True
            for account in self.accounts:
                account.settle(self.cost_usd, self.tokens, 0.0, 0)


@dataclass(frozen=True)
class Scope:
    """What a batch adds to each of its calls: its budget's account and its absolute deadline."""

    accounts: tuple[Account, ...] = ()
    deadline: float | None = None

    @classmethod
    def of(cls, budget: Budget | None, deadline_s: float | None) -> Scope:
        return cls((Account(budget),) if budget is not None else (), deadline_at(deadline_s))

    @property
    def refused(self) -> str | None:
        """Why this scope's budget stopped sending, if it did."""
        return next((a.refused for a in self.accounts if a.refused), None)


def deadline_at(seconds: float | None, *earlier: float | None) -> float | None:
    """The absolute deadline ``seconds`` from now, or the earliest of ``earlier`` if that comes first."""
    candidates = [time.monotonic() + seconds] if seconds is not None else []
    candidates += [d for d in earlier if d is not None]
    return min(candidates) if candidates else None


def check_wait(
    reason: str, seconds: float, deadline: float | None, cap: float | None, last_error: LLMError | None
) -> None:
    """Raise instead of waiting ``seconds`` for ``reason`` when that ends after ``deadline`` or exceeds ``cap``.

    The error is the one that caused the wait (a ``RateLimitError`` keeps its ``retry_after``), else a
    ``TimeoutError`` naming the deadline.
    """
    over_cap = cap is not None and seconds > cap
    late = deadline is not None and time.monotonic() + seconds > deadline
    if not (over_cap or late):
        return
    if last_error is None:
        left = max(0.0, (deadline or 0.0) - time.monotonic())
        last_error = TimeoutError(f"not waiting {seconds:.1f} s for {reason}: the deadline is {left:.1f} s away")
    raise WaitRefused(last_error)


class WaitRefused(Exception):
    """A wait ``check_wait`` refused: the call ends with ``error`` now. Not an ``LLMError``, so no retry catches it."""

    def __init__(self, error: LLMError) -> None:
        super().__init__(error.message)
        self.error = error


class StreamTimer:
    """A stream's two clocks: the first chunk within ``first_s`` of the request, then no gap over ``stall_s``.

    Either running out raises ``TimeoutError`` (retryable: the client retries it only if nothing was yielded yet);
    the awaited read is cancelled, and the caller closes the upstream connection.
    """

    def __init__(self, first_s: float | None, stall_s: float | None, model: str) -> None:
        self.first_s, self.stall_s, self.model = first_s, stall_s, model
        self._start = time.monotonic()
        self._chunks = 0

    async def wait(self, step: Awaitable[T]) -> T:
        """``step`` (the request, or the next chunk), within what is left of the current allowance."""
        if self._chunks == 0 and self.first_s is not None:
            limit, what = self.first_s - (time.monotonic() - self._start), f"no first chunk within {self.first_s:g} s"
        elif self._chunks > 0 and self.stall_s is not None:
            limit, what = self.stall_s, f"the stream stalled: no chunk for {self.stall_s:g} s"
        else:
            return await step
        try:
            async with asyncio.timeout(max(limit, 0.0)):
                return await step
        except builtins.TimeoutError as exc:
            if isinstance(exc, LLMError):
                raise
            raise TimeoutError(f"{self.model}: {what} (after {self._chunks} chunks)", model=self.model) from None

    async def chunks(self, stream: AsyncIterator[T]) -> AsyncIterator[T]:
        """The stream's chunks, each within its allowance."""
        iterator = aiter(stream)
        while True:
            try:
                chunk = await self.wait(anext(iterator))
            except StopAsyncIteration:
                return
            self._chunks += 1
            yield chunk


class _TimerQueue:
    """The attempts in flight on one loop with one timeout, oldest first: with one timeout, start order is deadline
    order, so one ``call_at`` handle for the oldest covers them all. Starting and stopping an attempt is a dict insert
    and pop (``asyncio.timeout`` schedules and cancels a timer per attempt, ~5-10 us with many in flight)."""

    # Nothing that holds the loop (a TimerHandle does): the queue lives in a WeakKeyDictionary keyed by the loop.
    __slots__ = ("timers", "armed")

    def __init__(self) -> None:
        self.timers: dict[AttemptTimer, None] = {}  # insertion order: by deadline
        self.armed = False  # a call_at for the oldest deadline is pending

    def fire(self) -> None:
        """Cancel every attempt whose deadline passed, then wake again at the next one's (if any)."""
        self.armed = False
        loop = asyncio.get_running_loop()  # a callback of the loop the attempts run on
        now = loop.time()
        while self.timers:
            timer = next(iter(self.timers))
            if timer.deadline > now:
                loop.call_at(timer.deadline, self.fire)
                self.armed = True
                return
            del self.timers[timer]
            timer.fired = True
            timer.task.cancel()


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _TimerQueue]] = weakref.WeakKeyDictionary()


class AttemptTimer:
    """Cancels the current task ``timeout_s`` after it is made, unless ``stop`` comes first: ``asyncio.timeout``'s
    semantics (a cancel from elsewhere stays a cancel), without a timer per attempt. Python 3.11+ (``uncancel``)."""

    __slots__ = ("task", "deadline", "cancelling", "fired", "queue")

    def __init__(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("AttemptTimer needs to run inside a task")
        queues = _queues.get(loop)
        if queues is None:
            queues = _queues[loop] = {}
        queue = queues.get(timeout_s)
        if queue is None:
            queue = queues[timeout_s] = _TimerQueue()
        self.task, self.queue, self.fired = task, queue, False
        self.cancelling = task.cancelling()
        self.deadline = loop.time() + timeout_s
        queue.timers[self] = None
        if not queue.armed:
            loop.call_at(self.deadline, queue.fire)
            queue.armed = True

    def stop(self) -> None:
        self.queue.timers.pop(self, None)

    def expired(self) -> bool:
        """Called once, with a ``CancelledError`` in hand: True if this timer caused it and nothing else also asked
        to cancel the task (then the caller raises a timeout instead; as ``asyncio.timeout``'s ``__aexit__``)."""
        return self.fired and self.task.uncancel() <= self.cancelling
