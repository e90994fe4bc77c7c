"""``llmkit``: run a JSONL file of prompts, inspect the config, the models and the cache.

A thin layer over the public API and ``_settings``: argument parsing, dispatch, error handling and the small commands
(config, models, cache); ``run`` lives in ``_cli_run``. Only these two modules print: results and tables on stdout,
progress, notes and errors on stderr. A mistake the user can fix is one line on stderr and exit code 2 (``--debug``
adds the traceback); a run with any failed prompt exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import re
import sys
import traceback
from pathlib import Path
from typing import IO, Any

import yaml

from . import ConfigError, LLMError, Model, ResponseCache, RetryPolicy, __version__
from ._cli_embed import add_embed_command
from ._cli_input import FORMATS
from ._cli_run import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    OFFLINE_POOL,
    UsageError,
    cmd_run,
    note,
    setup,
    table,
)
from ._params import mask_options, mask_url
from ._settings import ConfigFile, LLMKitSettings, find_config, load_config, searched_places
from .errors import did_you_mean, redact

__all__ = ["main"]


# -- llmkit config / models / cache -----------------------------------------------------------------------------------


def _config_file(args: argparse.Namespace) -> ConfigFile:
    found = find_config(args.config, args.settings)
    if found is None:
        raise ConfigError(f"no config file found (looked at {searched_places()}); see examples/llmkit.yaml")
    note(f"config {found[0]} ({found[1]})")
    return load_config(found[0])


def _no_config(args: argparse.Namespace) -> bool:
    """True, after saying so on stderr, when there is no config file: the config commands then show the defaults."""
    if find_config(args.config, args.settings) is not None:
        return False
    note(f"no config file (looked at {searched_places()}); llmkit runs on its defaults (see examples/llmkit.yaml)")
    return True


def _defaults(settings: LLMKitSettings) -> dict[str, Any]:
    """What applies without a config file, as ``config show`` prints it."""
    limits = settings.default_limits()
    return {
        "llmkit run": "needs --model NAME (its key from the provider's variable, e.g. OPENAI_API_KEY), --offline (the "
        "bundled fake provider, no key) or --local (a real model on this machine)",
        "offline pool": [f"{m.name} (weight {m.weight:g})" for m in OFFLINE_POOL.models],
        "sampling": "the provider's defaults",
        "limits": limits.model_dump(exclude_none=True) if limits else "none (LLMKIT_REQUESTS_PER_MINUTE, "
        "LLMKIT_TOKENS_PER_MINUTE, LLMKIT_MAX_CONCURRENCY set them)",
        "retry": RetryPolicy().model_dump(),
        "cache_dir": f"{settings.cache_dir} (llmkit run caches there by default)",
        "log_level": settings.log_level,
    }


def _cmd_config_show(args: argparse.Namespace) -> int:
    if _no_config(args):
        print(yaml.safe_dump({"defaults": _defaults(args.settings)}, sort_keys=False, width=1000), end="")
        return EXIT_OK
    config = _config_file(args)
    names = [args.pool] if args.pool else list(config.pools)
    pools = {}
    for name in names:
        data = config.pool(name).model_dump(mode="json", exclude_none=True)
        for model in [*data["models"], *data.get("context_window_fallbacks", [])]:
            if model.get("api_key"):
                model["api_key"] = "***"
            if model.get("api_base"):  # a ?key= query or user:password@ in the URL
                model["api_base"] = mask_url(model["api_base"])
            if model.get("provider_options"):  # an Authorization header, aws_secret_access_key, ...
                model["provider_options"] = mask_options(model["provider_options"])
            else:
                model.pop("provider_options", None)
        if not data.get("context_window_fallbacks"):
            data.pop("context_window_fallbacks", None)
        pools[name] = data
    settings = args.settings
    header = f"# {config.path}, resolved (keys masked); cache_dir={settings.cache_dir} log_level={settings.log_level}\n"
    print(redact(header + yaml.safe_dump({"pools": pools}, sort_keys=False), config.secrets), end="")
    return EXIT_OK


def _cmd_config_validate(args: argparse.Namespace) -> int:
    if _no_config(args):
        print("ok: no config file to validate; `llmkit config show` shows the defaults")
        return EXIT_OK
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


def _known_models(provider: str) -> list[Model]:
    """The chat models LiteLLM's bundled price map knows for a provider prefix; ``ConfigError`` naming the prefixes
    it knows when there is none."""
    from ._transport import _litellm

    litellm = _litellm()
    names = sorted(litellm.models_by_provider.get(provider, ()))
    chat = [n for n in names if (litellm.model_cost.get(n) or litellm.model_cost.get(f"{provider}/{n}") or {}).get(
        "mode") == "chat"]  # fmt: skip
    if not chat:
        known = sorted(litellm.models_by_provider)
        raise ConfigError(
            f"LiteLLM knows no chat model for provider {provider!r}{did_you_mean(provider, known)}; "
            f"its providers: {', '.join(known)}"
        )
    return [Model(n if n.startswith(f"{provider}/") else f"{provider}/{n}") for n in chat]


def _cmd_models(args: argparse.Namespace) -> int:
    if args.provider:
        note(f"the chat models LiteLLM knows for provider {args.provider!r}")
        models = _known_models(args.provider)
    elif not args.model and not args.offline and _no_config(args):
        note("showing the offline default pool (what `llmkit run --offline` uses); --provider openai lists what "
             "LiteLLM knows for a provider, --model NAME shows one model")  # fmt: skip
        models = OFFLINE_POOL.models
    else:
        chosen = setup(args)
        note(chosen.source)
        models = chosen.pool.models
    facts = [_model_facts(m) for m in models]
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
    lines = table([header] + [[cell(f[k]) for k in keys] for f in facts])
    notes: list[dict[str, Any] | None] = [None, *facts]
    for line, fact in zip(lines, notes, strict=True):
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
    try:
        cache = ResponseCache(path)
    except ConfigError as exc:  # a corrupt database: clearing it is exactly what the user needs
        ResponseCache.wipe(path)
        print(f"{exc.message.split(';')[0]}: deleted and recreated it (every entry is gone)")
        return EXIT_OK
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
        help="run a file of prompts (JSONL, .txt or .csv)",
        description="Run every prompt of a file (JSONL, .txt or .csv); write one result line per prompt, in order.",
    )
    run.add_argument(
        "prompts",
        metavar="PROMPTS",
        help='JSONL (one JSON string, or {"id", "prompt" or "messages", "sampling"}, per line), .txt (one prompt per '
        "line) or .csv (a 'prompt' column, 'id' if present, other columns kept as metadata)",
    )
    run.add_argument(
        "--input-format",
        choices=FORMATS,
        help="how to read PROMPTS (default: by extension, .txt and .csv; JSONL for anything else)",
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
    backend.add_argument(
        "--local",
        action="store_true",
        help="answer from a real model on this machine (SmolLM2-135M via llama.cpp, the llmkit[local] extra): "
        "no API key, no network",
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
    limits.add_argument(
        "--timeout",
        type=_positive(float),
        metavar="S",
        help="seconds each attempt may take, connect to last byte (default: the pool's timeout_s, else 600)",
    )
    guards = run.add_argument_group("guardrails for unattended runs")
    guards.add_argument(
        "--max-cost", type=_positive(float), metavar="USD", help="stop sending once this much is spent (exit 1)"
    )
    guards.add_argument(
        "--deadline", type=_positive(float), metavar="SECONDS", help="fail what is not answered after this long"
    )
    guards.add_argument("--trace", metavar="DIR", help="write a redacted JSON-lines trace of every attempt to DIR")
    run.add_argument(
        "--schema",
        metavar="FILE|MODULE:CLASS",
        help="answers must validate against this JSON Schema file or pydantic class: re-asked when not, 'parsed' on "
        "each line (null and 'error' set when one never validates)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--provider-batch",
        action="store_true",
        help="send through the provider's batch API (OpenAI, Anthropic): half the price, answered within 24 h",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="shard the prompts across N worker processes (one core each) that share the cache and budget and split "
        "the limits (or share them through Redis)",
    )
    ray = run.add_argument_group("Ray (llmkit[ray])")
    ray.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="spread the prompts over Ray actors: a cluster's address, or none to start one on this machine",
    )
    ray.add_argument("--ray-actors", type=_positive(int), metavar="N", help="actors (one client each; default 2)")
    run.set_defaults(handler=cmd_run)
    from ._cli_batch import add_parsers as add_batch_parsers  # here: _cli_batch imports from _cli_run, like cli

    add_batch_parsers(commands, common, source)
    add_embed_command(commands, [common, source])

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
    models.add_argument(
        "--provider", metavar="PREFIX", help="list the chat models LiteLLM knows for a provider (openai, anthropic)"
    )
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
        note("interrupted")
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
