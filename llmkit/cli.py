"""``llmkit``: run a JSONL file of prompts, inspect the config, the models and the cache.

A thin layer over the public API and ``_settings``, and the only module that prints: results and tables on stdout,
progress, notes and errors on stderr. A mistake the user can fix is one line on stderr and exit code 2 (``--debug``
adds the traceback); a run with any failed prompt exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from . import (
    Completion,
    ConfigError,
    LLMClient,
    LLMError,
    Model,
    Prompt,
    RateLimits,
    ResponseCache,
    RetryPolicy,
    SamplingParams,
    __version__,
)
from ._settings import (
    CacheConfig,
    ConfigFile,
    LLMKitSettings,
    PoolConfig,
    did_you_mean,
    find_config,
    load_config,
    searched_places,
)
from .errors import redact

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# With no config and no --model, --offline serves this pool: one model per wire format, weighted 3:1.
OFFLINE_POOL = PoolConfig(models=[Model("openai/gpt-4o-mini", weight=3), Model("anthropic/claude-haiku-4-5", weight=1)])
OFFLINE_KEY = "llmkit-offline"  # any key but 'invalid-key' is accepted by the fake provider
LINE_KEYS = ("id", "prompt", "messages", "sampling")
_MAX_BAD_LINES_SHOWN = 20


class UsageError(Exception):
    """A mistake in how the command was called (exit code 2)."""


def _note(message: str) -> None:
    print(f"llmkit: {message}", file=sys.stderr, flush=True)


# -- where models come from -----------------------------------------------------------------------------------------


@dataclass
class _Setup:
    pool: PoolConfig
    source: str
    secrets: tuple[str, ...] = ()


def _setup(args: argparse.Namespace) -> _Setup:
    """The pool to use: the config file's (narrowed by --model), or --model alone, or the offline default pool."""
    offline = getattr(args, "offline", False)
    found = find_config(args.config, args.settings)
    if found is None and args.pool != "default":
        raise ConfigError(f"--pool {args.pool} needs a config file, and none was found (looked at {searched_places()})")
    if found is None and args.model:
        return _Setup(PoolConfig(models=[Model(name) for name in args.model]), f"--model {' '.join(args.model)}")
    if found is None and offline:
        return _Setup(OFFLINE_POOL, "no config file: offline default pool " + _weights(OFFLINE_POOL))
    if found is None:
        raise ConfigError(
            f"no config file found (looked at {searched_places()}); pass --model openai/gpt-4o-mini, write llmkit.yaml "
            "(see examples/llmkit.yaml), or try --offline"
        )
    config = load_config(found[0], require_keys=not offline)  # offline needs no key: a missing one is fine
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
    """Where requests go: the providers themselves, or (--offline) the bundled fake provider on 127.0.0.1.

    Yields the models rerouted, and the local server whose ``count`` says how many requests it answered (None when
    there is none). Another backend (``--local``) is one more flag in the ``backend`` argument group and one more
    branch here; ``_setup`` then gives it a default pool the way it does for ``--offline``.
    """
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
        _note(f"offline: fake provider at {fake.url}; nothing leaves this machine")
        if renamed:
            _note(f"offline: the fake speaks the OpenAI, Anthropic and Gemini formats; serving {', '.join(renamed)}")
        yield rerouted, fake


def _cache(args: argparse.Namespace, settings: LLMKitSettings, section: CacheConfig | None) -> ResponseCache | None:
    """``run`` caches by default, so rerunning a command resumes where it stopped."""
    if args.no_cache or (section is not None and not section.enabled):
        return None
    path = args.cache_dir or (section.path if section else None) or settings.cache_dir
    namespace = section.namespace if section else None
    if args.offline:  # fake answers must never be served for the real model of the same name
        namespace = f"{namespace}:offline" if namespace else "offline"
    return ResponseCache(path, ttl=section.ttl_s if section else None, namespace=namespace)


# -- llmkit run -------------------------------------------------------------------------------------------------------


class _BadLine(Exception):
    pass


def _parse_line(text: str, number: int) -> tuple[str | int, Prompt]:
    """One input line as (id, Prompt); ``_BadLine`` says what is wrong with it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(data, str):
        data = {"prompt": data}
    if not isinstance(data, dict):
        raise _BadLine(f"expected a JSON string or object, got {type(data).__name__}")
    unknown = [k for k in data if k not in LINE_KEYS]
    if unknown:
        hint = did_you_mean(unknown[0], list(LINE_KEYS))
        raise _BadLine(f"unknown key {unknown[0]!r}{hint}; allowed: {', '.join(LINE_KEYS)}")
    line_id = data.get("id", number)
    if isinstance(line_id, bool) or not isinstance(line_id, (str, int)):
        raise _BadLine(f"id must be a string or an integer, got {json.dumps(line_id)}")
    if ("prompt" in data) == ("messages" in data):
        raise _BadLine("give exactly one of 'prompt' (a string) or 'messages' (a list of {role, content})")
    messages: Any = data.get("prompt", data.get("messages"))
    if "prompt" in data and (not isinstance(messages, str) or not messages.strip()):
        raise _BadLine("'prompt' must be a non-empty string")
    if "messages" in data and (
        not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and "role" in m for m in messages)
    ):
        raise _BadLine("'messages' must be a non-empty list of objects with 'role' and 'content'")
    sampling = data.get("sampling")
    if sampling is not None and not isinstance(sampling, dict):
        raise _BadLine(f"'sampling' must be an object, got {type(sampling).__name__}")
    try:
        return line_id, Prompt(messages=messages, sampling=SamplingParams(**sampling) if sampling else None)
    except ConfigError as exc:
        raise _BadLine(str(exc)) from None


@dataclass
class _Input:
    """A prompts file read twice: once to check every line before anything is sent, then lazily to run it."""

    path: Path
    bad: dict[int, str] = field(default_factory=dict)
    good: int = 0
    ids: list[str | int] = field(default_factory=list)

    def scan(self) -> None:
        first_line_of: dict[str | int, int] = {}
        for number, text in self._lines():
            try:
                line_id, _ = _parse_line(text, number)
            except _BadLine as exc:
                self.bad[number] = str(exc)
                continue
            if line_id in first_line_of:
                self.bad[number] = f"duplicate id {json.dumps(line_id)} (first on line {first_line_of[line_id]})"
                continue
            first_line_of[line_id] = number
            self.good += 1

    def _lines(self) -> Iterator[tuple[int, str]]:
        with self.path.open(encoding="utf-8") as f:
            for number, text in enumerate(f, 1):
                if text.strip():
                    yield number, text

    def __len__(self) -> int:
        return self.good

    def __iter__(self) -> Iterator[Prompt]:
        for number, text in self._lines():
            if number not in self.bad:
                line_id, prompt = _parse_line(text, number)
                self.ids.append(line_id)
                yield prompt


@dataclass
class _Row:
    done: int = 0
    failed: int = 0
    cache_hits: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0


def _record(line_id: str | int, completion: Completion, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """One output line: the input's id, then the answer (or the error, with any configured secret masked)."""
    data = completion.to_dict()
    record: dict[str, Any] = {"id": line_id}
    for key in (
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
    ):
        record[key] = data[key]
    if completion.logprobs is not None:
        record["logprobs"] = data["logprobs"]
    if record["error"] is not None:
        record["error"]["message"] = redact(record["error"]["message"], secrets)
    return record


_HINTS = {
    "RateLimitError": "lower --rpm/--tpm below the provider's limits or raise --max-attempts",
    "AuthenticationError": "check the model's key (its provider's env var, or api_key in the config)",
    "TimeoutError": "raise the timeout or lower --concurrency",
    "UnsupportedFeatureError": "drop the parameter or pick a model that supports it (llmkit models)",
}


@dataclass
class _Failures:
    """Failed prompts by error type, with the first one's id and message as an example."""

    count: dict[str, int] = field(default_factory=dict)
    example: dict[str, str] = field(default_factory=dict)

    def add(self, line_id: str | int, error: dict[str, Any]) -> None:
        kind = error["type"]
        self.count[kind] = self.count.get(kind, 0) + 1
        self.example.setdefault(kind, f"id {json.dumps(line_id)}: {error['message'][:300]}")

    def lines(self) -> list[str]:
        return [
            f"{n} failed with {kind}, e.g. {self.example[kind]}" + (f"; {_HINTS[kind]}" if kind in _HINTS else "")
            for kind, n in sorted(self.count.items(), key=lambda item: -item[1])
        ]


@dataclass
class _Tally:
    """What a run did, per model and per error type."""

    secrets: tuple[str, ...]
    rows: dict[str, _Row] = field(default_factory=dict)
    failures: _Failures = field(default_factory=_Failures)


async def _run_all(client: LLMClient, items: _Input, out: IO[str], tally: _Tally, progress: bool) -> None:
    """Write each result line as soon as it is done, so an interrupted run keeps everything finished so far."""
    async for index, completion in client.as_completed(items, show_progress=progress):
        line_id = items.ids[index]
        record = _record(line_id, completion, tally.secrets)
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        row = tally.rows.setdefault(completion.model or "(no model)", _Row())
        if record["error"] is not None:
            row.failed += 1
            tally.failures.add(line_id, record["error"])
            continue
        row.done += 1
        if completion.cache_hit:  # served from disk: no tokens, no cost this run
            row.cache_hits += 1
            continue
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
    return "\n".join(_table([header, *lines]))


def _table(rows: list[Any]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]


def _cmd_run(args: argparse.Namespace) -> int:
    settings = args.settings
    if (args.fault_rate or args.offline_rpm) and not args.offline:
        raise UsageError("--fault-rate and --offline-rpm shape the offline fake provider; add --offline")
    path = Path(args.prompts)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    items = _Input(path)
    items.scan()
    for number in list(items.bad)[:_MAX_BAD_LINES_SHOWN]:
        _note(f"{path}:{number}: {items.bad[number]}" + (" (skipped)" if args.on_bad_line == "skip" else ""))
    if len(items.bad) > _MAX_BAD_LINES_SHOWN:
        _note(f"... and {len(items.bad) - _MAX_BAD_LINES_SHOWN} more bad lines")
    if items.bad and args.on_bad_line == "stop":
        raise UsageError(f"{path}: {len(items.bad)} bad line(s); nothing was sent (--on-bad-line skip runs the others)")
    setup = _setup(args)
    _note(setup.source)
    pool = setup.pool
    limits = _override(
        pool.limits or settings.default_limits(),
        RateLimits,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        max_concurrency=args.concurrency,
    )
    retry = _override(pool.retry, RetryPolicy, max_attempts=args.max_attempts)
    tally = _Tally(setup.secrets)
    start = time.perf_counter()
    interrupted = False
    with _backend(args, pool.models) as (models, server):
        cache = _cache(args, settings, pool.cache)
        if cache is None:
            _note("cache off")
        else:
            _note(f"cache {cache.path}" + (f" (namespace {cache.namespace})" if cache.namespace else ""))
        client = LLMClient(models, sampling=pool.sampling, limits=limits, retry=retry, cache=cache)
        with client, open(args.output, "w", encoding="utf-8") as out:
            try:
                # LiteLLM prints "Give Feedback / Get Help" banners on stdout for every failed attempt; run writes
                # nothing to stdout, and the errors themselves are in the results.
                with contextlib.redirect_stdout(io.StringIO()):
                    asyncio.run(_run_all(client, items, out, tally, progress=not args.no_progress))
            except KeyboardInterrupt:
                interrupted = True
        sent = server.count if server is not None else client.status.requests_sent
        retried, binding = client.status.retried, client.status.binding_limit
    print(_summary(tally.rows), file=sys.stderr)
    failed = sum(r.failed for r in tally.rows.values())
    for line in tally.failures.lines():
        _note(line)
    wall_s = time.perf_counter() - start
    retries = f"{retried} retr{'y' if retried == 1 else 'ies'}" + (
        f"; waited mostly on the {binding} limit" if binding else ""
    )
    _note(
        f"{sum(r.done for r in tally.rows.values())} done, {failed} failed, {len(items.bad)} bad lines skipped, "
        f"{sent} requests sent ({retries}), wall time {wall_s:.1f} s; results in {args.output}"
    )
    if failed:
        _note(
            "rerun the same command to retry the failed prompts; the others come from the cache"
            if cache is not None
            else "rerun to retry the failed prompts (with the cache on, the others would not be sent again)"
        )
    if interrupted:
        _note("interrupted: the results above are written; rerun the same command to resume from the cache")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed or items.bad else EXIT_OK


def _override(base: Any, cls: type, **given: Any) -> Any:
    """``base`` with the CLI's values on top (None = not given); None when nothing is set at all."""
    data = base.model_dump(exclude_unset=True) if base is not None else {}
    data.update({k: v for k, v in given.items() if v is not None})
    return cls(**data) if data else None


# -- llmkit config / models / cache -----------------------------------------------------------------------------------


def _config_file(args: argparse.Namespace) -> ConfigFile:
    found = find_config(args.config, args.settings)
    if found is None:
        raise ConfigError(f"no config file found (looked at {searched_places()}); see examples/llmkit.yaml")
    _note(f"config {found[0]} ({found[1]})")
    return load_config(found[0])


def _cmd_config_show(args: argparse.Namespace) -> int:
    config = _config_file(args)
    names = [args.pool] if args.pool else list(config.pools)
    pools = {}
    for name in names:
        data = config.pool(name).model_dump(mode="json", exclude_none=True)
        for model in data["models"]:
            if model.get("api_key"):
                model["api_key"] = "***"
            if not model.get("provider_options"):
                model.pop("provider_options", None)
        pools[name] = data
    settings = args.settings
    header = f"# {config.path}, resolved (keys masked); cache_dir={settings.cache_dir} log_level={settings.log_level}\n"
    print(redact(header + yaml.safe_dump({"pools": pools}, sort_keys=False), config.secrets), end="")
    return EXIT_OK


def _cmd_config_validate(args: argparse.Namespace) -> int:
    config = _config_file(args)
    pools = ", ".join(f"{name} ({len(p.models)} model{'s' * (len(p.models) != 1)})" for name, p in config.pools.items())
    print(f"ok: {config.path}: {pools}")
    return EXIT_OK


def _model_facts(model: Model) -> dict[str, Any]:
    """What LiteLLM's bundled price map knows of a model; None for what it does not know."""
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of the price map at import
    import litellm

    facts: dict[str, Any] = {"model": model.name, "weight": model.weight, "known": False}
    info: dict[str, Any]
    with contextlib.redirect_stdout(io.StringIO()):  # LiteLLM prints a provider list for unknown prefixes
        try:
            info = dict(litellm.get_model_info(model.name))
        except Exception:
            info = {}
        try:
            name, provider, _, _ = litellm.get_llm_provider(model.name)
            params = litellm.get_supported_openai_params(model=name, custom_llm_provider=provider) or []
        except Exception:
            params = []
    per_million = 1_000_000
    facts.update(
        known=bool(info),
        context_window=info.get("max_input_tokens"),
        max_output_tokens=info.get("max_output_tokens"),
        input_usd_per_mtok=info["input_cost_per_token"] * per_million if info.get("input_cost_per_token") else None,
        output_usd_per_mtok=info["output_cost_per_token"] * per_million if info.get("output_cost_per_token") else None,
        reasoning=bool(info.get("supports_reasoning")) if info else None,
        logprobs=("logprobs" in params) if params else None,
        tools=bool(info.get("supports_function_calling")) if info else None,
        vision=bool(info.get("supports_vision")) if info else None,
    )
    if model.supports is not None:  # declared capabilities win, as they do when calling
        facts.update({cap: cap in model.supports for cap in ("reasoning", "logprobs", "tools", "vision")})
    return facts


def _cmd_models(args: argparse.Namespace) -> int:
    setup = _setup(args)
    _note(setup.source)
    facts = [_model_facts(m) for m in setup.pool.models]
    if args.json:
        print(json.dumps(facts, indent=2))
        return EXIT_OK

    def cell(value: Any) -> str:
        if value is None:
            return "?"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)

    for f in facts:  # prices in dollars and cents; weights as written
        for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
            f[key] = f"{f[key]:.2f}" if f[key] is not None else None
        f["weight"] = f"{f['weight']:g}"
    header = [
        "model",
        "weight",
        "context",
        "max out",
        "$/Mtok in",
        "$/Mtok out",
        "reasoning",
        "logprobs",
        "tools",
        "vision",
    ]
    keys = [
        "model",
        "weight",
        "context_window",
        "max_output_tokens",
        "input_usd_per_mtok",
        "output_usd_per_mtok",
        "reasoning",
        "logprobs",
        "tools",
        "vision",
    ]
    table = _table([header] + [[cell(f[k]) for k in keys] for f in facts])
    notes: list[dict[str, Any] | None] = [None, *facts]
    for line, fact in zip(table, notes, strict=True):
        print(line + ("  (unknown to LiteLLM: no prices or limits)" if fact is not None and not fact["known"] else ""))
    return EXIT_OK


def _cache_dir(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir).expanduser() if args.cache_dir else args.settings.cache_dir


def _cmd_cache_stats(args: argparse.Namespace) -> int:
    path = _cache_dir(args)
    if not path.is_dir():
        print(f"no cache at {path} (nothing stored yet)")
        return EXIT_OK
    cache = ResponseCache(path)
    try:
        stats = cache.stats()
    finally:
        cache.close()
    print(f"path     {stats['path']}\nentries  {stats['entries']:,}\nsize     {stats['bytes'] / 1e6:,.1f} MB")
    return EXIT_OK


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    path = _cache_dir(args)
    if not path.is_dir():
        print(f"no cache at {path}; nothing to clear")
        return EXIT_OK
    cache = ResponseCache(path)
    try:
        removed = cache.clear(older_than_s=args.older_than)
    finally:
        cache.close()
    age = f" older than {args.older_than.text}" if args.older_than is not None else ""
    print(f"removed {removed:,} entries{age} from {path}")
    return EXIT_OK


# -- argument parsing -------------------------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class _Age(float):
    """Seconds, remembering how the user wrote them."""

    text = ""


def _duration(text: str) -> _Age:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write e.g. 90s, 30m, 12h, 7d or 2w")
    age = _Age(float(match.group(1)) * _UNITS[match.group(2) or "s"])
    age.text = text.strip()
    return age


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be > 0")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a fraction between 0 and 1, e.g. 0.2")
    return value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--config", metavar="FILE", help=f"config file (default: the first of {searched_places()})")
    source.add_argument("--pool", default="default", help="pool of the config file (default: default)")
    source.add_argument(
        "--model",
        action="append",
        metavar="M",
        help="use this model (a LiteLLM model string, or a name from the pool); repeatable",
    )
    parser = argparse.ArgumentParser(prog="llmkit", description="Call many LLMs from the command line, boringly.")
    parser.add_argument("--version", action="version", version=f"llmkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        parents=[common, source],
        help="run a JSONL file of prompts",
        description="Run every prompt of a JSONL file; write one result line per prompt.",
    )
    run.add_argument(
        "prompts",
        metavar="PROMPTS.jsonl",
        help='one prompt per line: a JSON string, or {"id", "prompt" or "messages", "sampling"}',
    )
    run.add_argument("-o", "--output", required=True, metavar="RESULTS.jsonl", help="where to write the results")
    run.add_argument(
        "--on-bad-line",
        choices=("skip", "stop"),
        default="skip",
        help="a bad input line is reported with its number, then skipped (default) or stops the run",
    )
    backend = run.add_mutually_exclusive_group()
    backend.add_argument(
        "--offline", action="store_true", help="answer from the bundled fake provider: no API key, no network"
    )
    offline = run.add_argument_group("offline fake provider (with --offline)")
    offline.add_argument(
        "--fault-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="share of requests that fail with a 500, to see retries",
    )
    offline.add_argument(
        "--offline-rpm",
        type=_positive(float),
        metavar="N",
        help="the fake's own requests-per-minute limit (answers 429 with Retry-After)",
    )
    offline.add_argument(
        "--offline-latency-s",
        type=float,
        default=0.05,
        metavar="S",
        help="seconds the fake takes per answer (default 0.05)",
    )
    cache = run.add_argument_group("cache")
    cache.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    cache.add_argument(
        "--cache-dir", metavar="DIR", help="cache directory (default: LLMKIT_CACHE_DIR or ~/.cache/llmkit)"
    )
    limits = run.add_argument_group("limits and retries (override the pool's)")
    limits.add_argument("--max-in-flight", type=_positive(int), metavar="N", help="prompts in flight at once")
    limits.add_argument("--rpm", type=_positive(float), metavar="N", help="requests per minute")
    limits.add_argument("--tpm", type=_positive(float), metavar="N", help="tokens per minute")
    limits.add_argument("--concurrency", type=_positive(int), metavar="N", help="requests in flight at once")
    limits.add_argument("--max-attempts", type=_positive(int), metavar="N", help="attempts per prompt; 1: no retries")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_cmd_run)

    config = commands.add_parser("config", help="show or check the config file")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    show = config_commands.add_parser("show", parents=[common], help="print the resolved config, keys masked")
    show.add_argument("--config", metavar="FILE", help="config file (default: discovered)")
    show.add_argument("--pool", help="only this pool")
    show.set_defaults(handler=_cmd_config_show)
    validate = config_commands.add_parser("validate", parents=[common], help="check the config file")
    validate.add_argument("--config", metavar="FILE", help="config file (default: discovered)")
    validate.set_defaults(handler=_cmd_config_validate)

    models = commands.add_parser(
        "models",
        parents=[common, source],
        help="the configured models with LiteLLM's context windows, prices and capabilities",
    )
    models.add_argument("--offline", action="store_true", help="with no config and no --model: the offline pool")
    models.add_argument("--json", action="store_true", help="JSON instead of a table")
    models.set_defaults(handler=_cmd_models)

    cache_cmd = commands.add_parser("cache", help="inspect or clear the response cache")
    cache_commands = cache_cmd.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)
    for name, handler, text in (
        ("stats", _cmd_cache_stats, "entries and size"),
        ("clear", _cmd_cache_clear, "remove entries"),
    ):
        sub = cache_commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("--cache-dir", metavar="DIR", help="default: LLMKIT_CACHE_DIR or ~/.cache/llmkit")
        sub.set_defaults(handler=handler)
        if name == "clear":
            sub.add_argument(
                "--older-than",
                type=_duration,
                metavar="AGE",
                help="only entries stored longer ago than AGE (90s, 30m, 12h, 7d, 2w)",
            )
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (tests and notebooks swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("llmkit")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("llmkit: %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Run the ``llmkit`` command; returns the exit code (0 ok, 1 some prompt failed, 2 usage or config error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage error (2) or the help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        args.settings = LLMKitSettings()  # LLMKIT_* from the environment and ./.env, read once
        _configure_logging("DEBUG" if args.debug else args.settings.log_level)
        return int(args.handler(args))
    except (ConfigError, UsageError) as exc:
        return _fail(args, exc, EXIT_USAGE)
    except LLMError as exc:
        return _fail(args, exc, EXIT_FAILED)
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:
        return _fail(args, exc, EXIT_USAGE, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else None)
    except Exception as exc:  # a bug, not a user mistake: one line, and how to see more
        hint = "" if args.debug else "; rerun with --debug for the traceback"
        return _fail(args, exc, EXIT_FAILED, f"unexpected {type(exc).__name__}: {exc}{hint} (please report it)")


def _fail(args: argparse.Namespace, exc: BaseException, code: int, message: str | None = None) -> int:
    """One line per problem on stderr (a config file may have several), after the traceback with --debug."""
    if args.debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    for line in (message or str(exc) or type(exc).__name__).splitlines():
        print(f"llmkit: error: {line}", file=sys.stderr)
    return code
