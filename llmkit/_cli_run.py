"""``llmkit run``: read and check a JSONL file of prompts, send it through a backend, write results and a summary.

The CLI's run command, kept apart from ``cli`` (argument parsing, dispatch, error handling and the small commands),
which imports it. It never calls ``print``: notes and the summary table go to stderr through ``note`` and ``write``,
which take the stream; results go to the output file. Backends: the providers themselves,
``--offline`` (the bundled fake provider) and ``--local`` (a real model on this machine, ``llmkit.local``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import Completion, ConfigError, LLMClient, Model, RateLimits, ResponseCache, RetryPolicy, Tracer
from ._budget import Budget
from ._cli_input import PromptFile, format_of
from ._client import DEFAULT_TIMEOUT_S
from ._outfile import OutputFile
from ._output import load_output
from ._settings import (
    CacheConfig,
    LLMKitSettings,
    PoolConfig,
    find_config,
    load_config,
    searched_places,
    with_shared,
)
from ._workers import check_workers
from .errors import env_secrets, redact

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "cmd_run",
    "note",
    "setup",
    "table",
    "write",
]


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# With no config and no --model, --offline serves this pool: one model per wire format, weighted 3:1.
OFFLINE_POOL = PoolConfig(models=[Model("openai/gpt-4o-mini", weight=3), Model("anthropic/claude-haiku-4-5", weight=1)])
OFFLINE_KEY = "llmkit-offline"  # any key but 'invalid-key' is accepted by the fake provider
# With no config and no --model, --local starts from this pool; _backend swaps its model for the running server's.
LOCAL_POOL = PoolConfig(models=[Model("openai/smollm2")])
# An output line: the input's id, then these fields of the Completion, then logprobs when there are any.
_RESULT_FIELDS = (
    "text",
    "thinking",
    "finish_reason",
    "usage",
    "cost_usd",
    "model",
    "cache_hit",
    "latency_s",
    "attempts",
    "error",
)
_MAX_BAD_LINES_SHOWN = 20


class UsageError(Exception):
    """A mistake in how the command was called (exit code 2)."""


def write(text: str, stream: IO[str] | None = None) -> None:
    """``text`` and a newline on ``stream`` (default: whatever ``sys.stderr`` is now; tests swap it), flushed."""
    stream = sys.stderr if stream is None else stream
    stream.write(text + "\n")
    stream.flush()


def note(message: str, stream: IO[str] | None = None) -> None:
    """One ``llmkit: ...`` line, on stderr unless told otherwise."""
    write(f"llmkit: {message}", stream)


# -- where models come from -----------------------------------------------------------------------------------------


@dataclass
class _Setup:
    pool: PoolConfig
    source: str
    secrets: tuple[str, ...] = ()


def setup(args: argparse.Namespace) -> _Setup:
    """The pool to use: the config file's (narrowed by --model), or --model alone, or the offline or local default.

    With --local the pool's models are replaced by the local one (``_backend``); its sampling, limits and cache stay.
    """
    offline = getattr(args, "offline", False)
    local = getattr(args, "local", False)
    found = find_config(args.config, args.settings)
    if found is None and args.pool != "default":
        raise ConfigError(f"--pool {args.pool} needs a config file, and none was found (looked at {searched_places()})")
    if found is None and args.model:
        return _Setup(PoolConfig(models=[Model(name) for name in args.model]), f"--model {' '.join(args.model)}")
    if found is None and offline:
        return _Setup(OFFLINE_POOL, "no config file: offline default pool " + _weights(OFFLINE_POOL))
    if found is None and local:
        return _Setup(LOCAL_POOL, "no config file: the local model")
    if found is None:
        raise ConfigError(
            f"no config file found (looked at {searched_places()}); pass --model openai/gpt-4o-mini, write llmkit.yaml "
            "(see examples/llmkit.yaml), or try --offline"
        )
    # Neither the fake nor the local model needs a key: a missing one is fine.
    config = load_config(found[0], require_keys=not (offline or local))
    pool = config.pool(args.pool)
    source = f"config {found[0]} ({found[1]}), pool {args.pool!r}"
    if args.model:
        # A name of the pool keeps that deployment (api_base, key, weight); any other is a plain LiteLLM model string.
        known = {m.name for m in pool.models}
        chosen = [m for m in pool.models if m.name in args.model] + [Model(n) for n in args.model if n not in known]
        pool = pool.model_copy(update={"models": chosen})
        source += f", --model {' '.join(args.model)}"
    return _Setup(pool, source, config.secrets)


def _weights(pool: PoolConfig) -> str:
    return ", ".join(f"{m.name} (weight {m.weight:g})" for m in pool.models)


def _offline_model(model: Model, api_base: Any) -> Model:
    """The same deployment, served by the fake provider in the wire format its provider speaks."""
    wire = {"anthropic": "anthropic", "gemini": "gemini"}.get(model.provider, "openai")
    name = model.name if model.provider in ("openai", "anthropic", "gemini") else f"openai/{model.name.split('/')[-1]}"
    data = model.model_dump(exclude_unset=True)
    return Model(**{**data, "name": name, "api_base": api_base(wire), "api_key": OFFLINE_KEY})


@contextlib.contextmanager
def _backend(args: argparse.Namespace, models: list[Model]) -> Iterator[tuple[list[Model], Any]]:
    """Where requests go: the providers themselves, (--offline) the bundled fake provider on 127.0.0.1, or (--local)
    a llama.cpp server on 127.0.0.1 with a real model (``llmkit.local``), stopped when the run ends.

    Yields the models rerouted, and the fake provider, whose ``count`` says how many requests it answered (None for
    the other backends). A missing ``local`` extra is a ``ConfigError`` that names the install command.
    """
    if args.local:
        from .local import LocalModelServer

        server = LocalModelServer()
        try:  # stop() also covers a Ctrl-C while it starts; stopping a server that never started is a no-op
            note("local: starting the local model server (llama.cpp) on 127.0.0.1")
            server.start()
            model = server.model()
            note(f"local: {model.name} at {server.url} answers every prompt; nothing leaves this machine")
            yield [model], None
        finally:
            server.stop()
        return
    if not args.offline:
        yield models, None
        return
    from .testing import FakeProvider

    with FakeProvider(latency_s=args.offline_latency_s) as fake:
        if args.fault_rate:
            fake.set_faults(error_rate=args.fault_rate, seed=0)
        if args.offline_rpm:
            fake.rate_limit(requests_per_minute=args.offline_rpm)
        rerouted = [_offline_model(m, fake.api_base) for m in models]
        renamed = [f"{a.name} as {b.name}" for a, b in zip(models, rerouted, strict=True) if a.name != b.name]
        note(f"offline: fake provider at {fake.url}; nothing leaves this machine")
        if renamed:
            note(f"offline: the fake speaks the OpenAI, Anthropic and Gemini formats; serving {', '.join(renamed)}")
        yield rerouted, fake


def _cache(args: argparse.Namespace, settings: LLMKitSettings, section: CacheConfig | None) -> ResponseCache | None:
    """``run`` caches by default, so rerunning a command resumes where it stopped."""
    if args.no_cache or (section is not None and not section.enabled):
        return None
    path = args.cache_dir or (section.path if section else None) or settings.cache_dir
    namespace = section.namespace if section else None
    # Fake and local answers must never be served for the real model of the same name.
    backend = "offline" if args.offline else "local" if args.local else None
    if backend:
        namespace = f"{namespace}:{backend}" if namespace else backend
    return ResponseCache(path, ttl=section.ttl_s if section else None, namespace=namespace)


# -- llmkit run -------------------------------------------------------------------------------------------------------


@dataclass
class _Row:
    done: int = 0
    failed: int = 0
    cache_hits: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0


def _record(
    line_id: str | int, completion: Completion, secrets: tuple[str, ...] = (), structured: bool = False
) -> dict[str, Any]:
    """One output line: the input's id, then the answer (or the error, with any configured secret masked).

    ``structured`` (``--schema``): ``parsed`` holds the validated value, null when the answer never validated.
    """
    data = completion.to_dict()
    record: dict[str, Any] = {"id": line_id}
    for key in _RESULT_FIELDS:
        record[key] = data[key]
    if structured:
        record["parsed"] = data.get("parsed")
    if completion.logprobs is not None:
        record["logprobs"] = data["logprobs"]
    if completion.metadata is not None:  # the input line's own, back as it came
        record["metadata"] = completion.metadata
    if record["error"] is not None:
        record["error"]["message"] = redact(record["error"]["message"], [*secrets, *env_secrets()])
    return record


_HINTS = {
    "RateLimitError": "lower --rpm/--tpm below the provider's limits or raise --max-attempts",
    "AuthenticationError": "check the model's key (its provider's env var, or api_key in the config)",
    "TimeoutError": "raise the timeout or lower --concurrency",
    "UnsupportedFeatureError": "drop that parameter from these prompts' sampling (or the pool's), or pick a model "
    "that supports it (llmkit models lists them)",
    "ModelNotFoundError": "check the model name: a LiteLLM model string such as openai/gpt-4o-mini (llmkit models)",
    "NoModelAvailableError": "every model of the pool was taken out; the other errors say why",
    "ContextWindowExceededError": "shorten these prompts, or add context_window_fallbacks to the pool "
    "(a model with a longer window)",
    "ContentFilterError": "the provider refused these prompts' content; a rerun sends the same",
    "BadRequestError": "the provider refused the request as sent; a rerun sends the same, so fix what the message says",
    "ConfigError": "fix the configuration the message names",
    "InvalidResponseError": "the provider's answer could not be read; a rerun retries these",
    "ProviderError": "the provider or the connection failed; a rerun retries these",
    "BudgetExceededError": "raise --max-cost; a rerun sends only these prompts (the answered ones are cached)",
}
# What a hint says instead when the local model (--local) failed: it is the one model, so "pick another" cannot help.
_LOCAL_HINTS = {
    "UnsupportedFeatureError": "the local model (SmolLM2) cannot do this: drop that parameter from these prompts' "
    "sampling, or run them against a model that can (without --local)",
}


@dataclass
class _Failures:
    """Failed prompts by error type, with the first one's id and message as an example, and how many a rerun can
    fix (``retryable``: a rerun sends them again; the others fail the same way until their cause is fixed)."""

    count: dict[str, int] = field(default_factory=dict)
    example: dict[str, str] = field(default_factory=dict)
    retryable: int = 0

    def add(self, line_id: str | int, error: dict[str, Any]) -> None:
        kind = error["type"]
        self.count[kind] = self.count.get(kind, 0) + 1
        self.retryable += bool(error.get("retryable"))
        self.example.setdefault(kind, f"id {json.dumps(line_id)}: {error['message'][:300]}")

    def lines(self, local: bool = False) -> list[str]:
        hints = {**_HINTS, **_LOCAL_HINTS} if local else _HINTS
        return [
            f"{n} failed with {kind}, e.g. {self.example[kind]}" + (f"; {hints[kind]}" if kind in hints else "")
            for kind, n in sorted(self.count.items(), key=lambda item: -item[1])
        ]

    def advice(self, cached: bool) -> list[str]:
        """What to do next: rerun only for what a rerun can fix; the rest needs its cause fixed first."""
        failed = sum(self.count.values())
        others = "the others come from the cache" if cached else "with the cache on, the others would not be resent"
        lines = []
        if self.retryable:
            lines.append(
                f"rerun the same command to retry the {self.retryable} prompt(s) that failed for a passing cause "
                f"(a server error, a rate limit, a timeout); {others}"
            )
        if failed > self.retryable:
            lines.append(
                f"{failed - self.retryable} prompt(s) failed for a cause a rerun does not change: fix it as said "
                "above, then rerun" + (" (answered prompts come from the cache)" if cached else "")
            )
        return lines


@dataclass
class _Tally:
    """What a run did, per model and per error type."""

    secrets: tuple[str, ...]
    rows: dict[str, _Row] = field(default_factory=dict)
    failures: _Failures = field(default_factory=_Failures)


@dataclass
class _InOrder:
    """Result lines in input order: a line that finishes before those above it waits in memory (about 1 KB) until
    they are written. ``close`` writes whatever still waits, so after Ctrl-C every answer that came back is kept."""

    out: IO[str]
    next: int = 0
    waiting: dict[int, str] = field(default_factory=dict)

    def add(self, index: int, line: str) -> None:
        self.waiting[index] = line
        if index != self.next:
            return
        while self.next in self.waiting:
            self.out.write(self.waiting.pop(self.next))
            self.next += 1
        self.out.flush()

    def close(self) -> None:
        for index in sorted(self.waiting):
            self.out.write(self.waiting.pop(index))
        self.out.flush()


async def _run_all(
    client: LLMClient,
    items: PromptFile,
    out: IO[str],
    tally: _Tally,
    progress: bool,
    max_in_flight: int | None,
    provider_batch: bool = False,
    guards: dict[str, Any] | None = None,
    output: Any = None,
    workers: int = 1,
) -> None:
    """Write the result lines in input order as soon as those before them are done (``_InOrder``), so an
    interrupted run keeps everything finished so far. ``provider_batch``: through the provider's batch API.
    ``guards``: the batch's ``budget`` and ``deadline_s`` (--max-cost, --deadline). ``output``: --schema's type.
    """
    if provider_batch:
        from ._cli_batch import provider_batch_results

        source = provider_batch_results(client, items, progress)
    elif workers > 1:  # --workers: the same results, from N processes (llmkit._workers)
        source = client.as_completed_in_workers(
            items, workers=workers, show_progress=progress, max_in_flight=max_in_flight, output=output, **(guards or {})
        )
    else:
        source = client.as_completed(
            items, show_progress=progress, max_in_flight=max_in_flight, output=output, **(guards or {})
        )
    lines = _InOrder(out)
    try:
        async for index, completion in source:
            line_id = items.ids[index]
            record = _record(line_id, completion, tally.secrets, output is not None)
            if (metadata := items.metadata.pop(index, None)) is not None:  # a CSV row's other columns
                record["metadata"] = metadata
            lines.add(index, json.dumps(record, ensure_ascii=False) + "\n")
            _count(tally, line_id, completion, record)
    finally:
        lines.close()


def _count(tally: _Tally, line_id: str | int, completion: Completion, record: dict[str, Any]) -> None:
    """Add one result to the summary's rows and failures."""
    row = tally.rows.setdefault(completion.model or "(no model)", _Row())
    if record["error"] is not None:
        row.failed += 1
        tally.failures.add(line_id, record["error"])
        return
    row.done += 1
    if completion.cache_hit:  # served from disk: no tokens, no cost this run
        row.cache_hits += 1
        return
    row.tokens += completion.usage.total_tokens
    if completion.cost_usd is None:
        row.unpriced += 1
    else:
        row.cost_usd += completion.cost_usd


def _summary(rows: dict[str, _Row]) -> str:
    total = _Row()
    for row in rows.values():
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    header = ("model", "done", "failed", "cache hits", "tokens sent", "cost")
    lines = [
        (
            name,
            str(r.done),
            str(r.failed),
            str(r.cache_hits),
            f"{r.tokens:,}",
            f"${r.cost_usd:.6f}" + (f" (+{r.unpriced} unpriced)" if r.unpriced else ""),
        )
        for name, r in sorted(rows.items()) + [("total", total)]
    ]
    return "\n".join(table([header, *lines]))


def table(rows: list[Any]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]


def cmd_run(args: argparse.Namespace) -> int:
    settings = args.settings
    if (args.fault_rate or args.offline_rpm) and not args.offline:
        raise UsageError("--fault-rate and --offline-rpm shape the offline fake provider; add --offline")
    if args.local and args.model:
        raise UsageError("--local answers every prompt with the local model; drop --model")
    path = Path(args.prompts)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    items = PromptFile(path, format_of(path, getattr(args, "input_format", None)))
    items.scan()
    for number in list(items.bad)[:_MAX_BAD_LINES_SHOWN]:
        note(f"{path}:{number}: {items.bad[number]}" + (" (skipped)" if args.on_bad_line == "skip" else ""))
    if len(items.bad) > _MAX_BAD_LINES_SHOWN:
        note(f"... and {len(items.bad) - _MAX_BAD_LINES_SHOWN} more bad lines")
    if items.bad and args.on_bad_line == "stop":
        raise UsageError(f"{path}: {len(items.bad)} bad line(s); nothing was sent (--on-bad-line skip runs the others)")
    if not items.good:
        raise UsageError(f"{path}: no prompt to send ({len(items.bad)} bad line(s), the rest empty); nothing started")
    workers = check_workers(args.workers) if getattr(args, "workers", None) is not None else 1
    if workers > 1 and (getattr(args, "ray", None) is not None or getattr(args, "provider_batch", False)):
        raise UsageError("--workers shards a live run over processes; drop it with --ray or --provider-batch")
    try:
        output = load_output(args.schema) if args.schema else None
    except ConfigError as exc:
        raise UsageError(exc.message) from None
    chosen = setup(args)
    note(chosen.source)
    pool = chosen.pool
    limits = _override(
        pool.limits or settings.default_limits(),
        RateLimits,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        max_concurrency=args.concurrency,
    )
    retry = _override(pool.retry, RetryPolicy, max_attempts=args.max_attempts)
    tally = _Tally(chosen.secrets)
    start = time.perf_counter()
    interrupted = False
    # The output is claimed first: a run that cannot write it (it is the input, another run writes it) starts nothing.
    with (
        OutputFile(args.output, inputs=(path,)) as out,
        _backend(args, [*pool.models, *pool.context_window_fallbacks]) as (deployments, server),
    ):
        models, fallbacks = deployments[: len(pool.models)], deployments[len(pool.models) :]
        shared, cache = with_shared(pool, args.pool, _cache(args, settings, pool.cache))
        if shared is not None:
            note(f"shared limits, cooldowns and cache tier: {shared!r}")
        if cache is None:
            note("cache off")
        else:
            note(f"cache {cache.path}" + (f" (namespace {cache.namespace})" if cache.namespace else ""))
        if workers > 1:  # the first start imports LiteLLM in the fork server: say why the bar waits
            limits_note = "shared through Redis" if shared is not None else f"split {workers} ways"
            note(f"{workers} worker processes (cache and budget shared, limits {limits_note}); starting them")
        client = LLMClient(
            models,
            sampling=pool.sampling,
            limits=limits,
            retry=retry,
            cache=cache,
            context_window_fallbacks=fallbacks,
            timeout_s=args.timeout or pool.timeout_s or DEFAULT_TIMEOUT_S,
            hooks=_tracer(args, chosen.secrets),
            shared=shared,
        )
        with client:
            try:
                # LiteLLM prints "Give Feedback / Get Help" banners on stdout for every failed attempt; run writes
                # nothing to stdout, and the errors themselves are in the results.
                with contextlib.redirect_stdout(io.StringIO()):
                    if getattr(args, "ray", None) is not None:
                        from ._cli_ray import run_on_ray

                        run_on_ray(args, client, items, out, tally)
                    else:
                        progress, batch_api = not args.no_progress, getattr(args, "provider_batch", False)
                        guards = _guards(args)
                        run = _run_all(
                            client, items, out, tally, progress, args.max_in_flight, batch_api, guards, output, workers
                        )
                        asyncio.run(run)
            except KeyboardInterrupt:
                interrupted = True
        sent = server.count if server is not None else client.status.requests_sent
        retried, binding = client.status.retried, client.status.binding_limit
        if shared is not None:
            shared.close()
    write(_summary(tally.rows))
    failed = sum(r.failed for r in tally.rows.values())
    for line in tally.failures.lines(local=args.local):
        note(line)
    wall_s = time.perf_counter() - start
    retries = f"{retried} retr{'y' if retried == 1 else 'ies'}" + (
        f"; waited mostly on the {binding} limit" if binding else ""
    )
    note(
        f"{sum(r.done for r in tally.rows.values())} done, {failed} failed, {len(items.bad)} bad lines skipped, "
        f"{sent} requests sent ({retries}), wall time {wall_s:.1f} s; results in {args.output}"
    )
    for line in tally.failures.advice(cached=cache is not None):
        note(line)
    if interrupted:
        note("interrupted: the results above are written; rerun the same command to resume from the cache")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed or items.bad else EXIT_OK


def _tracer(args: argparse.Namespace, secrets: tuple[str, ...]) -> Tracer | None:
    """--trace DIR: a JSON-lines trace of every attempt, with the config's secrets masked as well."""
    directory = getattr(args, "trace", None)
    if directory is None:
        return None
    note(f"tracing every attempt to {directory}")
    return Tracer(directory, secrets=secrets)


def _guards(args: argparse.Namespace) -> dict[str, Any]:
    """--max-cost and --deadline as the batch's ``budget`` and ``deadline_s``."""
    max_cost = getattr(args, "max_cost", None)
    return {
        "budget": Budget(max_cost_usd=max_cost) if max_cost is not None else None,
        "deadline_s": getattr(args, "deadline", None),
    }


def _override(base: Any, cls: type, **given: Any) -> Any:
    """``base`` with the CLI's values on top (None = not given); None when nothing is set at all."""
    data = base.model_dump(exclude_unset=True) if base is not None else {}
    data.update({k: v for k, v in given.items() if v is not None})
    return cls(**data) if data else None
