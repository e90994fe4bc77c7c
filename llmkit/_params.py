"""Parameter objects: frozen, validated when built, so every layer can share and fingerprint them.

"Not given" differs from ``None``: a field left out is not sent and does not override a lower layer; ``merge`` reads
``model_fields_set`` for that. ``Model.provider_options`` is the one pass-through to the provider.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from ._messages import to_messages
from ._output import output_spec
from .errors import ConfigError, did_you_mean

__all__ = [
    "Capability",
    "Model",
    "Prompt",
    "RateLimits",
    "RequestOptions",
    "RetryPolicy",
    "SamplingParams",
    "as_params",
    "explain_keywords",
    "mask_options",
    "mask_url",
    "merge",
    "with_output",
]

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]
Capability = Literal["reasoning", "logprobs", "tools", "vision", "json_schema"]

# allow_inf_nan=False: weight=inf, timeout_s=inf or an rpm of inf would be accepted and fail later, misleadingly.
_FROZEN = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False, defer_build=True)


_SECRET_SUFFIXES = ("key", "secret", "token", "password")


def describe_validation_error(owner: type[BaseModel], exc: ValidationError) -> str:
    """One line per problem: where, the bad value, and what is allowed."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        secret = any(str(part).lower().endswith(_SECRET_SUFFIXES) for part in err["loc"])
        value = f"={'***' if secret else repr(err['input'])}" if where and err["type"] != "missing" else ""
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            allowed = list(owner.model_fields)
            message = f"unknown field; allowed: {', '.join(allowed)}" + did_you_mean(where, allowed)
        lines.append(f"{owner.__name__}{'.' + where if where else ''}{value}: {message}")
    return "; ".join(lines)


# What counts as a credential inside provider options, headers and URLs (besides Model.api_key).
_SECRET_NAME = re.compile(r"key|secret|token|password|passwd|credential|auth|cookie|signature|^sig$", re.IGNORECASE)
_AUTH_SCHEMES = ("bearer ", "basic ", "token ")
_MASK = "***"


def _is_secret_name(name: object) -> bool:
    return isinstance(name, str) and bool(_SECRET_NAME.search(name))


def _credential_values(value: Any, secret: bool = False) -> list[str]:
    """Every credential string inside provider options: values under secret-looking names (``aws_secret_access_key``,
    an ``Authorization`` header), and for "Bearer xyz" also the bare token, which a provider may echo alone."""
    if isinstance(value, dict):
        return [v for key, item in value.items() for v in _credential_values(item, secret or _is_secret_name(key))]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _credential_values(item, secret)]
    if not (secret and isinstance(value, str) and value):
        return []
    scheme = next((s for s in _AUTH_SCHEMES if value.lower().startswith(s)), None)
    return [value, value[len(scheme) :].strip()] if scheme else [value]


def _url_credentials(url: str | None) -> list[str]:
    """The password of ``https://user:pass@host`` and secret-looking query values (``?key=``, ``?auth=``)."""
    if not url:
        return []
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    return found + [value for name, value in parse_qsl(parts.query) if _is_secret_name(name) and value]


def mask_url(url: str | None) -> str | None:
    """``url`` with the userinfo password and secret-looking query values replaced by ``***``, for display."""
    if not url or not _url_credentials(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = f"{parts.username}:{_MASK}@{netloc.rpartition('@')[2]}"
    query = urlencode([(n, _MASK if _is_secret_name(n) and v else v) for n, v in parse_qsl(parts.query)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_options(value: Any, secret: bool = False) -> Any:
    """Provider options (headers included) with every credential value replaced by ``***``, for display."""
    if isinstance(value, dict):
        return {key: mask_options(item, secret or _is_secret_name(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_options(item, secret) for item in value]
    return _MASK if secret and isinstance(value, str) and value else value


class _Params(BaseModel):
    """Base of the parameter objects: a bad value raises ``ConfigError`` (a ``ValueError``) naming field and value."""

    model_config = _FROZEN

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(type(self), exc)) from None

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # Show what was given, not a wall of Nones.
        return [(name, value) for name, value in super().__repr_args__() if name in self.model_fields_set]


class SamplingParams(_Params):
    """How to sample. Every field defaults to "not given": the provider's default, and no override when merged."""

    temperature: float | None = Field(None, ge=0, le=2, description="0 is (near) deterministic; 0..2.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass; 0 < top_p <= 1.")
    max_tokens: int | None = Field(None, ge=1, description="Most output tokens, thinking included.")
    stop: tuple[str, ...] | None = Field(None, description="Stop sequences (a str is one sequence).")
    seed: int | None = Field(None, description="Best-effort determinism where the provider supports it.")
    reasoning_effort: ReasoningEffort | None = Field(None, description="Portable reasoning knob; 'none' turns it off.")
    thinking_budget: int | None = Field(None, ge=0, description="Thinking tokens (Anthropic, Gemini); 0 turns it off.")
    logprobs: bool | None = Field(None, description="Return the chosen tokens' log probabilities.")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="Alternatives per token, 0..20; needs logprobs.")
    json_mode: bool | None = Field(None, description="Ask for a JSON object reply.")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_tuple(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_combinations(self) -> SamplingParams:
        if self.top_logprobs and not self.logprobs:
            raise ValueError(f"top_logprobs={self.top_logprobs} needs logprobs=True; set both or drop top_logprobs")
        if self.reasoning_effort is not None and self.thinking_budget is not None:
            raise ValueError(
                "give reasoning_effort or thinking_budget, not both: reasoning_effort is portable across providers, "
                "thinking_budget sets Anthropic/Gemini thinking tokens exactly"
            )
        return self


class RateLimits(_Params):
    """Client-side limits that make callers wait rather than fail. ``None`` means unlimited."""

    requests_per_minute: float | None = Field(None, gt=0, description="Requests started per minute.")
    tokens_per_minute: float | None = Field(None, gt=0, description="Prompt estimate + max_tokens, per minute.")
    max_concurrency: int | None = Field(None, ge=1, description="Requests in flight at once.")


class RetryPolicy(_Params):
    """When and how long to wait before trying again; retried errors are those with ``retryable`` set."""

    max_attempts: int = Field(3, ge=1, description="Attempts in all, the first included; 1 disables retries.")
    initial_backoff_s: float = Field(0.5, ge=0, description="Wait before the second attempt, doubled after each.")
    max_backoff_s: float = Field(30.0, ge=0, description="Longest wait between attempts (Retry-After may exceed it).")
    jitter: bool = Field(True, description="Randomize each wait in [backoff/2, backoff] so callers do not sync up.")
    max_wait_s: float = Field(
        300.0, gt=0, description="Longest Retry-After/cooldown slept through; a longer one fails the call at once."
    )


class Model(_Params):
    """One deployment: a LiteLLM model string plus where and how to reach it.

    Several ``Model``s with the same name and different keys are separate deployments (keys rotate by weight).
    """

    name: str = Field(min_length=1, description="A LiteLLM model string, e.g. 'openai/gpt-4o-mini'.")
    weight: float = Field(1.0, gt=0, description="Routing weight relative to the other models of the pool.")
    api_base: str | None = Field(None, description="Endpoint override (local servers, proxies, the fake provider).")
    api_key: SecretStr | None = Field(None, description="Key for this deployment; default: the provider's env var.")
    sampling: SamplingParams | None = Field(None, description="This model's sampling defaults (lowest precedence).")
    limits: RateLimits | None = Field(None, description="This deployment's own limits, on top of the client's.")
    supports: frozenset[Capability] | None = Field(
        None, description="Declared capabilities for models LiteLLM does not know (local servers, fine-tunes)."
    )
    provider_options: dict[str, Any] = Field(
        default_factory=dict, description="Provider-specific request fields, passed through unchanged."
    )
    input_cost_per_token: float | None = Field(
        None, ge=0, description="USD per prompt token, for models LiteLLM has no price for (budgets need one)."
    )
    output_cost_per_token: float | None = Field(None, ge=0, description="USD per output token; see above.")
    transport: Literal["auto", "litellm"] = Field(
        "auto",
        description="'auto': LiteLLM's provider translation on llmkit's fast HTTP path where it is proven to match "
        "litellm.acompletion, acompletion elsewhere; 'litellm': always litellm.acompletion. Not part of the cache key.",
    )

    def __init__(self, name: str | None = None, /, **data: Any) -> None:
        if name is not None:
            data["name"] = name
        super().__init__(**data)

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def provider(self) -> str:
        """The LiteLLM provider prefix ('openai' for 'openai/gpt-4o-mini'), or '' when the name has none."""
        return self.name.split("/", 1)[0] if "/" in self.name else ""

    def secrets(self) -> list[str]:
        """Every credential this deployment carries: the key, credentials in ``provider_options`` (auth headers,
        ``aws_secret_access_key``, ...) and in ``api_base`` (``?key=``, ``user:pass@``). Redacted from all output."""
        key = [self.api_key.get_secret_value()] if self.api_key is not None else []
        return key + _credential_values(self.provider_options) + _url_credentials(self.api_base)

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # api_base and provider_options may carry credentials (a ?key= query, an Authorization header).
        masked = {"api_base": mask_url(self.api_base), "provider_options": mask_options(self.provider_options)}
        return [(name, masked.get(name, value)) for name, value in super().__repr_args__()]


ToolChoice = Literal["auto", "none", "required"] | str | dict[str, Any]


class RequestOptions(_Params):
    """Per-call request settings that are not sampling."""

    tools: tuple[dict[str, Any], ...] | None = Field(None, description="OpenAI-format tool definitions.")
    tool_choice: ToolChoice | None = Field(None, description="'auto', 'none', 'required', or a tool name.")
    parallel_tool_calls: bool | None = Field(None, description="Allow several tool calls in one reply.")
    response_format: dict[str, Any] | None = Field(None, description="OpenAI-format response_format (json_schema).")
    timeout_s: float | None = Field(None, gt=0, description="Per-attempt timeout in seconds.")
    metadata: dict[str, Any] | None = Field(None, description="Yours; never sent, never part of the cache key.")
    sample: int = Field(0, ge=0, description="Sample index: different values are cached as different answers.")
    deadline_s: float | None = Field(None, gt=0, description="Whole call, every attempt and wait included.")
    first_token_timeout_s: float | None = Field(None, gt=0, description="Streams: longest wait for the first chunk.")
    stall_timeout_s: float | None = Field(None, gt=0, description="Streams: longest gap between two chunks.")
    output: Any = Field(
        None, description="Type of the answer (pydantic model, list[Model], TypedDict, dataclass, Literal, Enum, or a "
        "JSON Schema dict): it is asked for, validated and re-asked; Completion.parsed holds it."
    )
    max_output_retries: int = Field(2, ge=0, description="Re-asks after an answer that does not validate.")
    output_mode: Literal["json_schema", "tool", "json"] | None = Field(
        None, description="How output= is asked for; None: per deployment, from what the model supports."
    )

    @field_validator("output")
    @classmethod
    def _output_usable(cls, value: Any) -> Any:
        if value is not None:
            output_spec(value)  # a type pydantic cannot describe fails here, not at the first request
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_as_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("response_format", mode="before")
    @classmethod
    def _not_a_class(cls, value: Any) -> Any:
        if isinstance(value, type) and issubclass(value, BaseModel):
            raise ValueError(
                f"a pydantic class is structured output, which is not a response_format: use "
                f"output={value.__name__} (complete(..., output={value.__name__})); response_format takes an "
                "OpenAI-format dict such as {'type': 'json_schema', 'json_schema': {...}}"
            )
        return value

    @model_validator(mode="after")
    def _check_tool_choice(self) -> RequestOptions:
        if self.tool_choice not in (None, "auto", "none") and not self.tools:
            raise ValueError(f"tool_choice={self.tool_choice!r} needs tools; pass tools=[...] or drop tool_choice")
        if self.output is not None and (self.tools or self.response_format is not None):
            raise ValueError("output= chooses the response format and tool itself; drop tools/response_format")
        return self


def with_output(options: RequestOptions | None, output: Any) -> RequestOptions | None:
    """``options`` with the call's ``output=`` set (it wins over one in ``options``); unchanged when None."""
    if output is None:
        return options
    given = {name: getattr(options, name) for name in options.model_fields_set} if options is not None else {}
    return RequestOptions(**{**given, "output": output})


class Prompt(_Params):
    """One batch item with its own parameters (they override the batch's, as a call's override the client's)."""

    messages: str | tuple[dict[str, Any], ...] = Field(description="A str, or role/content message dicts.")
    sampling: SamplingParams | None = None
    options: RequestOptions | None = None
    prefer_model: str | None = Field(None, description="Send to this model of the pool when it is available.")

    @field_validator("messages", mode="before")
    @classmethod
    def _messages_checked(cls, value: Any) -> Any:
        """Checked when built, so a bad item is reported where it is read (a file's line), not after sending."""
        return value if isinstance(value, str) else tuple(to_messages(value))


def merge(*layers: SamplingParams | Mapping[str, Any] | None) -> SamplingParams:
    """Merge sampling layers, lowest precedence first (model, client, call); fields a layer did not set fall through.

    Setting either reasoning knob in a higher layer clears the other one from lower layers.
    """
    merged: dict[str, Any] = {}
    for given_layer in layers:
        layer = as_params(SamplingParams, given_layer, "sampling")
        if layer is None:
            continue
        given = layer.model_dump(include=layer.model_fields_set)
        if "reasoning_effort" in given:
            merged.pop("thinking_budget", None)
        if "thinking_budget" in given:
            merged.pop("reasoning_effort", None)
        merged.update(given)
    return SamplingParams(**merged)


P = TypeVar("P", bound=_Params)
F = TypeVar("F", bound=Callable[..., Any])


def as_params(cls: type[P], value: P | Mapping[str, Any] | None, name: str) -> P | None:
    """A parameter object given as itself or as a dict of its fields (validated into it, with the same errors).

    Wherever llmkit takes a ``SamplingParams``, ``RequestOptions``, ``RateLimits`` or ``RetryPolicy``, a dict works
    too (LiteLLM's and LangChain's habit): ``sampling={"temperature": 0}``.
    """
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls(**value)
    raise ConfigError(
        f"{name} must be a {cls.__name__} or a dict of its fields, got {type(value).__name__}; "
        f"write {name}={cls.__name__}(...) or {name}={{...}}"
    )


def _keyword_error(unknown: dict[str, Any], allowed: list[str]) -> ConfigError:
    """Where keywords a call does not take belong: sampling and request fields go in their parameter object."""
    other = [k for k in unknown if k not in SamplingParams.model_fields and k not in RequestOptions.model_fields]
    other = [k for k in other if k != "timeout"]
    if other:
        return ConfigError(
            f"unexpected keyword argument {other[0]!r}{did_you_mean(other[0], allowed)}; "
            f"the call takes {', '.join(allowed)}"
        )
    fixes = []
    for name, cls in (("sampling", SamplingParams), ("options", RequestOptions)):
        given = {("timeout_s" if k == "timeout" else k): v for k, v in unknown.items()
                 if k in cls.model_fields or (k == "timeout" and cls is RequestOptions)}  # fmt: skip
        if given:
            fixes.append(f"{name}={cls.__name__}({', '.join(f'{k}={v!r}' for k, v in given.items())})")
    shown = ", ".join(f"{k}={v!r}" for k, v in unknown.items())
    return ConfigError(
        f"unexpected keyword argument(s) {shown}: sampling and request settings go in a parameter object (or a dict "
        f"of its fields): {', '.join(fixes)}"
    )


def explain_keywords(method: F) -> F:
    """``method`` with an unknown keyword raising ``ConfigError`` that shows where it belongs, instead of a
    ``TypeError``: ``complete("hi", temperature=0)`` says ``sampling=SamplingParams(temperature=0)``."""
    names = [name for name in inspect.signature(method).parameters if name not in ("self", "client")]
    accepted = frozenset(names)

    def check(kwargs: dict[str, Any]) -> None:
        if not accepted.issuperset(kwargs):
            raise _keyword_error({k: v for k, v in kwargs.items() if k not in accepted}, names)

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def checked_async(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                check(kwargs)
            return await method(*args, **kwargs)

        return cast(F, checked_async)

    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            check(kwargs)
        return method(*args, **kwargs)

    return cast(F, checked)
