"""Hooks and traces: what each call did, for metrics and post-mortems, without touching LiteLLM's globals.

``Hooks`` is a small typed callback interface: subclass it and override the events you want (attempt started,
attempt failed, call completed, cache hit, wait started). Hooks run inline on the caller's loop, so they must be
quick; one that raises is logged and ignored, never allowed to fail the call.

``Tracer`` is a ``Hooks`` that writes one JSON line per attempt (the request as llmkit handed it to LiteLLM, the
response as it came back or the error, timings, attempt number, the retry/fallback decision), per cache hit and per
finished call, each with the caller's ``RequestOptions.metadata``. Every line is redacted before it leaves llmkit:
keys and auth headers by name, and every secret it knows (the deployment's key, provider keys in the environment,
the ``secrets`` given) by value. Bodies can be cut to ``max_body_bytes``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from ._result import Completion
from ._transport import Request, request_fields
from .errors import ConfigError, LLMError, redact

__all__ = [
    "AttemptFailed",
    "AttemptStarted",
    "CacheHit",
    "CallCompleted",
    "HookSet",
    "Hooks",
    "Tracer",
    "WaitStarted",
]

logger = logging.getLogger("llmkit")

Decision = Literal["retry", "fallback", "give up"]


@dataclass(frozen=True)
class AttemptStarted:
    """An attempt is about to be sent (its limits and cooldown already waited for)."""

    call_id: str
    attempt: int
    request: Request
    fallback: bool
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class AttemptFailed:
    """An attempt failed; ``decision`` says what happens next."""

    call_id: str
    attempt: int
    request: Request
    error: LLMError
    latency_s: float
    decision: Decision
    fallback: bool
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class CallCompleted:
    """A call finished: answered (``completion.ok``) or failed for good. ``request`` is the answering attempt's."""

    call_id: str
    completion: Completion
    request: Request | None
    fallback: bool
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class CacheHit:
    """A call was answered from the cache: nothing was sent."""

    completion: Completion
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class WaitStarted:
    """A wait begins: ``reason`` is a limit (requests, tokens, concurrency), a cooldown or a backoff."""

    reason: str
    seconds: float
    model: str | None
    call_id: str | None


class Hooks:
    """Override the events you need; the others do nothing. Keep them fast: they run inline."""

    def attempt_started(self, event: AttemptStarted) -> None:
        """An attempt is about to be sent."""

    def attempt_failed(self, event: AttemptFailed) -> None:
        """An attempt failed (``event.decision``: retry, fallback or give up)."""

    def completed(self, event: CallCompleted) -> None:
        """A call finished, answered or failed."""

    def cache_hit(self, event: CacheHit) -> None:
        """A call was answered from the cache."""

    def wait_started(self, event: WaitStarted) -> None:
        """A wait on a limit, a cooldown or a backoff begins."""


class HookSet(tuple[Hooks, ...]):
    """The client's hooks, called in order; falsy when there are none (the client then skips building events).

    A tuple, so the client's ``if self._hooks:`` on every call is a C-level test, not a Python ``__bool__`` call.
    """

    def __new__(cls, hooks: Hooks | Sequence[Hooks] | None) -> HookSet:
        hooks = (hooks,) if isinstance(hooks, Hooks) else tuple(hooks or ())
        for hook in hooks:
            if not isinstance(hook, Hooks):
                raise ConfigError(f"hooks must be llmkit Hooks (subclass llmkit.Hooks), got {type(hook).__name__}")
        return super().__new__(cls, hooks)

    @property
    def hooks(self) -> tuple[Hooks, ...]:
        return tuple(self)

    def emit(self, name: str, event: object) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, name)(event)
            except Exception:  # a metrics bug must never fail the call
                logger.exception("llmkit hook %s.%s raised; ignored", type(hook).__name__, name)


# Field names whose string values are credentials: the key parameters and auth headers of the providers LiteLLM
# reaches. Not "token" alone: logprobs entries have a "token" field that is generated text.
_SECRET_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "password"})
_SECRET_NAME_ENDINGS = ("api_key", "api-key", "apikey", "_secret", "-secret", "_token", "-token", "-key", "_key")


def _secret_name(name: object) -> bool:
    lowered = str(name).lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_NAME_ENDINGS)


_ENV_SECRET_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET")


class _EnvSecrets:
    """Provider keys in the environment (OPENAI_API_KEY and the like): LiteLLM sends them when no key is given.

    Scanning every variable costs ~80 µs, so the names are rescanned only when the number of variables changes;
    their values are read on every call (a key replaced in place is still masked).
    """

    def __init__(self) -> None:
        self._size = -1
        self._names: tuple[str, ...] = ()

    def __call__(self) -> list[str]:
        if len(os.environ) != self._size:
            self._size = len(os.environ)
            self._names = tuple(k for k in os.environ if k.upper().endswith(_ENV_SECRET_SUFFIXES))
        return [value for name in self._names if len(value := os.environ.get(name, "")) >= 6]


_env_secrets = _EnvSecrets()


def _scrub(value: Any, secrets: list[str]) -> Any:
    """Keys, auth headers and tokens removed by field name, and every secret by value, at any depth."""
    if isinstance(value, str):
        # redact() masks a secret and anything starting with its first 8 characters; most strings contain neither.
        return redact(value, secrets) if any(s[:8] in value for s in secrets) else value
    if isinstance(value, dict):
        return {k: "***" if isinstance(v, str) and _secret_name(k) else _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets) for v in value]
    return value


class Tracer(Hooks):
    """JSON-lines traces of every attempt, to ``directory`` (one file per client) and/or a ``callback(dict)``.

    ``max_body_bytes`` cuts each request and response body to that many characters of JSON (None: whole).
    ``secrets``: more strings to redact, on top of the deployments' keys and the provider keys in the environment.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        max_body_bytes: int | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        if directory is None and callback is None:
            raise ConfigError("Tracer needs a directory, a callback or both: Tracer('traces/') or Tracer(callback=f)")
        self.max_body_bytes = max_body_bytes
        self._callback = callback
        self._secrets = [s for s in secrets if s]
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self.path: Path | None = None
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self.path = Path(directory) / f"trace-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{id(self):x}.jsonl"

    # -- the events ---------------------------------------------------------------------------------------------

    def attempt_failed(self, event: AttemptFailed) -> None:
        self._write(
            {
                "event": "attempt",
                "call": event.call_id,
                "attempt": event.attempt,
                "model": event.request.model.name,
                "fallback": event.fallback,
                "latency_s": round(event.latency_s, 6),
                "request": self._body(request_fields(event.request)),
                "response": None,
                "error": {**event.error.to_dict(), "request_id": event.error.request_id},
                "decision": event.decision,
                "metadata": event.metadata,
            },
            event.request,
        )

    def completed(self, event: CallCompleted) -> None:
        completion = event.completion
        if event.request is not None and completion.ok:
            self._write(
                {
                    "event": "attempt",
                    "call": event.call_id,
                    "attempt": completion.attempts,
                    "model": event.request.model.name,
                    "fallback": event.fallback,
                    "latency_s": round(completion.latency_s, 6),
                    "request": self._body(request_fields(event.request)),
                    "response": self._body(completion.raw),
                    "error": None,
                    "decision": "done",
                    "metadata": event.metadata,
                },
                event.request,
            )
        self._write(
            {
                "event": "call",
                "call": event.call_id,
                "ok": completion.ok,
                "model": completion.model,
                "attempts": completion.attempts,
                "latency_s": round(completion.latency_s, 6),
                "usage": completion.usage.model_dump(),
                "cost_usd": completion.cost_usd,
                "finish_reason": completion.finish_reason,
                "error": completion.error.to_dict() if completion.error is not None else None,
                "metadata": event.metadata,
            },
            event.request,
        )

    def cache_hit(self, event: CacheHit) -> None:
        self._write(
            {
                "event": "cache_hit",
                "model": event.completion.model,
                "saved_usd": event.completion.cost_usd,
                "metadata": event.metadata,
            },
            None,
        )

    def wait_started(self, event: WaitStarted) -> None:
        self._write(
            {
                "event": "wait",
                "call": event.call_id,
                "reason": event.reason,
                "seconds": round(event.seconds, 3),
                "model": event.model,
            },
            None,
        )

    # -- writing --------------------------------------------------------------------------------------------------

    def _body(self, body: Any) -> Any:
        if body is None or self.max_body_bytes is None:
            return body
        text = json.dumps(body, default=str, ensure_ascii=False)
        if len(text) <= self.max_body_bytes:
            return body
        return {"truncated": True, "chars": len(text), "head": text[: self.max_body_bytes]}

    def _write(self, record: dict[str, Any], request: Request | None) -> None:
        secrets = [*self._secrets, *_env_secrets()]
        if request is not None and request.model.api_key is not None:
            secrets.append(request.model.api_key.get_secret_value())
        record = _scrub({"ts": round(time.time(), 6), **record}, secrets)
        line = json.dumps(record, default=str, ensure_ascii=False)
        if self._callback is not None:
            self._callback(record)
        if self.path is not None:
            with self._lock:
                if self._file is None:
                    self._file = self.path.open("a", encoding="utf-8")
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
