"""The FakeProvider HTTP server: routing, request log, faults, rate limit and prompt-cache memory.

A real socket rather than a mocked transport, because LiteLLM reaches each provider through a different HTTP
client (the openai SDK, its own httpx handler) and their retries, timeouts and error parsing are what the
tests must exercise. The server runs its own event loop in a daemon thread, so sync tests, async tests and
several event loops can share one instance. State is guarded by one lock because the test thread writes it
while the server thread reads it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._anthropic import AnthropicWire
from ._batches import BatchStore
from ._embeddings import embed_body, embed_problem
from ._files import stored_files
from ._gemini import GeminiWire
from ._openai import OpenAIWire
from ._replies import Meta, Wire, build_reply, context_limit, parse_directives, stable_id
from ._uploads import UploadStore

__all__ = ["FakeProvider", "RecordedRequest"]

logger = logging.getLogger(__name__)

INVALID_KEY = "invalid-key"
FAULT_KINDS = ("status", "reset", "invalid_json", "timeout", "empty", "error_body", "echo_key")
_RESET = "<drop the connection here>"  # a marker in a frame list, never sent
_GARBAGE = '{"id": "garbage", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assist'


@dataclass(frozen=True)
class RecordedRequest:
    """One request that reached a handler. The API key is kept only as a short sha256, never in clear."""

    provider: str
    path: str
    model: str
    body: dict[str, Any]
    api_key_hash: str | None
    stream: bool
    t: float
    """`time.monotonic()` when the request arrived."""


@dataclass(frozen=True)
class _Fault:
    kind: str
    status: int = 500
    retry_after: float | None = None
    hang_s: float = 30.0


def _key_hash(key: str | None) -> str | None:
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else None


def _seconds(value: float) -> str:
    """Seconds as LiteLLM and the SDKs parse them: "2" when whole (LiteLLM int()s it), else "2.5"."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


class FakeProvider:
    """A local OpenAI/Anthropic/Gemini-compatible server for tests, with scriptable faults and counters.

    Use as a context manager or call `start()`/`stop()`. Replies are deterministic (see `_replies`).
    """

    def __init__(self, latency_s: float = 0.0, seed: int = 0, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.latency_s = latency_s
        """Seconds every request waits before it is answered; settable at any time."""
        self.seed = seed
        self._host, self._requested_port, self._port = host, port, port
        self._lock = threading.Lock()
        self._openai = OpenAIWire()
        self._wires: dict[str, Wire] = {w.name: w for w in (self._openai, AnthropicWire(), GeminiWire())}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._requests: list[RecordedRequest] = []
        self._statuses: Counter[int] = Counter()
        self._faults: list[_Fault] = []
        self._error_rate = self._reset_rate = 0.0
        self._fault_status = 500
        self._rng = random.Random(seed)
        self._rpm: float | None = None
        self._buckets: dict[str, tuple[float, float]] = {}
        self._seen: set[str] = set()
        self.batches = BatchStore(self._remember, self._lock)
        """The provider batch endpoints (OpenAI files and batches, Anthropic Message Batches) and their counters."""
        self.uploads = UploadStore(self._lock, self.batches.upload_handler())
        """Files uploaded for prompts (OpenAI, Anthropic and Gemini files APIs): stored bytes, counters, ``expire``."""
        self._disconnects = 0
        self._error_ids = itertools.count(1)
        self._in_flight = self._peak_in_flight = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> FakeProvider:
        """Bind a free port (or the given one) and serve from a daemon thread; returns self."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="llmkit-FakeProvider", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._port = asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=30)
        except BaseException:
            self.stop()  # e.g. the port is taken: do not leave a loop thread behind
            raise
        logger.info("FakeProvider serving on %s", self.url)
        return self

    async def _serve(self) -> int:
        app = web.Application(client_max_size=64 * 2**20, middlewares=[self._count_status, self._count_in_flight])
        openai, anthropic, gemini = self._wires["openai"], self._wires["anthropic"], self._wires["gemini"]
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/chat/completions", self._route(openai, "chat"))
            app.router.add_post(f"{prefix}/embeddings", self._route(openai, "embeddings"))
        app.router.add_post("/v1/messages", self._route(anthropic, "chat"))
        for version in ("v1", "v1beta", "v1alpha"):
            # Gemini embeddings: before models/{target}, which would take them for chat.
            embed = f"/{version}/models/{{target:[^/]+:batchEmbedContents}}"
            app.router.add_post(embed, self._route(gemini, "embeddings"))
            app.router.add_post(f"/{version}/models/{{target}}", self._route(gemini, "chat"))
        self.batches.add_routes(app)
        self.uploads.add_routes(app)
        # handler_cancellation: a client that gives up on a "timeout" fault frees its handler at once.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._requested_port)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def stop(self) -> None:
        """Close the server and its thread; pending requests are dropped."""
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
            except Exception:  # noqa: BLE001 - shutting down anyway; say why in the log
                logger.warning("FakeProvider cleanup failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __repr__(self) -> str:
        state = self.url if self._thread is not None else "stopped"
        return f"<FakeProvider {state} requests={self.count}>"

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """ "http://127.0.0.1:PORT" (after `start()`)."""
        return f"http://{self._host}:{self._port}"

    def api_base(self, provider: str) -> str:
        """The `api_base` to give LiteLLM for "openai", "anthropic" or "gemini" models.

        openai: the SDK appends "/chat/completions"; anthropic: LiteLLM appends "/v1/messages";
        gemini: LiteLLM appends "/models/{model}:generateContent".
        """
        suffix = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}.get(provider)
        if suffix is None:
            raise ValueError(f"unknown provider {provider!r}: use 'openai', 'anthropic' or 'gemini'")
        return self.url + suffix

    # -- counters ----------------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received since the last `reset()`, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """Requests that reached a handler, faulted ones included."""
        with self._lock:
            return len(self._requests)

    @property
    def disconnects(self) -> int:
        """Streams the client hung up on before the server finished sending them."""
        with self._lock:
            return self._disconnects

    def count_for(self, provider: str | None = None, model: str | None = None) -> int:
        """Requests for one provider and/or model name (as sent on the wire, without LiteLLM's prefix)."""
        with self._lock:
            return sum(1 for r in self._requests if provider in (None, r.provider) and model in (None, r.model))

    @property
    def peak_in_flight(self) -> int:
        """The most requests this server held at once (received, not yet answered) since the last `reset()`."""
        with self._lock:
            return self._peak_in_flight

    def count_status(self, status: int) -> int:
        """Responses sent with this HTTP status (connection resets have none)."""
        with self._lock:
            return self._statuses[status]

    # -- behaviour ---------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget requests, counters, faults, the rate limit, prompt-cache and fail-once memory."""
        with self._lock:
            self._requests.clear()
            self._statuses.clear()
            self._faults.clear()
            self._error_rate = self._reset_rate = 0.0
            self._rng = random.Random(self.seed)
            self._rpm = None
            self._buckets.clear()
            self._seen.clear()
            self._disconnects = 0
            self._peak_in_flight = self._in_flight
        self.batches.reset()
        self.uploads.reset()

    def fail_next(
        self,
        n: int = 1,
        kind: str = "status",
        status: int = 500,
        retry_after: float | None = None,
        hang_s: float = 30.0,
    ) -> None:
        """Make the next `n` requests fail.

        kind: "status" (HTTP `status` with the provider's error body; `retry_after` seconds go in the
        Retry-After header), "reset" (connection closed, no response), "invalid_json" (200 with a truncated
        body), "timeout" (wait `hang_s` seconds, then answer normally), "empty" (200 with no answer in it:
        `"choices": []`), "error_body" (200 whose body is the provider's error object) or "echo_key" (HTTP `status`
        with an error message quoting the API key as received, as a careless gateway does).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: use one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.extend([_Fault(kind, status, retry_after, hang_s)] * n)

    def set_faults(
        self, error_rate: float = 0.0, reset_rate: float = 0.0, status: int = 500, seed: int | None = None
    ) -> None:
        """Fail a random share of requests (HTTP `status` or a reset), reproducibly for a given seed."""
        if error_rate < 0 or reset_rate < 0 or error_rate + reset_rate > 1:
            raise ValueError("error_rate and reset_rate must be >= 0 and sum to at most 1")
        with self._lock:
            self._error_rate, self._reset_rate, self._fault_status = error_rate, reset_rate, status
            self._rng = random.Random(self.seed if seed is None else seed)

    def rate_limit(self, requests_per_minute: float | None = 600) -> None:
        """Limit each API key to a token bucket of `requests_per_minute` (refilled continuously); None removes it."""
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be > 0, or None to remove the limit")
        with self._lock:
            self._rpm = requests_per_minute
            self._buckets.clear()

    # -- internals ---------------------------------------------------------------------------------------------
    def _remember(self, key: str) -> bool:
        with self._lock:
            seen = key in self._seen
            self._seen.add(key)
            return seen

    def _mangle(self, texts: list[str]) -> str | None:
        """The structured-output fault asked for anywhere in the prompt (a re-ask keeps the first message), if any.

        The `_once` forms spoil only the first answer for that prompt text, whichever deployment answers it, so its
        re-ask validates even when routed to another model.
        """
        for text in texts:
            found = parse_directives(text)
            if found.refuse:
                return "refuse"
            for name in ("bad_json", "bad_schema"):
                if getattr(found, name):
                    return name
                once = getattr(found, name + "_once")
                if once and not self._remember(f"{name}:" + stable_id(text)):
                    return name
        return None

    def _take_fault(self) -> _Fault | None:
        if self._faults:
            return self._faults.pop(0)
        if self._error_rate or self._reset_rate:
            draw = self._rng.random()
            if draw < self._error_rate:
                return _Fault("status", self._fault_status)
            if draw < self._error_rate + self._reset_rate:
                return _Fault("reset")
        return None

    def _take_token(self, key: str) -> float | None:
        """Spend one request from the key's bucket; None if allowed, else seconds until the next token."""
        with self._lock:
            if self._rpm is None:
                return None
            now, rate = time.monotonic(), self._rpm / 60.0
            tokens, last = self._buckets.get(key, (float(self._rpm), now))
            tokens = min(float(self._rpm), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    @web.middleware
    async def _count_status(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - a bug in the fake must still answer in a shape clients parse
            logger.exception("FakeProvider failed on %s", request.path)
            response = web.json_response(
                {
                    "error": {
                        "message": "FakeProvider internal error",
                        "type": "server_error",
                        "code": 500,
                        "status": "INTERNAL",
                    }
                },
                status=500,
            )
        with self._lock:
            self._statuses[response.status] += 1
        return response

    @web.middleware
    async def _count_in_flight(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return await handler(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _route(self, wire: Wire, endpoint: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, wire, endpoint)

        return handle

    def _error(
        self,
        wire: Wire,
        status: int,
        kind: str,
        model: str,
        *,
        retry_after: float | None = None,
        prompt_tokens: int = 0,
        message: str | None = None,
    ) -> web.Response:
        if kind == "status":  # an injected 401/404/429 looks like the real one, so clients classify it alike
            kind = {401: "auth", 404: "not_found", 429: "rate_limit"}.get(status, kind)
        headers = {"x-request-id": f"req_fake_{next(self._error_ids)}"}  # as OpenAI's; LLMError.request_id reads it
        if retry_after is not None:
            ms = math.ceil(retry_after * 1000)
            headers.update({"retry-after": _seconds(ms / 1000), "retry-after-ms": str(ms)})
        body = wire.error(status, kind, model=model, prompt_tokens=prompt_tokens, message=message)
        return web.json_response(body, status=status, headers=headers)

    async def _fault(
        self, request: web.Request, wire: Wire, fault: _Fault, model: str, stream: bool, key: str | None = None
    ) -> web.StreamResponse | None:
        """Answer with the fault, or None to continue normally (after a "timeout" hang)."""
        logger.debug("FakeProvider fault %s on %s", fault, request.path)
        if fault.kind == "status":
            return self._error(wire, fault.status, "status", model, retry_after=fault.retry_after)
        if fault.kind == "empty":
            return web.json_response(wire.empty(model))
        if fault.kind == "error_body":  # what some gateways send: no status, no code, HTTP 200
            return web.json_response({"error": {"message": "The upstream is overloaded.", "type": "server_error"}})
        if fault.kind == "echo_key":
            message = f"Invalid credentials {key!r} for {model}; check the key you sent."
            return self._error(wire, fault.status, "status", model, message=message)
        if fault.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing may be written on an aborted connection
        if fault.kind == "invalid_json":
            if stream:
                return web.Response(text=f"data: {_GARBAGE}\n\n", content_type="text/event-stream")
            return web.Response(text=_GARBAGE, content_type="application/json")
        await asyncio.sleep(fault.hang_s)
        return None

    async def _handle(self, request: web.Request, wire: Wire, endpoint: str) -> web.StreamResponse:
        stored_files.set(self.uploads.lookup)  # a part that references an uploaded file is echoed with its bytes
        try:
            body = await request.json()
        except ValueError:
            body = None
        path_model = request.match_info.get("target", "").rpartition(":")[0] or None
        valid = isinstance(body, dict)
        body = body if isinstance(body, dict) else {}
        model, key = wire.model(body, path_model), wire.api_key(request.headers, request.query)
        stream = wire.is_stream(body, request.query)
        with self._lock:
            self._requests.append(
                RecordedRequest(wire.name, request.path, model, body, _key_hash(key), stream, time.monotonic())
            )
            fault = self._take_fault() if valid else None
        if not valid:
            return self._error(wire, 400, "invalid", model, message="The request body must be a JSON object.")
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        if fault is not None:
            faulted = await self._fault(request, wire, fault, model, stream, key)
            if faulted is not None:
                return faulted
        if not key or key == INVALID_KEY:
            return self._error(wire, wire.auth_status, "auth", model)
        wait = self._take_token(_key_hash(key) or "")
        if wait is not None:
            return self._error(wire, 429, "rate_limit", model, retry_after=wait)
        if model.startswith("missing"):
            return self._error(wire, 404, "not_found", model)
        if endpoint == "embeddings":
            return self._embeddings(wire, body, model)
        return await self._chat(request, wire, body, model, stream, key)

    def _embeddings(self, wire: Wire, body: dict[str, Any], model: str) -> web.Response:
        problem = embed_problem(wire.name, body)
        if problem is not None:
            status, message = problem
            return self._error(wire, status, "status" if status >= 429 else "invalid", model, message=message)
        return web.json_response(embed_body(wire.name, body))

    async def _chat(
        self, request: web.Request, wire: Wire, body: dict[str, Any], model: str, stream: bool, key: str | None
    ) -> web.StreamResponse:
        prompt = wire.parse(body, model)
        directives = parse_directives(prompt.last_user)
        for kind, wanted in (("empty", directives.empty), ("error_body", directives.error_body)):
            if wanted:
                return await self._fault(request, wire, _Fault(kind), model, stream) or web.Response(status=500)
        if directives.echo_key is not None:
            return await self._fault(request, wire, _Fault("echo_key", directives.echo_key), model, stream, key) or (
                web.Response(status=500)
            )
        once = directives.fail_once
        if once is not None and not self._remember("fail_once:" + stable_id(wire.name, model, prompt.last_user)):
            return self._error(wire, once[0], "status", model, retry_after=once[1])
        if directives.fail is not None:
            return self._error(wire, directives.fail[0], "status", model, retry_after=directives.fail[1])
        if directives.reset or directives.invalid_json:
            kind = "reset" if directives.reset else "invalid_json"
            faulted = await self._fault(request, wire, _Fault(kind), model, stream)
            assert faulted is not None  # only "timeout" continues
            return faulted
        if directives.sleep_s > 0:
            await asyncio.sleep(directives.sleep_s)
        if prompt.prompt_tokens > context_limit(model):
            return self._error(wire, 400, "context", model, prompt_tokens=prompt.prompt_tokens)
        problem = wire.validate(body)
        if problem is not None:
            return self._error(wire, 400, "invalid", model, message=problem)
        rid = stable_id(wire.name, request.path, body)
        mangle = self._mangle(prompt.texts)
        reply = build_reply(prompt, call_id=wire.call_prefix + rid, filtered=directives.filter, mangle=mangle)
        meta = Meta(rid=rid, created=1_700_000_000 + int(rid[:6], 16) % 10_000_000, remember=self._remember)
        if not stream and directives.trickle_s is None:
            return web.json_response(wire.render(prompt, reply, meta, body))
        if not stream:
            text = json.dumps(wire.render(prompt, reply, meta, body))
            pieces = [text[i : i + 10] for i in range(0, len(text), 10)]
            return await self._send(request, pieces, "application/json", directives.trickle_s)
        frames = wire.render_stream(prompt, reply, meta, body)
        if directives.error_after is not None:  # an error event mid-stream, as providers send when they fail late
            event = "event: error\n" if wire.name == "anthropic" else ""
            error = f"{event}data: {json.dumps(wire.error(500, 'status', model=model))}\n\n"
            frames = [*frames[: directives.error_after], error]
        if directives.reset_after is not None:
            frames = [*frames[: directives.reset_after], _RESET]
        return await self._send(request, frames, "text/event-stream", directives.trickle_s, directives.stall_after)

    async def _send(
        self,
        request: web.Request,
        pieces: list[str],
        content_type: str,
        interval_s: float | None,
        stall_after: int | None = None,
    ) -> web.StreamResponse:
        """Write ``pieces`` as they come (SSE frames, or a body trickled ``interval_s`` seconds apart); after
        ``stall_after`` pieces, send nothing more until the client hangs up."""
        response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        await response.prepare(request)
        for number, piece in enumerate(pieces):
            if number == stall_after:
                await self._stall(request)
                return response
            if interval_s:
                await asyncio.sleep(interval_s)
            if piece is _RESET and request.transport is not None:
                request.transport.abort()  # the connection drops mid-stream: no terminating chunk
                raise asyncio.CancelledError
            await response.write(piece.encode())
        await response.write_eof()
        return response

    async def _stall(self, request: web.Request, longest_s: float = 120.0) -> None:
        """Send nothing until the client closes the connection (counted in ``disconnects``), or ``longest_s``."""
        try:
            for _ in range(int(longest_s / 0.02)):
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.02)
            else:
                return
        except asyncio.CancelledError:  # aiohttp may cancel a handler whose client went away
            with self._lock:
                self._disconnects += 1
            raise
        with self._lock:
            self._disconnects += 1
