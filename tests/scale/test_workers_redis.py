"""Worker processes (``llmkit._workers``) on a client whose limits live in Redis: the workers share them whole."""

from __future__ import annotations

import pytest

from llmkit import LLMClient, Model, RateLimits, RedisState
from llmkit.testing import FakeProvider


@pytest.mark.slow  # starts worker processes
async def test_with_redis_the_workers_share_one_limit_instead_of_splitting_it(
    fake_provider: FakeProvider, redis_url: str
) -> None:
    fake_provider.latency_s = 0.02
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="sk-workers-redis-0123")
    prompts = [f"shared limit {i}" for i in range(40)]
    with RedisState(redis_url, namespace="workers") as state:
        # Without Redis, max_concurrency=1 cannot be split over 2 workers (a ConfigError, tests/test_workers.py);
        # through Redis both workers take the whole limit, one lease at a time between them.
        client = LLMClient(model, limits=RateLimits(max_concurrency=1), shared=state)
        results = await client.abatch_in_workers(prompts, workers=2, max_in_flight=20)
    assert [r.text for r in results] == [f"Echo: {p}" for p in prompts]
    assert fake_provider.count == 40 and fake_provider.peak_in_flight == 1
