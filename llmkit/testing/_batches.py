"""Provider batch endpoints of the FakeProvider: OpenAI Files + Batch API and Anthropic Message Batches.

Shapes follow https://platform.openai.com/docs/api-reference/batch, https://platform.openai.com/docs/api-reference/files
and https://docs.anthropic.com/en/api/creating-message-batches. Every line is answered by the same code as the live
endpoint (`answer`: `build_reply` and the wire's `render`), so a provider batch and a live batch of the same requests
get the same replies. A batch moves through its states over `duration_s` of wall time (validating 10%, in progress
to 80%, finalizing, then completed), and lines are answered in order as time passes, so a cancel part-way leaves the
first lines answered and the rest cancelled. `expire_after` makes new batches expire once that many lines were
answered. `received` counts every line uploaded, by request body, so a test can prove none was sent twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from ._anthropic import AnthropicWire
from ._openai import OpenAIWire
from ._replies import Meta, Wire, build_reply, context_limit, parse_directives, stable_id

__all__ = ["BatchStore", "answer"]

_CREATED = 1_700_000_000
_CHAT_PATH = "/v1/chat/completions"
_MESSAGES_PATH = "/v1/messages"
_OPENAI_KEY_ERROR = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}}
_NO_FILE = {"error": {"message": "No such file", "type": "invalid_request_error"}}
_ANTHROPIC_KEY_ERROR = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}


def answer(wire: Wire, path: str, body: dict[str, Any], remember: Callable[[str], bool]) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) the live endpoint at `path` gives for `body`: the reply, or the error a directive asks."""
    model = wire.model(body, None)
    prompt = wire.parse(body, model)
    directives = parse_directives(prompt.last_user)
    if directives.fail is not None:
        return directives.fail[0], wire.error(directives.fail[0], "status", model=model)
    if prompt.prompt_tokens > context_limit(model):
        return 400, wire.error(400, "context", model=model, prompt_tokens=prompt.prompt_tokens)
    problem = wire.validate(body)
    if problem is not None:
        return 400, wire.error(400, "invalid", model=model, message=problem)
    rid = stable_id(wire.name, path, body)
    reply = build_reply(prompt, call_id=wire.call_prefix + rid, filtered=directives.filter)
    meta = Meta(rid=rid, created=_CREATED + int(rid[:6], 16) % 10_000_000, remember=remember)
    return 200, wire.render(prompt, reply, meta, body)


@dataclass
class _Batch:
    """One provider batch: its lines, when it started, and how it ends."""

    id: str
    provider: str
    lines: list[tuple[str, dict[str, Any]]]
    started: float
    duration_s: float
    created: float
    """Wall-clock creation time (epoch seconds), reported as Anthropic's ``created_at``."""
    expire_after: int | None
    input_file_id: str | None = None
    metadata: dict[str, Any] | None = None
    cancelled_at: float | None = None
    cancelled_done: int | None = None
    results: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def done_lines(self) -> int:
        """Lines answered so far: none while validating, then evenly until 80% of the duration."""
        if self.cancelled_done is not None:
            return self.cancelled_done
        share = (self.elapsed() / max(self.duration_s, 1e-9) - 0.1) / 0.7
        done = int(len(self.lines) * min(max(share, 0.0), 1.0))
        return min(done, self.expire_after) if self.expire_after is not None else done

    def ended(self) -> bool:
        if self.cancelled_at is not None:
            return time.monotonic() - self.cancelled_at >= min(0.2, self.duration_s)
        return self.elapsed() >= self.duration_s

    def phase(self) -> str:
        """validating, in_progress, finalizing, cancelling, cancelled, expired or completed (OpenAI's names)."""
        if self.cancelled_at is not None:
            return "cancelled" if self.ended() else "cancelling"
        share = self.elapsed() / max(self.duration_s, 1e-9)
        if share >= 1.0:
            return "expired" if self.expire_after is not None and self.expire_after < len(self.lines) else "completed"
        return "validating" if share < 0.1 else "in_progress" if share < 0.8 else "finalizing"


class BatchStore:
    """Files and batches of both providers, with the routes that serve them."""

    def __init__(self, remember: Callable[[str], bool], lock: Any) -> None:
        self._remember = remember
        self._lock = lock
        self._openai, self._anthropic = OpenAIWire(), AnthropicWire()
        self.duration_s = 2.0
        """Seconds from creation until a new batch ends."""
        self.expire_after: int | None = None
        """New batches expire once this many lines were answered (None: they complete)."""
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.received: Counter[str] = Counter()
        """Every line received in a batch, keyed by a hash of (provider, request body)."""
        self.requests: Counter[str] = Counter()
        """Batch API calls by kind: "upload", "create", "retrieve", "cancel", "content", "results", "list"."""
        self._faults: list[tuple[str, int, float | None]] = []

    def fail_next(
        self, kind: str = "retrieve", n: int = 1, status: int = 500, retry_after: float | None = None
    ) -> None:
        """Answer the next `n` batch API calls of `kind` with HTTP `status` (and Retry-After seconds if given)."""
        with self._lock:
            self._faults.extend([(kind, status, retry_after)] * n)

    def reset(self) -> None:
        with self._lock:
            self.duration_s, self.expire_after = 2.0, None
            self.files.clear()
            self.batches.clear()
            self.received.clear()
            self.requests.clear()
            self._faults.clear()

    @property
    def lines_received(self) -> int:
        with self._lock:
            return sum(self.received.values())

    def upload_handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The handler for a batch input file; ``/v1/files`` is routed by ``testing._uploads``, which also takes
        OpenAI's and Anthropic's other uploads on that path."""
        return self._guard(self._upload, "upload")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/files/{id}/content", self._guard(self._content, "content"))
        app.router.add_post("/v1/batches", self._guard(self._create_openai, "create"))
        app.router.add_get("/v1/batches", self._guard(self._list_openai, "list"))
        app.router.add_get("/v1/batches/{id}", self._guard(self._retrieve_openai, "retrieve"))
        app.router.add_post("/v1/batches/{id}/cancel", self._guard(self._cancel_openai, "cancel"))
        app.router.add_post("/v1/messages/batches", self._guard(self._create_anthropic, "create"))
        app.router.add_get("/v1/messages/batches", self._guard(self._list_anthropic, "list"))
        app.router.add_get("/v1/messages/batches/{id}", self._guard(self._retrieve_anthropic, "retrieve"))
        app.router.add_get("/v1/messages/batches/{id}/results", self._guard(self._results_anthropic, "results"))
        app.router.add_post("/v1/messages/batches/{id}/cancel", self._guard(self._cancel_anthropic, "cancel"))

    def _guard(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], kind: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Count the call and refuse a missing key with the provider's 401."""

        async def handle(request: web.Request) -> web.StreamResponse:
            anthropic = request.path.startswith("/v1/messages")
            wire = self._anthropic if anthropic else self._openai
            with self._lock:
                self.requests[kind] += 1
                fault = next((f for f in self._faults if f[0] == kind), None)
                if fault is not None:
                    self._faults.remove(fault)
            if fault is not None:
                headers = {"retry-after": f"{fault[2]:g}"} if fault[2] is not None else {}
                return web.json_response(wire.error(fault[1], "status"), status=fault[1], headers=headers)
            if not wire.api_key(request.headers, request.query):
                return web.json_response(_ANTHROPIC_KEY_ERROR if anthropic else _OPENAI_KEY_ERROR, status=401)
            return await handler(request)

        return handle

    def _new(self, provider: str, lines: list[tuple[str, dict[str, Any]]], file_id: str | None = None) -> _Batch:
        with self._lock:
            prefix = "msgbatch_" if provider == "anthropic" else "batch_"
            batch_id = prefix + stable_id(provider, len(self.batches), time.time_ns())
            for _, body in lines:
                self.received[stable_id(provider, body)] += 1
            batch = _Batch(
                batch_id, provider, lines, time.monotonic(), self.duration_s, time.time(), self.expire_after, file_id
            )
            self.batches[batch_id] = batch
            return batch

    def _get(self, request: web.Request) -> _Batch:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": {"message": "No such batch", "type": "invalid_request_error"}}),
                content_type="application/json",
            )
        return batch

    def _settle(self, batch: _Batch) -> None:
        """Answer the lines once the batch has ended: the first `done_lines()` succeed or fail, the rest did not run."""
        if batch.outcome or not batch.ended():
            return
        done = batch.done_lines()
        wire = self._anthropic if batch.provider == "anthropic" else self._openai
        path = _MESSAGES_PATH if batch.provider == "anthropic" else _CHAT_PATH
        for n, (custom_id, body) in enumerate(batch.lines):
            if n < done:
                status, reply = answer(wire, path, body, self._remember)
                batch.results.append((custom_id, status, reply))
                batch.outcome.append("succeeded" if status == 200 else "errored")
            else:
                batch.results.append((custom_id, 0, {}))
                batch.outcome.append("canceled" if batch.cancelled_at is not None else "expired")

    # -- OpenAI --------------------------------------------------------------------------------------------------
    async def _upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form.get("file")
        data = upload.file.read() if isinstance(upload, web.FileField) else str(upload or "").encode()
        with self._lock:
            file_id = "file-" + stable_id("file", len(self.files), time.time_ns())
            self.files[file_id] = data
        return web.json_response(self._file_object(file_id, data, str(getattr(upload, "filename", "input.jsonl"))))

    @staticmethod
    def _file_object(file_id: str, data: bytes, name: str, purpose: str = "batch") -> dict[str, Any]:
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": _CREATED,
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }

    async def _content(self, request: web.Request) -> web.StreamResponse:
        data = self.files.get(request.match_info["id"])
        if data is None:
            return web.json_response(_NO_FILE, status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _create_openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        data = self.files.get(str(body.get("input_file_id")))
        if data is None:
            return web.json_response(_NO_FILE, status=400)
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        batch = self._new("openai", [(line["custom_id"], line["body"]) for line in lines], body["input_file_id"])
        batch.metadata = body.get("metadata")
        return web.json_response(self._openai_object(batch))

    async def _retrieve_openai(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._openai_object(self._get(request)))

    async def _list_openai(self, request: web.Request) -> web.StreamResponse:
        items = [self._openai_object(b) for b in self.batches.values() if b.provider == "openai"]
        return web.json_response({"object": "list", "data": items[::-1], "has_more": False})

    async def _cancel_openai(self, request: web.Request) -> web.StreamResponse:
        batch = self._get(request)
        self._cancel(batch)
        return web.json_response(self._openai_object(batch))

    def _cancel(self, batch: _Batch) -> None:
        if batch.cancelled_at is None and not batch.ended():
            batch.cancelled_done = batch.done_lines()
            batch.cancelled_at = time.monotonic()

    def _openai_object(self, batch: _Batch) -> dict[str, Any]:
        phase = batch.phase()
        self._settle(batch)
        failed = batch.outcome.count("errored")
        output_id = error_id = None
        if batch.outcome:
            output_id, error_id = self._openai_files(batch)
        stamp = _CREATED + int(batch.elapsed())
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": _CHAT_PATH,
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": phase,
            "output_file_id": output_id,
            "error_file_id": error_id,
            "created_at": _CREATED,
            "in_progress_at": _CREATED if phase != "validating" else None,
            "expires_at": _CREATED + 86400,
            "finalizing_at": stamp if phase in ("finalizing", "completed") else None,
            "completed_at": stamp if phase == "completed" else None,
            "failed_at": None,
            "expired_at": stamp if phase == "expired" else None,
            "cancelling_at": _CREATED if batch.cancelled_at is not None else None,
            "cancelled_at": stamp if phase == "cancelled" else None,
            "request_counts": {
                "total": len(batch.lines),
                "completed": batch.outcome.count("succeeded") if batch.outcome else batch.done_lines(),
                "failed": failed,
            },
            "metadata": batch.metadata,
        }

    def _openai_files(self, batch: _Batch) -> tuple[str | None, str | None]:
        """The output file (answered lines) and the error file (failed, expired and cancelled lines), once."""
        out_id, err_id = f"file-out-{batch.id}", f"file-err-{batch.id}"
        if out_id not in self.files:
            out: list[dict[str, Any]] = []
            err: list[dict[str, Any]] = []
            for (custom_id, status, reply), outcome in zip(batch.results, batch.outcome, strict=True):
                line: dict[str, Any] = {"id": "batch_req_" + stable_id(batch.id, custom_id), "custom_id": custom_id}
                if outcome in ("succeeded", "errored"):
                    line["response"] = {"status_code": status, "request_id": "req_" + custom_id, "body": reply}
                    line["error"] = None
                    (out if outcome == "succeeded" else err).append(line)
                else:
                    code = "batch_cancelled" if outcome == "canceled" else "batch_expired"
                    message = f"This request was not executed: the batch was {outcome}."
                    err.append({**line, "response": None, "error": {"code": code, "message": message}})
            with self._lock:
                self.files[out_id] = "".join(json.dumps(x) + "\n" for x in out).encode()
                self.files[err_id] = "".join(json.dumps(x) + "\n" for x in err).encode()
        return (out_id if self.files[out_id] else None), (err_id if self.files[err_id] else None)

    # -- Anthropic -----------------------------------------------------------------------------------------------
    async def _create_anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        requests = body.get("requests") or []
        batch = self._new("anthropic", [(r["custom_id"], r["params"]) for r in requests])
        return web.json_response(self._anthropic_object(batch, request))

    async def _retrieve_anthropic(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._anthropic_object(self._get(request), request))

    async def _list_anthropic(self, request: web.Request) -> web.StreamResponse:
        items = [self._anthropic_object(b, request) for b in self.batches.values() if b.provider == "anthropic"]
        return web.json_response({"data": items[::-1], "has_more": False, "first_id": None, "last_id": None})

    async def _cancel_anthropic(self, request: web.Request) -> web.StreamResponse:
        batch = self._get(request)
        self._cancel(batch)
        return web.json_response(self._anthropic_object(batch, request))

    def _anthropic_object(self, batch: _Batch, request: web.Request) -> dict[str, Any]:
        phase = batch.phase()
        self._settle(batch)
        counts = Counter(batch.outcome)
        ended = bool(batch.outcome)
        status = "ended" if ended else "canceling" if phase == "cancelling" else "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {
                "processing": 0 if ended else len(batch.lines),
                "succeeded": counts["succeeded"],
                "errored": counts["errored"],
                "canceled": counts["canceled"],
                "expired": counts["expired"],
            },
            "ended_at": "2023-11-15T00:00:00Z" if ended else None,
            "created_at": datetime.fromtimestamp(batch.created, timezone.utc).isoformat().replace("+00:00", "Z"),
            "expires_at": "2023-11-15T22:13:20Z",
            "cancel_initiated_at": "2023-11-14T22:13:21Z" if batch.cancelled_at is not None else None,
            "results_url": f"{request.url.origin()}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    async def _results_anthropic(self, request: web.Request) -> web.StreamResponse:
        batch = self._get(request)
        self._settle(batch)
        if not batch.outcome:
            error = {"type": "invalid_request_error", "message": f"Batch {batch.id} has not ended yet."}
            return web.json_response({"type": "error", "error": error}, status=400)
        lines = []
        for (custom_id, _, reply), outcome in zip(batch.results, batch.outcome, strict=True):
            result: dict[str, Any] = {"type": outcome}
            if outcome == "succeeded":
                result["message"] = reply
            elif outcome == "errored":
                result["error"] = reply
            lines.append(json.dumps({"custom_id": custom_id, "result": result}) + "\n")
        return web.Response(text="".join(lines), content_type="application/binary")
