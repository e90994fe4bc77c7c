"""Cooldowns, removals and the cache shared through a real Redis server, end to end against the fake provider.

Two ``LLMClient``s with their own ``RedisState`` stand for two processes (separate connections, routers and caches).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import redis

from llmkit import LLMClient, Model, RedisState, ResponseCache, RetryPolicy
from llmkit._redis import deployment_id
from llmkit.testing import FakeProvider


def _model(fake: FakeProvider, key: str = "sk-team-a-0123456789") -> Model:
    return Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key=key)


async def test_a_429_seen_by_one_process_holds_back_the_other(fake_provider: FakeProvider, redis_url: str) -> None:
    with RedisState(redis_url) as state_a, RedisState(redis_url) as state_b:
        a = LLMClient(_model(fake_provider), shared=state_a)
        b = LLMClient(_model(fake_provider), shared=state_b)
        fake_provider.fail_next(1, status=429, retry_after=2)
        answer_a = asyncio.ensure_future(a.acomplete("first"))
        while fake_provider.count_status(429) == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # a publishes its cooldown as soon as it has the 429
        started = time.monotonic()
        answer_b = await b.acomplete("second")
        # b never sent during a's cooldown: its one request reached the fake about two seconds after the 429.
        assert answer_b.attempts == 1
        assert time.monotonic() - started >= 1.7
        sent_b = [r for r in fake_provider.requests if "second" in str(r.body)]
        assert len(sent_b) == 1
        assert sent_b[0].t - fake_provider.requests[0].t >= 1.9
        assert (await answer_a).ok


async def test_without_shared_state_the_other_process_sends_at_once(fake_provider: FakeProvider) -> None:
    """The control for the test above: the hold-back comes from the shared state alone."""
    a, b = LLMClient(_model(fake_provider)), LLMClient(_model(fake_provider))
    fake_provider.fail_next(1, status=429, retry_after=2)
    answer_a = asyncio.ensure_future(a.acomplete("first"))
    while fake_provider.count_status(429) == 0:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await b.acomplete("second")
    assert time.monotonic() - started < 1.0
    await answer_a


async def test_a_bad_key_found_by_one_process_takes_the_deployment_out_for_all(
    fake_provider: FakeProvider, redis_url: str
) -> None:
    bad, good = _model(fake_provider, "invalid-key"), _model(fake_provider)
    with RedisState(redis_url) as state_a, RedisState(redis_url) as state_b:
        a = LLMClient(bad, shared=state_a, retry=RetryPolicy(max_attempts=1))
        assert not (await a.abatch(["x"]))[0].ok
        b = LLMClient([bad, good], shared=state_b, seed=1)
        answers = await b.abatch([f"prompt {i}" for i in range(20)])
        assert all(c.ok for c in answers)
        bad_hash = hashlib.sha256(b"invalid-key").hexdigest()[:16]
        assert sum(r.api_key_hash == bad_hash for r in fake_provider.requests) == 1  # a's, and none of b's 20


async def test_redis_keys_name_the_pool_and_never_hold_a_key(fake_provider: FakeProvider, redis_url: str) -> None:
    def stored() -> tuple[list[str], bytes]:
        with redis.Redis.from_url(redis_url) as r:
            keys = r.keys("*")
            return [k.decode() for k in keys], b"".join(r.dump(k) or b"" for k in keys)

    with RedisState(redis_url, namespace="team-a") as state:
        client = LLMClient(_model(fake_provider), shared=state, cache=state.cache())
        fake_provider.fail_next(1, status=429, retry_after=1)
        answer = asyncio.ensure_future(client.acomplete("hello"))
        while fake_provider.count_status(429) == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        cooling_keys, cooling_values = stored()
        await answer
    keys, values = stored()
    assert any(":cooldown:" in k for k in cooling_keys) and any(":cache:" in k for k in keys)
    for k in [*cooling_keys, *keys]:
        assert k.startswith("llmkit:team-a:") and "sk-team-a" not in k
    assert b"sk-team-a" not in cooling_values + values


async def test_an_answer_from_one_process_is_a_cache_hit_for_another(
    fake_provider: FakeProvider, redis_url: str, tmp_path
) -> None:
    with RedisState(redis_url) as state_a, RedisState(redis_url) as state_b:
        a = LLMClient(_model(fake_provider), cache=state_a.cache(local=tmp_path / "a"))
        b = LLMClient(_model(fake_provider), cache=state_b.cache(local=tmp_path / "b"))
        first = await a.acomplete("the same prompt")
        second = await b.acomplete("the same prompt")
        assert fake_provider.count == 1
        assert second.cache_hit and second.text == first.text
        # The hit was copied into b's own disk cache: it answers even without Redis.
        b.close()
        local = ResponseCache(tmp_path / "b")
        assert local.get(list(b.plan("the same prompt").fingerprints.values())) is not None
        local.close()
        a.close()


async def test_the_local_tier_answers_first(fake_provider: FakeProvider, redis_url: str, tmp_path) -> None:
    with RedisState(redis_url) as state:
        client = LLMClient(_model(fake_provider), cache=state.cache(local=tmp_path / "c"))
        await client.acomplete("prompt")
        with redis.Redis.from_url(redis_url) as r:
            r.flushall()
        assert (await client.acomplete("prompt")).cache_hit
        assert fake_provider.count == 1
        client.close()


async def test_ttl_becomes_the_redis_expiry(fake_provider: FakeProvider, redis_url: str) -> None:
    with RedisState(redis_url) as state:
        client = LLMClient(_model(fake_provider), cache=state.cache(ttl=60))
        await client.acomplete("prompt")
        with redis.Redis.from_url(redis_url) as r:
            (key,) = r.keys("*:cache:*")
            assert 55_000 < r.pttl(key) <= 60_000


async def test_an_unreadable_redis_entry_is_a_miss(fake_provider: FakeProvider, redis_url: str) -> None:
    with RedisState(redis_url) as state:
        client = LLMClient(_model(fake_provider), cache=state.cache())
        await client.acomplete("prompt")
        with redis.Redis.from_url(redis_url) as r:
            (key,) = r.keys("*:cache:*")
            r.set(key, b"{not json")
        again = await client.acomplete("prompt")
        assert again.ok and not again.cache_hit
        assert fake_provider.count == 2


def test_a_deployment_is_named_by_a_hash_that_changes_with_its_key() -> None:
    one = Model("openai/gpt-4o-mini", api_key="sk-first-key-0123456789")
    rotated = Model("openai/gpt-4o-mini", api_key="sk-second-key-0123456789")
    elsewhere = Model("openai/gpt-4o-mini", api_key="sk-first-key-0123456789", api_base="http://127.0.0.1:9/v1")
    ids = {deployment_id(m) for m in (one, rotated, elsewhere)}
    assert len(ids) == 3  # a removal for a bad key does not outlive the key
    assert deployment_id(one) == deployment_id(Model("openai/gpt-4o-mini", api_key="sk-first-key-0123456789"))
    assert all("sk-" not in i and "0123456789" not in i for i in ids)


async def test_two_namespaces_on_one_redis_share_nothing(fake_provider: FakeProvider, redis_url: str) -> None:
    with RedisState(redis_url, namespace="team-a") as a, RedisState(redis_url, namespace="team-b") as b:
        await LLMClient(_model(fake_provider), cache=a.cache()).acomplete("same prompt")
        answer = await LLMClient(_model(fake_provider), cache=b.cache()).acomplete("same prompt")
        assert not answer.cache_hit and fake_provider.count == 2


async def test_embeddings_use_the_local_tier_of_a_shared_cache(fake_provider: FakeProvider, redis_url: str, tmp_path):
    """Vectors live in the local tier's vectors.db (not on Redis); with Redis alone, embeddings run uncached."""
    model = Model("openai/text-embedding-3-small", api_base=fake_provider.api_base("openai"), api_key="sk-team-a-0123")
    with RedisState(redis_url) as state:
        client = LLMClient(model, shared=state, cache=state.cache(local=tmp_path / "c"))
        first = await client.aembed(["a", "b"])
        again = await client.aembed(["a", "b"])
        assert first.ok and again.cache_hits == 2 and again.vectors == first.vectors and fake_provider.count == 1
        assert (tmp_path / "c" / "vectors.db").exists()
        bare = LLMClient(model, shared=state, cache=state.cache())
        assert (await bare.aembed(["a"])).ok and (await bare.aembed(["a"])).cache_hits == 0
        assert fake_provider.count == 3
