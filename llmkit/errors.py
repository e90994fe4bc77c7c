"""llmkit's one exception hierarchy.

Every failure a caller can see is an ``LLMError``; LiteLLM's exceptions are mapped onto it in ``_transport.py`` only.
Retry, cooldowns and batches read nothing but ``retryable``::

    LLMError
    ├── ConfigError                      bad parameters or configuration, raised before any request
    ├── UnsupportedFeatureError          the model cannot do what was asked, raised before any request
    ├── NoModelAvailableError            every model of the pool was removed (bad key, unknown model)
    ├── BudgetExceededError              the budget cannot cover the next request; nothing more is sent
    ├── TimeoutError                     also a builtin TimeoutError; retryable
    └── ProviderError                    the provider answered with an error (``status``), or the connection failed
        ├── AuthenticationError          401/403: bad or missing key; never retried
        ├── ModelNotFoundError           404: the provider does not know the model; never retried
        ├── RateLimitError               429, with ``retry_after`` seconds when the provider says; retryable
        ├── InvalidResponseError         the provider's answer could not be parsed; retryable
        └── BadRequestError              400: never retried
            ├── ContextWindowExceededError   the prompt does not fit the model's context window
            ├── ContentFilterError           the provider refused the input on policy grounds
            └── OutputValidationError        the answer never matched ``output=`` (re-asks spent, refusal or cut)

Errors carry provider, model, status, retry_after and request_id, never request bodies, headers or keys.
"""

from __future__ import annotations

import builtins
import difflib
import os
import re
from collections.abc import Iterable

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "InvalidResponseError",
    "LLMError",
    "ModelNotFoundError",
    "NoModelAvailableError",
    "OutputValidationError",
    "ProviderError",
    "RateLimitError",
    "TimeoutError",
    "UnsupportedFeatureError",
    "redact",
]


class LLMError(Exception):
    """Base of every llmkit error. ``retryable`` is a class default that an instance may override."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.model = model
        self.provider = provider
        self.status = status
        self.request_id = request_id
        if retryable is not None:
            self.retryable = retryable

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Keyword-only constructors do not pickle by default; batches cross process boundaries (multiprocessing).
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe summary, used in result files and caches."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "model": self.model,
            "status": self.status,
            "retryable": self.retryable,
        }


def _rebuild(cls: type[LLMError], message: str, state: dict[str, object]) -> LLMError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigError(LLMError, ValueError):
    """Bad parameters or configuration; raised before any request is sent."""


class UnsupportedFeatureError(LLMError, ValueError):
    """The model cannot do what was asked (logprobs, reasoning, ...); raised before any request is sent."""


class NoModelAvailableError(LLMError):
    """Every model of the pool was taken out (authentication or not-found errors); nothing can be sent."""


class BudgetExceededError(LLMError):
    """A ``Budget`` cannot cover the next request: it is not sent, nor is any later one. Never retried."""


class TimeoutError(LLMError, builtins.TimeoutError):
    """The request took longer than its timeout."""

    retryable = True


class ProviderError(LLMError):
    """The provider answered with an error, or the connection to it failed (``status`` is None then).

    Retryable for 5xx, 408, 409 and connection failures.
    """

    retryable = True


class AuthenticationError(ProviderError):
    """401/403: the key is missing, wrong or lacks permission. Never retried; the model leaves the pool."""

    retryable = False


class ModelNotFoundError(ProviderError):
    """404: the provider does not serve this model name. Never retried; the model leaves the pool."""

    retryable = False


class RateLimitError(ProviderError):
    """429: over the provider's limits. ``retry_after`` is the provider's wait in seconds, when it gave one."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class InvalidResponseError(ProviderError):
    """The provider's answer could not be parsed (truncated or invalid JSON)."""

    retryable = True


class BadRequestError(ProviderError):
    """400: the provider rejected the request as malformed. Never retried."""

    retryable = False


class ContextWindowExceededError(BadRequestError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class ContentFilterError(BadRequestError):
    """The provider refused the request on content-policy grounds."""


class OutputValidationError(BadRequestError):
    """The answer never validated against ``output=``: its re-asks were spent, the model refused, or it was cut.

    ``text`` is the last raw answer, ``errors`` the last validation errors (``{"loc": ..., "msg": ...}``) and
    ``reason`` one of "invalid", "refusal" or "length". Never retried: sending the same request again would not help.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str | None = None,
        errors: list[dict[str, str]] | None = None,
        reason: str = "invalid",
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.text = text
        self.errors = errors or []
        self.reason = reason

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "reason": self.reason, "errors": self.errors}


_MIN_SECRET_LEN = 6
# Environment variables whose values are credentials: OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, HF_TOKEN, ...
_SECRET_VAR = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
_NOT_A_SECRET = re.compile(r"^(?:true|false|yes|no|on|off|none|null|\d+(?:\.\d+)?|[./~].*)$", re.IGNORECASE)


def env_secrets() -> list[str]:
    """Values of environment variables named like credentials: the keys LiteLLM reads for a provider
    (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``AWS_SECRET_ACCESS_KEY``, ...) whatever the provider.

    Read at each call (a process may set a key after importing llmkit); flags, numbers and paths are not secrets.
    """
    return [
        value
        for name, value in os.environ.items()
        if _SECRET_VAR.search(name) and len(value) >= _MIN_SECRET_LEN and not _NOT_A_SECRET.match(value)
    ]


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (and of a long prefix of it) in ``text`` by ``***``.

    Providers echo keys back partly masked ("sk-abc...xyz"), so a secret's first 8 characters are removed as well.
    """
    for secret in secrets:
        if not secret or len(secret) < _MIN_SECRET_LEN:
            continue
        text = text.replace(secret, "***")
        text = re.sub(re.escape(secret[:8]) + r"\S*", "***", text)
    return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '': the hint every "unknown name" error ends with."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
