"""File uploads on the fake: OpenAI and Anthropic ``/v1/files``, Gemini's resumable ``/upload/v1beta/files``.

Shapes follow https://platform.openai.com/docs/api-reference/files, https://docs.anthropic.com/en/api/files-create
and https://ai.google.dev/api/files (the resumable protocol as LiteLLM 1.109's ``GoogleAIStudioFilesHandler`` sends
it: a ``start`` request answered with an ``X-Goog-Upload-URL`` header, then ``upload, finalize`` with the bytes). The
store keeps every upload's bytes and counts them, so a chat part that references an id is echoed with the stored
bytes' type, size and hash (``testing._files``), exactly as an inline part is. ``expire()`` forgets files, as a
provider does when a file expires or is deleted: retrieving one then gives that provider's 404 (403 on Gemini, whose
answer for a missing file is "You do not have permission to access the File ... or it may not exist").
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._anthropic import AnthropicWire
from ._batches import BatchStore
from ._gemini import GeminiWire
from ._openai import OpenAIWire
from ._replies import Wire, stable_id

__all__ = ["GEMINI_FILE_URI", "UploadStore"]

GEMINI_FILE_URI = "https://generativelanguage.googleapis.com/v1beta/files/"
"""The prefix of every Gemini file URI, whatever host served the upload (the real API's canonical name; LiteLLM
passes a ``file_id`` with this prefix through as ``fileData`` and would download any other URL)."""

_BatchUpload = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UploadStore:
    """Uploaded files of all three wires, with the routes that take and describe them."""

    def __init__(self, lock: Any, batch_upload: _BatchUpload) -> None:
        self._lock = lock
        self._batch_upload = batch_upload
        self._wires: dict[str, Wire] = {"openai": OpenAIWire(), "anthropic": AnthropicWire(), "gemini": GeminiWire()}
        self.files: dict[str, tuple[str, bytes]] = {}
        """Every stored file by the id the provider gave it: (MIME type, bytes)."""
        self.requests: Counter[str] = Counter()
        """Calls by "<wire> upload" or "<wire> retrieve" (batch input files are counted in ``batches``)."""
        self._pending: dict[str, tuple[str, str]] = {}
        self._faults: list[tuple[int, bool]] = []

    def fail_next(self, n: int = 1, status: int = 500, *, echo_key: bool = False) -> None:
        """Answer the next ``n`` uploads (of any wire) with HTTP ``status``; ``echo_key`` quotes the API key as
        received in the error message, as a careless gateway does."""
        with self._lock:
            self._faults.extend([(status, echo_key)] * n)

    @property
    def count(self) -> int:
        """Files uploaded (each finished upload of any wire counts once)."""
        with self._lock:
            return sum(n for kind, n in self.requests.items() if kind.endswith(" upload"))

    def expire(self, file_id: str | None = None) -> None:
        """Forget one stored file (or all), as a provider does when it expires or is deleted."""
        with self._lock:
            if file_id is None:
                self.files.clear()
            else:
                self.files.pop(file_id, None)

    def reset(self) -> None:
        with self._lock:
            self.files.clear()
            self.requests.clear()
            self._pending.clear()
            self._faults.clear()

    def lookup(self, file_id: str) -> tuple[str, bytes] | None:
        with self._lock:
            return self.files.get(file_id)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._retrieve)
        app.router.add_post("/upload/v1beta/files", self._gemini_upload)
        app.router.add_get("/v1beta/files/{id}", self._gemini_retrieve)

    def _fault(self, wire: str, request: web.Request) -> web.Response | None:
        with self._lock:
            if not self._faults:
                return None
            status, echo_key = self._faults.pop(0)
            self.requests[f"{wire} failed"] += 1
        key = self._wires[wire].api_key(request.headers, request.query)
        message = f"Upload refused for key {key!r}." if echo_key else None
        return web.json_response(self._wires[wire].error(status, "status", message=message), status=status)

    def _store(self, wire: str, file_id: str, mime: str, data: bytes) -> None:
        with self._lock:
            self.files[file_id] = (mime, data)
            self.requests[f"{wire} upload"] += 1

    def _new_id(self, prefix: str) -> str:
        return prefix + stable_id("upload", len(self.files), time.time_ns())

    # -- OpenAI and Anthropic: one path, told apart by Anthropic's headers ------------------------------------
    @staticmethod
    def _is_anthropic(request: web.Request) -> bool:
        return "anthropic-version" in request.headers or "x-api-key" in request.headers

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        anthropic = self._is_anthropic(request)
        form = await request.post()  # aiohttp keeps the parsed form, so the batch handler can read it again
        if not anthropic and str(form.get("purpose", "")) == "batch":
            return await self._batch_upload(request)
        wire = "anthropic" if anthropic else "openai"
        if (faulted := self._fault(wire, request)) is not None:
            return faulted
        if not self._wires[wire].api_key(request.headers, request.query):
            return web.json_response(self._wires[wire].error(401, "auth"), status=401)
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return web.json_response(self._wires[wire].error(400, "invalid", message="'file' is required"), status=400)
        data, mime = upload.file.read(), upload.content_type or "application/octet-stream"
        file_id = self._new_id("file_" if anthropic else "file-")
        self._store(wire, file_id, mime, data)
        return web.json_response(self._object(wire, file_id, upload.filename, mime, data))

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        wire = "anthropic" if self._is_anthropic(request) else "openai"
        file_id = request.match_info["id"]
        with self._lock:
            self.requests[f"{wire} retrieve"] += 1
        if not self._wires[wire].api_key(request.headers, request.query):
            return web.json_response(self._wires[wire].error(401, "auth"), status=401)
        stored = self.lookup(file_id)
        if stored is None:
            message = f"No such File object: {file_id}"
            return web.json_response(self._wires[wire].error(404, "not_found", message=message), status=404)
        return web.json_response(self._object(wire, file_id, "upload", *stored))

    @staticmethod
    def _object(wire: str, file_id: str, name: str, mime: str, data: bytes) -> dict[str, Any]:
        if wire == "anthropic":
            return {
                "id": file_id,
                "type": "file",
                "filename": name,
                "mime_type": mime,
                "size_bytes": len(data),
                "created_at": "2023-11-14T22:13:20Z",
                "downloadable": False,
            }
        return BatchStore._file_object(file_id, data, name, purpose="user_data")

    # -- Gemini: resumable upload ------------------------------------------------------------------------------
    async def _gemini_upload(self, request: web.Request) -> web.StreamResponse:
        command = request.headers.get("X-Goog-Upload-Command", "")
        if command == "start":
            if (faulted := self._fault("gemini", request)) is not None:
                return faulted
            if not self._wires["gemini"].api_key(request.headers, request.query):
                return web.json_response(self._wires["gemini"].error(401, "auth"), status=401)
            body = await request.json()
            upload_id = self._new_id("up")
            mime = request.headers.get("X-Goog-Upload-Header-Content-Type", "application/octet-stream")
            name = str((body.get("file") or {}).get("display_name") or upload_id)
            with self._lock:
                self._pending[upload_id] = (mime, name)
            url = (
                f"{request.scheme}://{request.host}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
            )
            return web.json_response({}, headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})
        with self._lock:
            pending = self._pending.pop(request.query.get("upload_id", ""), None)
        if pending is None or "finalize" not in command:
            error = self._wires["gemini"].error(400, "invalid", message="Unknown or finished upload session.")
            return web.json_response(error, status=400)
        data = await request.read()
        file_id = self._new_id("")
        self._store("gemini", GEMINI_FILE_URI + file_id, pending[0], data)
        return web.json_response({"file": self._gemini_object(file_id, pending[1], pending[0], data)})

    async def _gemini_retrieve(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["id"]
        with self._lock:
            self.requests["gemini retrieve"] += 1
        if not self._wires["gemini"].api_key(request.headers, request.query):
            return web.json_response(self._wires["gemini"].error(401, "auth"), status=401)
        stored = self.lookup(GEMINI_FILE_URI + file_id)
        if stored is None:
            message = f"You do not have permission to access the File {file_id} or it may not exist."
            return web.json_response(self._wires["gemini"].error(403, "status", message=message), status=403)
        return web.json_response(self._gemini_object(file_id, "upload", *stored))

    @staticmethod
    def _gemini_object(file_id: str, name: str, mime: str, data: bytes) -> dict[str, Any]:
        return {
            "name": f"files/{file_id}",
            "displayName": name,
            "mimeType": mime,
            "sizeBytes": str(len(data)),
            "createTime": "2023-11-14T22:13:20.000000Z",
            "updateTime": "2023-11-14T22:13:20.000000Z",
            "expirationTime": "2023-11-16T22:13:20.000000Z",
            "uri": GEMINI_FILE_URI + file_id,
            "state": "ACTIVE",
            "source": "UPLOADED",
        }
