"""What a client has done so far: counts, tokens, cost, and the seconds spent waiting on each limit."""

from __future__ import annotations

import threading
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
    waited_s: dict[str, float] = field(
        default_factory=lambda: {"requests": 0.0, "tokens": 0.0, "concurrency": 0.0, "cooldown": 0.0}
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, completion: Completion) -> None:
        """Count one finished call (a cache hit, an answer, or a final error)."""
        with self._lock:
            if completion.cache_hit:
                self.cache_hits += 1
            elif completion.ok:
                self.succeeded += 1
                self.usage = self.usage + completion.usage
                if completion.cost_usd is None:
                    self.unpriced += 1
                else:
                    self.cost_usd += completion.cost_usd
            else:
                self.failed += 1

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def waited(self, limit: str, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.waited_s[limit] += seconds

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
            + " waited("
            + " ".join(f"{k}={v:.1f}s" for k, v in self.waited_s.items())
            + ")"
        )
