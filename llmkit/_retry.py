"""``RetryPolicy`` as tenacity objects, which stay out of the public API.

A 429 gets no backoff here: the router already pauses that deployment for the provider's Retry-After (and paces it
after), and the retry may go to another deployment that is ready now. Other retryable errors back off exponentially
with jitter. ``reraise=True`` so callers see the llmkit error, not tenacity's ``RetryError``. The client makes a call's
first attempt without tenacity and hands over only after a retryable failure (``LLMClient._attempts``).

``max_attempts`` counts charged attempts: a 429 on a request that was already in flight when the router set a new
pace is not charged (the router says so), or a burst of 100 in-flight 429s would use up a prompt's attempts before
the pace it caused could help. Uncharged attempts are still capped at ``_UNCHARGED_FACTOR`` times ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._params import RetryPolicy
from .errors import RateLimitError

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState

__all__ = ["backoff_s", "out_of_attempts", "retrying", "wait_s"]

_UNCHARGED_FACTOR = 3


def _retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


def backoff_s(policy: RetryPolicy, failures: int, rng: random.Random | None = None) -> float:
    """Wait after the ``failures``-th failure: initial * 2**(failures-1), capped, jittered into [b/2, b]."""
    base = min(policy.max_backoff_s, policy.initial_backoff_s * 2 ** (failures - 1))
    return (rng or random).uniform(base / 2, base) if policy.jitter else base


def wait_s(policy: RetryPolicy, error: BaseException | None, failures: int) -> float:
    """How long to wait after a failed attempt before the next one."""
    return 0.0 if isinstance(error, RateLimitError) else backoff_s(policy, failures)


def out_of_attempts(policy: RetryPolicy, attempts: int, charged: int) -> bool:
    return charged >= policy.max_attempts or attempts >= policy.max_attempts * _UNCHARGED_FACTOR


def retrying(
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    attempts: Callable[[], tuple[int, int]] | None = None,
) -> AsyncRetrying:
    """Tenacity for ``policy``. ``attempts`` gives (attempts made, attempts charged) so far, counting any made before
    tenacity took over (the client makes the first one bare); None counts tenacity's own, all charged.

    tenacity is imported at the first retry, not with llmkit: it imports tornado when that is installed (~12 ms of
    ``import llmkit``), and most calls never retry."""
    from tenacity import AsyncRetrying, retry_if_exception

    def counts(state: RetryCallState) -> tuple[int, int]:
        return attempts() if attempts is not None else (state.attempt_number, state.attempt_number)

    def wait(state: RetryCallState) -> float:
        return wait_s(policy, state.outcome.exception() if state.outcome else None, counts(state)[0])

    def stop(state: RetryCallState) -> bool:
        return out_of_attempts(policy, *counts(state))

    return AsyncRetrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(_retryable),
        sleep=sleep,
        reraise=True,
    )
