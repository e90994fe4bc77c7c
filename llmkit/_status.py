"""What a client has done so far: counts, tokens, cost, and the seconds spent waiting on each limit."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields

from ._result import Completion, Usage

__all__ = ["StatusTracker"]


@dataclass
class StatusTracker:
    """Live counters of one ``LLMClient`` (``client.status``); ``reset()`` zeroes them."""

    requests_sent: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    reasked: int = 0
    """Sends that re-asked for an ``output=`` answer that did not validate (each is also in ``requests_sent``)."""
    cache_hits: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    unpriced: int = 0
    cost_by_model: dict[str, float] = field(default_factory=dict)
    saved_usd: float = 0.0
    """What the cache hits cost when they were first answered: money not spent again."""
    waited_s: dict[str, float] = field(
        default_factory=lambda: {"requests": 0.0, "tokens": 0.0, "concurrency": 0.0, "cooldown": 0.0}
    )
    _waiting_until: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, completion: Completion) -> None:
        """Count one finished call (a cache hit, an answer, or a final error)."""
        with self._lock:
            if completion.cache_hit:
                self.cache_hits += 1
                self.saved_usd += completion.cost_usd or 0.0
            elif completion.ok:
                self.succeeded += 1
                self.usage = self.usage + completion.usage
                if completion.cost_usd is None:
                    self.unpriced += 1
                else:
                    self.cost_usd += completion.cost_usd
                    model = completion.model or "(unknown)"
                    self.cost_by_model[model] = self.cost_by_model.get(model, 0.0) + completion.cost_usd
            else:
                self.failed += 1

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def waited(self, limit: str, seconds: float) -> None:
        """A wait of ``seconds`` starts now, on a limit, a cooldown or a backoff (only the first three are summed)."""
        if seconds > 0:
            with self._lock:
                if limit in self.waited_s:
                    self.waited_s[limit] += seconds
                until = time.monotonic() + seconds
                self._waiting_until[limit] = max(until, self._waiting_until.get(limit, 0.0))

    def waiting_now(self) -> str | None:
        """What callers are waiting on right now and for how much longer, longest first ("cooldown 3590s")."""
        now = time.monotonic()
        with self._lock:
            left = sorted(((t - now, limit) for limit, t in self._waiting_until.items() if t > now), reverse=True)
        return ",".join(f"{limit} {seconds:.0f}s" for seconds, limit in left) or None

    @property
    def binding_limit(self) -> str | None:
        """The limit callers have waited on longest, or None if nothing made them wait."""
        limit, seconds = max(self.waited_s.items(), key=lambda item: item[1])
        return limit if seconds > 0 else None

    def reset(self) -> None:
        fresh = StatusTracker()
        with self._lock:
            for f in fields(self):
                if f.name != "_lock":
                    setattr(self, f.name, getattr(fresh, f.name))

    def __str__(self) -> str:
        u = self.usage
        return (
            f"sent={self.requests_sent} ok={self.succeeded} failed={self.failed} retried={self.retried} "
            f"cache_hits={self.cache_hits} 429s={self.rate_limited} tokens(in={u.input_tokens} out={u.output_tokens} "
            f"reasoning={u.reasoning_tokens}) cost=${self.cost_usd:.4f}"
            + (f" ({self.unpriced} unpriced)" if self.unpriced else "")
            + (f" saved=${self.saved_usd:.4f}" if self.saved_usd else "")
            + " waited("
            + " ".join(f"{k}={v:.1f}s" for k, v in self.waited_s.items())
            + ")"
        )
