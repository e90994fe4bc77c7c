"""Weighted model choice with cooldowns: which deployment the next attempt goes to, and how long it must wait.

No I/O: the caller sleeps. Why not LiteLLM's Router: its rpm/tpm checks reject instead of waiting, and its
usage-based strategy registers process-global callbacks (litellm-notes.md); what llmkit needs is ~150 lines.

After a 429 a deployment cools down for the provider's Retry-After and is then paced: one start per ``interval``
seconds, the interval taken from Retry-After (a token bucket's estimate of when capacity for one more request
returns), capped at 1 s so a coarse Retry-After cannot starve the pool, doubled on a further 429 and shrunk 5% on
each success. Only a 429 on a request sent after the last change grows it: the requests already in flight when the
pace was set were sent too fast and say nothing about the new pace (counting them compounded 100 in-flight 429s into
the 1 s ceiling and ran a 10 req/s limit at 1.4 req/s). That keeps a pool that outruns a provider's limit from
sending a storm of retries each time a cooldown ends, and costs nothing until the first 429.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from ._params import Model
from .errors import AuthenticationError, LLMError, ModelNotFoundError, NoModelAvailableError, RateLimitError

__all__ = ["Router"]

logger = logging.getLogger("llmkit")

_DEFAULT_RATE_LIMIT_COOLDOWN_S = 1.0
_FAILURES_BEFORE_COOLDOWN = 3
_FAILURE_COOLDOWN_S = 5.0
_PACE_GROWTH = 2.0
_PACE_DECAY = 0.95
_PACE_CEILING_S = 1.0
_PACE_FLOOR_S = 0.001


@dataclass
class _State:
    cooldown_until: float = 0.0
    interval: float = 0.0
    paced_at: float = float("-inf")
    next_start: float = 0.0
    failures: int = 0
    removed: str | None = None


class Router:
    """Picks deployments by weight among those not cooling down; the state is per deployment index."""

    def __init__(
        self,
        models: Sequence[Model],
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        pool_size: int | None = None,
    ) -> None:
        """``pool_size``: the first that many models are the routed pool; each one after it (a context-window
        fallback) is a group of its own. None: all of them are the pool."""
        if not models:
            raise NoModelAvailableError("the client has no models; pass models=[Model('openai/gpt-4o-mini'), ...]")
        self.models = list(models)
        self._pool_size = len(self.models) if pool_size is None else pool_size
        self._states = [_State() for _ in self.models]
        self._rng = rng or random.Random()
        self.clock = clock
        self._lock = threading.Lock()

    def available(self) -> list[int]:
        """Indexes of the deployments still in the pool."""
        return [i for i, s in enumerate(self._states) if s.removed is None]

    def pick(
        self, candidates: Collection[int], *, avoid: int | None = None, prefer: str | None = None
    ) -> tuple[int, float]:
        """Choose a deployment among ``candidates`` and reserve its next start: ``(index, seconds to wait)``.

        ``avoid`` (the deployment that just failed) is skipped when another one is ready; ``prefer`` (a model name)
        wins when it is ready. Raises ``NoModelAvailableError`` when every candidate was removed.
        """
        with self._lock:
            now = self.clock()
            alive = [i for i in candidates if self._states[i].removed is None]
            if not alive:
                raise self._none_left(candidates)
            ready = [i for i in alive if self._wait(i, now) == 0.0]
            if len(ready) > 1 and avoid in ready:
                ready.remove(avoid)
            preferred = [i for i in ready if self.models[i].name == prefer]
            if preferred:
                index = preferred[0]
            elif ready:
                index = self._weighted(ready)
            else:
                index = min(alive, key=lambda i: self._wait(i, now))
            return index, self._reserve(index, now)

    def _weighted(self, indexes: list[int]) -> int:
        weights = [self.models[i].weight for i in indexes]
        return self._rng.choices(indexes, weights=weights)[0]

    def _wait(self, index: int, now: float) -> float:
        state = self._states[index]
        return max(0.0, state.cooldown_until - now, state.next_start - now)

    def _reserve(self, index: int, now: float) -> float:
        state = self._states[index]
        wait = self._wait(index, now)
        if state.interval:
            state.next_start = now + wait + state.interval
        return wait

    def on_success(self, index: int) -> None:
        with self._lock:
            state = self._states[index]
            state.failures = 0
            if state.interval:
                state.interval *= _PACE_DECAY
                if state.interval < _PACE_FLOOR_S:
                    state.interval = 0.0

    def on_failure(self, index: int, error: LLMError, sent_at: float | None = None) -> bool:
        """Cool the deployment down (429s, repeated failures) or take it out of the pool (bad key, unknown model).

        ``sent_at`` (on ``clock``) is when the failed request started; None counts it as sent now. False means the
        failure is not the request's to be charged for: a 429 on a request sent before the current pace was set.
        """
        with self._lock:
            state = self._states[index]
            now = self.clock()
            if isinstance(error, (AuthenticationError, ModelNotFoundError)):
                self._remove(index, error)
            elif isinstance(error, RateLimitError):
                pause = error.retry_after if error.retry_after is not None else _DEFAULT_RATE_LIMIT_COOLDOWN_S
                state.cooldown_until = max(state.cooldown_until, now + pause)
                state.next_start = max(state.next_start, state.cooldown_until)
                if (now if sent_at is None else sent_at) < state.paced_at:
                    return False
                state.interval = min(_PACE_CEILING_S, max(pause, state.interval * _PACE_GROWTH))
                state.paced_at = now
            elif error.retryable:
                state.failures += 1
                # Cooling down the only deployment left would only delay; backoff already spaces its retries.
                if state.failures >= _FAILURES_BEFORE_COOLDOWN and self._has_alternative(index):
                    state.cooldown_until = now + _FAILURE_COOLDOWN_S
                    state.failures = 0
            return True

    def shared_view(self, index: int) -> tuple[float, float, str | None]:
        """What other processes sharing this pool should know: (cooldown seconds left, pace interval, removal)."""
        with self._lock:
            state = self._states[index]
            return max(0.0, state.cooldown_until - self.clock()), state.interval, state.removed

    def merge_shared(self, index: int, *, cooldown_s: float, interval: float, removed: str | None) -> None:
        """Adopt another process's cooldown, pace or removal of a deployment (``_redis.SharedRouting``).

        The pace is taken as set now, so this process's own in-flight 429s do not grow it again (see ``on_failure``).
        """
        with self._lock:
            state = self._states[index]
            now = self.clock()
            state.cooldown_until = max(state.cooldown_until, now + cooldown_s)
            state.next_start = max(state.next_start, state.cooldown_until)
            if interval > state.interval:
                state.interval, state.paced_at = min(_PACE_CEILING_S, interval), now
            if removed is not None and state.removed is None:
                state.removed = f"removed by another process: {removed}"
                logger.warning("model %s (deployment %d) left the pool: %s", self.models[index].name, index, removed)

    def _has_alternative(self, index: int) -> bool:
        """Whether another live deployment of ``index``'s group could take its requests (fallbacks have none)."""
        if index >= self._pool_size:
            return False
        return any(s.removed is None for i, s in enumerate(self._states[: self._pool_size]) if i != index)

    def _remove(self, index: int, error: LLMError) -> None:
        state = self._states[index]
        if state.removed is None:
            state.removed = f"{type(error).__name__}: {error.message}"
            logger.warning(
                "model %s (deployment %d) left the pool for this client's life: %s",
                self.models[index].name,
                index,
                state.removed,
            )

    def _none_left(self, candidates: Collection[int]) -> NoModelAvailableError:
        reasons = "; ".join(
            f"{self.models[i].name}: {self._states[i].removed}" for i in candidates if self._states[i].removed
        )
        return NoModelAvailableError(
            f"no model is left to send to; every one was removed ({reasons}). Fix the keys or model names and "
            "create a new client"
        )
