"""Deadlines and the cap on provider-imposed waits, end to end against the FakeProvider."""

from __future__ import annotations

import time

import pytest

from llmkit import LLMClient, Model, RateLimitError, RequestOptions, RetryPolicy, TimeoutError
from llmkit.testing import FakeProvider


@pytest.fixture(autouse=True, scope="module")
def _litellm_imported() -> None:
    """Import litellm before the clock starts: its first import takes seconds on a loaded machine."""
    from llmkit._transport import _litellm

    _litellm()


def _client(fake: FakeProvider, **kwargs: object) -> LLMClient:
    model = Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key="sk-fake-deadline")
    return LLMClient(model, **kwargs)  # type: ignore[arg-type]


async def test_a_retry_after_beyond_the_deadline_fails_the_call_at_once(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    start = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        await client.acomplete("[[fail:429:3600]] hello", options=RequestOptions(deadline_s=10))
    assert time.monotonic() - start < 3  # well under the 10 s deadline, let alone the hour
    assert caught.value.retry_after == 3600
    assert fake_provider.count == 1  # the retry was not even sent: it would have had to wait an hour


async def test_a_batch_deadline_fails_parked_items_at_once_with_their_retry_after(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    start = time.monotonic()
    results = await client.abatch(["[[fail:429:3600]] first", "second", "third"], deadline_s=10)
    assert time.monotonic() - start < 3
    first = results[0].error
    assert isinstance(first, RateLimitError) and first.retry_after == 3600
    # The hour-long cooldown the first 429 set parks the deployment for the others too: they fail as well, at once,
    # with how long the cooldown still has to run.
    for completion in results[1:]:
        assert isinstance(completion.error, RateLimitError) or completion.ok
        if isinstance(completion.error, RateLimitError):
            assert 3500 < (completion.error.retry_after or 0) <= 3600


async def test_without_a_deadline_max_wait_s_caps_any_single_wait(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    assert client.retry.max_wait_s == 300  # the documented default
    start = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        await client.acomplete("[[fail:429:3600]] hello")
    assert time.monotonic() - start < 3 and caught.value.retry_after == 3600


async def test_a_short_retry_after_is_waited_out(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider, retry=RetryPolicy(max_wait_s=5))
    start = time.monotonic()
    answer = await client.acomplete("[[fail_once:429:1]] hello", options=RequestOptions(deadline_s=10))
    assert answer.ok and answer.attempts == 2
    assert 0.9 < time.monotonic() - start < 5
    assert client.status.waited_s["cooldown"] == pytest.approx(1.0, abs=0.1)


async def test_the_deadline_cuts_an_attempt_in_flight(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="deadline passed after 1 attempt"):
        await client.acomplete("[[sleep:5]] slow", options=RequestOptions(deadline_s=0.5))
    assert time.monotonic() - start < 1.5


async def test_a_backoff_past_the_deadline_raises_the_error_that_caused_it(fake_provider: FakeProvider) -> None:
    client = _client(fake_provider, retry=RetryPolicy(initial_backoff_s=30, jitter=False))
    start = time.monotonic()
    with pytest.raises(Exception) as caught:
        await client.acomplete("[[fail:503]] down", options=RequestOptions(deadline_s=5))
    assert getattr(caught.value, "status", None) == 503
    assert time.monotonic() - start < 2 and fake_provider.count == 1


def test_the_progress_bar_says_what_it_waits_for(fake_provider: FakeProvider, capsys: pytest.CaptureFixture) -> None:
    client = _client(fake_provider, retry=RetryPolicy(max_wait_s=10))
    results = client.batch(["[[fail_once:429:2.5]] patience"], show_progress=True)
    assert results[0].ok
    err = capsys.readouterr().err
    assert "waiting=cooldown" in err
