"""ResponseCache: JSON entries, ttl, namespaces, stats and age-based clearing."""

from __future__ import annotations

import time

from llmkit import Completion, ResponseCache, Usage
from llmkit.errors import BadRequestError

ANSWER = Completion(text="hi", finish_reason="stop", usage=Usage(input_tokens=2, output_tokens=1), model="openai/a")


def test_round_trip_marks_cache_hit(tmp_path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put("k1", ANSWER)
    hit = cache.get(["missing", "k1"])
    assert hit is not None and hit.cache_hit and hit.text == "hi" and hit.usage == ANSWER.usage
    assert hit.model == "openai/a" and hit.attempts == 0


def test_errors_are_never_stored(tmp_path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put("k", Completion(error=BadRequestError("x"), finish_reason="error"))
    assert len(cache) == 0


def test_namespaces_isolate(tmp_path) -> None:
    ResponseCache(tmp_path, namespace="a").put("k", ANSWER)
    assert ResponseCache(tmp_path, namespace="b").get(["k"]) is None
    assert ResponseCache(tmp_path, namespace="a").get(["k"]) is not None


def test_ttl_expires(tmp_path) -> None:
    cache = ResponseCache(tmp_path, ttl=0.05)
    cache.put("k", ANSWER)
    time.sleep(0.1)
    assert cache.get(["k"]) is None


def test_clear_older_than_keeps_recent_entries(tmp_path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put("old", ANSWER)
    time.sleep(0.2)
    cache.put("new", ANSWER)
    assert cache.clear(older_than_s=0.1) == 1
    assert "new" in cache and "old" not in cache
    assert cache.stats()["entries"] == 1
    assert cache.clear() == 1 and len(cache) == 0
