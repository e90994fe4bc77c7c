"""Streams on the fast path: LiteLLM's own chunk parsers and stream wrapper on the fast path's aiohttp session.

``acompletion(stream=True)`` builds a stream in two layers: a provider layer that turns the HTTP body into chunks
(OpenAI: the OpenAI SDK's ``AsyncStream``, i.e. its SSE decoder and ``ChatCompletionChunk`` objects; Anthropic:
LiteLLM's ``ModelResponseIterator`` over ``aiter_sse_lines``), and LiteLLM's ``CustomStreamWrapper`` on top (the
fix-ups: finish reasons, the usage chunk, thinking blocks, tool-call ids, mid-stream errors through
``exception_type``). This module sends the request the fast path prepared (``_fastpath._prepare``, plus the stream
fields those routes add), then builds the very same two layers over the aiohttp reply: it only decodes bytes into
text or SSE events, as httpx and the SDK do, and translates nothing itself. llmkit's own stream handling (timers,
``stream_chunk_builder``, error mapping, closing) is ``LiteLLMTransport.streamed``, shared with the slow path.

What the stream parity test (tests/test_fastpath_stream.py) has not proved stays on ``acompletion``: providers
without a stream wrapper here (``_WRAPPERS``: OpenAI and Anthropic today), and everything the non-stream fast path
refuses (``_fastpath._prepare``: other providers, ``provider_options``, Responses-API models, keyless deployments,
``Model(transport="litellm")``).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from . import _fastpath
from ._result import Completion, StreamDelta
from ._transport import Request

if TYPE_CHECKING:
    import aiohttp

    from ._fastpath import FastPathTransport, _Prepared

__all__ = ["astream"]

# What llmkit asks every stream for (LiteLLMTransport.astream passes the same to acompletion).
_STREAM_OPTIONS = {"include_usage": True}


async def astream(transport: FastPathTransport, request: Request) -> AsyncIterator[StreamDelta | Completion]:
    """``request``'s deltas and final ``Completion``: through the fast path when it can prove the stream, else
    through ``acompletion`` (``LiteLLMTransport.astream``)."""
    fallback = transport._fallback
    try:
        prepared: _Prepared | None = await _fastpath._prepare(request, fallback._kwargs(request))
    except _fastpath._Unsupported:
        prepared = None
    if prepared is not None and prepared.route.provider not in _WRAPPERS:
        prepared = None  # a provider whose streams have no parity matrix yet (the fast path may serve its calls)
    items: AsyncGenerator[StreamDelta | Completion, None]
    if prepared is None:
        items = cast("AsyncGenerator[StreamDelta | Completion, None]", fallback.astream(request))
    else:
        transport.fast_calls += 1
        ready = _streaming(prepared)
        items = fallback.streamed(request, lambda: _open(transport, ready))
    async with contextlib.aclosing(items):
        async for item in items:
            yield item


def _streaming(prepared: _Prepared) -> _Prepared:
    """The prepared request with the fields the streaming routes add: OpenAI's ``async_streaming`` sets ``stream`` and
    ``stream_options`` (llmkit passes include_usage), Anthropic's ``acompletion_stream_function`` sets ``stream``.

    OpenAI's streaming route translates with the config's ``transform_request`` where the non-stream route awaits
    ``async_transform_request``; in LiteLLM 1.109.3 the two differ only in fetching a PDF URL without blocking the
    loop (``_transform_content_item``), so the body is the one the fast path already built."""
    data = json.loads(prepared.body)
    data["stream"] = True
    if prepared.route.provider == "openai":
        data["stream_options"] = dict(_STREAM_OPTIONS)
    prepared.body = json.dumps(data).encode()
    return prepared


async def _open(transport: FastPathTransport, prepared: _Prepared) -> Any:
    """POST the request and, once the reply's headers are in, LiteLLM's ``CustomStreamWrapper`` over its body; a
    failed reply or connection raises what ``acompletion`` raises for it (LiteLLM's exception). Cancelled (the
    first-chunk deadline), it closes the connection it opened."""
    import aiohttp

    common = prepared.common
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=common.timeout, sock_read=common.timeout)
    reply: aiohttp.ClientResponse | None = None
    error: BaseException | None = None
    try:
        reply = await transport._session().post(
            prepared.url, data=prepared.body, headers=prepared.headers, timeout=timeout
        )
        headers = {name.lower(): value for name, value in reply.headers.items()}
        if reply.status >= 400:
            body = await reply.read()
            reply.release()
            _fastpath._REPLIES[prepared.route.provider](prepared, reply.status, headers, body)
        return _WRAPPERS[prepared.route.provider](prepared, reply, headers)
    except Exception as exc:
        error = _fastpath._litellm_error(exc, prepared)
    except BaseException:
        if reply is not None:
            reply.close()
        raise
    if reply is not None:
        reply.close()
    raise error


def _wrap_openai(prepared: _Prepared, reply: aiohttp.ClientResponse, headers: dict[str, str]) -> Any:
    """``OpenAIChatCompletion.async_streaming``'s wrapper: the SDK's chunks, ``custom_llm_provider="openai"``."""
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    return CustomStreamWrapper(
        completion_stream=_openai_chunks(prepared, reply),
        model=prepared.route.model,
        custom_llm_provider="openai",
        logging_obj=cast(Any, _StreamLog(prepared)),
        stream_options=dict(_STREAM_OPTIONS),
        _response_headers=headers,
    )


def _wrap_anthropic(prepared: _Prepared, reply: aiohttp.ClientResponse, headers: dict[str, str]) -> Any:
    """``AnthropicChatCompletion.acompletion_stream_function``'s wrapper: LiteLLM's ``ModelResponseIterator`` over
    ``aiter_sse_lines`` of the decoded body (``make_call``), its headers through ``process_anthropic_headers``."""
    import httpx
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper
    from litellm.llms.anthropic.chat.handler import ModelResponseIterator
    from litellm.llms.anthropic.chat.transformation import ANTHROPIC_TOOL_NAME_REVERSE_MAP_KEY, JsonModeRequest
    from litellm.llms.anthropic.common_utils import process_anthropic_headers
    from litellm.llms.custom_httpx.sse_lines import aiter_sse_lines

    common = prepared.common
    iterator = ModelResponseIterator(
        streaming_response=aiter_sse_lines(_anthropic_text(prepared, reply)),
        sync_stream=False,
        json_mode=prepared.json_mode,
        speed=common.optional_params.get("speed"),
        tool_name_reverse_map=common.litellm_params.get(ANTHROPIC_TOOL_NAME_REVERSE_MAP_KEY),
        response_format_schema=(
            JsonModeRequest.model_validate(common.optional_params).tool_schema()
            if prepared.json_mode and common.optional_params
            else None
        ),
        response=cast(Any, _Closer(reply)),
    )
    return CustomStreamWrapper(
        completion_stream=iterator,
        model=prepared.route.model,
        custom_llm_provider="anthropic",
        logging_obj=cast(Any, _StreamLog(prepared)),
        _response_headers=process_anthropic_headers(httpx.Headers(headers)),
    )


async def _openai_chunks(prepared: _Prepared, reply: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    """What the OpenAI SDK's ``AsyncStream.__stream__`` yields: its SSE decoder over the body, ``[DONE]`` ending the
    stream, an ``error`` object raised as its ``APIError``, every other event a ``ChatCompletionChunk`` built the way
    its client builds one (``construct_type``, no validation); transport failures as its connection errors."""
    import aiohttp
    import httpx2
    import openai
    from openai._models import construct_type
    from openai._streaming import SSEDecoder
    from openai.types.chat import ChatCompletionChunk

    request = httpx2.Request("POST", prepared.url)
    error: BaseException | None = None
    try:
        async for sse in SSEDecoder().aiter_bytes(reply.content.iter_any()):
            if sse.data.startswith("[DONE]"):
                break
            data = sse.json()
            if isinstance(data, dict) and data.get("error"):
                problem = data["error"]
                message = problem.get("message") if isinstance(problem, dict) else None
                if not message or not isinstance(message, str):
                    message = "An error occurred during streaming"
                raise openai.APIError(message=message, request=request, body=problem)
            yield construct_type(type_=ChatCompletionChunk, value=data)
    except (aiohttp.ServerTimeoutError, TimeoutError):
        error = openai.APITimeoutError(request=request)
    except aiohttp.ClientError:
        error = openai.APIConnectionError(request=request)
    finally:
        reply.close()  # ended, failed or abandoned: this connection is not reused mid-body
    if error is not None:
        raise error


async def _anthropic_text(prepared: _Prepared, reply: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body as the slow path's httpx client yields it through ``aiter_text``: LiteLLM's aiohttp byte stream
    (``AiohttpResponseStream``, which maps aiohttp's failures onto httpx's and releases the connection) decoded by an
    incremental UTF-8 decoder; httpx names the request on a failed read, and so does this."""
    import httpx
    from litellm.llms.custom_httpx.aiohttp_transport import AiohttpResponseStream

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        async for data in AiohttpResponseStream(reply):
            if text := decoder.decode(data):
                yield text
    except httpx.HTTPError as exc:
        exc.request = httpx.Request("POST", prepared.url)
        raise
    if tail := decoder.decode(b"", final=True):
        yield tail


class _Closer:
    """The ``response`` ``ModelResponseIterator`` closes when the stream is closed: the aiohttp reply."""

    def __init__(self, reply: aiohttp.ClientResponse) -> None:
        self._reply = reply

    async def aclose(self) -> None:
        self._reply.close()

    def close(self) -> None:
        self._reply.close()


class _StreamLog(_fastpath._Quiet):
    """The logging object ``CustomStreamWrapper`` reads and reports to: what the slow path's ``Logging`` tells it about
    the request (LiteLLM params, provider, messages, stream options), and no callbacks (llmkit keeps no LiteLLM
    logging; cost comes from llmkit's memo of ``completion_cost``)."""

    call_type = "acompletion"
    llm_caching_handler = None
    stream_usage_injected = False

    def __init__(self, prepared: _Prepared) -> None:
        super().__init__()
        common = prepared.common
        self.model_call_details = {
            "litellm_params": common.litellm_params,
            "custom_llm_provider": prepared.route.provider,
        }
        self.messages = common.messages
        self.optional_params = {**common.optional_params, "stream": True, "stream_options": dict(_STREAM_OPTIONS)}
        self.stream_options = dict(_STREAM_OPTIONS)
        self.completion_start_time: Any = None
        self.start_time = time.time()

    def update_completion_start_time(self, completion_start_time: Any) -> None:
        self.completion_start_time = completion_start_time

    def response_cost_calculator(self, result: Any, **kwargs: Any) -> Any:
        """LiteLLM's price, which the stream builder stamps on the usage as the slow path's logging object does."""
        _fastpath._remember_cost(result)
        return result._hidden_params.get("response_cost")

    def record_native_bedrock_guardrail(self, *args: Any, **kwargs: Any) -> None:
        pass

    def is_sync_litellm_request(self, *args: Any, **kwargs: Any) -> bool:
        return False

    async def dispatch_success_handlers(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def dispatch_attempt_failure_handlers(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def async_success_handler(self, *args: Any, **kwargs: Any) -> None:
        pass

    def success_handler(self, *args: Any, **kwargs: Any) -> None:
        pass

    def failure_handler(self, *args: Any, **kwargs: Any) -> None:
        pass


_WRAPPERS = {"openai": _wrap_openai, "anthropic": _wrap_anthropic}
