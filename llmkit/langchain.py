"""``ChatLLMKit``: a LangChain chat model that only converts; ``LLMClient`` does the work.

Every call (invoke, stream, batch, sync or async) goes through llmkit's cache, rate limits, retries and routing.
``batch``/``abatch`` send all inputs through llmkit's batch engine (bounded in flight, in-batch dedupe, a per-call
``model=`` as each prompt's ``prefer_model``) while each input still gets its own LangChain callback run.
Importing ``llmkit`` does not import this module or LangChain.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import LC_ID_PREFIX, AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough
from langchain_core.runnables.config import get_config_list
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import SecretStr, model_validator
from typing_extensions import Self

from . import (
    Completion,
    ConfigError,
    LLMClient,
    Model,
    OutputValidationError,
    Prompt,
    RateLimits,
    ResponseCache,
    RetryPolicy,
    SamplingParams,
    merge,
)
from ._lc_convert import (
    StreamConverter,
    batch_result,
    call_settings,
    env_key,
    failed_output,
    normalize_tool_choice,
    provider_of,
    structured_output,
    to_ai_message,
    to_llmkit_messages,
)
from ._lc_embeddings import LLMKitEmbeddings
from .errors import did_you_mean

__all__ = ["ChatLLMKit", "LLMKitEmbeddings"]

logger = logging.getLogger(__name__)

_CLIENT_OWNS = frozenset({"model", "base_url", "api_key", "max_retries", "limits", "response_cache"})


@dataclass
class _BatchPlan:
    """A batch resolved before anything is sent: the client and its batch arguments, and each input's callback run
    as ``invoke`` sets it up (``CallbackManager.configure`` arguments, ``on_chat_model_start`` keyword arguments)."""

    client: LLMClient
    prompts: list[Prompt]
    batch_args: dict[str, Any]
    runs: list[tuple[tuple[Any, ...], dict[str, Any]]]


def _end_run(run: Any, output: AIMessage | Exception) -> Any:
    """End one input's callback run as ``invoke`` would; an async run manager returns the coroutine to await."""
    if isinstance(output, Exception):
        return run.on_llm_error(output)
    return run.on_llm_end(LLMResult(generations=[[ChatGeneration(message=output)]]))


def _reject_unknown(cls: type[BaseChatModel], kwargs: dict[str, Any]) -> None:
    """An argument that is no field raises ``ConfigError`` with a "did you mean": ``BaseChatModel`` ignores extras,
    so ``temprature=0.2`` would leave the temperature unset without a word. Provider-specific request fields go in
    ``Model(..., provider_options={...})`` of a ``client=LLMClient(...)``, the one pass-through."""
    names = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
    unknown = [key for key in kwargs if key not in names]
    if unknown:
        own = [name for name in cls.model_fields if name not in BaseChatModel.model_fields]
        raise ConfigError(
            f"{cls.__name__}({unknown[0]}=...): unknown argument{did_you_mean(unknown[0], sorted(names))}; it takes "
            f"{', '.join(own)} and BaseChatModel's ({', '.join(BaseChatModel.model_fields)}); provider-specific "
            "request fields go in client=LLMClient(Model(..., provider_options={...}))"
        )


class ChatLLMKit(BaseChatModel):
    """A LangChain chat model backed by an llmkit ``LLMClient``.

    ``ChatLLMKit(model="anthropic/claude-sonnet-4-5", temperature=0)`` builds its own client;
    ``ChatLLMKit(client=LLMClient(...))`` wraps a configured one (pool, cache, limits, retries).
    """

    model: str | None = None
    """A LiteLLM model string, e.g. 'openai/gpt-4o-mini'; taken from the client when ``client`` is given."""
    temperature: float | None = None
    """Sampling temperature, 0..2; None leaves the provider default."""
    max_tokens: int | None = None
    """Most output tokens, thinking included."""
    timeout: float | None = None
    """Seconds per attempt."""
    stop: list[str] | None = None
    """Stop sequences."""
    max_retries: int | None = None
    """Retries after the first attempt (llmkit's ``RetryPolicy``; LiteLLM and SDK retries stay off). None: llmkit's
    default policy, 3 attempts."""
    api_key: SecretStr | None = None
    """The provider key; default: the provider's usual variable (OPENAI_API_KEY for 'openai/...')."""
    base_url: str | None = None
    """Endpoint override (a proxy, a local server, llmkit's FakeProvider)."""
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    """Portable reasoning knob; LiteLLM translates it per provider."""
    logprobs: bool | None = None
    """Return the chosen tokens' log probabilities in ``response_metadata['logprobs']``."""
    top_logprobs: int | None = None
    """Alternatives per token, 0..20; needs ``logprobs``."""
    streaming: bool = False
    """Make ``invoke`` stream underneath (LangChain's convention); the result is the same."""
    sampling: SamplingParams | None = None
    """llmkit sampling defaults; the fields above override it."""
    limits: RateLimits | None = None
    """Client-side limits that make calls wait rather than fail."""
    response_cache: ResponseCache | str | Path | None = None
    """llmkit's disk cache (a ``ResponseCache`` or a directory). LangChain's own ``cache`` field is separate."""
    client: LLMClient | None = None
    """A configured client; then model, base_url, api_key, max_retries, limits and response_cache belong to it."""

    def __init__(self, **kwargs: Any) -> None:
        _reject_unknown(type(self), kwargs)
        super().__init__(**kwargs)

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        if self.client is not None:
            clash = sorted(self.model_fields_set & _CLIENT_OWNS)
            if clash:
                raise ConfigError(
                    f"ChatLLMKit(client=...) was also given {clash}; configure those on the LLMClient instead"
                )
            self.model = self.client.models[0].name
        elif not self.model:
            raise ConfigError(
                "ChatLLMKit needs model='provider/name' (e.g. 'openai/gpt-4o-mini') or client=LLMClient(...)"
            )
        elif self.api_key is None and (var := env_key(self.model)) and os.environ.get(var):
            self.api_key = SecretStr(os.environ[var])
        self._field_sampling()  # a bad value fails here, not on the first call
        return self

    # -- LangChain metadata ------------------------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "llmkit"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        var = env_key(self.model or "")
        return {"api_key": var} if var else {}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """What changes the answer (LangChain's cache key and tracing); never the key."""
        sampling = self._sampling.model_dump(exclude_none=True) if self._sampling else {}
        models = [m.name for m in self.client.models] if self.client is not None else [self.model]
        return {"models": models, "base_url": self.base_url, **sampling}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        name = kwargs.get("model") or self.model or ""
        provider, _, bare = name.partition("/") if "/" in name else ("", "", name)
        params = LangSmithParams(ls_provider=provider or "llmkit", ls_model_name=bare, ls_model_type="chat")
        if (temperature := kwargs.get("temperature", self.temperature)) is not None:
            params["ls_temperature"] = temperature
        if (max_tokens := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = max_tokens
        if stop := stop or self.stop:
            params["ls_stop"] = list(stop)
        return params

    # -- the llmkit client -------------------------------------------------------------------------------------

    @cached_property
    def _client(self) -> LLMClient:
        return self.client if self.client is not None else self._new_client(self.model or "")

    @cached_property
    def _overrides(self) -> dict[str, LLMClient]:
        return {}

    @cached_property
    def _cache(self) -> ResponseCache | None:
        if self.response_cache is None or isinstance(self.response_cache, ResponseCache):
            return self.response_cache
        return ResponseCache(self.response_cache)

    @cached_property
    def _sampling(self) -> SamplingParams | None:
        return self._field_sampling()

    def _field_sampling(self) -> SamplingParams | None:
        given = {
            name: value
            for name in ("temperature", "max_tokens", "reasoning_effort", "logprobs", "top_logprobs")
            if (value := getattr(self, name)) is not None
        }
        if self.stop:
            given["stop"] = tuple(self.stop)
        if not given:
            return self.sampling
        return merge(self.sampling, SamplingParams(**given))

    def _new_client(self, name: str) -> LLMClient:
        """A client for one model; the key and base_url only go to a model of the same provider."""
        same = provider_of(name) == provider_of(self.model or "")
        model = Model(name, api_base=self.base_url if same else None, api_key=self.api_key if same else None)
        retry = RetryPolicy(max_attempts=self.max_retries + 1) if self.max_retries is not None else None
        return LLMClient(model, limits=self.limits, retry=retry, cache=self._cache)

    def _target(self, model: str | None) -> tuple[LLMClient, str | None]:
        """The client for a per-call ``model=`` (LangChain's override), and the pool member to prefer."""
        if model is None:
            return self._client, None
        if self.client is not None:
            names = [m.name for m in self.client.models]
            if model not in names:
                raise ConfigError(
                    f"model={model!r} is not in the client's pool {names}; add it as a Model to the LLMClient"
                )
            return self.client, model
        if model == self.model:
            return self._client, None
        if model not in self._overrides:
            self._overrides[model] = self._new_client(model)
        return self._overrides[model], None

    def _request(self, stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[LLMClient, dict[str, Any]]:
        """The client for a call and the keyword arguments for its complete/stream methods, from call-time kwargs
        (bound tools, overrides); unknown kwargs are refused, not sent."""
        sampling, options, model = call_settings(kwargs, stop, self._sampling, self.timeout)
        client, prefer = self._target(model)
        return client, {"sampling": sampling, "options": options, "prefer_model": prefer}

    # -- one call ----------------------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client, call_args = self._request(stop, kwargs)
        try:
            completion = client.complete(to_llmkit_messages(messages), **call_args)
        except OutputValidationError as exc:
            return ChatResult(generations=[ChatGeneration(message=failed_output(exc))])
        return ChatResult(generations=[ChatGeneration(message=to_ai_message(completion))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client, call_args = self._request(stop, kwargs)
        try:
            completion = await client.acomplete(to_llmkit_messages(messages), **call_args)
        except OutputValidationError as exc:
            return ChatResult(generations=[ChatGeneration(message=failed_output(exc))])
        return ChatResult(generations=[ChatGeneration(message=to_ai_message(completion))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        client, call_args = self._request(stop, kwargs)
        converter = StreamConverter()
        for item in client.stream(to_llmkit_messages(messages), **call_args):
            chunk = converter.convert(item)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        client, call_args = self._request(stop, kwargs)
        converter = StreamConverter()
        async for item in client.astream(to_llmkit_messages(messages), **call_args):
            chunk = converter.convert(item)
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    # -- batches -----------------------------------------------------------------------------------------------

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """All inputs through ``LLMClient.batch``; ``max_concurrency`` in the config bounds requests in flight."""
        plan = self._batch_plan(inputs, config, kwargs)
        if plan is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        runs = [CallbackManager.configure(*args).on_chat_model_start(**start)[0] for args, start in plan.runs]
        completions = plan.client.batch(plan.prompts, **plan.batch_args)
        outputs = [self._output(run.run_id, completion) for run, completion in zip(runs, completions, strict=True)]
        for run, output in zip(runs, outputs, strict=True):
            _end_run(run, output)
        return batch_result(outputs, return_exceptions)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Async twin of ``batch``, through ``LLMClient.abatch`` (llmkit's async limiter and cache)."""
        plan = self._batch_plan(inputs, config, kwargs)
        if plan is None:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        runs = []
        for args, start in plan.runs:
            runs.append((await AsyncCallbackManager.configure(*args).on_chat_model_start(**start))[0])
        completions = await plan.client.abatch(plan.prompts, **plan.batch_args)
        outputs = [self._output(run.run_id, completion) for run, completion in zip(runs, completions, strict=True)]
        for run, output in zip(runs, outputs, strict=True):
            await _end_run(run, output)
        return batch_result(outputs, return_exceptions)

    def _batch_plan(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None,
        kwargs: dict[str, Any],
    ) -> _BatchPlan | None:
        """The plan, or None when each input must go through ``invoke``: LangChain's cache or rate limiter is on
        (they act per call, before the request). A per-call ``model=`` becomes each prompt's ``prefer_model``."""
        if not inputs:
            return None
        if self.rate_limiter is not None or self._langchain_cache_on():
            logger.debug("ChatLLMKit batch: LangChain's cache or rate limiter is on; invoking each input")
            return None
        kwargs = dict(kwargs)
        stop = kwargs.pop("stop", None)
        structured = kwargs.pop("ls_structured_output_format", None)
        client, call_args = self._request(stop, kwargs)
        prefer = call_args.pop("prefer_model")
        options: dict[str, Any] = {"stop": stop}
        if structured:
            schema = convert_to_json_schema(structured["schema"])
            options["ls_structured_output_format"] = {"kwargs": structured.get("kwargs", {}), "schema": schema}
        inputs_messages = [self._convert_input(item).to_messages() for item in inputs]
        configs = get_config_list(config, len(inputs))
        invocation_params = self._get_invocation_params(stop=stop, **kwargs)
        ls_params = dict(self._get_ls_params_with_defaults(stop=stop, **kwargs))
        runs = []
        for run_config, messages in zip(configs, inputs_messages, strict=True):
            metadata = {**(run_config.get("metadata") or {}), **ls_params}
            configure = (
                run_config.get("callbacks"),
                self.callbacks,
                self.verbose,
                run_config.get("tags"),
                self.tags,
                metadata,
                self.metadata,
            )
            start = {
                "serialized": self._serialized,
                "messages": [messages],
                "invocation_params": invocation_params,
                "options": options,
                "name": run_config.get("run_name"),
                "run_id": run_config.pop("run_id", None),
                "batch_size": 1,
            }
            runs.append((configure, start))
        return _BatchPlan(
            client=client,
            prompts=[Prompt(messages=tuple(to_llmkit_messages(m)), prefer_model=prefer) for m in inputs_messages],
            batch_args={**call_args, "max_in_flight": configs[0].get("max_concurrency")},
            runs=runs,
        )

    def _langchain_cache_on(self) -> bool:
        return self.cache is not False and (self.cache is not None or get_llm_cache() is not None)

    def _output(self, run_id: Any, completion: Completion) -> AIMessage | Exception:
        """What ``invoke`` would return for this completion (its error, or the message as LangChain finishes it)."""
        if isinstance(completion.error, OutputValidationError):
            return failed_output(completion.error)
        if completion.error is not None:
            return completion.error
        message = to_ai_message(completion)
        message.id = f"{LC_ID_PREFIX}-{run_id}-0"
        if self.output_version == "v1":
            metadata = {**message.response_metadata, "output_version": "v1"}
            message = message.model_copy(update={"content": message.content_blocks, "response_metadata": metadata})
        return message

    # -- tools and structured output ---------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools in OpenAI format. ``tool_choice``: 'auto', 'none', 'any'/'required', True, or a tool name;
        ``parallel_tool_calls=False`` asks for at most one tool call per answer (passed to LiteLLM as given)."""
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        choice = normalize_tool_choice(tool_choice, [tool["function"]["name"] for tool in formatted])
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Parse answers into ``schema`` (pydantic, TypedDict or JSON schema).

        ``function_calling`` (default) forces one tool call, which every tool-capable provider supports;
        ``json_schema`` uses the provider's native structured output; ``json_mode`` asks for any JSON object.
        """
        if kwargs:
            raise ConfigError(f"with_structured_output got unexpected arguments {sorted(kwargs)}")
        bound, parser = structured_output(schema, method, strict)
        llm = self.bind(**bound)
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([no_parse], exception_key="parsing_error")
