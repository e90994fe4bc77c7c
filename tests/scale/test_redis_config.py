"""``shared: {redis_url: ...}`` in a config pool: ``LLMClient.from_config`` and ``llmkit run`` share through Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit import ConfigError, LLMClient
from llmkit._redis import SharedCache
from llmkit.cli import main
from llmkit.testing import FakeProvider


def _config(tmp_path: Path, fake: FakeProvider, shared: str) -> Path:
    path = tmp_path / "llmkit.yaml"
    path.write_text(
        f"""\
pools:
  batch:
    models:
      - name: openai/gpt-4o-mini
        api_base: {fake.api_base("openai")}
        api_key: sk-config-test-123456
    limits: {{requests_per_minute: 6000}}
    cache: {{path: {tmp_path / "cache"}}}
    shared: {shared}
"""
    )
    return path


async def test_a_pool_with_shared_gets_redis_limits_and_the_cache_tier(
    fake_provider: FakeProvider, redis_url: str, tmp_path: Path
) -> None:
    client = LLMClient.from_config(_config(tmp_path, fake_provider, f"{{redis_url: '{redis_url}'}}"), pool="batch")
    assert client.shared is not None and client.shared.namespace == "batch"
    assert isinstance(client.cache, SharedCache) and client.cache.local is not None
    await client.acomplete("hi")
    import redis

    with redis.Redis.from_url(redis_url) as r:
        keys = {k.decode().split(":")[2] for k in r.keys("llmkit:batch:*")}
    assert {"limits", "cache"} <= keys
    client.close()
    client.shared.close()


def test_an_unreachable_redis_in_the_config_is_a_config_error(fake_provider: FakeProvider, tmp_path: Path) -> None:
    path = _config(tmp_path, fake_provider, "{redis_url: 'redis://127.0.0.1:1/0'}")
    with pytest.raises(ConfigError, match="does not answer"):
        LLMClient.from_config(path, pool="batch")


def test_an_unknown_shared_key_names_the_allowed_ones(fake_provider: FakeProvider, tmp_path: Path) -> None:
    path = _config(tmp_path, fake_provider, "{redis_uri: 'redis://127.0.0.1:1/0'}")
    with pytest.raises(ConfigError, match="did you mean 'redis_url'"):
        LLMClient.from_config(path, pool="batch")


def test_two_runs_with_their_own_disk_caches_share_answers_through_redis(
    fake_provider: FakeProvider, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, fake_provider, f"{{redis_url: '{redis_url}'}}")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": f"question {i}"}) + "\n" for i in range(5)))
    common = ["run", str(prompts), "--config", str(config), "--pool", "batch", "--no-progress"]
    assert main([*common, "-o", str(tmp_path / "one.jsonl"), "--cache-dir", str(tmp_path / "one")]) == 0
    assert main([*common, "-o", str(tmp_path / "two.jsonl"), "--cache-dir", str(tmp_path / "two")]) == 0
    assert fake_provider.count == 5
    second = [json.loads(line) for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert all(r["cache_hit"] for r in second)
    assert "shared limits, cooldowns and cache tier: RedisState(" in capsys.readouterr().err
