"""``RetryPolicy`` as tenacity objects, which stay out of the public API.

A 429 gets no backoff here: the router already pauses that deployment for the provider's Retry-After (and paces it
after), and the retry may go to another deployment that is ready now. Other retryable errors back off exponentially
with jitter. ``reraise=True`` so callers see the llmkit error, not tenacity's ``RetryError``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ._params import RetryPolicy
from .errors import RateLimitError

__all__ = ["backoff_s", "retrying", "wait_s"]


def _retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


def backoff_s(policy: RetryPolicy, failures: int, rng: random.Random | None = None) -> float:
    """Wait after the ``failures``-th failure: initial * 2**(failures-1), capped, jittered into [b/2, b]."""
    base = min(policy.max_backoff_s, policy.initial_backoff_s * 2 ** (failures - 1))
    return (rng or random).uniform(base / 2, base) if policy.jitter else base


def wait_s(policy: RetryPolicy, error: BaseException | None, failures: int) -> float:
    """How long to wait after a failed attempt before the next one."""
    return 0.0 if isinstance(error, RateLimitError) else backoff_s(policy, failures)


def retrying(policy: RetryPolicy, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncRetrying:
    def wait(state: RetryCallState) -> float:
        return wait_s(policy, state.outcome.exception() if state.outcome else None, state.attempt_number)

    return AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=retry_if_exception(_retryable),
        sleep=sleep,
        reraise=True,
    )
