"""OpenTelemetry spans for llmkit calls: ``pip install "llmkit[otel]"``, then ``hooks=OpenTelemetryHooks()``.

A span per call and a child span per attempt, named and attributed after the OpenTelemetry GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens``/``output_tokens``, ``gen_ai.response.finish_reasons``, ``error.type``), plus llmkit's
own (``llmkit.cost_usd``, ``llmkit.attempts``, ``llmkit.cache_hit``, ``llmkit.decision``). Prompts and answers are
never put on spans. The call span is a child of whatever span is current where the call is made.

An integration at the edge: it only reads the events of ``llmkit.Hooks``; it imports ``opentelemetry`` (the API
only; the user's SDK does the exporting) when it is built, never when ``llmkit`` is imported.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ._params import Model
from ._result import Completion
from ._trace import AttemptFailed, AttemptStarted, CacheHit, CallCompleted, Hooks
from .errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["OpenTelemetryHooks"]

# LiteLLM provider prefixes whose well-known gen_ai.provider.name differs from the prefix itself.
_PROVIDER_NAMES = {
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
}


def _model_attributes(model: Model) -> dict[str, Any]:
    provider = model.provider or "openai"
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _PROVIDER_NAMES.get(provider, provider),
        "gen_ai.request.model": model.name.split("/", 1)[-1],
    }


def _answer_attributes(completion: Completion) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": completion.usage.input_tokens,
        "gen_ai.usage.output_tokens": completion.usage.output_tokens,
        "llmkit.attempts": completion.attempts,
        "llmkit.cache_hit": completion.cache_hit,
    }
    if completion.model:
        attributes["gen_ai.response.model"] = completion.model.split("/", 1)[-1]
    if completion.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [completion.finish_reason]
    if completion.cache_hit:  # nothing was spent; what the first answer cost was saved
        attributes["llmkit.cost_usd"] = 0.0
        if completion.cost_usd is not None:
            attributes["llmkit.saved_usd"] = completion.cost_usd
    elif completion.cost_usd is not None:
        attributes["llmkit.cost_usd"] = completion.cost_usd
    return attributes


class OpenTelemetryHooks(Hooks):
    """Spans for every call and attempt, through ``tracer_provider`` (default: the global one)."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ConfigError('OpenTelemetryHooks needs the OpenTelemetry API: pip install "llmkit[otel]"') from None
        self._trace = trace
        self._tracer: Tracer = trace.get_tracer("llmkit", tracer_provider=tracer_provider)
        self._open: dict[str, tuple[Span, Span | None]] = {}
        self._lock = threading.Lock()

    def attempt_started(self, event: AttemptStarted) -> None:
        attributes = {**_model_attributes(event.request.model), "llmkit.attempt": event.attempt}
        if event.request.sampling.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = event.request.sampling.max_tokens
        if event.request.sampling.temperature is not None:
            attributes["gen_ai.request.temperature"] = event.request.sampling.temperature
        with self._lock:
            call, _ = self._open.get(event.call_id, (None, None))
        if call is None:
            call = self._tracer.start_span(f"chat {attributes['gen_ai.request.model']}", attributes=attributes)
        name = f"chat {attributes['gen_ai.request.model']} attempt {event.attempt}"
        attempt = self._tracer.start_span(
            name,
            context=self._trace.set_span_in_context(call),
            attributes={**attributes, "llmkit.fallback": event.fallback},
        )
        with self._lock:
            self._open[event.call_id] = (call, attempt)

    def attempt_failed(self, event: AttemptFailed) -> None:
        with self._lock:
            call, attempt = self._open.get(event.call_id, (None, None))
            if call is not None:
                self._open[event.call_id] = (call, None)
        if attempt is not None:
            attempt.set_attributes({"error.type": type(event.error).__name__, "llmkit.decision": event.decision})
            attempt.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.error.message[:200]))
            attempt.end()

    def completed(self, event: CallCompleted) -> None:
        with self._lock:
            call, attempt = self._open.pop(event.call_id, (None, None))
        completion = event.completion
        attributes = _answer_attributes(completion)
        if attempt is not None:
            attempt.set_attributes(attributes)
            attempt.end()
        if call is None:  # failed before any attempt (a budget, a deadline): the call still gets its span
            call = self._tracer.start_span(f"chat {(completion.model or '').split('/', 1)[-1]}".strip())
            call.set_attribute("gen_ai.operation.name", "chat")
        call.set_attributes(attributes)
        if completion.error is not None:
            call.set_attribute("error.type", type(completion.error).__name__)
            call.set_status(self._trace.Status(self._trace.StatusCode.ERROR, completion.error.message[:200]))
        call.end()

    def cache_hit(self, event: CacheHit) -> None:
        completion = event.completion
        span = self._tracer.start_span(f"chat {(completion.model or '').split('/', 1)[-1]}".strip())
        span.set_attributes({"gen_ai.operation.name": "chat", **_answer_attributes(completion)})
        span.end()
