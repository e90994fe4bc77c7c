"""Provider batches (OpenAI Batch API, Anthropic Message Batches): half the price, answered within 24 hours.

``submit_batch`` plans every prompt as ``batch`` does (same fingerprints), leaves out cached prompts and in-batch
duplicates, splits the rest into as many provider jobs as the provider's limits require, and writes everything to
``<cache>/provider_batches/<job id>/`` *before* anything is submitted: ``inputs`` (one fingerprint per input index),
``items.jsonl`` (each submitted request, for a live retry), ``part-K.jsonl`` (each provider job's input lines) and
``manifest.json`` (job ids and states), each replaced atomically. The job id is derived from the inputs, so a rerun
of the same submit finds the manifest and resumes instead of submitting again; a process killed at any point resumes
with ``BatchJob.load``. Collected answers go into the response cache, so ``client.batch`` of the same prompts is all
cache hits afterwards. A line is named ``i<index>`` (``custom_id``): the first input index that asked it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _sync, errors
from ._batch import _call
from ._batch_manifest import BatchStatus, Manifest, Part, ProviderJobStatus, split, write_atomic
from ._batch_transport import BatchAPI, LineResult, batch_api
from ._cache import disk_tier
from ._params import Model, Prompt, RequestOptions, SamplingParams
from ._result import Completion
from ._types import MessagesInput
from .errors import ConfigError, LLMError, RateLimitError

if TYPE_CHECKING:
    from ._client import LLMClient

__all__ = ["BatchJob", "BatchStatus", "ProviderJobStatus", "asubmit_batch"]

logger = logging.getLogger("llmkit")

_FAILED = ("errored", "expired", "cancelled")


def _batches_dir(client: LLMClient) -> Path:
    disk = disk_tier(client.cache)
    if disk is None:
        raise ConfigError(
            "provider batches need a cache, on disk: the manifest and the answers live there; "
            "LLMClient(..., cache='~/.cache/llmkit')"
        )
    return disk.path / "provider_batches"


def _pick_model(client: LLMClient, model: str | None) -> Model:
    if model is None:
        return client.models[0]
    for candidate in client.models:
        if candidate.name == model:
            return candidate
    raise ConfigError(f"model {model!r} is not in this client's pool {[m.name for m in client.models]}")


async def asubmit_batch(
    client: LLMClient,
    prompts: Iterable[MessagesInput | Prompt],
    *,
    sampling: SamplingParams | None = None,
    options: RequestOptions | None = None,
    model: str | None = None,
    max_requests_per_job: int | None = None,
) -> BatchJob:
    """Submit ``prompts`` as provider batch jobs and return at once; cached prompts and repeats are not submitted.

    ``model``: which deployment of the pool (default: the first). ``max_requests_per_job`` lowers the provider's
    per-job request limit. Raises ``UnsupportedFeatureError`` for a model without a batch API, before sending.
    """
    deployment = _pick_model(client, model)
    api = batch_api(deployment, (options.timeout_s if options else None))
    root = _batches_dir(client)
    index_of = client._deployments.index(deployment)
    fingerprints: list[str] = []
    owners: dict[str, str] = {}
    lines: list[bytes] = []
    items: list[bytes] = []
    for index, prompt in enumerate(prompts):
        plan = client.plan(*_call(prompt, sampling, options))
        request = plan.requests[index_of]
        fp = plan.fingerprints[index_of]
        fingerprints.append(fp)
        if fp in owners or fp in client.cache:  # type: ignore[operator]
            continue
        owners[fp] = custom_id = f"i{index}"
        lines.append(api.line(custom_id, request))
        items.append(_item(custom_id, request.messages, request.sampling, request.options))
    # The same prompts for another endpoint or cache namespace (a fake, a proxy) are another job.
    where = [deployment.name, deployment.api_base or "", client.cache.namespace or ""]  # type: ignore[union-attr]
    digest = hashlib.sha256("\n".join([*where, *fingerprints]).encode()).hexdigest()
    job_id = f"pb-{digest[:20]}"
    directory = root / job_id
    if (directory / "manifest.json").exists():
        job = BatchJob._open(client, directory)
        if not job._finished():
            logger.info("provider batch %s already exists; resuming it instead of submitting again", job_id)
            await job._submit_prepared()
            return job
    directory.mkdir(parents=True, exist_ok=True)
    limit = min(max_requests_per_job or api.max_requests, api.max_requests)
    parts = split(lines, limit, api.max_bytes)
    write_atomic(directory / "inputs", "\n".join(fingerprints).encode())
    write_atomic(directory / "items.jsonl", b"".join(items))
    for k, part in enumerate(parts):
        write_atomic(directory / f"part-{k}.jsonl", b"".join(part))
    manifest = Manifest(
        job_id,
        deployment.name,
        api.provider,
        deployment.api_base,
        len(fingerprints),
        [Part(f"part-{k}.jsonl", len(p)) for k, p in enumerate(parts)],
        len(lines),
    )
    job = BatchJob(client, directory, manifest, fingerprints, api)
    job._save()
    await job._submit_prepared()
    return job


def _item(custom_id: str, messages: Any, sampling: SamplingParams, options: RequestOptions) -> bytes:
    """One submitted request as JSON, enough to send it live later (``retry_failed(live=True)``)."""
    data = {
        "id": custom_id,
        "messages": messages,
        "sampling": sampling.model_dump(mode="json", exclude_unset=True),
        "options": options.model_dump(mode="json", exclude_unset=True),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class BatchJob:
    """A submitted provider batch: poll it, wait for it, collect it, cancel it, retry what failed.

    Build one with ``client.submit_batch(...)``, or ``BatchJob.load(job_id, client)`` in any process.
    """

    poll_initial_s: float = 1.0
    """First wait between polls; each wait is 1.5 times the last, up to ``poll_max_s``."""
    poll_max_s: float = 60.0

    def __init__(
        self, client: LLMClient, directory: Path, manifest: Manifest, fingerprints: list[str], api: BatchAPI
    ) -> None:
        self.client = client
        self.id = manifest.id
        self._dir = directory
        self._manifest = manifest
        self._fingerprints = fingerprints
        self._api = api

    @property
    def model(self) -> str:
        """The model name every line was sent to."""
        return self._manifest.model

    @property
    def api_base(self) -> str | None:
        return self._manifest.api_base

    @property
    def path(self) -> Path:
        """The job's directory: its manifest, inputs and the provider jobs' input lines."""
        return self._dir

    def __repr__(self) -> str:
        return f"<BatchJob {self.id} {self._manifest.model} prompts={self._manifest.prompts}>"

    # -- loading and saving -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, job_id: str, client: LLMClient) -> BatchJob:
        """The job ``job_id`` from ``client``'s cache directory; ``ConfigError`` if unknown or corrupt."""
        directory = _batches_dir(client) / job_id
        if not (directory / "manifest.json").exists():
            known = sorted(p.name for p in _batches_dir(client).glob("pb-*")) if _batches_dir(client).exists() else []
            raise ConfigError(
                f"no provider batch {job_id!r} under {_batches_dir(client)}; known jobs: {known or 'none'} "
                "(check the id and that the client uses the same cache directory)"
            )
        return cls._open(client, directory)

    @classmethod
    def _open(cls, client: LLMClient, directory: Path) -> BatchJob:
        try:
            manifest = Manifest.from_json(json.loads((directory / "manifest.json").read_bytes()))
            fingerprints = (directory / "inputs").read_text().split("\n")
            if len(fingerprints) != manifest.prompts:
                raise ValueError(f"{len(fingerprints)} fingerprints for {manifest.prompts} prompts")
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"the provider batch manifest in {directory} is unreadable ({exc}); nothing was resubmitted. "
                "Its provider jobs may still be running: check them in the provider's console, then delete the "
                "directory to submit again"
            ) from exc
        deployment = next((m for m in client.models if m.name == manifest.model), None)
        if deployment is None:
            deployment = Model(manifest.model, api_base=manifest.api_base)
        return cls(client, directory, manifest, fingerprints, batch_api(deployment))

    def _save(self) -> None:
        write_atomic(self._dir / "manifest.json", json.dumps(self._manifest.to_json(), separators=(",", ":")).encode())

    def _finished(self) -> bool:
        return all(p.state in ("collected", "cancelled") for p in self._manifest.parts)

    # -- submit -------------------------------------------------------------------------------------------------
    async def _submit_prepared(self) -> None:
        """Submit every part not yet submitted; a part caught mid-submit by a crash is looked up first."""
        for k, part in enumerate(self._manifest.parts):
            tag = {"llmkit_job": self.id, "part": str(k), "file": part.file}
            if part.state == "submitting":
                known = {p.provider_id for p in self._manifest.parts if p.provider_id}
                found = await self._api.find(tag, part.lines, part.submitted_at or 0.0, known)
                if found is not None:
                    part.provider_id, part.state = found, "submitted"
                    self._save()
                    continue
                logger.warning("provider batch %s part %d: a submit was interrupted; submitting it again", self.id, k)
            if part.state not in ("prepared", "submitting"):
                continue
            part.state, part.submitted_at = "submitting", time.time()
            self._save()
            part.provider_id = await self._api.submit((self._dir / part.file).read_bytes(), tag)
            part.state = "submitted"
            self._save()

    # -- status and collection ------------------------------------------------------------------------------------
    async def astatus(self) -> BatchStatus:
        """Poll every provider job not yet collected, collect those that ended, and count."""
        await self._poll()
        return self._status()

    status = _sync.sync_twin(astatus)

    async def _poll(self) -> bool:
        """One round over the running parts; True when every part is collected (or cancelled)."""
        for part in self._manifest.parts:
            if part.state != "submitted" or part.provider_id is None:
                continue
            snapshot = await self._api.retrieve(part.provider_id)
            changed = part.provider_status != snapshot.status
            part.provider_status, part.done = snapshot.status, snapshot.done + snapshot.failed
            if snapshot.ended:
                self._collect(part, await self._api.results(snapshot), snapshot.message)
            if changed or snapshot.ended:  # the manifest holds every collected outcome: write it only on news
                self._save()
        return self._finished()

    def _collect(self, part: Part, results: list[LineResult], message: str | None) -> None:
        """Store every answer in the cache and every failure in the manifest; lines without a result fail."""
        assert self.client.cache is not None
        for result in results:
            fp = self._fingerprints[int(result.custom_id[1:])]
            if result.completion is not None:
                self.client.cache.put(fp, result.completion)
                part.outcome[result.custom_id] = "succeeded"
            elif result.error is not None:
                part.outcome[result.custom_id] = result.outcome
                part.errors[result.custom_id] = result.error.to_dict()
        for raw in (self._dir / part.file).read_bytes().splitlines():
            custom_id = json.loads(raw)["custom_id"]
            if custom_id not in part.outcome:
                part.outcome[custom_id] = "errored"
                text = f"{self._manifest.model}: the provider batch returned no result for this prompt"
                part.errors[custom_id] = {"type": "ProviderError", "message": f"{text} ({message or 'no reason'})"}
        part.state = "collected"

    def _status(self) -> BatchStatus:
        jobs, totals = [], dict.fromkeys(("succeeded", "errored", "expired", "cancelled"), 0)
        pending = in_progress = 0
        for k, part in enumerate(self._manifest.parts):
            counts = {name: sum(1 for o in part.outcome.values() if o == name) for name in totals}
            for name in totals:
                totals[name] += counts[name]
            if part.state in ("prepared", "submitting"):
                pending += part.lines
            elif part.state == "submitted":
                in_progress += part.lines
            elif part.state == "cancelled" and not part.outcome:
                totals["cancelled"] += part.lines
            jobs.append(
                ProviderJobStatus(
                    part=k,
                    provider_id=part.provider_id,
                    state=part.state,
                    provider_status=part.provider_status,
                    total=part.lines,
                    succeeded=counts["succeeded"],
                    failed=counts["errored"],
                    expired=counts["expired"],
                    cancelled=counts["cancelled"],
                )
            )
        return BatchStatus(
            id=self.id,
            prompts=self._manifest.prompts,
            cached=self._manifest.prompts - self._manifest.submitted,
            pending=pending,
            in_progress=in_progress,
            succeeded=totals["succeeded"],
            failed=totals["errored"],
            expired=totals["expired"],
            cancelled=totals["cancelled"],
            jobs=jobs,
        )

    async def await_results(
        self, *, show_progress: bool = False, poll_s: float | None = None, timeout_s: float | None = None
    ) -> list[Completion]:
        """Wait until every provider job ended, then every prompt's ``Completion`` in input order.

        Polls with backoff: ``poll_s`` (default ``poll_initial_s``, 1 s) first, each wait 1.5 times the last, up to
        ``poll_max_s`` (60 s); a 429 from the batch endpoint waits its Retry-After. ``timeout_s``: stop waiting with
        ``TimeoutError``; the job keeps running and stays resumable.
        """
        bar = _bar(self._manifest.prompts, show_progress)
        start, wait = time.monotonic(), poll_s or self.poll_initial_s
        try:
            while True:
                try:
                    if await self._poll():
                        break
                except LLMError as exc:  # a 429 or 5xx from the batch endpoint: poll again later, never give up
                    if not exc.retryable:
                        raise
                    logger.info("polling provider batch %s failed (%s); polling again", self.id, exc.message[:200])
                    if isinstance(exc, RateLimitError):
                        wait = max(wait, exc.retry_after or wait)
                if bar is not None:
                    status = self._status()
                    bar.n = status.prompts - status.pending - status.in_progress + self._running_done()
                    bar.refresh()
                if timeout_s is not None and time.monotonic() - start + wait > timeout_s:
                    raise errors.TimeoutError(
                        f"provider batch {self.id} has not ended after {timeout_s:g} s; it keeps running: "
                        f"BatchJob.load({self.id!r}, client).wait() later"
                    )
                await self.client._sleep(wait)
                wait = min(wait * 1.5, self.poll_max_s)
        finally:
            if bar is not None:
                bar.n = bar.total if self._finished() else bar.n
                bar.close()
        return self.results()

    wait = _sync.sync_twin(await_results)

    def _running_done(self) -> int:
        return sum(p.done for p in self._manifest.parts if p.state == "submitted")

    def results(self) -> list[Completion]:
        """Every prompt's ``Completion`` in input order, from the cache and the manifest (no request is sent).

        A prompt whose job has not ended yet, or that failed, expired or was cancelled, has ``error`` set.
        """
        assert self.client.cache is not None
        latest: dict[str, tuple[str, dict[str, Any]]] = {}
        for part in self._manifest.parts:  # a retried line's later part overrides its earlier outcome
            if part.state != "collected":
                for raw in (self._dir / part.file).read_bytes().splitlines():
                    latest[_cid(raw)] = ("pending" if part.state != "cancelled" else "cancelled", {})
            for custom_id, outcome in part.outcome.items():
                if outcome != "retried":
                    latest[custom_id] = (outcome, part.errors.get(custom_id) or {})
        first: dict[str, str] = {}
        out: list[Completion] = []
        for index, fp in enumerate(self._fingerprints):
            owner = first.setdefault(fp, f"i{index}")
            outcome, info = latest.get(owner, ("cached", {}))
            if outcome not in ("succeeded", "cached"):
                out.append(self._failed(outcome, info))
                continue
            hit = self.client.cache.get([fp])
            if hit is None:
                hit = self._failed("errored", {"message": "answered, but the answer is no longer in the cache"})
            elif outcome == "succeeded":  # answered by this batch, not by an earlier run
                hit = hit.model_copy(update={"cache_hit": False, "attempts": 1})
            out.append(hit)
        return out

    def _failed(self, outcome: str, info: dict[str, Any]) -> Completion:
        if outcome == "pending":
            error: LLMError = LLMError(f"provider batch {self.id} has not ended yet", model=self._manifest.model)
        else:
            kind = getattr(errors, str(info.get("type")), None)
            kind = kind if isinstance(kind, type) and issubclass(kind, LLMError) else errors.ProviderError
            error = kind(
                str(info.get("message") or outcome),
                model=self._manifest.model,
                provider=self._manifest.provider,
                status=info.get("status"),
                retryable=info.get("retryable"),
            )
        return Completion(finish_reason="error", error=error, model=self._manifest.model)

    # -- cancel and retry ---------------------------------------------------------------------------------------
    async def acancel(self) -> BatchStatus:
        """Cancel every provider job still running; parts not yet submitted never will be."""
        for part in self._manifest.parts:
            if part.state in ("prepared", "submitting") and part.provider_id is None:
                part.state = "cancelled"
            elif part.state == "submitted" and part.provider_id is not None:
                await self._api.cancel(part.provider_id)
        self._save()
        return await self.astatus()

    cancel = _sync.sync_twin(acancel)

    async def aretry_failed(self, *, live: bool = False) -> list[Completion] | BatchJob:
        """Resubmit only the prompts that failed, expired or were cancelled, as new provider jobs of this batch
        (returns this job), or with ``live=True`` send them through ``client.abatch`` (returns their completions)."""
        failed = {cid for p in self._manifest.parts for cid, o in p.outcome.items() if o in _FAILED}
        if not failed:
            return [] if live else self
        if live:
            return await self._retry_live(failed)
        lines = []
        for part in self._manifest.parts:
            lines += [x for x in (self._dir / part.file).read_bytes().splitlines(True) if _cid(x) in failed]
            for custom_id in failed & part.outcome.keys():
                part.outcome[custom_id] = "retried"
                part.errors.pop(custom_id, None)
        first = len(self._manifest.parts)
        for k, chunk in enumerate(split(lines, self._api.max_requests, self._api.max_bytes), start=first):
            write_atomic(self._dir / f"part-{k}.jsonl", b"".join(chunk))
            self._manifest.parts.append(Part(f"part-{k}.jsonl", len(chunk)))
        self._save()
        await self._submit_prepared()
        return self

    retry_failed = _sync.sync_twin(aretry_failed)

    async def _retry_live(self, failed: set[str]) -> list[Completion]:
        prompts = []
        for raw in (self._dir / "items.jsonl").read_bytes().splitlines():
            item = json.loads(raw)
            if item["id"] in failed:
                prompt = Prompt(
                    messages=item["messages"],
                    sampling=SamplingParams(**item["sampling"]),
                    options=RequestOptions(**item["options"]),
                    prefer_model=self._manifest.model,
                )
                prompts.append((item["id"], prompt))
        completions = await self.client.abatch([p for _, p in prompts])
        for (custom_id, _), completion in zip(prompts, completions, strict=True):
            if completion.ok:
                for part in self._manifest.parts:
                    if custom_id in part.outcome:
                        part.outcome[custom_id] = "succeeded"
                        part.errors.pop(custom_id, None)
        self._save()
        return completions


def _cid(line: bytes) -> str:
    return str(json.loads(line)["custom_id"])


def _bar(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="prompt", dynamic_ncols=True)


def job_ids(client: LLMClient) -> Sequence[str]:
    """The provider batch jobs under this client's cache directory, newest first."""
    root = _batches_dir(client)
    if not root.exists():
        return []
    found = [p for p in root.glob("pb-*") if (p / "manifest.json").exists()]
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]
