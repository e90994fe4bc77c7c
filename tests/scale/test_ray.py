"""Ray Data's ``map_batches`` with ``LLMKitPredictor``, and ``llmkit run --ray``, on a local cluster against the fake
provider: the results are a local batch's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from llmkit import LLMClient, Model
from llmkit.cli import main
from llmkit.ray import LLMKitPredictor, result_columns
from llmkit.testing import FakeProvider

pytestmark = pytest.mark.slow

N = 2000


def _config(tmp_path: Path, fake: FakeProvider, redis_url: str) -> Path:
    path = tmp_path / "llmkit.yaml"
    path.write_text(
        f"""\
pools:
  default:
    models:
      - name: openai/gpt-4o-mini
        api_base: {fake.api_base("openai")}
        api_key: sk-ray-test-0123456789
    cache: {{path: {tmp_path / "cache"}}}
    shared: {{redis_url: '{redis_url}'}}
"""
    )
    return path


def _local_texts(fake: FakeProvider, prompts: list[str]) -> list[str | None]:
    client = LLMClient(Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key="sk-local"))
    return client.batch(prompts, return_completions_only=True)


def test_map_batches_gives_a_local_batchs_results(
    ray_cluster: None, fake_provider: FakeProvider, redis_url: str, tmp_path: Path
) -> None:
    import ray

    prompts = [f"ray prompt {i}" for i in range(N)]
    rows = [{"id": i, "prompt": p} for i, p in enumerate(prompts)]
    rows[7] = {"id": 7, "prompt": ""}  # a bad row becomes an error row, not a failed dataset
    ds = ray.data.from_items(rows).map_batches(
        LLMKitPredictor,
        fn_constructor_kwargs={"config": str(_config(tmp_path, fake_provider, redis_url)), "pool": "default"},
        compute=ray.data.ActorPoolStrategy(size=2),
        batch_size=64,
    )
    out = sorted(ds.take_all(), key=lambda r: r["id"])
    assert list(out[0]) == list(result_columns())
    assert fake_provider.count == N - 1
    expected = _local_texts(fake_provider, prompts)
    assert [r["text"] for r in out if r["id"] != 7] == [t for i, t in enumerate(expected) if i != 7]
    assert out[7]["error"]["type"] == "ConfigError" and "non-empty" in out[7]["error"]["message"]
    with redis.Redis.from_url(redis_url) as r:  # the actors shared the pool's state: limits and the cache tier
        assert len(r.keys("llmkit:default:cache:*")) == N - 1


def test_llmkit_run_ray_writes_run_lines_and_resumes_from_the_cache(
    ray_cluster: None, fake_provider: FakeProvider, redis_url: str, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"cli prompt {i}"}) + "\n" for i in range(N)))
    config = _config(tmp_path, fake_provider, redis_url)
    argv = ["run", str(prompts), "--config", str(config), "--no-progress", "--ray"]
    assert main([*argv, "-o", str(tmp_path / "ray.jsonl")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert fake_provider.count == N
    assert (
        main(["run", str(prompts), "--config", str(config), "--no-progress", "-o", str(tmp_path / "local.jsonl")]) == 0
    )
    local = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert fake_provider.count == N  # the local run was all cache hits
    assert list(lines[0]) == list(local[0])
    assert {r["id"]: r["text"] for r in lines} == {r["id"]: r["text"] for r in local}
    # A rerun on Ray resumes from the cache: nothing is sent again.
    assert main([*argv, "-o", str(tmp_path / "again.jsonl")]) == 0
    assert fake_provider.count == N
