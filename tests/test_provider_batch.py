"""Provider batch APIs end to end: real LiteLLM against the FakeProvider's OpenAI and Anthropic batch endpoints."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from llmkit import (
    BadRequestError,
    BatchJob,
    ConfigError,
    LLMClient,
    Model,
    ProviderError,
    RequestOptions,
    RetryPolicy,
    SamplingParams,
    UnsupportedFeatureError,
)
from tests.test_e2e_providers import WEATHER

MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5"}
POLL_S = 0.05


def _client(fake, provider: str, cache=None) -> LLMClient:
    model = Model(MODELS[provider], api_base=fake.api_base(provider), api_key="k")
    return LLMClient(model, cache=cache, retry=RetryPolicy(max_attempts=1))


def _prompts(n: int) -> list[str]:
    return [f"question number {i}: what is {i} plus {i}?" for i in range(n)]


def _same_answer(batch, live) -> None:
    """What a user reads off a Completion, compared whole (cache-read tokens aside: the fake counts a repeat)."""
    assert batch.ok and live.ok
    fields = ("text", "thinking", "tool_calls", "finish_reason", "model")
    assert {f: getattr(batch, f) for f in fields} == {f: getattr(live, f) for f in fields}
    assert batch.usage.model_copy(update={"cache_read_tokens": 0}) == live.usage.model_copy(
        update={"cache_read_tokens": 0}
    )


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_provider_batch_gives_the_live_answers_at_half_the_price_then_all_cache_hits(
    fake_provider, tmp_path, provider
) -> None:
    fake_provider.batches.duration_s = 0.3
    client = _client(fake_provider, provider, tmp_path / "cache")
    long = "a much longer question that the token limit will certainly cut short"
    prompts = [*_prompts(24), long, "question number 3: what is 3 plus 3?"]  # one repeat: sent once
    sampling = SamplingParams(max_tokens=10)  # the long one is cut: finish_reason "length"
    job = client.submit_batch(prompts, sampling=sampling, max_requests_per_job=10)
    assert fake_provider.count == 0  # no live request: everything went to the batch endpoints
    assert fake_provider.batches.lines_received == 25
    assert [j.total for j in job.status().jobs] == [10, 10, 5]
    results = job.wait(poll_s=POLL_S)

    fake_provider.reset()
    live = _client(fake_provider, provider).batch(prompts, sampling=sampling)
    for got, expected in zip(results, live, strict=True):
        _same_answer(got, expected)
        assert got.cost_usd == pytest.approx(expected.cost_usd / 2, rel=1e-12)
        assert not got.cache_hit
    assert {r.finish_reason for r in results} == {"stop", "length"}

    fake_provider.reset()
    again = client.batch(prompts, sampling=sampling)
    assert all(r.cache_hit for r in again) and fake_provider.count == 0
    assert [r.text for r in again] == [r.text for r in results]


def test_cached_prompts_are_not_submitted(fake_provider, tmp_path) -> None:
    fake_provider.batches.duration_s = 0.2
    client = _client(fake_provider, "openai", tmp_path / "cache")
    client.batch(_prompts(4))
    job = client.submit_batch(_prompts(10))
    assert fake_provider.batches.lines_received == 6
    assert job.status().cached == 4
    results = job.wait(poll_s=POLL_S)
    assert [r.cache_hit for r in results] == [True] * 4 + [False] * 6
    assert all(r.ok for r in results)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_failed_lines_become_per_item_errors_like_live_ones(fake_provider, tmp_path, provider) -> None:
    fake_provider.batches.duration_s = 0.2
    client = _client(fake_provider, provider, tmp_path / "cache")
    prompts = ["fine", "broken [[fail:400]]", "overloaded [[fail:500]]", "also fine"]
    results = client.submit_batch(prompts).wait(poll_s=POLL_S)
    live = _client(fake_provider, provider).batch(prompts)
    assert [r.ok for r in results] == [True, False, False, True]
    for got, expected in zip(results[1:3], live[1:3], strict=True):
        assert type(got.error) is type(expected.error)
        assert got.error.status == expected.error.status
    assert isinstance(results[1].error, BadRequestError)
    assert isinstance(results[2].error, ProviderError) and results[2].error.retryable


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_expired_lines_are_errors_and_retry_failed_resubmits_only_them(fake_provider, tmp_path, provider) -> None:
    fake_provider.batches.duration_s = 0.2
    fake_provider.batches.expire_after = 3
    client = _client(fake_provider, provider, tmp_path / "cache")
    job = client.submit_batch(_prompts(8))
    results = job.wait(poll_s=POLL_S)
    status = job.status()
    assert (status.succeeded, status.expired, status.failed) == (3, 5, 0)
    assert [r.ok for r in results] == [True] * 3 + [False] * 5
    assert all("expired" in str(r.error) and r.error.retryable for r in results[3:])

    fake_provider.batches.expire_after = None
    job.retry_failed()
    assert fake_provider.batches.lines_received == 8 + 5
    results = job.wait(poll_s=POLL_S)
    assert all(r.ok for r in results)
    assert job.status().succeeded == 8
    counts = fake_provider.batches.received
    assert sorted(counts.values()) == [1, 1, 1, 2, 2, 2, 2, 2]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_cancel_cancels_every_provider_job_and_retry_live_sends_the_rest(fake_provider, tmp_path, provider) -> None:
    fake_provider.batches.duration_s = 600  # still validating (nothing answered) when the cancel arrives
    client = _client(fake_provider, provider, tmp_path / "cache")
    job = client.submit_batch(_prompts(9), max_requests_per_job=3)
    status = job.cancel()
    assert fake_provider.batches.requests["cancel"] == 3
    assert all(j.provider_status in ("cancelling", "cancelled") for j in status.jobs)
    results = job.wait(poll_s=POLL_S, timeout_s=20)
    assert all(not r.ok and "cancelled" in str(r.error) for r in results)
    assert job.status().cancelled == 9

    answers = job.retry_failed(live=True)
    assert fake_provider.count == 9 and all(a.ok for a in answers)
    assert all(r.ok for r in job.results())


def test_a_rerun_of_the_same_submit_resumes_the_job_instead_of_submitting_again(fake_provider, tmp_path) -> None:
    fake_provider.batches.duration_s = 0.3
    client = _client(fake_provider, "openai", tmp_path / "cache")
    first = client.submit_batch(_prompts(12), max_requests_per_job=5)
    second = _client(fake_provider, "openai", tmp_path / "cache").submit_batch(_prompts(12), max_requests_per_job=5)
    assert second.id == first.id
    assert fake_provider.batches.lines_received == 12
    assert fake_provider.batches.requests["create"] == 3
    assert all(r.ok for r in second.wait(poll_s=POLL_S))


def test_load_from_another_client_collects_the_same_results(fake_provider, tmp_path, capsys) -> None:
    fake_provider.batches.duration_s = 0.2
    job = _client(fake_provider, "anthropic", tmp_path / "cache").submit_batch(_prompts(5))
    other = _client(fake_provider, "anthropic", tmp_path / "cache")
    loaded = BatchJob.load(job.id, other)
    assert [r.text for r in loaded.wait(poll_s=POLL_S, show_progress=True)] == [f"Echo: {p}" for p in _prompts(5)]
    assert "5/5" in capsys.readouterr().err  # the progress bar, on stderr


def test_a_model_without_a_batch_api_fails_at_submit_naming_those_with_one(fake_provider, tmp_path) -> None:
    model = Model("gemini/gemini-2.5-flash", api_base=fake_provider.api_base("gemini"), api_key="k")
    client = LLMClient(model, cache=tmp_path / "cache")
    with pytest.raises(UnsupportedFeatureError, match="openai, anthropic"):
        client.submit_batch(["hi"])
    assert fake_provider.count == 0 and sum(fake_provider.batches.requests.values()) == 0


def test_submit_needs_a_cache(fake_provider) -> None:
    with pytest.raises(ConfigError, match="need a cache"):
        _client(fake_provider, "openai").submit_batch(["hi"])


def test_an_unknown_job_id_is_a_clear_error(fake_provider, tmp_path) -> None:
    client = _client(fake_provider, "openai", tmp_path / "cache")
    with pytest.raises(ConfigError, match="no provider batch 'pb-nope'"):
        BatchJob.load("pb-nope", client)


def test_a_corrupt_manifest_is_reported_and_nothing_is_resubmitted(fake_provider, tmp_path) -> None:
    fake_provider.batches.duration_s = 30
    client = _client(fake_provider, "openai", tmp_path / "cache")
    job = client.submit_batch(_prompts(3))
    manifest = tmp_path / "cache" / "provider_batches" / job.id / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(ConfigError, match="unreadable.*nothing was resubmitted"):
        client.submit_batch(_prompts(3))
    with pytest.raises(ConfigError, match="unreadable"):
        BatchJob.load(job.id, client)
    assert fake_provider.batches.lines_received == 3


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_ten_thousand_prompts_in_several_provider_jobs(fake_provider, tmp_path, provider) -> None:
    fake_provider.batches.duration_s = 1.0
    client = _client(fake_provider, provider, tmp_path / "cache")
    prompts = _prompts(10_000)
    job = client.submit_batch(prompts, max_requests_per_job=3_000)
    assert [j.total for j in job.status().jobs] == [3_000, 3_000, 3_000, 1_000]
    results = job.wait(poll_s=0.2)
    assert len(results) == 10_000 and all(r.ok for r in results)
    assert fake_provider.batches.lines_received == 10_000 and max(fake_provider.batches.received.values()) == 1
    sample = sorted(random.Random(0).sample(range(10_000), 200))
    fake_provider.reset()
    live = _client(fake_provider, provider).batch([prompts[i] for i in sample])
    for i, expected in zip(sample, live, strict=True):
        _same_answer(results[i], expected)
        assert results[i].cost_usd == pytest.approx(expected.cost_usd / 2, rel=1e-12)
    fake_provider.reset()
    assert all(r.cache_hit for r in client.batch(prompts)) and fake_provider.count == 0


def test_manifest_is_written_before_anything_is_submitted(fake_provider, tmp_path, monkeypatch) -> None:
    """The manifest, the inputs and every part's lines are on disk when the first provider job is created."""
    from llmkit import _batch_transport

    seen: list[dict] = []
    real_submit = _batch_transport.BatchAPI.submit

    async def spy(self, lines, tag):
        directory = tmp_path / "cache" / "provider_batches" / tag["llmkit_job"]
        manifest = json.loads((directory / "manifest.json").read_text())
        seen.append({"state": manifest["parts"][int(tag["part"])]["state"], "parts": len(manifest["parts"])})
        assert (directory / "part-1.jsonl").read_bytes().count(b"\n") == 2
        return await real_submit(self, lines, tag)

    monkeypatch.setattr(_batch_transport.BatchAPI, "submit", spy)
    _client(fake_provider, "openai", tmp_path / "cache").submit_batch(_prompts(6), max_requests_per_job=4)
    assert seen == [{"state": "submitting", "parts": 2}] * 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_polling_backs_off_waits_retry_after_and_survives_server_errors(fake_provider, tmp_path, provider) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 5:  # end the batches now: five polls are enough to see the backoff, however slow the box
            for batch in fake_provider.batches.batches.values():
                batch.duration_s = 0.0
        await asyncio.sleep(0.01)

    fake_provider.batches.duration_s = 60
    model = Model(MODELS[provider], api_base=fake_provider.api_base(provider), api_key="k")
    client = LLMClient(model, cache=tmp_path / "cache", sleep=sleep)
    job = client.submit_batch(_prompts(3))
    fake_provider.batches.fail_next("retrieve", status=500)  # one 500: sent once (no hidden SDK retry), then polled
    results = job.wait(poll_s=0.01)
    assert all(r.ok for r in results)
    assert waits[:4] == [0.01, 0.015, pytest.approx(0.0225), pytest.approx(0.03375)]
    assert fake_provider.batches.requests["retrieve"] == len(waits) + 1

    waits.clear()
    fake_provider.batches.duration_s = 0.1
    job = client.submit_batch(_prompts(4))
    fake_provider.batches.fail_next("retrieve", status=429, retry_after=7)
    job.wait(poll_s=0.01)
    assert waits[0] == 7  # the provider's Retry-After, not the 0.01 s backoff


@pytest.mark.parametrize(
    ("provider", "model", "sampling"),
    [
        ("openai", "openai/gpt-4o-mini", SamplingParams()),
        ("anthropic", "anthropic/claude-sonnet-4-5", SamplingParams(reasoning_effort="low", max_tokens=2048)),
    ],
)
async def test_tool_calls_and_thinking_are_normalized_as_live(fake_provider, tmp_path, provider, model, sampling):
    fake_provider.batches.duration_s = 0.2
    deployment = Model(model, api_base=fake_provider.api_base(provider), api_key="k")
    options = RequestOptions(tools=[WEATHER])
    prompts = ["What is the weather in 'Paris'? use get_weather", "Just say hi"]
    client = LLMClient(deployment, cache=tmp_path / "cache")
    job = await client.asubmit_batch(prompts, sampling=sampling, options=options)
    results = await job.await_results(poll_s=POLL_S)
    sent = [body for batch in fake_provider.batches.batches.values() for _, body in batch.lines]
    fake_provider.reset()
    live = await LLMClient(deployment).abatch(prompts, sampling=sampling, options=options)
    dump = lambda bodies: sorted(json.dumps(b, sort_keys=True) for b in bodies)  # noqa: E731
    assert dump(sent) == dump(r.body for r in fake_provider.requests)  # each line is the live request body
    for got, expected in zip(results, live, strict=True):
        _same_answer(got, expected)
        assert got.thinking_blocks == expected.thinking_blocks
    assert results[0].tool_calls and results[0].tool_calls[0].name == "get_weather"
    assert (results[0].thinking is not None) == (provider == "anthropic")


def test_a_model_without_a_known_price_has_no_cost(fake_provider, tmp_path) -> None:
    fake_provider.batches.duration_s = 0.2
    model = Model("openai/my-own-finetune", api_base=fake_provider.api_base("openai"), api_key="k")
    results = LLMClient(model, cache=tmp_path / "cache").submit_batch(["hi"]).wait(poll_s=POLL_S)
    assert results[0].ok and results[0].usage.output_tokens > 0 and results[0].cost_usd is None


def test_wait_gives_up_after_timeout_and_the_job_stays_resumable(fake_provider, tmp_path) -> None:
    fake_provider.batches.duration_s = 60
    client = _client(fake_provider, "openai", tmp_path / "cache")
    job = client.submit_batch(_prompts(2))
    with pytest.raises(TimeoutError, match="keeps running"):
        job.wait(poll_s=0.1, timeout_s=0.3)
    for batch in fake_provider.batches.batches.values():
        batch.duration_s = 0.0  # the provider finishes later
    assert all(r.ok for r in BatchJob.load(job.id, client).wait(poll_s=POLL_S))


class _Crash(BaseException):
    """Stands for kill -9 between the provider creating a job and the manifest recording its id."""


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_submit_cut_after_the_provider_created_the_job_is_found_not_resent(
    fake_provider, tmp_path, monkeypatch, provider
) -> None:
    from llmkit import _batch_transport

    fake_provider.batches.duration_s = 0.5
    real_submit = _batch_transport.BatchAPI.submit

    async def crash_after_second(self, lines, tag):
        job_id = await real_submit(self, lines, tag)
        if tag["part"] == "1":
            raise _Crash
        return job_id

    monkeypatch.setattr(_batch_transport.BatchAPI, "submit", crash_after_second)
    with pytest.raises(_Crash):
        _client(fake_provider, provider, tmp_path / "cache").submit_batch(_prompts(9), max_requests_per_job=3)
    monkeypatch.setattr(_batch_transport.BatchAPI, "submit", real_submit)
    job = _client(fake_provider, provider, tmp_path / "cache").submit_batch(_prompts(9), max_requests_per_job=3)
    jobs = job.status().jobs
    assert all(j.state in ("submitted", "collected") for j in jobs) and len({j.provider_id for j in jobs}) == 3
    assert fake_provider.batches.requests["create"] == 3 and fake_provider.batches.lines_received == 9
    assert [r.text for r in job.wait(poll_s=POLL_S)] == [f"Echo: {p}" for p in _prompts(9)]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_no_key_in_the_job_directory_errors_or_logs(fake_provider, tmp_path, caplog, provider) -> None:
    marker = "sk-MARKER-provider-batch-5ecret"
    fake_provider.batches.duration_s = 0.2
    model = Model(MODELS[provider], api_base=fake_provider.api_base(provider), api_key=marker)
    client = LLMClient(model, cache=tmp_path / "cache")
    caplog.set_level("DEBUG", logger="llmkit")
    job = client.submit_batch(["fine", "broken [[fail:400]]"])
    results = job.wait(poll_s=POLL_S)
    assert not results[1].ok
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert stored.count(b"fine") and marker.encode() not in stored
    seen = [repr(r.error) for r in results] + [str(job.status()), caplog.text, repr(job)]
    assert not any(marker in text for text in seen)
