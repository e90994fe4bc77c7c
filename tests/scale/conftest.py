"""Fixtures for the shared-state tests: one real Redis server for the session, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_support import RedisServer


@pytest.fixture(scope="session")
def redis_server_session() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server_session: RedisServer) -> str:
    """The session's Redis, empty."""
    import redis

    with redis.Redis.from_url(redis_server_session.url) as client:
        client.flushall()
    return redis_server_session.url
