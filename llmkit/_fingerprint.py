"""The cache key: sha256 of a canonical JSON of everything that changes the answer, and nothing else.

Canonical means dict key order, tuple vs list and 0 vs 0.0 do not change the key (LiteLLM's own cache key gets each
of these wrong). The API key, api_base, timeout and metadata are left out: they do not change the answer. An
``output=`` type enters as its JSON schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from ._files import File
from ._messages import to_messages
from ._output import output_spec
from ._params import RequestOptions, SamplingParams
from ._types import MessagesInput

__all__ = ["fingerprint"]

_VERSION = "llmkit-fingerprint-1"
_OPTION_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "sample")


def _canonical(value: Any) -> Any:
    if isinstance(value, str):  # the most common value first: this runs for every value of every request
        return value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, File):  # by content hash: the same bytes read from another path are the same request
        return value.fingerprint()
    if isinstance(value, BaseModel):
        return _canonical(value.model_dump(exclude_none=True))
    return value


def fingerprint(
    prompt: MessagesInput,
    *,
    model: str,
    sampling: SamplingParams | None = None,
    options: RequestOptions | None = None,
    provider_options: dict[str, Any] | None = None,
) -> str:
    """A hex sha256 naming this exact request; equal for requests that must get the same answer."""
    opts = options.model_dump(include=set(_OPTION_FIELDS), exclude_defaults=True) if options else {}
    payload = {
        "v": _VERSION,
        "model": model,
        "messages": to_messages(prompt),
        "sampling": sampling,
        "options": opts,
        "provider_options": provider_options or None,
    }
    if options is not None and options.output is not None:
        # The schema, not the type's name: changing a field changes the key, renaming nothing else does.
        payload["output"] = output_spec(options.output).key
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
