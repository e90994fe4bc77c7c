"""Client-side rate limits that make callers wait instead of fail.

Two continuously refilling buckets (requests and tokens per minute) hand out start times in arrival order: a caller
reserves its share at once, possibly driving a bucket below zero, and sleeps until the bucket would be back at zero.
That is exact, fair and needs no polling. The concurrency slot is taken only after both buckets granted capacity, so
a caller waiting on a bucket never holds a slot (no head-of-line blocking).

Accounting is loop-free (counters and a monotonic clock under a thread lock): one limiter serves the sync twins'
background loop and the caller's own loop at once. Clock and sleep are injectable for tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ._params import RateLimits
from .errors import ConfigError

__all__ = ["Permit", "RateLimiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class _Bucket:
    """``capacity`` units that refill at ``rate`` per second; the level may go negative (reserved ahead)."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = per_minute
        self.updated = now

    def reserve(self, amount: float, now: float) -> float:
        """Take ``amount``; return how long the caller must wait before it is really available."""
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now
        self.level -= amount
        return max(0.0, -self.level / self.rate)

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class Permit:
    """Holds one request's concurrency slot and token reservation until ``release``."""

    __slots__ = ("_limiter", "tokens", "_released")

    def __init__(self, limiter: RateLimiter, tokens: int) -> None:
        self._limiter = limiter
        self.tokens = tokens
        self._released = False

    def release(self, actual_tokens: int | None = None) -> None:
        """Free the slot; with ``actual_tokens``, correct the token bucket by what the request really used."""
        if not self._released:
            self._released = True
            self._limiter._release(self.tokens, actual_tokens)


class RateLimiter:
    """Requests/min, tokens/min and concurrency for one scope (the client, or one deployment)."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        now = clock()
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._requests = _Bucket(limits.requests_per_minute, now) if limits.requests_per_minute else None
        self._tokens = _Bucket(limits.tokens_per_minute, now) if limits.tokens_per_minute else None
        self._in_flight = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._on_wait = on_wait or (lambda limit, seconds: None)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self, tokens: int) -> Permit:
        """Wait until this request may start; raises ``ConfigError`` if it can never fit the token budget."""
        if self._tokens is not None and tokens > self._tokens.capacity:
            raise ConfigError(
                f"this request needs about {tokens:,} tokens (prompt estimate + max_tokens) but tokens_per_minute is "
                f"{self._tokens.capacity:,.0f}, so it could never start; raise tokens_per_minute or lower max_tokens"
            )
        request_wait, token_wait = self._reserve(tokens)
        wait = max(request_wait, token_wait)
        if wait > 0:
            self._on_wait("requests" if request_wait >= token_wait else "tokens", wait)
            try:
                await self._sleep(wait)
            except BaseException:
                self._unreserve(tokens)
                raise
        await self._take_slot(tokens)
        return Permit(self, tokens)

    def _reserve(self, tokens: int) -> tuple[float, float]:
        with self._lock:
            now = self._clock()
            request_wait = self._requests.reserve(1, now) if self._requests else 0.0
            token_wait = self._tokens.reserve(tokens, now) if self._tokens and tokens else 0.0
        return request_wait, token_wait

    def _unreserve(self, tokens: int) -> None:
        """A caller cancelled while waiting hands its reservation back."""
        with self._lock:
            if self._requests:
                self._requests.give_back(1)
            if self._tokens:
                self._tokens.give_back(tokens)

    async def _take_slot(self, tokens: int) -> None:
        limit = self.limits.max_concurrency
        with self._lock:
            if limit is None or (self._in_flight < limit and not self._waiters):
                self._in_flight += 1
                return
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        start = self._clock()
        try:
            await future
        except BaseException:
            self._abandon(future, tokens)
            raise
        self._on_wait("concurrency", self._clock() - start)

    def _abandon(self, future: asyncio.Future[None], tokens: int) -> None:
        with self._lock:
            granted = future.done() and not future.cancelled()
            self._waiters = deque(w for w in self._waiters if w[1] is not future)
        if granted:  # the slot was handed over just as the caller was cancelled: pass it on
            self._release(0, None)
        self._unreserve(tokens)

    def _release(self, reserved_tokens: int, actual_tokens: int | None) -> None:
        with self._lock:
            if self._tokens is not None and actual_tokens is not None:
                self._tokens.give_back(reserved_tokens - actual_tokens)
            while self._waiters:
                loop, future = self._waiters.popleft()
                if not future.done():
                    loop.call_soon_threadsafe(self._grant, future)
                    return
            self._in_flight -= 1

    def _grant(self, future: asyncio.Future[None]) -> None:
        """Hand a freed slot to a waiter, or on to the next one if this waiter was cancelled meanwhile."""
        if future.done():
            self._release(0, None)
        else:
            future.set_result(None)
