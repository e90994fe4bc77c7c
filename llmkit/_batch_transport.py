"""Provider batch APIs on the wire: request lines, submit, poll, read results, cancel (OpenAI and Anthropic).

The second module allowed to import litellm (lazily, like ``_transport``), because a provider batch is a different
wire from ``acompletion``: each line's body is built by LiteLLM's own request transformation for the provider
(``get_optional_params`` then the provider config's ``transform_request``, as ``BaseLLMHTTPHandler`` does), and each
answered line goes back through LiteLLM's response conversion, so a batch answer is normalized exactly like a live
one (``_normalize.completion_from_response``). OpenAI's files and batches go through LiteLLM's ``acreate_file``,
``acreate_batch``, ``aretrieve_batch``, ``acancel_batch`` and ``afile_content``. LiteLLM 1.109 can retrieve an
Anthropic Message Batch and read its results (converted to OpenAI's batch output lines), but cannot create or cancel
one (``litellm/llms/anthropic/batches/handler.py`` only retrieves): those two calls are sent here with aiohttp, with
the headers of LiteLLM's ``AnthropicBatchesConfig.validate_environment`` and the request's timeout.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import _normalize
from ._params import Model
from ._result import Completion
from ._transport import LiteLLMTransport, Request, _litellm, _retry_after, map_exception
from .errors import ConfigError, LLMError, ProviderError, RateLimitError, UnsupportedFeatureError

__all__ = ["BATCH_PROVIDERS", "BatchAPI", "LineResult", "Snapshot", "batch_api"]

BATCH_PROVIDERS = ("openai", "anthropic")
"""Providers whose batch API llmkit drives. LiteLLM also wraps Azure, Vertex and Bedrock batches, but their input
files differ (deployment names, GCS/S3 buckets) and nothing here tests them yet; Gemini's batch mode is not in
LiteLLM's batches API for the ``gemini/`` route (1.109)."""

_ENDED = frozenset({"completed", "expired", "cancelled", "failed"})
# Params LiteLLMTransport._kwargs adds for acompletion that are not request parameters.
_CALL_ONLY = frozenset({"model", "messages", "num_retries", "max_retries", "api_base", "api_key", "timeout"})
_DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Snapshot:
    """One provider job as the provider reports it, in OpenAI's status names (LiteLLM maps Anthropic's)."""

    status: str
    total: int
    done: int
    failed: int
    output_file_ids: tuple[str, ...] = ()
    message: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in _ENDED


@dataclass(frozen=True)
class LineResult:
    """One line's outcome: a completion, or an error (``outcome``: "errored", "expired" or "cancelled")."""

    custom_id: str
    completion: Completion | None = None
    error: LLMError | None = None
    outcome: str = "succeeded"


@dataclass
class BatchAPI:
    """One deployment's batch API: the provider's limits, its lines, and the calls on its jobs."""

    model: Model
    provider: str
    timeout_s: float = _DEFAULT_TIMEOUT_S
    _mapped: dict[str, tuple[str, Any, dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def max_requests(self) -> int:
        """Requests per provider job. OpenAI: 50,000 per input file (https://platform.openai.com/docs/guides/batch,
        "Rate limits"); Anthropic: 100,000 per Message Batch
        (https://docs.anthropic.com/en/docs/build-with-claude/batch-processing, "Batch limitations")."""
        return 50_000 if self.provider == "openai" else 100_000

    @property
    def max_bytes(self) -> int:
        """Bytes per provider job: OpenAI 200 MB per input file, Anthropic 256 MB per batch (same pages)."""
        return 200 * 10**6 if self.provider == "openai" else 256 * 10**6

    # -- lines ------------------------------------------------------------------------------------------------
    def line(self, custom_id: str, request: Request) -> bytes:
        """One JSONL line of the provider's batch input for this request."""
        body = self.body(request)
        if self.provider == "openai":
            item = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
        else:
            item = {"custom_id": custom_id, "params": body}
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    def body(self, request: Request) -> dict[str, Any]:
        """The request body LiteLLM would send live: its optional-param mapping, then the provider's transform.

        The mapping depends on the parameters only, so it is computed once per distinct set of them (it is ~1 ms
        of CPU per call, most of the cost of a line); the transform runs per line, on that line's messages.
        """
        kwargs = LiteLLMTransport()._kwargs(request)
        params = {k: v for k, v in kwargs.items() if k not in _CALL_ONLY}
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in self._mapped:
            self._mapped[key] = self._map_params(params, kwargs["messages"])
        model, config, optional = self._mapped[key]
        body = dict(
            config.transform_request(
                model=model,
                messages=kwargs["messages"],
                optional_params=copy.deepcopy(optional),
                litellm_params={},
                headers={},
            )
        )
        # What the OpenAI SDK does with these on the live route: extra_body is merged into the JSON, and a
        # stream=False is not sent (compared against the live wire in tests/test_provider_batch.py).
        body.update(body.pop("extra_body", None) or {})
        if body.get("stream") is False:
            del body["stream"]
        return body

    def _map_params(self, params: dict[str, Any], messages: list[Any]) -> tuple[str, Any, dict[str, Any]]:
        litellm = _litellm()
        from litellm.types.utils import LlmProviders
        from litellm.utils import ProviderConfigManager, get_optional_params

        model, provider, _, _ = litellm.get_llm_provider(self.model.name)
        optional = get_optional_params(
            model=model, custom_llm_provider=provider, messages=messages, drop_params=False, **params
        )
        config = ProviderConfigManager.get_provider_chat_config(model=model, provider=LlmProviders(provider))
        if config is None:
            raise UnsupportedFeatureError(f"LiteLLM has no request transformation for {self.model.name}")
        return model, config, optional

    # -- jobs -------------------------------------------------------------------------------------------------
    def _auth(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_retries": 0, "timeout": self.timeout_s}
        if self.model.api_base:
            kwargs["api_base"] = self.model.api_base
        if self.model.api_key is not None:
            kwargs["api_key"] = self.model.api_key.get_secret_value()
        return kwargs

    async def submit(self, lines: bytes, tag: dict[str, str]) -> str:
        """Create one provider job from JSONL ``lines``; returns its id. ``tag`` goes in OpenAI's metadata."""
        try:
            if self.provider == "openai":
                return await self._submit_openai(lines, tag)
            created = await self._anthropic_call("POST", "", {"requests": [json.loads(x) for x in lines.splitlines()]})
            return str(created["id"])
        except Exception as exc:
            raise self._error(exc) from exc

    async def _submit_openai(self, lines: bytes, tag: dict[str, str]) -> str:
        litellm = _litellm()
        upload = await litellm.acreate_file(
            file=("llmkit-batch.jsonl", lines), purpose="batch", custom_llm_provider="openai", **self._auth()
        )
        job = await litellm.acreate_batch(
            completion_window="24h",
            endpoint="/v1/chat/completions",
            input_file_id=upload.id,
            custom_llm_provider="openai",
            metadata=tag,
            **self._auth(),
        )
        return str(job.id)

    async def find(self, tag: dict[str, str], lines: int, since: float, known: set[str]) -> str | None:
        """The job a submit interrupted by a crash created, if the provider has it; None if it never arrived.

        OpenAI: the job whose metadata is ``tag``. Anthropic batches carry no metadata: the one batch created since
        ``since`` (epoch seconds, less 5 minutes of clock skew) with ``lines`` requests that the manifest does not
        know; two such batches are ambiguous, and a ``ConfigError`` is raised rather than risk a second submission.
        """
        try:
            if self.provider == "openai":
                page = await _litellm().alist_batches(custom_llm_provider="openai", limit=100, **self._auth())
                return next((str(j.id) for j in page.data or [] if (j.metadata or {}) == tag), None)
            listing = await self._anthropic_call("GET", "?limit=100", None)
        except Exception as exc:
            raise self._error(exc) from exc
        found = [
            str(b["id"])
            for b in listing.get("data") or []
            if b.get("id") not in known
            and sum((b.get("request_counts") or {}).values()) == lines
            and _epoch(b.get("created_at")) >= since - 300
        ]
        if len(found) > 1:
            raise ConfigError(
                f"a submit to Anthropic was interrupted and {len(found)} recent batches could be it ({found}); "
                "cancel the wrong ones in the console and delete this job's directory to submit again"
            )
        return found[0] if found else None

    async def retrieve(self, job_id: str) -> Snapshot:
        try:
            # Without batch_ignore_default_logging, LiteLLM's logging downloads an ended job's output files a second
            # time to price it (litellm_logging.py, "CALCULATE COST FOR BATCH JOBS"); llmkit prices every line.
            job = await _litellm().aretrieve_batch(
                batch_id=job_id,
                custom_llm_provider=self.provider,
                litellm_metadata={"batch_ignore_default_logging": True},
                **self._auth(),
            )
        except Exception as exc:
            raise self._error(exc) from exc
        counts = job.request_counts
        total, done, failed = (counts.total, counts.completed, counts.failed) if counts else (0, 0, 0)
        if self.provider == "anthropic":
            files: tuple[str, ...] = (job_id,) if job.status in _ENDED else ()
        else:
            files = tuple(f for f in (job.output_file_id, job.error_file_id) if f)
        errors = getattr(getattr(job, "errors", None), "data", None) or []
        message = "; ".join(str(getattr(e, "message", e)) for e in errors) or None
        return Snapshot(str(job.status), total or 0, done or 0, failed or 0, files, message)

    async def cancel(self, job_id: str) -> None:
        try:
            if self.provider == "openai":
                await _litellm().acancel_batch(batch_id=job_id, custom_llm_provider="openai", **self._auth())
            else:
                await self._anthropic_call("POST", f"/{job_id}/cancel", None)
        except Exception as exc:
            raise self._error(exc) from exc

    async def results(self, snapshot: Snapshot) -> list[LineResult]:
        """Every line of an ended job's output (and error) files, as completions or per-line errors."""
        out: list[LineResult] = []
        for file_id in snapshot.output_file_ids:
            try:
                content = await _litellm().afile_content(
                    file_id=file_id, custom_llm_provider=self.provider, **self._auth()
                )
            except Exception as exc:
                raise self._error(exc) from exc
            for raw in content.content.splitlines():
                if raw.strip():
                    out.append(self._line_result(json.loads(raw)))
        return out

    def _line_result(self, line: dict[str, Any]) -> LineResult:
        """One result line: OpenAI's output/error file shape, or Anthropic's Message Batch results shape (which
        LiteLLM 1.109's ``afile_content`` returns unconverted on the files-config path)."""
        custom_id = str(line.get("custom_id"))
        if "result" in line:
            return self._anthropic_result(custom_id, line["result"] or {})
        response, error = line.get("response") or {}, line.get("error") or {}
        status = response.get("status_code")
        body = response.get("body") or {}
        if status == 200:
            return LineResult(custom_id, completion=self._completion(_openai_response(body)))
        message = str(error.get("message") or (body.get("error") or {}).get("message") or "no result")
        code = str(error.get("code") or "")
        for outcome in ("expired", "cancelled"):
            if code == f"batch_{outcome}":
                return self._not_run(custom_id, outcome, message)
        return LineResult(custom_id, error=self._line_error(int(status or 500), message), outcome="errored")

    def _anthropic_result(self, custom_id: str, result: dict[str, Any]) -> LineResult:
        kind = result.get("type")
        if kind == "succeeded":
            return LineResult(custom_id, completion=self._completion(_anthropic_response(result.get("message") or {})))
        if kind in ("canceled", "expired"):
            return self._not_run(custom_id, "cancelled" if kind == "canceled" else "expired", f"the request {kind}")
        from litellm.llms.anthropic.common_utils import ANTHROPIC_ERROR_STATUS_CODE_MAP

        error = (result.get("error") or {}).get("error") or {}
        status = ANTHROPIC_ERROR_STATUS_CODE_MAP.get(str(error.get("type")), 500)
        message = str(error.get("message") or "errored")
        return LineResult(custom_id, error=self._line_error(status, message), outcome="errored")

    def _not_run(self, custom_id: str, outcome: str, message: str) -> LineResult:
        """A line the provider never ran: retryable, since nothing is wrong with the request itself."""
        text = f"{self.model.name}: not answered, the provider batch was {outcome} ({message})"
        return LineResult(custom_id, error=ProviderError(text, **self._fields(), retryable=True), outcome=outcome)

    def _completion(self, response: Any) -> Completion:
        """A LiteLLM ``ModelResponse`` normalized exactly as a live answer, priced at the batch rate."""
        return _normalize.completion_from_response(
            response.model_dump(), cost_usd=self._cost(response), model=self.model.name, latency_s=0.0
        )

    def _cost(self, response: Any) -> float | None:
        """LiteLLM's batch price (``batch_cost_calculator``: the model's ``*_batches`` rates, else half the live
        rates); None for a model with no known price."""
        from litellm.cost_calculator import batch_cost_calculator

        try:
            prompt, completion = batch_cost_calculator(
                usage=response.usage, model=self.model.name, custom_llm_provider=self.provider
            )
        except Exception:
            return None
        return (prompt + completion) or None

    def _line_error(self, status: int, message: str) -> LLMError:
        """A failed line as the llmkit error a live call with this status and message raises (LiteLLM's mapping)."""
        litellm = _litellm()
        from litellm.llms.anthropic.common_utils import AnthropicError
        from litellm.llms.openai.common_utils import OpenAIError

        wire_error = OpenAIError if self.provider == "openai" else AnthropicError
        try:
            # exception_type prints a "Give Feedback" banner on stdout per call (unless the process-wide
            # litellm.suppress_debug_info is set); a batch maps thousands of lines, and stdout is the user's.
            with contextlib.redirect_stdout(io.StringIO()):
                litellm.exception_type(
                    model=self.model.name,
                    original_exception=wire_error(status_code=status, message=message),
                    custom_llm_provider=self.provider,
                )
        except Exception as exc:
            return map_exception(exc, self.model)
        return ProviderError(f"{self.model.name} failed ({status}): {message}", status=status, **self._fields())

    def _fields(self) -> dict[str, Any]:
        return {"model": self.model.name, "provider": self.provider}

    def _error(self, exc: Exception) -> LLMError:
        """An error of a batch endpoint call as llmkit's, Retry-After kept. LiteLLM's files and batches functions
        raise the provider SDK's or httpx's own errors unmapped (the OpenAI SDK's ``RateLimitError``, the Anthropic
        handlers' ``raise_for_status``): those go through LiteLLM's mapping for their status, as a live error does."""
        if isinstance(exc, LLMError):
            return exc
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int) and not hasattr(exc, "llm_provider"):
            error = self._line_error(status, str(exc)[:500])
        else:
            error = map_exception(exc, self.model)
        if isinstance(error, RateLimitError) and error.retry_after is None:
            seen: BaseException | None = exc
            while seen is not None and error.retry_after is None:
                error.retry_after = _retry_after(seen)  # type: ignore[arg-type]
                seen = seen.__cause__ or seen.__context__
        return error

    async def _anthropic_call(self, method: str, suffix: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        """A Message Batches call LiteLLM lacks (create, cancel, list), with LiteLLM's headers and our timeout."""
        import aiohttp
        from litellm.llms.anthropic.batches.transformation import AnthropicBatchesConfig
        from litellm.llms.anthropic.common_utils import AnthropicModelInfo

        auth = self._auth()
        api_base = AnthropicModelInfo().get_api_base(auth.get("api_base"))
        headers = AnthropicBatchesConfig().validate_environment(
            headers={},
            model="",
            messages=[],
            optional_params={},
            litellm_params={},
            api_key=auth.get("api_key") or AnthropicModelInfo().get_api_key(),
            api_base=api_base,
        )
        url = f"{str(api_base).rstrip('/')}/v1/messages/batches{suffix}"
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.request(method, url, json=payload, headers=headers) as reply:
                data = await reply.json(content_type=None)
                if reply.status != 200:
                    message = str((data.get("error") or {}).get("message") or data)
                    raise self._line_error(reply.status, message)
        return dict(data)


def _epoch(stamp: Any) -> float:
    """An RFC 3339 timestamp (Anthropic's ``created_at``) as epoch seconds; 0 if unreadable."""
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _openai_response(body: dict[str, Any]) -> Any:
    """An OpenAI chat completion body as LiteLLM's ``ModelResponse``, the conversion its OpenAI route applies."""
    from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
        convert_to_model_response_object,
    )
    from litellm.types.utils import ModelResponse

    return convert_to_model_response_object(response_object=body, model_response_object=ModelResponse())


def _anthropic_response(message: dict[str, Any]) -> Any:
    """An Anthropic message as LiteLLM's ``ModelResponse``, through ``AnthropicConfig.transform_parsed_response`` as
    on the live route (and as LiteLLM's own batch-results conversion does, with ``json_mode=False``)."""
    import httpx
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig
    from litellm.types.utils import ModelResponse

    raw = httpx.Response(200, json=message, request=httpx.Request("POST", "https://api.anthropic.com/v1/messages"))
    return AnthropicConfig().transform_parsed_response(
        completion_response=message, raw_response=raw, model_response=ModelResponse(), json_mode=False
    )


def batch_api(model: Model, timeout_s: float | None = None) -> BatchAPI:
    """The batch API for this deployment; ``UnsupportedFeatureError`` naming those that have one otherwise."""
    provider: str | None = model.provider
    if not provider:
        try:
            provider = _litellm().get_llm_provider(model.name)[1]
        except Exception:
            provider = None
    if provider not in BATCH_PROVIDERS:
        raise UnsupportedFeatureError(
            f"{model.name} has no provider batch API in llmkit (provider {provider!r}); provider batches work for "
            f"{', '.join(BATCH_PROVIDERS)} models: use client.batch(...) for the others",
            model=model.name,
            provider=provider,
        )
    return BatchAPI(model, provider, timeout_s or _DEFAULT_TIMEOUT_S)
