"""File uploads on the wire: one ``File`` to a provider's files API, and whether an upload is still there.

The third module allowed to import litellm (lazily), because a files API is a different wire from ``acompletion``:
uploads go through LiteLLM's ``acreate_file`` and checks through ``afile_retrieve`` (litellm 1.109.3,
``litellm/files/main.py``), for the providers whose chat route can then reference the upload by id:

- ``openai``: ``POST /v1/files`` with ``purpose="user_data"``, referenced as ``{"type": "file", "file": {"file_id"}}``
  (https://platform.openai.com/docs/guides/pdf-files). Chat Completions takes PDFs by id; images and audio only
  inline or by URL.
- ``anthropic``: ``POST /v1/files`` (beta ``files-api-2025-04-14``, which LiteLLM adds to both calls); LiteLLM turns
  the ``file`` part into a ``document`` or ``image`` block with ``{"type": "file", "file_id"}`` by its ``format``
  (``anthropic_process_openai_file_message``). https://docs.anthropic.com/en/docs/build-with-claude/files
- ``gemini``: the resumable ``/upload/v1beta/files`` upload; the id is the file's URI, which LiteLLM passes through as
  ``fileData`` (``process_gemini_media``). https://ai.google.dev/gemini-api/docs/files

LiteLLM also uploads to Azure, Vertex (a GCS bucket), Bedrock (S3) and others, but their chat routes reference
uploads differently and nothing here tests them: files for those providers stay inline. Errors are LiteLLM's
(``exception_type`` for the raw SDK/HTTP errors these functions raise), mapped and redacted like a completion's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
from typing import Any

from ._files import File
from ._params import Model
from ._transport import _litellm, _retry_after, map_exception
from .errors import LLMError, ModelNotFoundError, ProviderError, RateLimitError

__all__ = ["UPLOAD_PROVIDERS", "account", "aexists", "aupload", "files_base", "reference"]

logger = logging.getLogger("llmkit")

UPLOAD_PROVIDERS = {"openai": frozenset({"pdf"}), "anthropic": frozenset({"pdf", "image"}), "gemini": None}
"""Providers llmkit uploads to, and the kinds of file their chat route takes by id (None: every kind)."""

# The purpose each files API is given: OpenAI's for files used as model input; Anthropic's only one.
_PURPOSE = {"openai": "user_data", "anthropic": "messages", "gemini": "user_data"}
# Where each provider's key is read when the Model has none (what LiteLLM reads, litellm/main.py and the files configs).
_KEY_ENV = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
# The chat route's api_base has a suffix the files API does not: Gemini's version ("/v1beta", LiteLLM appends
# "/models/..." to it but "upload/v1beta/files" to the root), Anthropic's "/v1/messages" when given in full.
_CHAT_SUFFIX = {"gemini": re.compile(r"/v1(beta|alpha)?/*$"), "anthropic": re.compile(r"/v1/messages/*$")}
# A check that says "gone": OpenAI and Anthropic 404; Gemini 403 ("You do not have permission to access the File ...
# or it may not exist", its answer for an expired file).
_GONE = frozenset({403, 404})


def files_base(model: Model) -> str | None:
    """The api_base of the model's files API: its chat api_base without the chat route's suffix; None: default."""
    if not model.api_base:
        return None
    suffix = _CHAT_SUFFIX.get(model.provider or "")
    return suffix.sub("", model.api_base) if suffix is not None else model.api_base


def account(model: Model) -> str:
    """A short hash of the key the upload is made with: an upload belongs to one account, so a file uploaded with
    one key is not reused with another. Never the key itself."""
    key = model.api_key.get_secret_value() if model.api_key is not None else None
    for name in _KEY_ENV.get(model.provider or "", ()):
        key = key or os.environ.get(name)
    return hashlib.sha256((key or "").encode()).hexdigest()[:16]


def _kwargs(model: Model, timeout_s: float | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"custom_llm_provider": model.provider, "max_retries": 0}
    if (base := files_base(model)) is not None:
        kwargs["api_base"] = base
    if model.api_key is not None:
        kwargs["api_key"] = model.api_key.get_secret_value()
    if timeout_s is not None:
        kwargs["timeout"] = timeout_s
    return kwargs


async def aupload(model: Model, file: File, timeout_s: float | None) -> str:
    """Upload ``file`` to ``model``'s provider; returns the id its chat route references it by."""
    litellm = _litellm()
    name = file.name or f"file.{file.mime_type.rpartition('/')[2]}"
    error: LLMError | None = None
    try:
        created = await litellm.acreate_file(
            file=(name, file.data or b"", file.mime_type),
            purpose=_PURPOSE[model.provider or ""],
            **_kwargs(model, timeout_s),
        )
    except Exception as exc:
        error = _mapped(exc, model)
    if isinstance(error, ModelNotFoundError):
        # A 404 from the files API says nothing about the model: the router must not take the deployment out.
        where = files_base(model) or f"{model.provider}'s default endpoint"
        error = ProviderError(
            f"{model.name}: the files API at {where} answered 404 to an upload ({error.message}); check the "
            "api_base, or send files inline: FileUploads(providers={...: 'never'})",
            model=model.name,
            provider=model.provider,
            status=404,
            retryable=False,
        )
    if error is not None:
        raise error  # outside the except block: LiteLLM's exception (its text may hold a key) is not chained
    logger.debug("uploaded %r (%d bytes) to %s as %s", file, file.size, model.provider, created.id)
    return str(created.id)


async def aexists(model: Model, file_id: str, timeout_s: float | None) -> bool:
    """Whether the provider still has the upload ``file_id``: False when it answers that it is gone."""
    error: LLMError | None = None
    try:
        await _litellm().afile_retrieve(file_id=file_id, **_kwargs(model, timeout_s))
    except Exception as exc:
        error = _mapped(exc, model)
    if error is None:
        return True
    if error.status in _GONE:
        return False
    raise error


def reference(model: Model, file_id: str, file: File) -> dict[str, Any]:
    """The content part that points at an upload, as LiteLLM reads it for the model's provider.

    Anthropic and Gemini need the MIME type (``format``) to pick the block; OpenAI's part has no such field.
    """
    part: dict[str, Any] = {"file_id": file_id}
    if model.provider != "openai":
        part["format"] = file.mime_type
    return {"type": "file", "file": part}


def _mapped(exc: Exception, model: Model) -> LLMError:
    """LiteLLM's files functions raise the provider SDK's or their HTTP handler's errors unmapped (the OpenAI SDK's
    ``NotFoundError``, an ``AnthropicError``): those go through LiteLLM's ``exception_type`` first, as a completion's
    error does, so a 429 is a ``RateLimitError`` and a 5xx is retryable."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    mapped: Exception = exc
    if isinstance(status, int) and not hasattr(exc, "llm_provider"):
        try:
            # exception_type prints a "Give Feedback" banner on stdout unless litellm.suppress_debug_info is set.
            with contextlib.redirect_stdout(io.StringIO()):
                _litellm().exception_type(model=model.name, original_exception=exc, custom_llm_provider=model.provider)
        except Exception as converted:  # noqa: BLE001 - exception_type raises its mapping
            mapped = converted
    error = map_exception(mapped, model)
    if error.status is None and isinstance(status, int):
        error.status = status
    if isinstance(error, RateLimitError) and error.retry_after is None:
        error.retry_after = _retry_after(exc)
    return error
