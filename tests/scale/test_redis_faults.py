"""Redis lost mid-batch and back again: the batch completes on per-process state, warns once, and reconnects."""

from __future__ import annotations

import logging

import pytest
import redis
from redis_support import RedisServer

from llmkit import Completion, LLMClient, Model, RateLimits, RedisState
from llmkit.testing import FakeProvider


@pytest.mark.slow
async def test_redis_killed_and_restarted_mid_batch(
    fake_provider: FakeProvider, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_provider.latency_s = 0.05
    model = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="sk-test-faults-1")
    prompts = [f"prompt {i}" for i in range(300)]
    server = RedisServer().start()
    try:
        state = RedisState(server.url)
        client = LLMClient(
            model,
            limits=RateLimits(requests_per_minute=60_000, max_concurrency=4),
            shared=state,
            cache=state.cache(local=tmp_path / "cache"),
        )
        done = 0

        def chaos(index: int, completion: Completion) -> None:
            nonlocal done
            done += 1
            if done == 50:
                server.kill()
            elif done == 150:
                server.start()

        with caplog.at_level(logging.WARNING, logger="llmkit"):
            answers = await client.abatch(prompts, on_result=chaos)
        assert all(c.ok for c in answers)
        assert fake_provider.count == 300  # each prompt sent once: nothing lost, nothing twice
        lost = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(lost) == 1
        assert any("answers again" in r.getMessage() for r in caplog.records)
        # Reconnected: the answers after the restart went to Redis again (the ones during the outage only to disk).
        with redis.Redis.from_url(server.url) as r:
            stored = len(r.keys("*:cache:*"))
        assert 0 < stored < 300
        # Every answer is a hit on rerun, from either tier.
        again = await client.abatch(prompts)
        assert all(c.cache_hit for c in again) and fake_provider.count == 300
        client.close()
        await state.aclose()
    finally:
        server.stop()
