"""Gemini (Google AI Studio, ``gemini/``) on the fast path: LiteLLM's own request and response code for the route,
called in the order ``VertexLLM.async_completion`` (litellm/llms/vertex_ai/gemini/vertex_and_google_ai_studio_gemini.py,
LiteLLM 1.109.3) calls it, with the bytes sent on the fast path's aiohttp session.

That handler is more than transform, POST, transform in two places, and this module follows both exactly or not at all:
- Context caching: ``async_transform_request_body`` creates or looks up a cached content over its own HTTP client, and
  ``post_with_fresh_cache_async`` rebuilds and re-sends a request whose cache the server rejected; both happen only
  for a request with a ``cached_content`` parameter or a message marked ``cache_control`` (``is_cached_message``).
  Such requests go through ``acompletion`` (``needs_acompletion``).
- Continuation hops: when a reply ends with ``finishReason: CONTINUATION`` and a ``continuationToken`` while the
  request set ``max_output_tokens`` (one candidate), the handler posts again with the token until the cap
  (``collect_hops_async``) and merges the hops (``_transform_long_decode_hops``). This module hands LiteLLM's
  ``collect_hops_async`` a ``post`` that sends on the same session and fails the way LiteLLM's does, so the hops and
  the merged answer are LiteLLM's own (tests/test_fastpath.py proves it against a server that answers in hops).
Vertex (``vertex_ai/``) needs Google auth and stays on ``acompletion``. The key goes in the ``x-goog-api-key`` header
(``_get_token_and_url``), never in the URL. Imports litellm, httpx and aiohttp lazily.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .errors import redact

if TYPE_CHECKING:
    import aiohttp
    import httpx

__all__ = ["Log", "needs_acompletion", "post_on", "request", "response"]

# (status, lowercased headers, body) of one POST.
Reply = tuple[int, dict[str, str], bytes]


def needs_acompletion(messages: list[Any], optional_params: dict[str, Any]) -> bool:
    """Whether LiteLLM would use Gemini context caching for this request (extra requests before and after the POST,
    over LiteLLM's own client): the fast path then leaves it to ``acompletion``."""
    cached = _is_cached_message()
    return "cached_content" in optional_params or any(cached(message) for message in messages)


async def request(
    model: str,
    messages: list[Any],
    optional_params: dict[str, Any],
    litellm_params: dict[str, Any],
    api_key: str,
    api_base: str | None,
    timeout: float | None,
    logging_obj: Any,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL, headers and body ``VertexLLM.async_completion`` sends for this request (``optional_params`` and
    ``messages`` are consumed, as the handler consumes its copies)."""
    from litellm.llms.vertex_ai.gemini.long_decode import url_for
    from litellm.llms.vertex_ai.gemini.transformation import async_transform_request_body

    handler, config = _handler(), _config()
    optional_params.pop("stream", None)  # VertexLLM.completion pops it before routing
    auth_header, vertex_project = await handler._ensure_access_token_async(
        credentials=None, project_id=None, custom_llm_provider="gemini"
    )
    auth_header, url = handler._get_token_and_url(
        model=model,
        gemini_api_key=api_key,
        auth_header=auth_header,
        vertex_project=vertex_project,
        vertex_location=None,
        vertex_credentials=None,
        stream=None,
        custom_llm_provider="gemini",
        api_base=api_base,
        use_psc_endpoint_format=optional_params.get("use_psc_endpoint_format", False),
    )
    headers = config.validate_environment(
        api_key=auth_header,
        headers={},
        model=model,
        messages=messages,
        optional_params=optional_params,
        litellm_params=litellm_params,
    )
    body = await async_transform_request_body(
        gemini_api_key=api_key,
        messages=copy.deepcopy(messages),  # the transform rewrites parts in place; llmkit's history stays as it was
        api_base=api_base,
        model=model,
        client=None,
        timeout=timeout,
        extra_headers={},
        optional_params=optional_params,
        logging_obj=logging_obj,
        custom_llm_provider="gemini",
        litellm_params=litellm_params,
        vertex_project=vertex_project,
        vertex_location=None,
        vertex_auth_header=auth_header,
    )
    return url_for(url, body), {k: str(v) for k, v in headers.items()}, dict(body)


async def response(
    model: str,
    url: str,
    sent: Any,
    first: Reply,
    post: Callable[[str, dict[str, Any]], Awaitable[Reply]],
    model_response: Any,
    logging_obj: Any,
    messages: list[Any],
    secrets: tuple[str, ...],
) -> Any:
    """LiteLLM's ``ModelResponse`` for the first reply, after any continuation hops, as the handler builds it; a
    failed first reply raises the ``VertexAIError`` the handler raises (headers included, for ``Retry-After``)."""
    from litellm.llms.vertex_ai.gemini.long_decode import collect_hops_async, parse_body, url_for
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import _transform_long_decode_hops

    first_response = _checked(*first, secrets=())  # mapped and redacted by llmkit, like the slow path's

    async def hop(body: Any) -> httpx.Response:
        import aiohttp
        import httpx

        try:
            reply = await post(url_for(url, body), dict(body))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # LiteLLM's httpx client raises httpx errors, which collect_hops_async takes as "the hop failed"
            # and answers with the hops so far: the same outcome for aiohttp's.
            raise httpx.TransportError(type(exc).__name__) from None
        # A failed hop's error is only logged by LiteLLM ("returning the answer so far"): no key in that log.
        return _checked(*reply, secrets=secrets)

    hops = await collect_hops_async(parse_body(first_response), sent, hop)
    return _transform_long_decode_hops(
        model=model,
        hops=hops,
        first_response=first_response,
        model_response=model_response,
        logging_obj=logging_obj,
        request_body=sent,
        messages=messages,
    )


def _checked(status: int, headers: dict[str, str], body: bytes, secrets: tuple[str, ...]) -> httpx.Response:
    """The reply as the httpx response the handler's ``post`` returns, or the ``VertexAIError`` it raises for a
    4xx/5xx (``raise_for_status``), with the reply's text and headers."""
    import httpx
    from litellm.llms.vertex_ai.common_utils import VertexAIError

    raw = httpx.Response(status, headers=headers, content=body)  # no httpx.Request: its URL parsing costs ~8% here
    if raw.is_error:
        raise VertexAIError(status_code=status, message=redact(raw.text, secrets), headers=raw.headers)
    return raw


def post_on(
    session: aiohttp.ClientSession, headers: dict[str, str], timeout: float | None
) -> Callable[[str, dict[str, Any]], Awaitable[Reply]]:
    """A continuation hop's POST on the fast path's session, with the first request's headers and read timeout."""
    import json

    import aiohttp

    limit = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)

    async def post(url: str, body: dict[str, Any]) -> Reply:
        async with session.post(url, data=json.dumps(body).encode(), headers=headers, timeout=limit) as reply:
            content = await reply.read()
            return reply.status, {name.lower(): value for name, value in reply.headers.items()}, content

    return post


class Log:
    """The logging object the Gemini transforms read: ``litellm_params`` (``thought_signature_in_tool_call_id``) and
    ``optional_params`` (only its legacy ``functions``, which the fast path never sends); every hook does nothing."""

    def __init__(self, litellm_params: dict[str, Any]) -> None:
        self.litellm_params = litellm_params
        self.optional_params: dict[str, Any] = {}
        self.model_call_details: dict[str, Any] = {}

    def pre_call(self, *args: Any, **kwargs: Any) -> None:
        pass

    def post_call(self, *args: Any, **kwargs: Any) -> None:
        pass


@functools.cache
def _is_cached_message() -> Callable[[Any], bool]:
    """LiteLLM's test for a ``cache_control`` marker, looked up once: ``litellm.utils`` resolves names through a
    module ``__getattr__`` that costs ~0.1 ms per import statement."""
    from litellm.utils import is_cached_message

    return is_cached_message  # type: ignore[no-any-return]


@functools.cache
def _handler() -> Any:
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import VertexLLM

    return VertexLLM()


@functools.cache
def _config() -> Any:
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import VertexGeminiConfig

    return VertexGeminiConfig()
