"""The transport layer: the only module that imports litellm, and only inside functions (import costs seconds).

It turns a ``Request`` into one ``litellm.acompletion`` call with everything passed per call (no LiteLLM global is
ever set), checks capabilities before anything is sent, and maps LiteLLM's exceptions onto ``llmkit.errors``.
Retries are llmkit's alone: ``num_retries=0`` stops LiteLLM's wrapper, ``max_retries=0`` the OpenAI SDK's.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from . import _files, _normalize
from ._budget import StreamTimer
from ._params import Model, RequestOptions, SamplingParams, mask_url
from ._result import Completion, StreamDelta
from ._types import Message
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentFilterError,
    ContextWindowExceededError,
    InvalidResponseError,
    LLMError,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
    TimeoutError,
    UnsupportedFeatureError,
    env_secrets,
    redact,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "LiteLLMTransport",
    "Request",
    "Transport",
    "map_exception",
    "model_price",
    "output_support",
    "request_fields",
]

logger = logging.getLogger("llmkit")

# Best-effort knobs: not sent, rather than refused, to a provider that lacks them (a pool-wide seed must not
# break the one model in the pool that has no seed).
_BEST_EFFORT = frozenset({"seed"})


@dataclass(frozen=True)
class Request:
    """One attempt's input: which deployment, and the merged parameters."""

    model: Model
    messages: list[Message]
    sampling: SamplingParams
    options: RequestOptions
    timeout_s: float | None = None
    """The attempt's deadline in seconds: the call's ``timeout_s``, else the client's default."""


class Transport(Protocol):
    """The seam between llmkit's layers and the network; tests script replies with an in-process one."""

    def check(self, request: Request) -> None:
        """Raise ``UnsupportedFeatureError`` if the model cannot do what the request asks; sends nothing."""

    async def acomplete(self, request: Request) -> Completion: ...

    def astream(self, request: Request) -> AsyncIterator[StreamDelta | Completion]: ...


@functools.cache
def _litellm() -> ModuleType:
    # Offline, litellm's import blocks on fetching a remote price map, and its first Anthropic call fetches a
    # beta-header table from GitHub (anthropic_beta_headers_manager.py); the bundled copies are what llmkit tests.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    import litellm

    if os.environ.get("LLMKIT_LITELLM_DEBUG", "") in ("", "0"):
        # LiteLLM prints "Provider List: ..." on stdout for every model name it does not know, and "Give Feedback /
        # Get Help" for every failed call; a library must not write to its user's stdout. This flag only silences
        # those prints (the one LiteLLM global llmkit sets; README "LiteLLM's prints"). It is set here, after the
        # cost-map variables above: setting it before they are read makes LiteLLM fetch its price map remotely.
        litellm.suppress_debug_info = True
    return litellm


@functools.lru_cache(maxsize=1024)
def _provider_facts(name: str) -> tuple[frozenset[str], bool]:
    """(OpenAI params LiteLLM maps for this model, whether it can reason). Cached: these lookups cost ~0.1 ms."""
    litellm = _litellm()
    try:
        model, provider, _, _ = litellm.get_llm_provider(name)
    except Exception as exc:
        raise ConfigError(
            f"LiteLLM does not know how to reach model {name!r}: {exc}. Use a LiteLLM model string such as "
            "'openai/gpt-4o-mini' (see https://docs.litellm.ai/docs/providers)"
        ) from None
    params = frozenset(litellm.get_supported_openai_params(model=model, custom_llm_provider=provider) or ())
    try:
        reasons = bool(litellm.supports_reasoning(model=name))
    except Exception:
        reasons = False
    return params, reasons


# Per model name: (size of os.environ when asked, the *_API_KEY variables LiteLLM reported missing then).
_KEY_VARS: dict[str, tuple[int, tuple[str, ...]]] = {}


def _key_vars(name: str) -> tuple[str, ...]:
    """The ``*_API_KEY`` variables LiteLLM reads for ``name`` (any one will do), known once LiteLLM reported them
    missing; () while it finds a key. "Is a key set" is asked again only when the environment grew or shrank, so the
    ~20 µs LiteLLM lookup runs about once per model."""
    size = len(os.environ)
    cached = _KEY_VARS.get(name)
    if cached is not None and (cached[1] or cached[0] == size):
        return cached[1]
    try:
        missing = _litellm().validate_environment(model=name).get("missing_keys") or []
    except Exception:  # a provider LiteLLM cannot check: let the request say what is wrong
        missing = []
    # Only API keys: other variables (OLLAMA_API_BASE, VERTEXAI_PROJECT, AWS credentials from a profile or a role)
    # can come from elsewhere, and the request itself will say what is wrong.
    wanted = tuple(var for var in missing if var.endswith("_API_KEY"))
    _KEY_VARS[name] = (size, wanted)
    return wanted


def _check_key(model: Model) -> None:
    """``AuthenticationError`` before sending when the model has no key at all: no ``api_key``, no credential in its
    ``provider_options``, and none of the ``*_API_KEY`` variables LiteLLM reads for it. Without this, the OpenAI route
    fails with a retryable 500 ("Missing credentials") sent ``max_attempts`` times; other routes with a 401."""
    if model.api_key is not None:
        return
    wanted = _key_vars(model.name)
    if wanted and not any(os.environ.get(var) for var in wanted) and not model.secrets():
        raise AuthenticationError(
            f"{model.name} has no API key: set {' or '.join(wanted)} (LiteLLM reads it from the environment), or "
            "give Model(api_key=...)",
            model=model.name,
            provider=model.provider,
        )


@functools.lru_cache(maxsize=1024)
def output_support(name: str) -> tuple[bool, bool]:
    """(native JSON-schema output, function calling) as LiteLLM records them for this model; both False if unknown.

    LiteLLM marks Claude models ``supports_response_schema`` even where it fakes it with a forced tool call; only
    ``supports_native_structured_output`` means Anthropic's own ``output_format`` (litellm 1.109,
    llms/anthropic/chat/transformation.py ``uses_native_structured_output``).
    """
    litellm = _litellm()
    try:
        _, provider, _, _ = litellm.get_llm_provider(name)
        native = bool(litellm.supports_response_schema(model=name))
        if provider == "anthropic":
            # Absent before litellm 1.109: then a forced tool call, which every Claude takes.
            supports_native = getattr(litellm.utils, "supports_native_structured_output", None)
            native = native and supports_native is not None and bool(supports_native(model=name))
        return native, bool(litellm.supports_function_calling(model=name))
    except Exception:  # an unknown model: JSON mode, unless Model(supports=...) says more
        return False, False


class LiteLLMTransport:
    """Every provider LiteLLM supports, through ``litellm.acompletion``."""

    def check(self, request: Request) -> None:
        _litellm()  # the import (seconds, once) happens here, before the send where latency_s starts
        self._kwargs(request)
        _check_key(request.model)

    async def acomplete(self, request: Request) -> Completion:
        kwargs = self._kwargs(request)
        litellm = _litellm()
        start = time.perf_counter()
        error: LLMError | None = None
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            error = map_exception(exc, request.model)
        if error is not None:
            # Raised outside the except block, so LiteLLM's exception (whose text may hold a key) is neither its
            # __cause__ nor its __context__: tracebacks, Sentry and logger.exception never print it.
            raise error
        return self._completion(response, request, time.perf_counter() - start)

    async def astream(self, request: Request) -> AsyncIterator[StreamDelta | Completion]:
        kwargs = self._kwargs(request)
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        litellm = _litellm()
        async with contextlib.aclosing(self.streamed(request, lambda: litellm.acompletion(**kwargs))) as items:
            async for item in items:
                yield item

    async def streamed(
        self, request: Request, open_stream: Callable[[], Awaitable[Any]]
    ) -> AsyncGenerator[StreamDelta | Completion, None]:
        """llmkit's deltas and final ``Completion`` from the LiteLLM stream (a ``CustomStreamWrapper``) that
        ``open_stream`` opens: the timer's clocks, the chunks rebuilt by ``stream_chunk_builder``, LiteLLM's errors
        mapped, the connection closed however the stream ends. The fast path opens its own and shares this."""
        litellm = _litellm()
        start = time.perf_counter()
        chunks = []
        logprobs: list[dict[str, Any]] = []
        error: LLMError | None = None
        timer = StreamTimer(request.options.first_token_timeout_s, request.options.stall_timeout_s, request.model.name)
        stream = None
        try:
            stream = await timer.wait(open_stream())
            async for chunk in timer.chunks(stream):
                chunks.append(chunk)
                data = chunk.model_dump()
                logprobs += _normalize.chunk_logprobs(data)
                for delta in _normalize.delta_from_chunk(data):
                    yield delta
            response = litellm.stream_chunk_builder(chunks, messages=request.messages)
        except Exception as exc:
            error = map_exception(exc, request.model)
        finally:
            # On a stall, an error, or a consumer that stopped early: close the connection now, not at GC.
            if stream is not None:
                await stream.aclose()
        if error is not None:
            raise error  # outside the except block: see acomplete
        if response is None:
            raise InvalidResponseError(f"{request.model.name} sent an empty stream", model=request.model.name)
        completion = self._completion(response, request, time.perf_counter() - start)
        if completion.logprobs is None and logprobs:
            # stream_chunk_builder drops per-chunk logprobs (litellm 1.106); rebuild them from the chunks.
            completion = completion.model_copy(update={"logprobs": _normalize.logprobs({"content": logprobs})})
        yield completion

    def _completion(self, response: Any, request: Request, latency_s: float) -> Completion:
        data = response.model_dump()
        return _normalize.completion_from_response(
            data, cost_usd=_cost(response), model=request.model.name, latency_s=latency_s
        )

    def _kwargs(self, request: Request) -> dict[str, Any]:
        """Everything for one acompletion call; raises before sending what the model cannot do."""
        model, sampling, options = request.model, request.sampling, request.options
        wanted = _wanted_params(sampling, options)
        allowed = _allowed(model, wanted)
        kwargs: dict[str, Any] = {
            "model": model.name,
            "messages": _messages_for(model, request.messages),
            "num_retries": 0,
            "max_retries": 0,
            # An "off" knob (reasoning_effort="none") goes only to a model that has it: LiteLLM refuses it elsewhere.
            **{k: v for k, v in wanted.items() if k in allowed or (k not in _BEST_EFFORT and not _is_off(k, v))},
        }
        if model.supports is not None:
            kwargs["allowed_openai_params"] = sorted(wanted)
        elif "top_logprobs" in wanted:
            # LiteLLM lists top_logprobs for some routes only (not gemini/), but maps it where allowed.
            kwargs["allowed_openai_params"] = ["top_logprobs"]
        if model.api_base:
            kwargs["api_base"] = model.api_base
        if model.api_key is not None:
            kwargs["api_key"] = model.api_key.get_secret_value()
        timeout_s = options.timeout_s if options.timeout_s is not None else request.timeout_s
        if timeout_s is not None:
            kwargs["timeout"] = timeout_s  # per read in LiteLLM's HTTP clients; the client bounds the whole attempt
        kwargs.update(model.provider_options)
        return kwargs


def _keeps_thinking_blocks(model: Model) -> bool:
    """Only Claude takes signed thinking blocks back; LiteLLM forwards the field to OpenAI-style APIs unchanged."""
    return model.provider == "anthropic" or "claude" in model.name


def _messages_for(model: Model, messages: list[Message]) -> list[Message]:
    """The history as this model takes it: another provider's thinking blocks are dropped (a pool may switch)."""
    if files := _files.files_in(messages):
        _check_files(model, files)
        messages = _files.with_parts(messages, _files.File.content_part)
    if _keeps_thinking_blocks(model) or not any("thinking_blocks" in m for m in messages):
        return messages
    return [{k: v for k, v in m.items() if k != "thinking_blocks"} for m in messages]


_FILE_SUPPORT = {"image": "supports_vision", "pdf": "supports_pdf_input", "audio": "supports_audio_input"}


def _check_files(model: Model, files: list[_files.File]) -> None:
    """``UnsupportedFeatureError`` for a file this model cannot take; a declared model needs ``vision``."""
    for kind in dict.fromkeys(f.kind for f in files):
        if model.supports is not None:
            ok = "vision" in model.supports
        else:
            ok = kind != "other" and _takes(model.name, _FILE_SUPPORT[kind])
        if not ok:
            raise UnsupportedFeatureError(
                f"{model.name} does not take {kind} input (vision); send it to a model that does "
                "(gpt-4o, claude-sonnet-4-5, gemini-2.5-flash), or declare Model(..., supports={'vision'}) if it can",
                model=model.name,
                provider=model.provider,
            )


@functools.lru_cache(maxsize=256)
def _takes(name: str, check: str) -> bool:
    try:
        return bool(getattr(_litellm(), check)(model=name))
    except Exception:
        return False


def _wanted_params(sampling: SamplingParams, options: RequestOptions) -> dict[str, Any]:
    """OpenAI-style parameters for LiteLLM, from llmkit's objects."""
    wanted: dict[str, Any] = {
        name: value
        for name in ("temperature", "top_p", "max_tokens", "seed", "logprobs", "top_logprobs")
        if (value := getattr(sampling, name)) is not None
    }
    if sampling.stop:
        wanted["stop"] = list(sampling.stop)
    if sampling.reasoning_effort is not None:
        wanted["reasoning_effort"] = sampling.reasoning_effort
    if sampling.thinking_budget:
        wanted["thinking"] = {"type": "enabled", "budget_tokens": sampling.thinking_budget}
    elif sampling.thinking_budget == 0:
        # "Off", said the way LiteLLM maps per provider: Gemini 2.5 gets thinkingBudget=0 (a 0 budget_tokens would
        # too), Claude no thinking block (Anthropic rejects budget_tokens below 1024).
        wanted["reasoning_effort"] = "none"
    if sampling.json_mode:
        if options.response_format is not None:
            raise ConfigError("json_mode=True and response_format were both given; keep one")
        wanted["response_format"] = {"type": "json_object"}
    elif options.response_format is not None:
        wanted["response_format"] = options.response_format
    if options.tools:
        wanted["tools"] = list(options.tools)
    if options.tool_choice is not None:
        wanted["tool_choice"] = _tool_choice(options.tool_choice)
    if options.parallel_tool_calls is not None:
        wanted["parallel_tool_calls"] = options.parallel_tool_calls
    return wanted


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, dict) or choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    return {"type": "function", "function": {"name": choice}}


_FEATURES = {
    "logprobs": "logprobs",
    "top_logprobs": "logprobs",
    "reasoning_effort": "reasoning",
    "thinking": "reasoning",
    "tools": "tools",
    "tool_choice": "tools",
    "parallel_tool_calls": "tools",
}


def _allowed(model: Model, wanted: dict[str, Any]) -> frozenset[str]:
    """The wanted params this model takes; raise ``UnsupportedFeatureError`` for a feature it lacks."""
    if model.supports is not None:
        declared = model.supports
        for param in wanted:
            feature = _FEATURES.get(param)
            if feature is not None and feature not in declared and not _is_off(param, wanted[param]):
                raise _unsupported(model, param, declared_only=True)
        return frozenset(wanted)
    params, reasons = _provider_facts(model.name)
    for param, value in wanted.items():
        if _is_off(param, value) or param in _BEST_EFFORT:
            continue
        feature = _FEATURES.get(param)
        if feature == "reasoning":
            ok = reasons and (param == "reasoning_effort" or "thinking" in params)
        elif param == "top_logprobs":
            ok = "logprobs" in params
        else:
            ok = param in params or param in ("max_tokens", "temperature", "stop", "response_format")
        if not ok:
            raise _unsupported(model, param)
    return params


def _is_off(param: str, value: Any) -> bool:
    """Asking a model not to do something it cannot do is fine."""
    return (param == "reasoning_effort" and value == "none") or (param == "logprobs" and value is False)


def _unsupported(model: Model, param: str, declared_only: bool = False) -> UnsupportedFeatureError:
    feature = _FEATURES.get(param, param)
    asked = "thinking_budget" if param == "thinking" else param  # the SamplingParams field the user set
    if param == "thinking" and not declared_only and _provider_facts(model.name)[1]:
        hint = "this model reasons but takes no thinking budget: use reasoning_effort instead of thinking_budget"
    elif feature == "reasoning":
        hint = f"use a reasoning model (o-series, gpt-5, claude-sonnet-4-5, gemini-2.5), or drop {asked}"
    elif feature == "logprobs":
        hint = "OpenAI and Gemini models return logprobs; Anthropic has none"
    else:
        hint = f"drop {asked}"
    how = (
        f"add {feature!r} to Model(..., supports=...) if it really can"
        if declared_only
        else f"if LiteLLM does not know this model but it can, declare Model(..., supports={{{feature!r}}})"
    )
    return UnsupportedFeatureError(
        f"{model.name} does not support {asked} ({feature}); {hint}; {how}", model=model.name, provider=model.provider
    )


def _cost(response: Any) -> float | None:
    """LiteLLM's price for this response; None when the model has no known price (never a made-up 0)."""
    cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if cost is None:
        try:
            cost = _litellm().completion_cost(completion_response=response)
        except Exception:
            return None
    return float(cost) if cost else None


def request_fields(request: Request) -> dict[str, Any]:
    """The request as llmkit hands it to LiteLLM (model, messages, parameters, api_base), minus the key (traces)."""
    try:
        kwargs = LiteLLMTransport()._kwargs(request)
    except LLMError:
        kwargs = {"model": request.model.name, "messages": request.messages}
    kwargs.pop("api_key", None)
    return kwargs


def model_price(model: Model) -> tuple[float, float] | None:
    """LiteLLM's USD per (prompt token, output token) for this model; None when it has no price for it."""
    return _price(model.name)


@functools.lru_cache(maxsize=1024)
def _price(name: str) -> tuple[float, float] | None:
    try:
        info = _litellm().get_model_info(name)
    except Exception:
        return None
    prompt, output = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    return (float(prompt), float(output)) if prompt is not None and output is not None else None


def _headers(exc: BaseException) -> Any:
    """LiteLLM keeps an error's headers in ``litellm_response_headers``, not in ``exc.response.headers``."""
    return getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)


# OpenAI and most OpenAI-compatible servers send x-request-id; Anthropic request-id; Google x-goog-request-id.
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "llm_provider-x-request-id")


def _request_id(exc: BaseException) -> str | None:
    """The provider's id for the failed request, to quote to its support; None when it sent none."""
    headers = _headers(exc)
    if not headers:
        return None
    return next((str(headers[name]) for name in _REQUEST_ID_HEADERS if headers.get(name)), None)


def _retry_after(exc: Exception) -> float | None:
    headers = _headers(exc)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


def map_exception(exc: BaseException, model: Model) -> LLMError:
    """LiteLLM's exception as llmkit's, most specific class first; the key is stripped from the message."""
    if isinstance(exc, LLMError):
        return exc
    litellm = _litellm()
    # Gemini streams send the request on first iteration, so its 429s and 5xx arrive wrapped in
    # MidStreamFallbackError (litellm_core_utils/streaming_handler.py); the real error, Retry-After included, is inside.
    original = getattr(exc, "original_exception", None)
    if isinstance(exc, litellm.exceptions.MidStreamFallbackError) and isinstance(original, Exception):
        exc = original
    status = getattr(exc, "status_code", None)
    text = redact(str(exc), [*model.secrets(), *env_secrets()])[:1000]
    fields: dict[str, Any] = {
        "model": model.name,
        "provider": model.provider,
        "status": status,
        "request_id": _request_id(exc),
    }
    table: list[tuple[type[BaseException], type[LLMError]]] = [
        (litellm.ContextWindowExceededError, ContextWindowExceededError),
        (litellm.ContentPolicyViolationError, ContentFilterError),
        (litellm.UnsupportedParamsError, UnsupportedFeatureError),
        (litellm.AuthenticationError, AuthenticationError),
        (litellm.PermissionDeniedError, AuthenticationError),
        (litellm.NotFoundError, ModelNotFoundError),
        (litellm.Timeout, TimeoutError),
        (litellm.APIResponseValidationError, InvalidResponseError),
        (litellm.BadRequestError, BadRequestError),
        (litellm.UnprocessableEntityError, BadRequestError),
    ]
    if isinstance(exc, litellm.RateLimitError):
        return RateLimitError(f"{model.name} is rate limited: {text}", retry_after=_retry_after(exc), **fields)
    if _is_invalid_json(exc):
        return InvalidResponseError(f"{model.name} sent a response that could not be parsed: {text}", **fields)
    if _in_chain(exc, _is_error_in_ok_body):
        # LiteLLM calls an error object inside an HTTP 200 body a 422 BadRequestError (never retried); the provider
        # or gateway sent no status at all, so it is an unusable answer, retried like one.
        message = f"{model.name} answered HTTP 200 with an error instead of an answer: {text}"
        return InvalidResponseError(message, **{**fields, "status": None})
    if _in_chain(exc, _is_connection_failure):
        where = mask_url(model.api_base) or f"{model.provider or 'the provider'}'s default endpoint"
        return ProviderError(f"{model.name}: could not connect to {where}: {text}", **{**fields, "status": None})
    for source, target in table:
        if isinstance(exc, source):
            return target(f"{model.name}: {text}", **fields)
    retryable = status is None or status >= 500 or status in (408, 409)
    return ProviderError(f"{model.name} failed ({type(exc).__name__}): {text}", retryable=retryable, **fields)


# How each route reports an unparseable body (cassettes/invalid_json.yaml): OpenAI a 500 wrapping JSONDecodeError,
# Anthropic an APIConnectionError, Gemini a 422 BadRequestError "Error converting to valid response block".
_UNPARSEABLE = ("JSONDecodeError", "Error converting to valid response block", "Expecting value", "Unterminated string")


def _is_invalid_json(exc: BaseException) -> bool:
    return _in_chain(
        exc, lambda seen: isinstance(seen, json.JSONDecodeError) or any(m in str(seen)[:4000] for m in _UNPARSEABLE)
    )


# How a refused or unreachable endpoint shows up under each route's HTTP client (openai SDK/httpx, aiohttp).
_CONNECTION_FAILURES = ("Connection refused", "Cannot connect to host", "All connection attempts failed")


def _is_connection_failure(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionRefusedError) or any(m in str(exc)[:4000] for m in _CONNECTION_FAILURES)


def _is_error_in_ok_body(exc: BaseException) -> bool:
    """LiteLLM's marker for ``{"error": ...}`` without a code in a 200 body: a bare ``Exception`` given status 422 in
    ``convert_to_model_response_object`` (litellm_core_utils/llm_response_utils/convert_dict_to_response.py)."""
    return type(exc) is Exception and getattr(exc, "status_code", None) == 422


def _in_chain(exc: BaseException, test: Callable[[BaseException], bool]) -> bool:
    """Whether ``test`` holds for ``exc`` or any exception it was raised from (LiteLLM wraps the SDK's, which wraps
    the socket's)."""
    seen: BaseException | None = exc
    for _ in range(20):  # a chain that loops back on itself must not hang error handling
        if seen is None:
            return False
        if test(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# -- embeddings: kept apart from the chat code above ------------------------------------------------------------


@dataclass(frozen=True)
class EmbedReply:
    """One embedding request's answer: a vector per input, in input order."""

    vectors: list[list[float]]
    input_tokens: int
    cost_usd: float | None


@dataclass(frozen=True)
class _SdkRoute:
    """Where ``litellm.embedding()`` finds an OpenAI-SDK route's base and key when ``get_llm_provider`` has none."""

    base_variables: tuple[str, ...] = ()
    key_variables: tuple[str, ...] = ()
    default_base: str | None = None
    default_key: str | None = None


# These routes of litellm.aembedding go through the OpenAI SDK (``OpenAIChatCompletion.embedding``), which asks it for
# ``max_retries or DEFAULT_MAX_RETRIES`` retries, so max_retries=0 still retries a 5xx twice, and sets that on a
# client it is given (main.py ``embedding()``, llms/openai/openai.py, litellm 1.109.3: the fake counted 2 requests for
# one 500 on each). llmkit gives its own client, whose max_retries stays 0, for the base and key LiteLLM would use.
# The other routes (azure, gemini, vertex_ai, cohere, voyage, bedrock, hosted_vllm, jina_ai, ...) send one request.
_OPENAI_BRANCH = _SdkRoute(("OPENAI_BASE_URL", "OPENAI_API_BASE"), ("OPENAI_API_KEY",), "https://api.openai.com/v1")
_SDK_EMBED_ROUTES = {
    "openai": _OPENAI_BRANCH,
    "together_ai": _OPENAI_BRANCH,
    "nvidia_nim": _OPENAI_BRANCH,
    "litellm_proxy": _OPENAI_BRANCH,
    "mistral": _SdkRoute(key_variables=("MISTRAL_API_KEY",)),
    "fireworks_ai": _SdkRoute(key_variables=("FIREWORKS_AI_API_KEY",)),
    "nebius": _SdkRoute(("NEBIUS_API_BASE",), ("NEBIUS_API_KEY",)),
    "wandb": _SdkRoute(("WANDB_API_BASE",), ("WANDB_API_KEY",)),
    "xinference": _SdkRoute(
        ("XINFERENCE_API_BASE",), ("XINFERENCE_API_KEY",), "http://127.0.0.1:9997/v1", "stub-xinference-key"
    ),
    # Without a key LiteLLM fetches an Entra ID token for azure_ai: that case keeps LiteLLM's client (and its retries).
    "azure_ai": _SdkRoute(("AZURE_AI_API_BASE",), ("AZURE_AI_API_KEY",)),
}
# LiteLLM's gemini route reads an input starting with these as a file reference or media, not text, and resolves
# "files/..." with a GET to generativelanguage.googleapis.com whatever the api_base (gemini_embeddings/
# batch_embed_content_transformation.py ``_is_multimodal_element``, litellm 1.109.3).
_GEMINI_MEDIA_PREFIXES = ("files/", "gs://", "data:", "https://generativelanguage.googleapis.com/")


def embed_input_problem(model: Model, text: str) -> str | None:
    """Why this text cannot be sent to this model as text, or None."""
    if model.provider in ("gemini", "vertex_ai") and text.startswith(_GEMINI_MEDIA_PREFIXES):
        return (
            f"LiteLLM's {model.provider} route would read a text starting with {text[:12]!r} as a file reference or "
            "media, not as text; add a prefix (e.g. 'text: ') to embed it as text"
        )
    return None


def check_embed(model: Model, params: dict[str, Any]) -> None:
    """Raise ``UnsupportedFeatureError`` if LiteLLM would refuse these embedding parameters for this model."""
    _embed_params_ok(model.name, tuple(sorted(params.items())))


@functools.lru_cache(maxsize=256)
def _embed_params_ok(name: str, params: tuple[tuple[str, Any], ...]) -> None:
    """LiteLLM's own mapping of embedding params (``get_optional_params_embeddings``, what ``aembedding`` runs)."""
    litellm = _litellm()
    try:
        model, provider, _, _ = litellm.get_llm_provider(name)
    except Exception as exc:
        raise ConfigError(f"LiteLLM does not know how to reach embedding model {name!r}: {exc}") from None
    wanted = dict(params)
    try:
        mapped = litellm.utils.get_optional_params_embeddings(model=model, custom_llm_provider=provider, **wanted)
    except litellm.UnsupportedParamsError as exc:
        raise UnsupportedFeatureError(
            f"{name} cannot take {sorted(wanted)} (LiteLLM: {str(exc)[:200]}); drop the option",
            model=name,
            provider=provider,
        ) from None
    # An option LiteLLM does not map is forwarded in extra_body, which an OpenAI-style API rejects or ignores.
    for param in sorted(set(mapped.get("extra_body") or ()) & set(wanted)):
        raise UnsupportedFeatureError(
            f"{name} has no {param!r} (LiteLLM maps it for Gemini, Vertex, Cohere, Voyage); drop it, or pass the "
            "provider's own field in EmbeddingOptions.provider_options",
            model=name,
            provider=provider,
        )


async def aembed(model: Model, texts: list[str], params: dict[str, Any], timeout_s: float | None) -> EmbedReply:
    """One ``litellm.aembedding`` request for ``texts``; LiteLLM's errors mapped as for completions."""
    litellm = _litellm()
    kwargs: dict[str, Any] = {"model": model.name, "input": texts, "num_retries": 0, "max_retries": 0, **params}
    if model.api_base:
        kwargs["api_base"] = model.api_base
    if model.api_key is not None:
        kwargs["api_key"] = model.api_key.get_secret_value()
    if timeout_s is not None:
        kwargs["timeout"] = timeout_s
    kwargs.update(model.provider_options)
    try:
        if model.provider in _SDK_EMBED_ROUTES and "client" not in kwargs:
            kwargs["client"] = _sdk_client(kwargs.get("api_base"), kwargs.get("api_key"), model)
        response = await litellm.aembedding(**kwargs)
    except Exception as exc:
        raise map_exception(exc, model) from exc
    data = sorted(response.data, key=lambda item: item["index"])
    if len(data) != len(texts):
        raise InvalidResponseError(
            f"{model.name} returned {len(data)} vectors for {len(texts)} inputs", model=model.name, retryable=True
        )
    vectors = [item["embedding"] for item in data]
    if any(not vector or not isinstance(vector[0], (int, float)) for vector in vectors):
        # llama-cpp-python's server returns one vector per token for a model without a pooling type (SmolLM2).
        raise InvalidResponseError(
            f"{model.name} did not return one flat vector per input (per-token or empty embeddings); the server "
            "must pool them (llama.cpp: --pooling mean)",
            model=model.name,
            retryable=False,
        )
    usage = getattr(response, "usage", None)
    tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    return EmbedReply(vectors, tokens, _cost(response))


def _sdk_client(api_base: str | None, api_key: str | None, model: Model) -> Any:
    """An AsyncOpenAI client with ``max_retries=0`` for this loop, base and key (one per loop: its pool is bound);
    None where LiteLLM must build its own (azure_ai with an Entra ID token)."""
    import asyncio

    route = _SDK_EMBED_ROUTES[model.provider]
    _, _, found_key, found_base = _litellm().get_llm_provider(model.name, api_base=api_base, api_key=api_key)
    key = found_key or api_key or _first_variable(route.key_variables) or route.default_key
    base = found_base or _first_variable(route.base_variables) or route.default_base
    if model.provider == "azure_ai":
        if not key:
            return None
        from litellm.llms.azure_ai.embed.handler import _foundry_models_route_base

        base = _foundry_models_route_base(base)
    if not key:
        variable = route.key_variables[0] if route.key_variables else "the provider's key variable"
        raise AuthenticationError(
            f"{model.name}: no API key; set {variable} or Model(..., api_key=...)",
            model=model.name,
            provider=model.provider,
        )
    clients = _EMBED_CLIENTS.setdefault(asyncio.get_running_loop(), {})
    slot = (base, hash(key))
    client = clients.get(slot)
    if client is None:
        client = clients[slot] = _no_retry_openai()(api_key=key, base_url=base, max_retries=0)
    return client


def _first_variable(names: tuple[str, ...]) -> str | None:
    return next((value for name in names if (value := os.environ.get(name))), None)


@functools.cache
def _no_retry_openai() -> type:
    """AsyncOpenAI whose ``max_retries`` stays 0: LiteLLM overwrites it on a client it is given
    (``OpenAIChatCompletion._set_dynamic_params_on_client``, litellm 1.109.3)."""
    from openai import AsyncOpenAI

    class NoRetryAsyncOpenAI(AsyncOpenAI):
        @property  # type: ignore[override]
        def max_retries(self) -> int:
            return 0

        @max_retries.setter
        def max_retries(self, value: int) -> None:
            pass

    return NoRetryAsyncOpenAI


_EMBED_CLIENTS: weakref.WeakKeyDictionary[Any, dict[tuple[str | None, int], Any]] = weakref.WeakKeyDictionary()
