"""OpenTelemetry spans per call and per attempt, read back from the SDK's in-memory exporter."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llmkit import LLMClient, Model, RetryPolicy, SamplingParams
from llmkit.otel import OpenTelemetryHooks
from llmkit.testing import FakeProvider


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_a_span_per_call_and_per_attempt_with_genai_attributes(
    fake_provider: FakeProvider, provider: TracerProvider, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="sk-otel")
    client = LLMClient(
        model,
        sampling=SamplingParams(max_tokens=50, temperature=0),
        retry=RetryPolicy(initial_backoff_s=0),
        cache=tmp_path / "cache",
        hooks=OpenTelemetryHooks(provider),
    )
    tracer = provider.get_tracer("the user's app")
    with tracer.start_as_current_span("job") as job:
        answer = await client.acomplete("[[fail_once:500]] tell me something")
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {"job", "chat gpt-4o-mini", "chat gpt-4o-mini attempt 1", "chat gpt-4o-mini attempt 2"}
    call, first, second = (
        spans["chat gpt-4o-mini"],
        spans["chat gpt-4o-mini attempt 1"],
        spans["chat gpt-4o-mini attempt 2"],
    )
    assert call.parent is not None and call.parent.span_id == job.get_span_context().span_id
    assert first.parent is not None and first.parent.span_id == call.context.span_id
    assert second.parent is not None and second.parent.span_id == call.context.span_id
    assert call.attributes is not None and first.attributes is not None and second.attributes is not None
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.provider.name"] == "openai"
    assert call.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert call.attributes["gen_ai.request.max_tokens"] == 50
    assert call.attributes["gen_ai.usage.input_tokens"] == answer.usage.input_tokens > 0
    assert call.attributes["gen_ai.usage.output_tokens"] == answer.usage.output_tokens > 0
    assert tuple(call.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert call.attributes["llmkit.cost_usd"] == pytest.approx(answer.cost_usd)
    assert call.attributes["llmkit.attempts"] == 2
    assert first.status.status_code == StatusCode.ERROR
    assert first.attributes["error.type"] == "ProviderError" and first.attributes["llmkit.decision"] == "retry"
    assert second.status.status_code != StatusCode.ERROR and second.attributes["gen_ai.usage.output_tokens"] > 0
    assert "tell me something" not in str([dict(s.attributes or {}) for s in spans.values()])  # no prompt on spans

    exporter.clear()
    await client.acomplete("[[fail_once:500]] tell me something")  # a cache hit: one span, nothing spent
    (hit,) = exporter.get_finished_spans()
    assert hit.attributes is not None and hit.attributes["llmkit.cache_hit"] is True
    assert hit.attributes["llmkit.cost_usd"] == 0.0 and hit.attributes["llmkit.saved_usd"] == pytest.approx(
        answer.cost_usd
    )


async def test_a_failed_call_has_an_error_span(
    fake_provider: FakeProvider, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="sk-otel")
    client = LLMClient(model, retry=RetryPolicy(max_attempts=1), hooks=OpenTelemetryHooks(provider))
    completions = await client.abatch(["[[fail:400]] bad"])
    assert not completions[0].ok
    spans = _by_name(exporter.get_finished_spans())
    call = spans["chat gpt-4o-mini"]
    assert call.status.status_code == StatusCode.ERROR
    assert call.attributes is not None and call.attributes["error.type"] == "BadRequestError"
