"""Fixtures for the shared-state tests: one real Redis server for the session, emptied before each test."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for every Ray test (it takes seconds to start), on the loopback address only."""
    import ray
    from redis_support import python_env

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = python_env()["PYTHONPATH"]  # actors import this checkout's llmkit
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 2**20,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    yield
    ray.shutdown()
