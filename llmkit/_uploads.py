"""``FileUploads``: when a ``File`` is uploaded through the provider's files API instead of sent inline, and reuse.

A request's files are resolved per attempt, once the deployment is known (``Uploads.resolved``): each ``File`` stays
inline (base64 in the request) or is replaced by a reference to its upload, by the policy and by what the provider
takes. The cache key never sees this: it is computed earlier, from the content hash (``File.fingerprint``), so the
same PDF inline or uploaded, read from two paths, is the same request.

Reuse, by (provider, files api_base, a hash of the key, content hash, MIME type):
- in flight: prompts that share a file wait on one upload (a shielded task: a prompt that gives up does not cancel
  it for the others), so a batch of 100 prompts with one PDF uploads it once;
- in this process: an id uploaded or checked here is used as is;
- across runs: ids are remembered in the client's cache directory (the ``ResponseCache``'s store, under an
  ``upload:`` prefix; Gemini's for 46 h, as it deletes files after 48 h). A remembered id is checked once per process
  with the files API before use; one the provider no longer has (404, Gemini's 403) is forgotten and uploaded again.

Upload failures are llmkit errors raised inside the attempt, so the client's retry policy, deadline and redaction
apply to them as to a completion.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field, field_validator

from . import _upload_transport
from ._cache import ResponseCache
from ._files import File, files_in, with_parts
from ._params import Model, _Params
from ._result import Completion, StreamDelta
from ._transport import Request, Transport
from .errors import UnsupportedFeatureError

__all__ = ["FileUploads", "Uploads"]

logger = logging.getLogger("llmkit")

UploadMode = Literal["auto", "always", "never"]

# The most a request may carry inline, in bytes on the wire (base64 is 4/3 of the file): OpenAI 32 MB of file input
# per request (https://platform.openai.com/docs/guides/pdf-files), Anthropic 32 MB per Messages request
# (https://docs.anthropic.com/en/api/overview#request-size-limits), Gemini 20 MB per request
# (https://ai.google.dev/gemini-api/docs/files). Unknown providers: no known limit, files stay inline.
_INLINE_LIMIT = {"openai": 32_000_000, "anthropic": 32_000_000, "gemini": 20_000_000}
# How long a remembered upload is used: Gemini deletes files after 48 hours (https://ai.google.dev/gemini-api/docs/files);
# OpenAI and Anthropic keep them until deleted.
_KEEP_S = {"gemini": 46 * 3600.0}
_PREFIX = "upload:"


class FileUploads(_Params):
    """When a ``File`` is uploaded (OpenAI, Anthropic, Gemini files APIs) and referenced by id instead of sent inline.

    ``mode`` "auto" uploads a file of ``threshold_bytes`` or more (and any file the provider could not take inline),
    "always" uploads every file the provider takes by id, "never" sends everything inline. ``providers`` sets the
    mode per LiteLLM provider (``{"openai": "never"}``). ``reuse`` remembers uploads in the client's cache directory,
    so a rerun does not upload again. Give it as ``LLMClient(uploads=FileUploads(...))``.
    """

    mode: UploadMode = Field("auto", description="auto (by size), always (when the provider can) or never.")
    threshold_bytes: int = Field(
        10_000_000, ge=0, description="In auto mode, files of this size or more are uploaded (10 MB: 13.3 MB inline)."
    )
    providers: Mapping[str, UploadMode] = Field(default_factory=dict, description="The mode per LiteLLM provider.")
    reuse: bool = Field(True, description="Remember uploads in the cache directory, across calls and runs.")

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: Mapping[str, UploadMode]) -> Mapping[str, UploadMode]:
        for provider, mode in value.items():
            if mode != "never" and provider not in _upload_transport.UPLOAD_PROVIDERS:
                known = ", ".join(sorted(_upload_transport.UPLOAD_PROVIDERS))
                raise ValueError(f"llmkit uploads files to {known} only, not {provider!r}; use 'never' or drop it")
        return dict(value)

    def mode_for(self, provider: str | None) -> UploadMode:
        return self.providers.get(provider or "", self.mode)


def _inline_bytes(files: list[File]) -> int:
    return sum((f.size + 2) // 3 * 4 for f in files)


class Uploads:
    """A client's uploads: the policy, the ids known in this process, the uploads in flight and the disk memory."""

    def __init__(self, policy: FileUploads, cache: ResponseCache | None) -> None:
        self.policy = policy
        self._disk = cache if policy.reuse else None
        self._known: dict[str, tuple[str, float]] = {}
        self._inflight: dict[str, asyncio.Task[str]] = {}

    # -- which files go up -------------------------------------------------------------------------------------
    def chosen(self, model: Model, files: list[File]) -> list[File]:
        """The files of one request to upload for ``model``; ``UnsupportedFeatureError`` when the rest is too big to
        send inline and cannot be uploaded."""
        mode = self.policy.mode_for(model.provider)
        takes = _upload_transport.UPLOAD_PROVIDERS.get(model.provider or "", frozenset())
        can = [f for f in dict.fromkeys(files) if f.data is not None and (takes is None or f.kind in takes)]
        if mode == "always":
            up = can
        elif mode == "auto":
            up = [f for f in can if f.size >= self.policy.threshold_bytes]
        else:
            up = []
        limit = _INLINE_LIMIT.get(model.provider or "")
        inline = [f for f in dict.fromkeys(files) if f not in up]
        if limit is not None and _inline_bytes(inline) > limit:
            spare = [f for f in can if f not in up] if mode != "never" else []
            for file in sorted(spare, key=lambda f: -f.size):  # the biggest first: the fewest uploads
                up.append(file)
                inline.remove(file)
                if _inline_bytes(inline) <= limit:
                    break
            else:
                raise self._too_big(model, inline, limit, mode)
        return up

    def _too_big(self, model: Model, inline: list[File], limit: int, mode: UploadMode) -> UnsupportedFeatureError:
        kinds = ", ".join(sorted({f.kind for f in inline}))
        if mode == "never":
            fix = f"allow uploads for it: LLMClient(uploads=FileUploads(providers={{{model.provider!r}: 'auto'}}))"
        else:
            fix = "send it to a model whose provider takes uploads of that kind (Gemini takes every kind), or shrink it"
        return UnsupportedFeatureError(
            f"{model.name}: the {kinds} files of this prompt are {_inline_bytes(inline) / 1e6:.1f} MB as base64, over "
            f"{model.provider}'s {limit / 1e6:g} MB inline limit, and llmkit cannot upload them there; {fix}",
            model=model.name,
            provider=model.provider,
        )

    def check(self, request: Request) -> None:
        """Raise before sending when a file cannot reach this deployment, inline or uploaded."""
        if files := files_in(request.messages):
            self.chosen(request.model, files)

    # -- the attempt -------------------------------------------------------------------------------------------
    async def resolved(self, request: Request) -> Request:
        """The request with each file to upload replaced by a reference to its upload (uploaded if needed)."""
        files = files_in(request.messages)
        up = self.chosen(request.model, files) if files else []
        if not up:
            return request
        ids = await asyncio.gather(*(self._id(request.model, f, request.timeout_s) for f in up))
        uploaded = dict(zip(up, ids, strict=True))
        model = request.model

        def part(file: File) -> Any:
            file_id = uploaded.get(file)
            return file if file_id is None else _upload_transport.reference(model, file_id, file)

        return replace(request, messages=with_parts(request.messages, part))

    def acomplete(self, request: Request, transport: Transport) -> Awaitable[Completion]:
        """``transport.acomplete`` of the resolved request; a request without files goes straight through (no
        coroutine of its own: this runs for every prompt)."""
        if not files_in(request.messages):
            return transport.acomplete(request)
        return self._acomplete(request, transport)

    async def _acomplete(self, request: Request, transport: Transport) -> Completion:
        return await transport.acomplete(await self.resolved(request))

    def astream(self, request: Request, transport: Transport) -> AsyncIterator[StreamDelta | Completion]:
        if not files_in(request.messages):
            return transport.astream(request)
        return self._astream(request, transport)

    async def _astream(self, request: Request, transport: Transport) -> AsyncIterator[StreamDelta | Completion]:
        stream = transport.astream(await self.resolved(request))
        try:
            async for item in stream:
                yield item
        finally:
            if (aclose := getattr(stream, "aclose", None)) is not None:
                await aclose()

    # -- reuse -------------------------------------------------------------------------------------------------
    def _key(self, model: Model, file: File) -> str:
        where = _upload_transport.files_base(model) or "default"
        parts = (model.provider, where, _upload_transport.account(model), file.sha256, file.mime_type)
        return _PREFIX + "|".join(str(p) for p in parts)

    async def _id(self, model: Model, file: File, timeout_s: float | None) -> str:
        key = self._key(model, file)
        known = self._known.get(key)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        task = self._inflight.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(self._fetch(model, file, key, timeout_s))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    def _settle(self, key: str, task: asyncio.Task[str]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: the waiters that are left raise it, and no one else should be told

    async def _fetch(self, model: Model, file: File, key: str, timeout_s: float | None) -> str:
        """The remembered upload if the provider still has it, else a new upload (remembered)."""
        keep_s = _KEEP_S.get(model.provider or "")
        remembered = self._recall(key)
        if remembered is not None:
            if await _upload_transport.aexists(model, remembered, timeout_s):
                self._known[key] = (remembered, time.monotonic() + (keep_s or float("inf")))
                return remembered
            logger.info("%s no longer has upload %s of %r; uploading it again", model.provider, remembered, file)
            self._forget(key)
        file_id = await _upload_transport.aupload(model, file, timeout_s)
        self._known[key] = (file_id, time.monotonic() + (keep_s or float("inf")))
        self._remember(key, file_id, keep_s)
        return file_id

    def _disk_key(self, key: str) -> str:
        assert self._disk is not None
        return f"{self._disk.namespace}:{key}" if self._disk.namespace else key

    def _recall(self, key: str) -> str | None:
        if self._disk is None:
            return None
        try:
            value = self._disk._store.get(self._disk_key(key))
        except Exception as exc:  # noqa: BLE001 - a bad entry is a miss: the file is uploaded again
            logger.warning("cannot read the remembered upload %s (%s); uploading again", key, exc)
            return None
        return value if isinstance(value, str) and value else None

    def _remember(self, key: str, file_id: str, keep_s: float | None) -> None:
        if self._disk is None:
            return
        try:
            self._disk._store.set(self._disk_key(key), file_id, expire=keep_s)
        except Exception as exc:  # noqa: BLE001 - the answer still comes; a rerun uploads again
            logger.warning("cannot remember upload %s in %s (%s); a rerun uploads it again", key, self._disk.path, exc)

    def _forget(self, key: str) -> None:
        if self._disk is not None:
            try:
                self._disk._store.delete(self._disk_key(key))
            except Exception:  # noqa: BLE001 - overwritten by the new upload anyway
                logger.debug("cannot forget upload %s", key, exc_info=True)
