"""Routing: weights, cooldowns from Retry-After, pacing after 429s, removal of dead deployments."""

from __future__ import annotations

import logging
import random

import pytest

from llmkit import Model, NoModelAvailableError
from llmkit._router import Router
from llmkit.errors import AuthenticationError, ProviderError, RateLimitError


def test_weighted_choice_follows_weights(fake_sleep) -> None:
    router = Router([Model("a", weight=3), Model("b", weight=1)], rng=random.Random(7), clock=fake_sleep.clock)
    picks = [router.pick([0, 1])[0] for _ in range(4000)]
    share = picks.count(0) / len(picks)
    assert 0.72 < share < 0.78  # 3:1 -> 0.75; a wide band so it is not flaky


def test_retry_avoids_the_model_that_failed(fake_sleep) -> None:
    router = Router([Model("a"), Model("b")], rng=random.Random(1), clock=fake_sleep.clock)
    assert all(router.pick([0, 1], avoid=0)[0] == 1 for _ in range(50))


def test_prefer_model_wins_when_ready(fake_sleep) -> None:
    router = Router([Model("a", weight=100), Model("b", weight=1)], rng=random.Random(1), clock=fake_sleep.clock)
    assert all(router.pick([0, 1], prefer="b")[0] == 1 for _ in range(20))


def test_rate_limited_model_cools_down_alone(fake_sleep) -> None:
    router = Router([Model("a"), Model("b")], rng=random.Random(1), clock=fake_sleep.clock)
    router.on_failure(0, RateLimitError("429", retry_after=30))
    assert {router.pick([0, 1])[0] for _ in range(30)} == {1}
    fake_sleep.now += 31
    assert {router.pick([0, 1])[0] for _ in range(60)} == {0, 1}


def test_single_model_waits_out_retry_after_then_is_paced(fake_sleep) -> None:
    router = Router([Model("a")], clock=fake_sleep.clock)
    router.on_failure(0, RateLimitError("429", retry_after=0.2))
    index, wait = router.pick([0])
    assert (index, wait) == (0, pytest.approx(0.2))
    _, second = router.pick([0])
    assert second == pytest.approx(0.4)  # paced one start per Retry-After after the cooldown
    for _ in range(200):
        router.on_success(0)
    fake_sleep.now += 10
    assert router.pick([0])[1] == 0.0  # pacing fades out with successes


def test_429s_already_in_flight_do_not_compound_the_pace(fake_sleep) -> None:
    """100 requests sent together all get 429: the pace is set once, not grown 100 times to the ceiling."""
    router = Router([Model("a")], clock=fake_sleep.clock)
    sent = fake_sleep.now
    fake_sleep.now += 0.05
    charged = [router.on_failure(0, RateLimitError("429", retry_after=0.1), sent_at=sent) for _ in range(100)]
    assert charged == [True] + [False] * 99  # only the first counts against its prompt's max_attempts
    first = router.pick([0])[1]
    second = router.pick([0])[1]
    assert second - first == pytest.approx(0.1)  # one start per Retry-After, not per 1 s
    router.on_failure(0, RateLimitError("429", retry_after=0.1), sent_at=fake_sleep.now + first)
    third, fourth = router.pick([0])[1], router.pick([0])[1]
    assert fourth - third == pytest.approx(0.2)  # a 429 at the new pace doubles it


def test_auth_error_removes_model_with_one_warning(fake_sleep, caplog) -> None:
    router = Router([Model("a"), Model("b")], clock=fake_sleep.clock)
    with caplog.at_level(logging.WARNING, logger="llmkit"):
        router.on_failure(0, AuthenticationError("bad key"))
        router.on_failure(0, AuthenticationError("bad key"))
    assert len([r for r in caplog.records if "left the pool" in r.message]) == 1
    assert router.available() == [1]
    router.on_failure(1, AuthenticationError("bad key"))
    with pytest.raises(NoModelAvailableError, match="no model is left"):
        router.pick([0, 1])


def test_repeated_server_errors_cool_a_model_down(fake_sleep) -> None:
    router = Router([Model("a"), Model("b")], rng=random.Random(3), clock=fake_sleep.clock)
    for _ in range(3):
        router.on_failure(0, ProviderError("500", status=500))
    assert {router.pick([0, 1])[0] for _ in range(30)} == {1}


def test_the_only_model_left_is_not_cooled_down_for_errors(fake_sleep) -> None:
    router = Router([Model("a")], clock=fake_sleep.clock)
    for _ in range(5):
        router.on_failure(0, ProviderError("500", status=500))
    assert router.pick([0]) == (0, 0.0)


def test_a_pool_of_one_with_a_fallback_never_cools_its_only_model_down() -> None:
    """Fallbacks are not alternatives for routing: the pool's only model keeps the no-cooldown rule of a lone one."""
    router = Router([Model("openai/a"), Model("openai/big")], pool_size=1)
    for _ in range(5):
        router.on_failure(0, ProviderError("down", status=503))
        router.on_failure(1, ProviderError("down", status=503))
    assert router.pick([0]) == (0, 0.0) and router.pick([1]) == (1, 0.0)
