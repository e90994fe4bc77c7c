"""pytest plugin: a `fake_provider` fixture backed by one FakeProvider per test session.

Registered as a `pytest11` entry point, so it loads into every pytest run of a project that installs llmkit:
it imports only pytest here, and aiohttp and the server on the first test that asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._server import FakeProvider

__all__ = ["fake_provider", "fake_provider_session"]


@pytest.fixture(scope="session")
def fake_provider_session() -> Iterator[FakeProvider]:
    """The session's server; prefer `fake_provider`, which also resets it for each test."""
    from ._server import FakeProvider

    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake_provider(fake_provider_session: FakeProvider) -> Iterator[FakeProvider]:
    """A running FakeProvider with no recorded requests, faults, rate limit, cache memory or latency."""
    fake_provider_session.reset()
    fake_provider_session.latency_s = 0.0
    yield fake_provider_session
    # Drop leftovers (a queued fault, a rate limit) now, so a failing test cannot leak them into the next.
    fake_provider_session.reset()
