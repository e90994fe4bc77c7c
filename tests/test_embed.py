"""Embeddings end to end: llmkit -> real LiteLLM -> the FakeProvider, on the OpenAI and Gemini wire formats.

What crossed the wire is read from the fake's request log: how many requests, how many inputs each carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import sqlite3
import threading
from array import array
from pathlib import Path
from typing import Any

import litellm
import pytest

from llmkit import (
    ConfigError,
    EmbeddingOptions,
    LLMClient,
    Model,
    ProviderError,
    RateLimitError,
    RateLimits,
    ResponseCache,
    RetryPolicy,
    UnsupportedFeatureError,
    _embed,
    _transport,
    _vector_cache,
)
from llmkit._transport import EmbedReply
from llmkit._vector_cache import VectorStore
from llmkit.testing import FakeProvider

MODELS = {"openai": "openai/text-embedding-3-small", "gemini": "gemini/text-embedding-004"}
KEY = "sk-embed-marker-key-0c1d"
NO_RETRY = RetryPolicy(max_attempts=1)


def client(fake: FakeProvider, wire: str, **kwargs: Any) -> LLMClient:
    kwargs.setdefault("retry", NO_RETRY)
    return LLMClient(Model(MODELS[wire], api_base=fake.api_base(wire), api_key=KEY), **kwargs)


def sizes(fake: FakeProvider) -> list[int]:
    """Inputs per request, in arrival order."""
    return [len(r.body.get("input") or r.body.get("requests") or []) for r in fake.requests]


def sent_texts(fake: FakeProvider) -> list[str]:
    texts: list[str] = []
    for r in fake.requests:
        if "input" in r.body:
            texts += r.body["input"]
        else:
            texts += [q["content"]["parts"][0]["text"] for q in r.body["requests"]]
    return texts


async def litellm_vectors(fake: FakeProvider, wire: str, texts: list[str], **params: Any) -> list[list[float]]:
    """The same texts through bare litellm.aembedding: what llmkit must return, up to float32 rounding."""
    response = await litellm.aembedding(
        model=MODELS[wire], input=texts, api_base=fake.api_base(wire), api_key=KEY, **params
    )
    return [item["embedding"] for item in sorted(response.data, key=lambda d: d["index"])]


def f32(vector: list[float]) -> list[float]:
    return array("f", vector).tolist()


@pytest.mark.parametrize(("wire", "expected"), [("openai", [252]), ("gemini", [100, 100, 52])])
async def test_packs_to_the_provider_limit_in_input_order(fake_provider: FakeProvider, wire: str, expected) -> None:
    texts = ["hello world", "b", "hello world"] + [f"text {i}" for i in range(250)]
    result = await client(fake_provider, wire).aembed(texts, options=EmbeddingOptions(dimensions=8))
    assert sorted(sizes(fake_provider), reverse=True) == expected  # Gemini's cap is 100; the duplicate went once
    assert result.ok and result.requests == len(expected) and result.cache_hits == 0
    assert result.vectors[0] == result.vectors[2]
    fake_provider.reset()
    reference = await litellm_vectors(fake_provider, wire, texts[:5], dimensions=8)
    assert result.vectors[:5] == [f32(v) for v in reference]
    assert all(len(v or ()) == 8 for v in result.vectors)
    if wire == "openai":  # LiteLLM counts Gemini's tokens itself (it ignores the reply's usage)
        assert result.usage.input_tokens == sum(len(t.split()) for t in dict.fromkeys(texts))
    assert result.usage.input_tokens > 0
    assert result.model == MODELS[wire]


async def test_cost_is_litellms_price_for_the_tokens_sent(fake_provider: FakeProvider) -> None:
    result = await client(fake_provider, "openai").aembed(["one two three", "four"])
    price = litellm.model_cost["text-embedding-3-small"]["input_cost_per_token"]
    assert result.cost_usd == pytest.approx(4 * price)


@pytest.mark.parametrize("wire", ["openai", "gemini"])
async def test_a_mostly_cached_corpus_sends_only_the_rest_packed(fake_provider: FakeProvider, wire, tmp_path) -> None:
    emb = client(fake_provider, wire, cache=tmp_path / "cache")
    first = await emb.aembed([f"doc {i}" for i in range(90)])
    fake_provider.reset()
    corpus = [f"doc {i}" for i in range(100)]
    again = await emb.aembed(corpus)
    assert sent_texts(fake_provider) == [f"doc {i}" for i in range(90, 100)]
    assert sizes(fake_provider) == [10]
    assert again.cache_hits == 90 and again.requests == 1
    assert again.vectors[:90] == first.vectors  # a hit returns exactly what the miss returned
    assert 0 < again.usage.input_tokens < first.usage.input_tokens
    fake_provider.reset()
    rerun = await emb.aembed(corpus)
    assert fake_provider.count == 0 and rerun.cache_hits == 100 and rerun.vectors == again.vectors
    assert rerun.usage.input_tokens == 0 and rerun.cost_usd == 0


async def test_the_cache_key_is_text_model_and_options(fake_provider: FakeProvider, tmp_path) -> None:
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    await emb.aembed(["same text"])
    await emb.aembed(["same text"], options=EmbeddingOptions(dimensions=4))
    await emb.aembed(["same text"], options=EmbeddingOptions(provider_options={"user": "u1"}))
    await emb.aembed(["same text"], options=EmbeddingOptions(batch_size=5, timeout_s=30))  # neither is in the key
    other = LLMClient(
        Model("openai/text-embedding-3-large", api_base=fake_provider.api_base("openai"), api_key=KEY),
        cache=tmp_path / "cache",
    )
    await other.aembed(["same text"])
    assert fake_provider.count == 4


def stored_rows(cache_dir: Path) -> list[tuple[bytes, bytes]]:
    """(key, value) of every vector on disk, read with a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(cache_dir / "vectors.db")) as con:
        return con.execute("SELECT key, value FROM vectors").fetchall()


def write_rows(cache_dir: Path, statement: str, *args: Any) -> None:
    with contextlib.closing(sqlite3.connect(cache_dir / "vectors.db")) as con, con:
        con.execute(statement, args)


async def test_vectors_are_stored_as_float32_bytes(fake_provider: FakeProvider, tmp_path) -> None:
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    result = await emb.aembed(["a long document"], options=EmbeddingOptions(dimensions=1536))
    ((key, value),) = stored_rows(tmp_path / "cache")
    assert len(key) == 32 and value == array("f", result.vectors[0]).tobytes() and len(value) == 1536 * 4
    assert len(emb.cache) == 0  # type: ignore[arg-type]  # nothing in the completions' diskcache


async def test_a_large_vector_is_stored_and_still_a_hit(fake_provider: FakeProvider, tmp_path) -> None:
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    options = EmbeddingOptions(dimensions=9000)  # 36,000 bytes: more than a SQLite page
    first = await emb.aembed(["big", "vectors"], options=options)
    again = await emb.aembed(["big", "vectors"], options=options)
    assert again.cache_hits == 2 and fake_provider.count == 1 and again.vectors == first.vectors


async def test_a_bad_cache_entry_is_a_miss(fake_provider: FakeProvider, tmp_path) -> None:
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    first = await emb.aembed(["text"])
    write_rows(tmp_path / "cache", "UPDATE vectors SET value = ?", b"\x00\x01\x02")  # not whole float32s
    again = await emb.aembed(["text"])
    assert fake_provider.count == 2 and again.cache_hits == 0 and again.vectors == first.vectors
    assert (await emb.aembed(["text"])).cache_hits == 1  # the fresh answer replaced it


async def test_an_expired_vector_is_a_miss(fake_provider: FakeProvider, tmp_path) -> None:
    emb = client(fake_provider, "openai", cache=ResponseCache(tmp_path / "cache", ttl=3600))
    await emb.aembed(["text", "other"])
    assert (await emb.aembed(["text", "other"])).cache_hits == 2
    write_rows(tmp_path / "cache", "UPDATE vectors SET expires = expires - 7200 WHERE rowid = 1")
    again = await emb.aembed(["text", "other"])
    assert again.cache_hits == 1 and fake_provider.count == 2 and len(stored_rows(tmp_path / "cache")) == 2


async def test_a_corrupt_vector_database_is_a_miss_and_warns_once(fake_provider, tmp_path, caplog) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "vectors.db").write_bytes(b"not a database" * 500)
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="llmkit"):
        first = await emb.aembed([f"t{i}" for i in range(30)], options=EmbeddingOptions(batch_size=10))
        again = await emb.aembed([f"t{i}" for i in range(30)], options=EmbeddingOptions(batch_size=10))
    assert first.ok and again.ok and again.cache_hits == 0 and fake_provider.count == 6
    assert len([r for r in caplog.records if "could not store embeddings" in r.getMessage()]) == 1
    emb.cache.clear()  # type: ignore[union-attr]  # a database that cannot be read is deleted, so it works again
    await emb.aembed(["t1"])
    assert (await emb.aembed(["t1"])).cache_hits == 1


async def test_vectors_are_on_disk_before_they_are_reported(fake_provider: FakeProvider, tmp_path) -> None:
    """Nothing answered is lost: a request's vectors are committed before its texts are yielded."""
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    options = EmbeddingOptions(batch_size=10)
    seen = 0
    async for _ in emb.embed_as_completed((f"t{i}" for i in range(30)), options=options, max_in_flight=1):
        seen += 1
        assert len(stored_rows(tmp_path / "cache")) >= 10 * math.ceil(seen / 10)


async def test_a_request_slot_frees_while_its_vectors_are_committed(fake_provider, tmp_path, monkeypatch) -> None:
    """With one request in flight, the next is sent while the previous one's vectors are still being committed; the
    texts are reported only once committed."""
    release = threading.Event()
    put_many = VectorStore.put_many

    def slow_put_many(self: VectorStore, items: list[tuple[bytes, array[float]]]) -> None:
        release.wait(timeout=10)
        put_many(self, items)

    monkeypatch.setattr(VectorStore, "put_many", slow_put_many)
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    texts = [f"t{i}" for i in range(20)]
    stream = emb.embed_as_completed(texts, options=EmbeddingOptions(batch_size=10), max_in_flight=1)
    first = asyncio.ensure_future(stream.__anext__())
    for _ in range(500):  # up to 5 s for the second request to reach the fake
        if fake_provider.count == 2:
            break
        await asyncio.sleep(0.01)
    sent_during_commit, reported_before_commit = fake_provider.count, first.done()
    release.set()
    seen = {(await first)[0]} | {index async for index, _ in stream}
    assert sent_during_commit == 2 and not reported_before_commit
    assert seen == set(range(20)) and len(stored_rows(tmp_path / "cache")) == 20


async def test_requests_answered_during_a_commit_share_the_next_one(fake_provider, tmp_path, monkeypatch) -> None:
    """One commit at a time, and the requests answered while it runs are committed together in the next (fewer,
    larger transactions); none of their texts is reported before its commit ends."""
    release = threading.Event()
    commits: list[int] = []
    put_many = VectorStore.put_many

    def slow_put_many(self: VectorStore, items: list[tuple[bytes, array[float]]]) -> None:
        commits.append(len(items))
        release.wait(timeout=10)
        put_many(self, items)

    answered = 0
    send = _embed._send

    async def counted_send(*args: Any) -> Any:
        nonlocal answered
        result = await send(*args)
        answered += 1
        return result

    monkeypatch.setattr(VectorStore, "put_many", slow_put_many)
    monkeypatch.setattr(_embed, "_send", counted_send)
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    stream = emb.embed_as_completed([f"t{i}" for i in range(40)], options=EmbeddingOptions(batch_size=10))
    first = asyncio.ensure_future(stream.__anext__())
    for _ in range(1000):  # up to 10 s for the four replies, while the first commit is held
        if answered == 4:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the stream takes them in
    reported_before_commit = first.done()
    release.set()
    seen = {(await first)[0]} | {index async for index, _ in stream}
    assert not reported_before_commit and seen == set(range(40)) and len(stored_rows(tmp_path / "cache")) == 40
    assert commits == [10, 30]


def test_a_requests_vectors_are_one_insert_and_come_back_whole(tmp_path, monkeypatch) -> None:
    """``executemany`` gave up and re-took the GIL for every row (a 2,048-vector commit waited 100-200 ms on a busy
    event loop): vectors are one INSERT per vector size and per ``_PER_STATEMENT`` vectors (each statement's blob is
    a copy of its vectors), and each comes back exactly, keys included."""
    monkeypatch.setattr(_vector_cache, "_PER_STATEMENT", 128)
    store = VectorStore(tmp_path)
    statements: list[str] = []
    store._writer.get().set_trace_callback(statements.append)
    items = [(hashlib.sha256(b"%d" % i).digest(), array("f", [i / 7] * 16)) for i in range(300)]
    items += [(b"a short key", array("f", [1.5, -2.25])), (hashlib.sha256(b"big").digest(), array("f", [0.1] * 3000))]
    store.put_many(items)
    assert len([s for s in statements if "INSERT" in s]) == 5  # 128 + 128 + (44 + 1 + 1 of three sizes)
    assert store.get_many([key for key, _ in items]) == dict(items)
    store.close()


async def test_clear_and_wipe_remove_the_vectors_too(fake_provider: FakeProvider, tmp_path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    emb = client(fake_provider, "openai", cache=cache)
    await emb.aembed(["a", "b"])
    assert cache.stats()["vectors"] == 2 and cache.clear() == 2
    assert (await emb.aembed(["a", "b"])).cache_hits == 0
    assert cache.clear(older_than_s=3600) == 0 and cache.stats()["vectors"] == 2
    cache.close()
    ResponseCache.wipe(tmp_path / "cache")
    assert not (tmp_path / "cache" / "vectors.db").exists()


async def test_namespaces_keep_vectors_apart(fake_provider: FakeProvider, tmp_path) -> None:
    a = client(fake_provider, "openai", cache=ResponseCache(tmp_path / "cache", namespace="a"))
    b = client(fake_provider, "openai", cache=ResponseCache(tmp_path / "cache", namespace="b"))
    await a.aembed(["same"])
    assert (await b.aembed(["same"])).cache_hits == 0 and (await a.aembed(["same"])).cache_hits == 1


async def test_duplicates_in_one_call_are_sent_once_even_without_cache(fake_provider: FakeProvider) -> None:
    texts = ["x", "y"] * 300
    result = await client(fake_provider, "openai").aembed(texts, options=EmbeddingOptions(batch_size=1))
    assert sorted(sent_texts(fake_provider)) == ["x", "y"]
    assert result.vectors == [result.vectors[0], result.vectors[1]] * 300


# LiteLLM routes that speak the OpenAI wire (pointed at the fake's /v1) or Gemini's. The first ten go through the OpenAI
# SDK, which retried a 500 twice behind llmkit before it gave them its own client; the rest never retried.
OPENAI_SDK_ROUTES = [
    "openai/text-embedding-3-small",
    "together_ai/m",
    "nvidia_nim/m",
    "litellm_proxy/m",
    "mistral/mistral-embed",
    "fireworks_ai/nomic-ai/nomic-embed-text-v1.5",
    "nebius/m",
    "wandb/m",
    "xinference/m",
    "azure_ai/m",
]
OTHER_ROUTES = ["gemini/text-embedding-004", "hosted_vllm/m", "voyage/voyage-3", "jina_ai/m", "openrouter/m"]


@pytest.mark.parametrize("name", OPENAI_SDK_ROUTES + OTHER_ROUTES)
async def test_hidden_sdk_retries_are_off(fake_provider: FakeProvider, name: str) -> None:
    """One 500 with llmkit's retries off is exactly one request at the server, on every route the fake can answer."""
    fake_provider.fail_next(1, status=500)
    base = fake_provider.api_base("gemini" if name.startswith("gemini") else "openai")
    result = await LLMClient(Model(name, api_base=base, api_key=KEY), retry=NO_RETRY).aembed(["a", "b"])
    assert fake_provider.count == 1
    assert set(result.errors) == {0, 1} and isinstance(result.errors[0], ProviderError)
    assert result.errors[0].status == 500 and result.vectors == [None, None]
    assert (await LLMClient(Model(name, api_base=base, api_key=KEY)).aembed(["a", "b"])).ok


@pytest.mark.parametrize("wire", ["openai", "gemini"])
async def test_llmkit_retries_a_5xx(fake_provider: FakeProvider, wire: str, fake_sleep) -> None:
    fake_provider.fail_next(2, status=503)
    emb = client(fake_provider, wire, retry=RetryPolicy(max_attempts=3), sleep=fake_sleep)
    result = await emb.aembed(["a", "b"])
    assert result.ok and fake_provider.count == 3 and result.requests == 3
    assert len(fake_sleep.waits) == 2 and emb.status.retried == 2


@pytest.mark.parametrize("wire", ["openai", "gemini"])
async def test_a_failed_request_fails_only_its_own_texts(fake_provider: FakeProvider, wire: str) -> None:
    texts = [f"t{i}" for i in range(30)]
    texts[13] = "poison [[fail:500]]"
    emb = client(fake_provider, wire, retry=RetryPolicy(max_attempts=2, initial_backoff_s=0))
    result = await emb.aembed(texts, options=EmbeddingOptions(batch_size=10), max_in_flight=1)
    assert sorted(result.errors) == list(range(10, 20))  # the request holding the poison, retried once
    assert all(result.vectors[i] is not None for i in [*range(10), *range(20, 30)])
    assert sizes(fake_provider) == [10, 10, 10, 10]
    with pytest.raises(ProviderError):
        await emb.aembed(texts[10:20], raise_on_error=True)


@pytest.mark.parametrize("wire", ["openai", "gemini"])
async def test_a_refused_request_is_split_until_the_bad_text_is_alone(fake_provider: FakeProvider, wire) -> None:
    texts = [f"t{i}" for i in range(8)]
    texts[5] = "word " * 9000  # over both wires' per-input limit
    result = await client(fake_provider, wire).aembed(texts)
    assert list(result.errors) == [5] and sum(v is not None for v in result.vectors) == 7
    assert sizes(fake_provider) == [8, 4, 4, 2, 1, 1, 2]  # halves, each in turn


async def test_a_429_cools_the_embedding_model_down(fake_provider: FakeProvider, fake_sleep) -> None:
    fake_provider.fail_next(1, status=429, retry_after=2)
    emb = client(fake_provider, "openai", retry=RetryPolicy(max_attempts=3), sleep=fake_sleep, clock=fake_sleep.clock)
    result = await emb.aembed(["a", "b"])
    assert result.ok and fake_provider.count == 2
    assert emb.status.rate_limited == 1 and max(fake_sleep.waits) >= 2.0


async def test_a_429_on_gemini_is_a_rate_limit(fake_provider: FakeProvider) -> None:
    fake_provider.fail_next(1, status=429, retry_after=1.5)
    result = await client(fake_provider, "gemini").aembed(["a"])
    assert isinstance(result.errors[0], RateLimitError) and result.errors[0].retry_after == 1.5


async def test_tokens_per_minute_counts_input_tokens_and_caps_packing(fake_provider: FakeProvider, fake_sleep) -> None:
    texts = [f"{i:030d}" for i in range(21)]  # 30 chars each: 11 tokens estimated, so 5 fit in 60
    limits = RateLimits(tokens_per_minute=60)
    emb = client(fake_provider, "openai", limits=limits, sleep=fake_sleep, clock=fake_sleep.clock)
    result = await emb.aembed(texts)
    assert result.ok
    assert sorted(sizes(fake_provider)) == [1, 5, 5, 5, 5]
    # 55 estimated tokens per request against 60 a minute: the second request had to wait for the bucket
    assert fake_sleep.waits and emb.status.binding_limit == "tokens"


async def test_options_a_model_cannot_take_fail_before_sending(fake_provider: FakeProvider) -> None:
    ada = LLMClient(Model("openai/text-embedding-ada-002", api_base=fake_provider.api_base("openai"), api_key=KEY))
    with pytest.raises(UnsupportedFeatureError, match="dimensions"):
        await ada.aembed(["a"], options=EmbeddingOptions(dimensions=8))
    with pytest.raises(UnsupportedFeatureError, match="input_type"):
        await client(fake_provider, "openai").aembed(["a"], options=EmbeddingOptions(input_type="query"))
    assert fake_provider.count == 0
    await client(fake_provider, "gemini").aembed(["a"], options=EmbeddingOptions(input_type="RETRIEVAL_QUERY"))
    (sent,) = fake_provider.requests[0].body["requests"]
    assert sent.get("taskType", sent.get("task_type")) == "RETRIEVAL_QUERY"


async def test_bad_inputs_fail_alone_and_before_sending(fake_provider: FakeProvider) -> None:
    emb = client(fake_provider, "gemini")
    result = await emb.aembed(["fine", "", 42, "files/abc is a path"])  # type: ignore[list-item]
    assert sorted(result.errors) == [1, 2, 3] and all(isinstance(e, ConfigError) for e in result.errors.values())
    assert "files/" in str(result.errors[3]) and sent_texts(fake_provider) == ["fine"]
    with pytest.raises(ConfigError, match="list of texts"):
        await emb.aembed("one text")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not in this client's pool"):
        await emb.aembed(["a"], model="openai/text-embedding-3-small")


async def test_one_call_embeds_with_one_model_and_its_deployments_share_the_load(fake_provider) -> None:
    base = fake_provider.api_base("openai")
    pool = LLMClient(
        [
            Model("openai/text-embedding-3-small", api_base=base, api_key="key-one"),
            Model("openai/text-embedding-3-small", api_base=base, api_key="key-two"),
            Model("gemini/text-embedding-004", api_base=fake_provider.api_base("gemini"), api_key=KEY),
        ],
        seed=1,
    )
    await pool.aembed([f"t{i}" for i in range(40)], options=EmbeddingOptions(batch_size=1))
    assert {r.provider for r in fake_provider.requests} == {"openai"}
    assert len({r.api_key_hash for r in fake_provider.requests}) == 2
    fake_provider.reset()
    await pool.aembed(["x"], model="gemini/text-embedding-004")
    assert [r.provider for r in fake_provider.requests] == ["gemini"]


async def test_embed_as_completed_yields_every_index_once(fake_provider: FakeProvider, tmp_path) -> None:
    emb = client(fake_provider, "openai", cache=tmp_path / "cache")
    await emb.aembed(["t3"])
    fake_provider.reset()
    texts = (f"t{i}" if i != 7 else "" for i in range(50))
    seen: dict[int, Any] = {}
    async for index, vector in emb.embed_as_completed(texts, options=EmbeddingOptions(batch_size=8)):
        assert index not in seen
        seen[index] = vector
    assert sorted(seen) == list(range(50)) and isinstance(seen[7], ConfigError)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for i, v in seen.items() if i != 7)
    assert "t3" not in sent_texts(fake_provider)


async def test_max_in_flight_holds_with_small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup of 256 texts fills 256 one-text requests; only ``max_in_flight`` of them may be out at once."""
    in_flight, peak = 0, 0

    async def counting(model: Model, texts: list[str], params: dict[str, Any], timeout_s: float | None) -> EmbedReply:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):  # let every other started request reach this point
            await asyncio.sleep(0)
        in_flight -= 1
        return EmbedReply([[0.5] * 4 for _ in texts], len(texts), None)

    monkeypatch.setattr(_transport, "aembed", counting)
    monkeypatch.setattr(_transport, "check_embed", lambda model, params: None)
    emb = LLMClient(Model(MODELS["openai"], api_key=KEY))
    result = await emb.aembed([f"t{i}" for i in range(300)], options=EmbeddingOptions(batch_size=1), max_in_flight=4)
    assert result.ok and result.requests == 300 and peak == 4


def test_sync_twin_and_numpy(fake_provider: FakeProvider) -> None:
    emb = client(fake_provider, "openai")
    result = emb.embed(["a", "b"], options=EmbeddingOptions(dimensions=4))
    matrix = result.as_numpy()
    assert matrix.shape == (2, 4) and str(matrix.dtype) == "float32"
    assert matrix.tolist() == result.vectors


_PEAK = """
import asyncio, sys, tracemalloc
from llmkit import EmbeddingOptions, LLMClient, Model, _transport
from llmkit._transport import EmbedReply

async def instant(model, texts, params, timeout_s):
    await asyncio.sleep(0)
    return EmbedReply([[0.25] * 8 for _ in texts], len(texts), None)

_transport.aembed = instant
_transport.check_embed = lambda model, params: None
n = int(sys.argv[1])
emb = LLMClient(Model("openai/text-embedding-3-small", api_key="sk-fake-key-123456"))

async def consume():
    seen = 0
    stream = emb.embed_as_completed((f"text {i}" for i in range(n)), options=EmbeddingOptions(batch_size=50))
    async for _ in stream:
        seen += 1
    return seen

tracemalloc.start()
assert asyncio.run(consume()) == n
print(tracemalloc.get_traced_memory()[1])
"""


def _peak_bytes(n: int) -> int:
    """Peak traced memory of embedding a generator of ``n`` texts through ``embed_as_completed``, in a fresh process:
    tracemalloc counts every thread's allocations, and other tests leave servers running."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PEAK, str(n)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_embed_as_completed_keeps_memory_flat() -> None:
    """Six times the texts, about the same peak: the generator is pulled only as requests finish (both runs are
    past the 4,096 recent vectors kept for repeats when there is no cache)."""
    small, large = _peak_bytes(6_000), _peak_bytes(36_000)
    assert large < small * 1.3 + 200_000, (small, large)


async def test_per_token_vectors_are_a_clear_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """What llama-cpp-python's server sends for SmolLM2 with --embedding (no pooling): a list of vectors per input."""
    from litellm.types.utils import EmbeddingResponse

    async def per_token(**kwargs: Any) -> EmbeddingResponse:
        data = [{"object": "embedding", "index": i, "embedding": [[0.1, 0.2], [0.3, 0.4]]} for i in range(2)]
        return EmbeddingResponse(model="smollm2", data=data)

    monkeypatch.setattr(litellm, "aembedding", per_token)
    emb = LLMClient(Model("openai/smollm2", api_base="http://127.0.0.1:9/v1", api_key=KEY))
    result = await emb.aembed(["hello world", "the cat"])
    assert set(result.errors) == {0, 1} and "pool" in str(result.errors[0]) and result.requests == 1


async def test_the_openai_route_takes_its_base_and_key_from_the_environment(fake_provider, monkeypatch) -> None:
    """llmkit's own SDK client (retries off) finds the endpoint and key where LiteLLM would."""
    monkeypatch.setenv("OPENAI_API_BASE", fake_provider.api_base("openai"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake_provider.fail_next(1, status=500)
    result = await LLMClient(Model(MODELS["openai"]), retry=NO_RETRY).aembed(["a"])
    assert fake_provider.count == 1 and isinstance(result.errors[0], ProviderError)  # one request: no SDK retry
    assert (await LLMClient(Model(MODELS["openai"])).aembed(["a"])).ok
    monkeypatch.delenv("OPENAI_API_KEY")
    missing = await LLMClient(Model(MODELS["openai"])).aembed(["b"])
    assert "OPENAI_API_KEY" in str(missing.errors[0]) and fake_provider.count == 2


async def test_another_sdk_route_takes_its_key_from_its_own_variable(fake_provider, monkeypatch) -> None:
    base = fake_provider.api_base("openai")
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    fake_provider.fail_next(1, status=500)
    result = await LLMClient(Model("mistral/mistral-embed", api_base=base), retry=NO_RETRY).aembed(["a"])
    assert fake_provider.count == 1 and isinstance(result.errors[0], ProviderError)
    assert fake_provider.requests[0].api_key_hash == hashlib.sha256(KEY.encode()).hexdigest()[:16]
    monkeypatch.delenv("MISTRAL_API_KEY")
    missing = await LLMClient(Model("mistral/mistral-embed", api_base=base)).aembed(["b"])
    assert "MISTRAL_API_KEY" in str(missing.errors[0]) and fake_provider.count == 1
