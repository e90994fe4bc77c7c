"""Replay the provider cassettes in ``cassettes/`` with vcrpy, never touching the network.

The cassettes are written by hand in each provider's documented response shape (the reference is cited at the top
of each file), because CI has no keys and no internet. vcrpy runs with record mode "none", so a request the cassette
does not hold fails loudly instead of going out. Requests match on method, scheme, host and path only: bodies vary
with LiteLLM versions, and the Gemini key may travel in the query (``key=``) or in a header.

Re-recording (a maintainer with real keys only; it overwrites the hand-written bodies AND their citation comments,
so restore the comment header and check the diff for secrets before committing)::

    LLMKIT_RECORD=1 OPENAI_API_KEY=sk-... ANTHROPIC_API_KEY=sk-ant-... GEMINI_API_KEY=... \\
        /work/venv/bin/pytest tests/test_cassettes.py -q -p no:cacheprovider

With ``LLMKIT_RECORD=1`` the record mode is "all" and ``key_for()`` returns the real key from the environment;
otherwise it returns a dummy key. Cassettes in ``REPLAY_ONLY`` (faults no provider sends on request) are never
re-recorded. Either way only ``content-type`` and ``retry-after`` headers are written, and the
``key`` query parameter is dropped, so no secret can land in a cassette.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import vcr
from vcr.cassette import Cassette

__all__ = ["CASSETTE_DIR", "DUMMY_KEY", "RECORDING", "REPLAY_ONLY", "key_for", "replay"]

CASSETTE_DIR = Path(__file__).resolve().parent.parent / "cassettes"
DUMMY_KEY = "sk-test-not-a-real-key"
RECORDING = os.environ.get("LLMKIT_RECORD") == "1"
# Bodies no real provider sends on request (a truncated JSON reply): never re-recorded, always replayed.
REPLAY_ONLY = frozenset({"invalid_json.yaml"})

# Headers that may hold a secret; filtered on top of the allow-lists below, so a vcrpy default can never let one by.
_SECRET_HEADERS = ["authorization", "x-api-key", "x-goog-api-key", "api-key", "openai-organization", "cookie"]
_KEEP_REQUEST_HEADERS = {"content-type"}
_KEEP_RESPONSE_HEADERS = {"content-type", "retry-after"}


def key_for(env_var: str, cassette: str = "") -> str:
    """The API key a cassette test passes: the real one from ``env_var`` when recording ``cassette``, else a dummy."""
    if not RECORDING or cassette in REPLAY_ONLY:
        return DUMMY_KEY
    try:
        return os.environ[env_var]
    except KeyError:
        raise RuntimeError(f"LLMKIT_RECORD=1 needs a real key in {env_var}; set it or unset LLMKIT_RECORD") from None


def _scrub_request(request: Any) -> Any:
    for name in list(request.headers):
        if name.lower() not in _KEEP_REQUEST_HEADERS:
            del request.headers[name]
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    # Drops set-cookie, request ids, organisation and rate-limit headers: all noise or identifying.
    response["headers"] = {
        name: value for name, value in response.get("headers", {}).items() if name.lower() in _KEEP_RESPONSE_HEADERS
    }
    return response


_vcr = vcr.VCR(
    cassette_library_dir=str(CASSETTE_DIR),
    record_mode="all" if RECORDING else "none",
    match_on=["method", "scheme", "host", "path"],
    filter_headers=_SECRET_HEADERS,
    filter_query_parameters=["key"],
    before_record_request=_scrub_request,
    before_record_response=_scrub_response,
    decode_compressed_response=True,
)


@contextmanager
def replay(name: str) -> Iterator[Cassette]:
    """Serve HTTP from ``cassettes/<name>``; a request it does not hold raises instead of reaching the network."""
    path = CASSETTE_DIR / name
    recording = RECORDING and name not in REPLAY_ONLY
    if not recording and not path.is_file():
        raise FileNotFoundError(f"no cassette {path}; write it by hand or re-record with LLMKIT_RECORD=1")
    with _vcr.use_cassette(name, record_mode="all" if recording else "none") as cassette:
        yield cassette
