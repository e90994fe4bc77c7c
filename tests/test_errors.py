"""The error hierarchy, redaction, and the mapping of every LiteLLM exception."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import httpx
import pytest

import llmkit
from llmkit import errors
from llmkit._params import Model
from llmkit._transport import _litellm, map_exception

MARKER = "sk-MARKER-abcdef1234567890"


def test_retryable_flags() -> None:
    assert errors.RateLimitError("x").retryable
    assert errors.TimeoutError("x").retryable
    assert errors.InvalidResponseError("x").retryable
    assert errors.ProviderError("x").retryable
    assert not errors.AuthenticationError("x").retryable
    assert not errors.BadRequestError("x").retryable
    assert not errors.ContextWindowExceededError("x").retryable
    assert not errors.ContentFilterError("x").retryable
    assert not errors.ProviderError("x", retryable=False).retryable


def test_timeout_is_also_the_builtin() -> None:
    assert issubclass(errors.TimeoutError, TimeoutError)


def test_errors_pickle_with_their_fields() -> None:
    err = errors.RateLimitError("slow down", retry_after=2.5, model="m", status=429)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.retry_after, copy.model, copy.status, str(copy)) == (
        errors.RateLimitError,
        2.5,
        "m",
        429,
        "slow down",
    )


def test_redact_removes_key_and_its_prefix() -> None:
    text = f"Incorrect API key provided: {MARKER}. Also {MARKER[:10]}...7890"
    cleaned = errors.redact(text, [MARKER])
    assert "MARKER" not in cleaned


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions"))


def _instances() -> list[tuple[BaseException, type[errors.LLMError]]]:
    litellm = _litellm()
    common = {"llm_provider": "openai", "model": "gpt-4o-mini"}
    return [
        (litellm.ContextWindowExceededError(message="too long", **common), errors.ContextWindowExceededError),
        (litellm.ContentPolicyViolationError(message="policy", **common), errors.ContentFilterError),
        (litellm.UnsupportedParamsError(message="nope", **common), errors.UnsupportedFeatureError),
        (litellm.AuthenticationError(message=f"bad key {MARKER}", **common), errors.AuthenticationError),
        (
            litellm.PermissionDeniedError(message="denied", response=_response(403), **common),
            errors.AuthenticationError,
        ),
        (litellm.NotFoundError(message="no model", **common), errors.ModelNotFoundError),
        (litellm.Timeout(message="slow", **common), errors.TimeoutError),
        (litellm.BadRequestError(message="bad", **common), errors.BadRequestError),
        (litellm.UnprocessableEntityError(message="bad", response=_response(422), **common), errors.BadRequestError),
        (litellm.RateLimitError(message="429", **common), errors.RateLimitError),
        (litellm.ServiceUnavailableError(message="503", **common), errors.ProviderError),
        (litellm.InternalServerError(message="500", **common), errors.ProviderError),
        (litellm.BadGatewayError(message="502", **common), errors.ProviderError),
        (litellm.APIConnectionError(message="reset", **common), errors.ProviderError),
        (litellm.APIError(status_code=500, message="boom", **common), errors.ProviderError),
        *_since_litellm_1_109(litellm, common),
    ]


def _since_litellm_1_109(litellm: Any, common: dict[str, str]) -> list[tuple[BaseException, type[errors.LLMError]]]:
    """Subclasses LiteLLM 1.109 added; each maps by its base class. (The pin admits older releases without them.)"""
    if not hasattr(litellm.exceptions, "MalformedRequestFieldError"):
        return []
    e = litellm.exceptions
    return [
        # A per-caller credential is, in llmkit, one deployment's key: a bad one takes that deployment out.
        (e.CallerCredentialAuthenticationError(message="bad key", **common), errors.AuthenticationError),
        (e.CallerCredentialRateLimitError(message="429", **common), errors.RateLimitError),
        (e.MalformedRequestFieldError(message="bad field", **common), errors.BadRequestError),
        (e.UnsupportedEndpointError(message="no such endpoint", **common), errors.BadRequestError),
        (e.EndpointNotSupportedByModelError(message="not for this model", **common), errors.BadRequestError),
    ]


@pytest.mark.parametrize(("exc", "expected"), _instances(), ids=lambda v: type(v).__name__)
def test_every_litellm_exception_maps_to_the_right_llmkit_error(exc: BaseException, expected: type) -> None:
    mapped = map_exception(exc, Model("openai/gpt-4o-mini", api_key=MARKER))
    assert type(mapped) is expected
    assert "MARKER" not in str(mapped) and "MARKER" not in repr(mapped)
    assert mapped.model == "openai/gpt-4o-mini"


def test_mapping_table_covers_every_litellm_exception_class() -> None:
    """A new LiteLLM exception class must be looked at: mapped above, or listed here as a base class."""
    litellm = _litellm()
    covered = {type(exc) for exc, _ in _instances()}
    bases_or_internal = {
        "APIResponseValidationError",  # base of JSONSchemaValidationError; mapped to InvalidResponseError by class
        "JSONSchemaValidationError",
        "OpenAIError",
        "ImageFetchError",
        "VectorStoreSearchError",
        "PaymentRequiredError",
        "RejectedRequestError",
        "InvalidRequestError",
        "MockException",
        "LiteLLMUnknownProvider",
        "MidStreamFallbackError",  # unwrapped to its original_exception, see test below
        "BudgetExceededError",
        "ModelNotMappedError",
        "GuardrailRaisedException",
        "BlockedPiiEntityError",
        "ModifyResponseException",
        "SensitiveDataRouteException",
    }
    module = litellm.exceptions
    found = {
        name
        for name, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == module.__name__ and not name.endswith("Category")
    }
    unmapped = found - {c.__name__ for c in covered} - bases_or_internal
    assert not unmapped, f"LiteLLM exceptions with no decision in llmkit: {sorted(unmapped)}"


def test_bad_request_subclasses_are_not_retried_even_if_unknown() -> None:
    litellm = _litellm()
    exc = litellm.PaymentRequiredError(message="pay", llm_provider="openai", model="m")
    assert not map_exception(exc, Model("openai/m")).retryable


def test_public_errors_are_exported() -> None:
    for name in errors.__all__:
        if name != "redact":
            assert getattr(llmkit, name) is getattr(errors, name)


def test_gemini_mid_stream_wrapper_is_unwrapped_to_the_real_error() -> None:
    litellm = _litellm()
    inner = litellm.RateLimitError(message="429", llm_provider="gemini", model="gemini-2.5-flash")
    wrapper = litellm.exceptions.MidStreamFallbackError(
        message="stream failed", model="gemini-2.5-flash", llm_provider="gemini", original_exception=inner
    )
    assert type(map_exception(wrapper, Model("gemini/gemini-2.5-flash"))) is errors.RateLimitError
