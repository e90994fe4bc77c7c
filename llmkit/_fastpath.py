"""The fast-path transport: LiteLLM's own provider translation, without ``acompletion``'s per-call orchestration.

``litellm.acompletion`` spends ~6 ms of CPU per request around a translation that costs a fraction of that (its
``@client`` wrapper, the ``Logging`` object and callbacks, the OpenAI SDK and httpx). For the routes where
``acompletion`` is exactly transform, POST, transform (LiteLLM's ``BaseLLMHTTPHandler.async_completion``), this
transport calls the same provider config methods in the same order (``get_optional_params``,
``translate_developer_role_to_system_role``, ``validate_environment``, ``get_complete_url``, ``transform_request``,
``sign_request``, POST, ``transform_response``; errors through ``get_error_class`` and ``litellm.exception_type``)
and sends the bytes on one pooled aiohttp session per event loop.

It is an allowlist: a provider is here only when the parity test (tests/test_fastpath.py) proves both routes give
the same ``Completion`` and the same error; anything else (other providers, ``provider_options``, models
LiteLLM bridges to the Responses API, ``Model(transport="litellm")``) goes through ``LiteLLMTransport``. Streams
take the same requests, read by LiteLLM's own chunk parsers (``_fastpath_stream``). When a
LiteLLM release changes a method this path calls, the fast path switches itself off for that provider with one
warning and the request goes through ``acompletion``: never a wrong answer. Imports litellm and aiohttp lazily.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import functools
import inspect
import json
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _fastpath_gemini, _transport
from ._result import Completion, StreamDelta
from ._transport import LiteLLMTransport, Request, map_exception
from .errors import LLMError

if TYPE_CHECKING:
    import aiohttp

__all__ = ["FastPathTransport"]

logger = logging.getLogger("llmkit")

# LiteLLM providers whose acompletion route is transform, POST, transform and whose parity test passes.
_PROVIDERS = frozenset({"openai", "anthropic", "gemini"})

# The acompletion keyword arguments the fast path knows how to send; any other (a provider_options entry such as
# extra_body or extra_headers) sends the request through acompletion.
_KNOWN_KWARGS = frozenset(
    {
        "model",
        "messages",
        "num_retries",
        "max_retries",
        "api_base",
        "api_key",
        "timeout",
        "allowed_openai_params",
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
        "logprobs",
        "top_logprobs",
        "stop",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "thinking",
    }
)

# Where acompletion reads a provider's key and endpoint when the Model names none (litellm/main.py).
_KEY_ENV = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GOOGLE_API_KEY", "GEMINI_API_KEY", "PALM_API_KEY"),
}
_BASE_ENV = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "anthropic": ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
    "gemini": ("GEMINI_API_BASE",),
}
# Gemini: "" is no api_base, and LiteLLM's _get_token_and_url builds Google's URL for the model.
_DEFAULT_BASE = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1/messages",
    "gemini": "",
}


class _Unsupported(Exception):
    """This request is not one the fast path can prove it handles: it goes through acompletion."""


@dataclass(frozen=True)
class _Route:
    """What does not change per request for one model: LiteLLM's provider, model and provider config."""

    provider: str
    model: str
    config: Any


class FastPathTransport:
    """OpenAI-wire chat through LiteLLM's provider config and one aiohttp session per event loop; everything else
    through ``LiteLLMTransport`` (same checks, same errors, same ``Completion``)."""

    def __init__(self, fallback: LiteLLMTransport | None = None) -> None:
        self._fallback = fallback or LiteLLMTransport()
        self.fast_calls = 0
        """Requests this transport sent itself (the rest went through acompletion); for tests and benchmarks."""

    def check(self, request: Request) -> None:
        self._fallback.check(request)

    async def acomplete(self, request: Request) -> Completion:
        try:
            prepared: _Prepared | None = await _prepare(request, self._fallback._kwargs(request))
        except _Unsupported:
            prepared = None
        if prepared is None:
            # Outside the except block: an error the fallback raises must not carry _Unsupported as its context.
            return await self._fallback.acomplete(request)
        self.fast_calls += 1
        return await self._send(request, prepared)

    def astream(self, request: Request) -> AsyncIterator[StreamDelta | Completion]:
        from . import _fastpath_stream  # imports this module: loaded on the first stream

        return _fastpath_stream.astream(self, request)

    async def _send(self, request: Request, prepared: _Prepared) -> Completion:
        import aiohttp

        start = time.perf_counter()
        error: LLMError | None = None
        try:
            session = self._session()
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=prepared.common.timeout, sock_read=prepared.common.timeout
            )
            async with session.post(
                prepared.url, data=prepared.body, headers=prepared.headers, timeout=timeout
            ) as reply:
                body = await reply.read()
                status, headers = reply.status, reply.headers
            # Lowercased, as httpx's case-insensitive headers read on the acompletion path (x-request-id, retry-after).
            replied = {name.lower(): value for name, value in headers.items()}
            response = _REPLIES[prepared.route.provider](prepared, status, replied, body)
            if inspect.isawaitable(response):  # Gemini may post continuation hops (_fastpath_gemini)
                response = await response
        except Exception as exc:
            error = map_exception(_litellm_error(exc, prepared), request.model)
        if error is not None:
            raise error  # outside the except block, as in LiteLLMTransport: no chained exception holds a key
        _remember_cost(response)
        return self._fallback._completion(response, request, time.perf_counter() - start)

    def _session(self) -> aiohttp.ClientSession:
        """This loop's pooled session (one per loop, shared by every client on it), opened on first use."""
        loop = asyncio.get_running_loop()
        pool = _POOLS.get(loop)
        if pool is None or pool.session.closed:
            for old in [old for old in _POOLS if old.is_closed()]:
                _POOLS.pop(old).forget()
            pool = _POOLS[loop] = _Pool.open(loop)
        pool.users.add(self)
        return pool.session

    def close(self) -> None:
        """Leave every loop's session, closing it when no other open client uses it (``LLMClient.close`` calls
        this); safe to call twice, or from inside the loop."""
        for loop, pool in list(_POOLS.items()):
            pool.users.discard(self)
            if pool.users or loop.is_closed():
                continue
            del _POOLS[loop]
            if _running_loop() is loop:
                pool.owner.cancel()  # the owner closes the session on this loop
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(pool.aclose(), loop)
                try:
                    future.result(timeout=5)
                except Exception:  # a loop too busy to close it in time: its shutdown closes it
                    logger.debug("fast path: session close timed out", exc_info=True)
            else:
                loop.run_until_complete(pool.aclose())


# Per event loop, the one pooled session. Strong references: a loop holds its tasks only weakly, and the owner task
# must live as long as the loop. A client dropped without close() leaves it here for the next one (bounded: one per
# loop), and asyncio.run's shutdown closes it.
_POOLS: dict[asyncio.AbstractEventLoop, _Pool] = {}


@dataclass
class _Pool:
    """One event loop's aiohttp session, the transports using it, and the task that closes it at loop shutdown."""

    session: aiohttp.ClientSession
    owner: asyncio.Task[None]
    users: weakref.WeakSet[FastPathTransport]

    @classmethod
    def open(cls, loop: asyncio.AbstractEventLoop) -> _Pool:
        import aiohttp

        _close_all_at_exit()

        # limit=0: llmkit's own limiter and the batch's max_in_flight bound concurrency, not the connector.
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        owner = loop.create_task(_close_when_cancelled(session), name="llmkit-fastpath-session")
        return cls(session, owner, weakref.WeakSet())

    async def aclose(self) -> None:
        self.owner.cancel()
        await asyncio.gather(self.owner, return_exceptions=True)

    def forget(self) -> None:
        """Drop a pool whose loop was closed without cancelling its tasks: nothing can run on it any more, and its
        pending owner must not be reported as destroyed."""
        self.owner._log_destroy_pending = False  # type: ignore[attr-defined]


@functools.cache
def _close_all_at_exit() -> None:
    """Once: at interpreter exit, close the sessions still open, chiefly the sync twins' on llmkit's background loop
    (a daemon thread that never shuts down), so a script that never called close() exits without aiohttp's
    "Unclosed client session" noise."""
    atexit.register(_close_all)


def _close_all() -> None:
    for loop, pool in list(_POOLS.items()):
        del _POOLS[loop]
        if loop.is_closed() or pool.session.closed:
            continue
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(pool.aclose(), loop).result(timeout=2)
            else:
                loop.run_until_complete(pool.aclose())
        except Exception:  # exiting anyway: a session that cannot be closed in time is left to the OS
            logger.debug("fast path: session not closed at exit", exc_info=True)


async def _close_when_cancelled(session: aiohttp.ClientSession) -> None:
    """Wait forever; ``close``, or the cancellation ``asyncio.run`` sends every task at loop shutdown, closes the
    session. Nothing is awaited when the coroutine is merely discarded (its loop is gone)."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await session.close()
        raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass
class _Prepared:
    """One request as LiteLLM's handler would send it, plus what its response transform needs."""

    route: _Route
    url: str
    headers: dict[str, str]
    body: bytes
    data: dict[str, Any]
    common: _Common
    json_mode: bool


async def _prepare(request: Request, kwargs: dict[str, Any]) -> _Prepared:
    """LiteLLM's request for ``kwargs``, built as ``acompletion``'s route for the provider builds it; raises
    ``_Unsupported`` for anything the fast path has not proved it handles."""
    if request.model.transport == "litellm" or not kwargs.keys() <= _KNOWN_KWARGS:
        raise _Unsupported
    route = _route(request.model.name)
    if route is None or route.provider in _switched_off:
        raise _Unsupported
    if any(value is None for message in kwargs["messages"] for value in message.values()):
        raise _Unsupported  # acompletion drops null message fields somewhere before the transform: not matched yet
    try:
        return await _build(route, kwargs)
    except _Unsupported:
        raise
    except Exception as exc:
        if _changed_signature(exc):
            # A LiteLLM release changed a method this path calls: acompletion still works, so use it from now on.
            _switch_off(route.provider, exc)
        # Anything else LiteLLM refuses while translating (an unsupported parameter value): acompletion raises its
        # own error for it, the very one a user of the slow path gets.
        raise _Unsupported from None


def _changed_signature(exc: Exception) -> bool:
    """Whether ``exc`` says a LiteLLM function this path calls has a different shape than the one tested."""
    if isinstance(exc, (AttributeError, ImportError, NotImplementedError)):
        return True
    return isinstance(exc, TypeError) and "argument" in str(exc)


_NOT_SAMPLING = ("model", "messages", "num_retries", "api_base", "api_key", "timeout")


@dataclass
class _Common:
    """What ``litellm.completion`` resolves before it hands a request to the provider's handler."""

    api_base: str
    api_key: str | None
    optional_params: dict[str, Any]
    messages: list[Any]
    litellm_params: dict[str, Any]
    timeout: float | None


async def _build(route: _Route, kwargs: dict[str, Any]) -> _Prepared:
    sampling = {k: v for k, v in kwargs.items() if k not in _NOT_SAMPLING}
    api_base = kwargs.get("api_base") or _env(_BASE_ENV[route.provider]) or _DEFAULT_BASE[route.provider]
    if _bridged_to_responses(route, kwargs.get("api_base"), sampling):
        raise _Unsupported
    api_key = kwargs.get("api_key") or _env(_KEY_ENV[route.provider])
    if not api_key:
        raise _Unsupported  # acompletion's routes refuse or reword a keyless request themselves: let them
    messages = list(
        route.config.translate_developer_role_to_system_role(
            messages=kwargs["messages"],
            model=route.model,
            custom_llm_provider=route.provider,
            api_base=api_base,
            model_info={},
        )
    )
    common = _Common(
        api_base=api_base,
        api_key=api_key,
        optional_params=_optional_params(route, sampling),
        messages=messages,
        litellm_params=_litellm_params(route, api_key, api_base, kwargs.get("timeout")),
        timeout=kwargs.get("timeout"),
    )
    return await _WIRES[route.provider](route, common)


async def _build_openai(route: _Route, common: _Common) -> _Prepared:
    """What ``OpenAIChatCompletion.acompletion`` (litellm/llms/openai/openai.py) sends through the OpenAI SDK:
    the provider config's ``async_transform_request`` of the optional params without stream/max_retries, minus the
    SDK's ``extra_*`` options, posted as JSON with a bearer key."""
    optional_params = common.optional_params
    for name in ("stream_options", "stream", "max_retries"):
        optional_params.pop(name, None)
    extra_body = optional_params.get("extra_body") or {}
    data = await route.config.async_transform_request(
        model=route.model,
        messages=common.messages,
        optional_params=optional_params,
        litellm_params=common.litellm_params,
        headers={},
    )
    body = {k: v for k, v in data.items() if k not in ("extra_headers", "extra_query", "extra_body")}
    if not isinstance(extra_body, dict) or data.get("extra_headers") or data.get("extra_query"):
        raise _Unsupported
    body.update(extra_body)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if common.api_key:
        headers["Authorization"] = f"Bearer {common.api_key}"
    if organization := os.environ.get("OPENAI_ORGANIZATION"):
        headers["OpenAI-Organization"] = organization
    url = f"{common.api_base.rstrip('/')}/chat/completions"
    return _Prepared(route, url, headers, json.dumps(body).encode(), data, common, json_mode=False)


async def _build_anthropic(route: _Route, common: _Common) -> _Prepared:
    """What ``AnthropicChatCompletion.completion`` (litellm/llms/anthropic/chat/handler.py) sends: the route suffix
    ``/v1/messages``, the config's headers and request, beta headers filtered, beta-gated fields stripped. The same
    ``litellm_params`` dict goes to the response transform (it carries the tool-name map)."""
    from litellm.anthropic_beta_gated_fields import strip_beta_gated_request_body
    from litellm.anthropic_beta_headers_manager import update_request_with_filtered_beta
    from litellm.litellm_core_utils.url_utils import ensure_api_route

    if os.environ.get("LITELLM_ANTHROPIC_DISABLE_URL_SUFFIX"):
        raise _Unsupported
    optional_params = common.optional_params
    optional_params.pop("stream", None)
    json_mode = bool(optional_params.pop("json_mode", False))
    if optional_params.pop("is_vertex_request", False):
        raise _Unsupported
    optional_params.pop("vertex_count_tokens_location", None)
    common.messages = copy.deepcopy(common.messages)
    transform_params = {**optional_params, "is_vertex_request": False}
    api_base = ensure_api_route(common.api_base, "v1/messages")
    headers = route.config.validate_environment(
        api_key=common.api_key,
        headers={},
        model=route.model,
        messages=common.messages,
        optional_params=transform_params,
        litellm_params=common.litellm_params,
        api_base=api_base,
    )
    transformed = await route.config.async_transform_request(
        model=route.model,
        messages=common.messages,
        optional_params=transform_params,
        litellm_params=common.litellm_params,
        headers=headers,
    )
    request_headers, filtered = update_request_with_filtered_beta(
        headers=headers, request_data=transformed, provider=route.provider
    )
    data = dict(
        strip_beta_gated_request_body(
            filtered,
            request_headers,
            drop_params=common.litellm_params.get("drop_params"),
            model=route.model,
            provider=route.provider,
        )
    )
    headers = {k: str(v) for k, v in request_headers.items()}
    return _Prepared(route, api_base, headers, json.dumps(data).encode(), data, common, json_mode=json_mode)


def _env(names: tuple[str, ...]) -> str | None:
    return next((value for name in names if (value := os.environ.get(name))), None)


@functools.lru_cache(maxsize=1024)
def _route(name: str) -> _Route | None:
    """LiteLLM's provider and config for a model name; None when the fast path does not serve that provider."""
    litellm = _transport._litellm()
    try:
        model, provider, _, _ = litellm.get_llm_provider(name)
    except Exception:
        return None  # the fallback raises LiteLLM's own error for it
    if provider not in _PROVIDERS or not _tested_litellm():
        return None
    from litellm.utils import ProviderConfigManager

    config = ProviderConfigManager.get_provider_chat_config(model=model, provider=litellm.LlmProviders(provider))
    if config is None:
        return None
    _memoize_model_map_lookups(config)
    return _Route(provider, model, config)


# Model-map questions a provider config asks on every request through ``self.``, with answers that depend only on
# (model, provider) and LiteLLM's price map: Anthropic's validate_environment spends ~90% of its ~150 us in
# ``_is_adaptive_thinking_model`` (litellm 1.109.3, llms/anthropic/common_utils.py ``is_effort_used``). Keys and
# headers stay per request: validate_environment itself still runs every time.
_MODEL_MAP_LOOKUPS = ("_is_adaptive_thinking_model",)


def _memoize_model_map_lookups(config: Any) -> None:
    """Memoize those lookups on this route's own config instance (ProviderConfigManager builds a new one per call,
    so LiteLLM's own calls and classes are untouched)."""
    for name in _MODEL_MAP_LOOKUPS:
        lookup = getattr(type(config), name, None)
        if callable(lookup):
            setattr(config, name, functools.lru_cache(maxsize=256)(lookup))


# The LiteLLM releases whose routes the parity test (tests/test_fastpath.py) was run against. Another release keeps
# working, through acompletion, until the parity test passes on it and this range is widened.
_TESTED_LITELLM = ((1, 109), (1, 109))


@functools.cache
def _tested_litellm() -> bool:
    from importlib.metadata import version

    release = version("litellm")
    try:
        major_minor = tuple(int(part) for part in release.split(".")[:2])
    except ValueError:
        major_minor = ()
    if _TESTED_LITELLM[0] <= major_minor <= _TESTED_LITELLM[1]:
        return True
    logger.warning(
        "llmkit fast path: off, because LiteLLM %s is outside the releases its parity test passed on (%s.x-%s.x); "
        "every request goes through litellm.acompletion (same answers, more CPU per request)",
        release,
        ".".join(map(str, _TESTED_LITELLM[0])),
        ".".join(map(str, _TESTED_LITELLM[1])),
    )
    return False


def _bridged_to_responses(route: _Route, api_base: str | None, sampling: dict[str, Any]) -> bool:
    """Whether acompletion would send this request to the Responses API instead of chat (not on the fast path)."""
    return (
        _bridge_mode(
            route.model,
            route.provider,
            api_base,
            json.dumps(sampling.get("tools"), sort_keys=True, default=str),
            json.dumps(sampling.get("reasoning_effort"), sort_keys=True, default=str),
        )
        == "responses"
    )


@functools.lru_cache(maxsize=4096)
def _bridge_mode(model: str, provider: str, api_base: str | None, tools: str, effort: str) -> Any:
    from litellm.responses.bridge_check import responses_api_bridge_check

    info, _ = responses_api_bridge_check(
        model=model,
        custom_llm_provider=provider,
        tools=json.loads(tools),
        reasoning_effort=json.loads(effort),
        api_base=api_base,
    )
    return info.get("mode")


_OPTIONAL_PARAMS: dict[str, dict[str, Any]] = {}


def _optional_params(route: _Route, sampling: dict[str, Any]) -> dict[str, Any]:
    """``get_optional_params`` for these parameters, memoized (its result does not depend on the messages; a test
    pins that) and copied, because the request transform mutates it."""
    key = json.dumps([route.provider, route.model, sampling], sort_keys=True, default=str)
    params = _OPTIONAL_PARAMS.get(key)
    if params is None:
        from litellm.utils import get_optional_params

        params = get_optional_params(model=route.model, custom_llm_provider=route.provider, **sampling)
        if len(_OPTIONAL_PARAMS) > 4096:
            _OPTIONAL_PARAMS.clear()
        _OPTIONAL_PARAMS[key] = params
    return copy.deepcopy(params)


def _litellm_params(route: _Route, api_key: str | None, api_base: str, timeout: Any) -> dict[str, Any]:
    from litellm.litellm_core_utils.get_litellm_params import get_litellm_params

    return dict(
        get_litellm_params(
            api_key=api_key, api_base=api_base, custom_llm_provider=route.provider, max_retries=0, timeout=timeout
        )
    )


def _reply_openai(prepared: _Prepared, status: int, headers: dict[str, str], body: bytes) -> Any:
    """LiteLLM's ``ModelResponse`` for a reply, as the OpenAI route builds it; a failed reply raises the
    ``OpenAIError`` that route raises (with the headers, so ``Retry-After`` is read as on the slow path)."""
    from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
        convert_to_model_response_object,
    )
    from litellm.llms.openai.common_utils import OpenAIError

    if status >= 400:
        raise OpenAIError(status_code=status, message=body.decode(errors="replace"), headers=headers)
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise OpenAIError(status_code=500, message=f"JSONDecodeError: {exc}", headers=headers) from None
    if not isinstance(parsed, dict):
        raise OpenAIError(
            status_code=500,
            message=f"Empty or invalid response from LLM endpoint. Received: {parsed!r}.",
            headers=headers,
        )
    return convert_to_model_response_object(
        response_object=prepared.route.config.transform_parsed_response_dict(parsed),
        model_response_object=_model_response(prepared),
        hidden_params={"headers": headers},
        _response_headers=headers,
    )


def _reply_anthropic(prepared: _Prepared, status: int, headers: dict[str, str], body: bytes) -> Any:
    """The Anthropic route's ``AnthropicError`` for a failed reply, else its config's ``transform_response``."""
    import httpx
    from litellm.llms.anthropic.common_utils import AnthropicError

    raw = httpx.Response(status, headers=headers, content=body, request=httpx.Request("POST", prepared.url))
    if status >= 400:
        raise AnthropicError(message=raw.text, status_code=status, headers=raw.headers)
    common = prepared.common
    return prepared.route.config.transform_response(
        model=prepared.route.model,
        raw_response=raw,
        model_response=_model_response(prepared),
        logging_obj=_Quiet(),
        api_key=common.api_key,
        request_data=prepared.data,
        messages=common.messages,
        optional_params=common.optional_params,
        litellm_params=common.litellm_params,
        encoding=_encoding(),
        json_mode=prepared.json_mode,
    )


def _model_response(prepared: _Prepared) -> Any:
    from litellm.types.utils import ModelResponse

    response = ModelResponse()
    response._hidden_params["custom_llm_provider"] = prepared.route.provider
    return response


@functools.cache
def _encoding() -> Any:
    """The tokenizer acompletion hands every transform (litellm/main.py ``_get_encoding``), loaded once."""
    from litellm.main import _get_encoding

    return _get_encoding()


class _Quiet:
    """The logging object LiteLLM's transforms call: llmkit keeps no LiteLLM logging, so every hook does nothing."""

    def __init__(self) -> None:
        self.model_call_details: dict[str, Any] = {}

    def pre_call(self, *args: Any, **kwargs: Any) -> None:
        pass

    def post_call(self, *args: Any, **kwargs: Any) -> None:
        pass


async def _build_gemini(route: _Route, common: _Common) -> _Prepared:
    """What ``VertexLLM.async_completion`` sends for ``gemini/`` (llmkit/_fastpath_gemini.py); a request LiteLLM
    would send with context caching goes through acompletion."""
    if _fastpath_gemini.needs_acompletion(common.messages, common.optional_params):
        raise _Unsupported
    url, headers, data = await _fastpath_gemini.request(
        route.model,
        common.messages,
        common.optional_params,
        common.litellm_params,
        common.api_key or "",
        common.api_base or None,
        common.timeout,
        _fastpath_gemini.Log(common.litellm_params),
    )
    return _Prepared(route, url, headers, json.dumps(data).encode(), data, common, json_mode=False)


def _reply_gemini(prepared: _Prepared, status: int, headers: dict[str, str], body: bytes) -> Any:
    """Gemini's ``ModelResponse`` after any continuation hops, posted on this loop's session: a coroutine."""
    common = prepared.common
    return _fastpath_gemini.response(
        model=prepared.route.model,
        url=prepared.url,
        sent=prepared.data,
        first=(status, headers, body),
        post=_fastpath_gemini.post_on(_POOLS[asyncio.get_running_loop()].session, prepared.headers, common.timeout),
        model_response=_model_response(prepared),
        logging_obj=_fastpath_gemini.Log(common.litellm_params),
        messages=common.messages,
        secrets=(common.api_key or "",),
    )


_WIRES = {"openai": _build_openai, "anthropic": _build_anthropic, "gemini": _build_gemini}
_REPLIES = {"openai": _reply_openai, "anthropic": _reply_anthropic, "gemini": _reply_gemini}


def _litellm_error(exc: Exception, prepared: _Prepared) -> BaseException:
    """The exception acompletion would raise for ``exc``: LiteLLM's own mapping of the provider's error."""
    import aiohttp

    litellm = _transport._litellm()
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return litellm.Timeout(
            message=f"request timed out after {prepared.common.timeout}s",
            model=prepared.route.model,
            llm_provider=prepared.route.provider,
        )
    try:
        return litellm.exception_type(
            model=prepared.route.model,
            original_exception=exc,
            custom_llm_provider=prepared.route.provider,
            completion_kwargs={},
            extra_kwargs={},
        )
    except Exception as mapped:  # exception_type raises the mapped exception rather than returning it
        return mapped


# LiteLLM's completion_cost per (provider, model, usage, service tier): the same inputs always price the same, and
# the lookup behind it (model info, pricing candidates, built-in tools) is ~30% of the fast path's CPU. Bounded.
_COSTS: dict[str, float | None] = {}


def _remember_cost(response: Any) -> None:
    """Put LiteLLM's price into the response's hidden params, where ``_transport._cost`` reads it, from the memo
    when this model has priced this exact usage before."""
    hidden = response._hidden_params
    usage = getattr(response, "usage", None)
    if usage is None or hidden.get("response_cost") is not None:
        return
    key = json.dumps(
        [
            hidden.get("custom_llm_provider"),
            response.model,
            usage.model_dump(),
            getattr(response, "service_tier", None),
        ],
        sort_keys=True,
        default=str,
    )
    if key not in _COSTS:
        try:
            cost = _transport._litellm().completion_cost(completion_response=response)
        except Exception:
            cost = None
        if len(_COSTS) > 65536:
            _COSTS.clear()
        _COSTS[key] = cost
    hidden["response_cost"] = _COSTS[key] or 0.0  # 0.0: unpriced, which _cost reports as None without asking again


_switched_off: set[str] = set()


def _switch_off(provider: str, exc: BaseException) -> None:
    if provider in _switched_off:
        return
    _switched_off.add(provider)
    logger.warning(
        "llmkit fast path: switched off for %s requests, which now go through litellm.acompletion: this LiteLLM "
        "release changed a provider method the fast path calls (%s: %s). Answers are unaffected; pin the tested "
        "LiteLLM range for full speed",
        provider,
        type(exc).__name__,
        str(exc)[:200],
    )
