"""``llmkit batch submit|status|collect|cancel`` and ``llmkit run --provider-batch``: provider batch APIs from the CLI.

Kept apart from ``cli`` and ``_cli_run``, which register it. ``submit`` prints the job id on stdout (the one thing a
script needs); everything else goes to stderr through ``note``, results to the output file in ``run``'s line format.
The input ids of the prompts file are kept next to the job's manifest (``cli_ids.json``), so ``collect`` in another
process writes the same lines ``run`` would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from . import BatchJob, ConfigError, LLMClient, Model, ResponseCache
from ._cli_input import PromptFile, format_of
from ._cli_run import EXIT_FAILED, EXIT_OK, UsageError, _record, note, setup, table, write
from ._provider_batch import job_ids

__all__ = ["add_parsers", "provider_batch_results"]

_IDS = "cli_ids.json"


def add_parsers(commands: Any, common: argparse.ArgumentParser, source: argparse.ArgumentParser) -> None:
    """Register ``llmkit batch`` and its four commands."""
    batch = commands.add_parser("batch", help="provider batch APIs: half the price, answered within 24 hours")
    sub = batch.add_subparsers(dest="batch_command", metavar="COMMAND", required=True)
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument("--cache-dir", metavar="DIR", help="default: LLMKIT_CACHE_DIR or ~/.cache/llmkit")
    submit = sub.add_parser("submit", parents=[common, source, cache], help="submit a JSONL file of prompts")
    submit.add_argument("prompts", metavar="PROMPTS.jsonl", help="the same input lines as llmkit run")
    submit.add_argument("--max-requests-per-job", type=int, metavar="N", help="split into provider jobs of N lines")
    submit.set_defaults(handler=cmd_submit)
    status = sub.add_parser("status", parents=[common, source, cache], help="poll a job (or list the jobs)")
    status.add_argument("job", nargs="?", metavar="JOB", help="a job id (default: list every job)")
    status.set_defaults(handler=cmd_status)
    collect = sub.add_parser("collect", parents=[common, source, cache], help="wait for a job, write its results")
    collect.add_argument("job", metavar="JOB")
    collect.add_argument("-o", "--output", required=True, metavar="RESULTS.jsonl", help="where to write the results")
    collect.add_argument("--no-wait", action="store_true", help="fail at once if the job has not ended")
    collect.add_argument("--no-progress", action="store_true", help="no progress bar")
    collect.set_defaults(handler=cmd_collect)
    cancel = sub.add_parser("cancel", parents=[common, source, cache], help="cancel every provider job of a job")
    cancel.add_argument("job", metavar="JOB")
    cancel.set_defaults(handler=cmd_cancel)


def _cache(args: argparse.Namespace) -> ResponseCache:
    return ResponseCache(Path(args.cache_dir).expanduser() if args.cache_dir else args.settings.cache_dir)


def _load(args: argparse.Namespace) -> BatchJob:
    """The job, polled with the configured deployment of its model (its key), else its model and api_base alone."""
    found = BatchJob.load(args.job, LLMClient(Model("openai/any"), cache=_cache(args)))
    try:
        models = [m for m in setup(args).pool.models if m.name == found.model]
    except ConfigError:
        models = []
    client = LLMClient(models or [Model(found.model, api_base=found.api_base)], cache=found.client.cache)
    return BatchJob.load(args.job, client)


def _quiet() -> contextlib.AbstractContextManager[Any]:
    """LiteLLM prints banners on stdout for failures; stdout carries only what the user asked for. (Each command runs
    its own event loop with ``asyncio.run``, as ``run`` does, so LiteLLM's background logging task ends with it.)"""
    return contextlib.redirect_stdout(io.StringIO())


def cmd_submit(args: argparse.Namespace) -> int:
    path = Path(args.prompts)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    items = PromptFile(path, format_of(path, getattr(args, "input_format", None)))
    items.scan()
    if items.bad:
        first = next(iter(items.bad))
        raise UsageError(f"{path}:{first}: {items.bad[first]}; {len(items.bad)} bad line(s), nothing was submitted")
    client = LLMClient(setup(args).pool.models, cache=_cache(args))
    with _quiet():
        job = asyncio.run(client.asubmit_batch(items, max_requests_per_job=args.max_requests_per_job))
    (job.path / _IDS).write_text(json.dumps(items.ids))
    status = job._status()  # counted from the manifest: no need to poll what was just submitted
    sent = status.prompts - status.cached
    note(f"submitted {sent} prompts in {len(status.jobs)} provider job(s); {status.cached} cached or repeated")
    write(job.id, sys.stdout)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    if args.job is None:
        for job_id in job_ids(LLMClient(Model("openai/any"), cache=_cache(args))):
            write(job_id, sys.stdout)
        return EXIT_OK
    job = _load(args)
    with _quiet():
        status = asyncio.run(job.astatus())
    rows: list[tuple[str, ...]] = [
        ("job", "provider id", "state", "provider status", "lines", "ok", "failed", "expired", "cancelled")
    ]
    for j in status.jobs:
        counts = (j.total, j.succeeded, j.failed, j.expired, j.cancelled)
        rows.append((f"part {j.part}", j.provider_id or "-", j.state, j.provider_status or "-", *map(str, counts)))
    for line in table(rows):
        write(line, sys.stdout)
    write(
        f"{status.id}: {status.prompts} prompts, {status.cached} cached, {status.pending} pending, "
        f"{status.in_progress} in progress, {status.succeeded} succeeded, {status.failed} failed, "
        f"{status.expired} expired, {status.cancelled} cancelled",
        sys.stdout,
    )
    return EXIT_OK


def cmd_collect(args: argparse.Namespace) -> int:
    job = _load(args)
    with _quiet():
        status = asyncio.run(job.astatus())
        if not status.done and args.no_wait:
            raise UsageError(f"{job.id} has not ended ({status.in_progress} prompts in progress); drop --no-wait")
        results = asyncio.run(job.await_results(show_progress=not args.no_progress))
    ids_file = job.path / _IDS
    ids = json.loads(ids_file.read_text()) if ids_file.exists() else list(range(1, len(results) + 1))
    failed = 0
    with open(args.output, "w", encoding="utf-8") as out:
        for line_id, completion in zip(ids, results, strict=True):
            out.write(json.dumps(_record(line_id, completion), ensure_ascii=False) + "\n")
            failed += not completion.ok
    note(f"{len(results) - failed} done, {failed} failed; results in {args.output}")
    if failed:
        note(f"llmkit batch collect again after job.retry_failed(), or rerun them live: llmkit run ({job.id})")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    job = _load(args)
    with _quiet():
        status = asyncio.run(job.acancel())
    write(f"{job.id}: cancel requested for {len(status.jobs)} provider job(s); {status.succeeded} already answered")
    return EXIT_OK


async def provider_batch_results(
    client: LLMClient, items: PromptFile, progress: bool
) -> AsyncIterator[tuple[int, Any]]:
    """``llmkit run --provider-batch``: submit, wait with a progress bar, then every (index, completion) in order."""
    job = await client.asubmit_batch(items)
    (job.path / _IDS).write_text(json.dumps(items.ids))
    note(f"provider batch {job.id}: submitted; waiting (resume later with llmkit batch collect {job.id})")
    for index, completion in enumerate(await job.await_results(show_progress=progress)):
        yield index, completion
