"""``llmkit run --ray [ADDRESS]``: the same run, with the prompts spread over Ray actors (``llmkit.ray``).

The driver checks the file as ``llmkit run`` does, starts (or joins) a Ray cluster, and hands each actor a recipe of
the run's client (models, limits, retry, cache, shared state), so an actor's answers are the local run's. Results are
written as Ray returns them, one line per prompt in the ``llmkit run`` format; a rerun resumes from the cache (the
disk cache on one machine, the Redis tier across machines).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from typing import IO, TYPE_CHECKING, Any

from ._client import LLMClient
from ._params import Model, RateLimits, RetryPolicy, SamplingParams
from ._redis import RedisState, SharedCache
from .errors import ConfigError

if TYPE_CHECKING:
    from ._cli_input import PromptFile
    from ._cli_run import _Tally

__all__ = ["run_on_ray", "start_ray"]

_DEFAULT_ACTORS = 2
_BATCH_SIZE = 64


def start_ray(address: str) -> None:
    """Join the cluster at ``address``, or (``local``) start one on this machine, on the loopback address."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'llmkit[ray]'") from None
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address == "local":
        ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    else:
        ray.init(address=address, log_to_driver=False)


def run_on_ray(args: argparse.Namespace, client: LLMClient, items: PromptFile, out: IO[str], tally: _Tally) -> None:
    """Send ``items`` through actors that rebuild ``client``; write and tally each result line as it comes back."""
    import ray

    from .ray import LLMKitPredictor, plain

    start_ray(args.ray)
    rows = list(_rows(items))
    dataset = ray.data.from_items(rows).map_batches(
        LLMKitPredictor,
        fn_constructor_kwargs={"client_factory": functools.partial(_rebuild, _recipe(client))},
        compute=ray.data.ActorPoolStrategy(size=args.ray_actors or _DEFAULT_ACTORS),
        batch_size=_BATCH_SIZE,
    )
    for row in dataset.iter_rows():
        record = plain(dict(row))
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        _count(tally, record)
        if not record["cache_hit"] and record["attempts"]:
            client.status.add("requests_sent", record["attempts"])


def _count(tally: _Tally, record: dict[str, Any]) -> None:
    """``_run_all``'s tally, from a result line (the actor had the ``Completion``; the driver has its line)."""
    from ._cli_run import _Row

    row = tally.rows.setdefault(record["model"] or "(no model)", _Row())
    if record["error"] is not None:
        row.failed += 1
        tally.failures.add(record["id"], record["error"])
        return
    row.done += 1
    if record["cache_hit"]:
        row.cache_hits += 1
        return
    row.tokens += record["usage"]["input_tokens"] + record["usage"]["output_tokens"]
    if record["cost_usd"] is None:
        row.unpriced += 1
    else:
        row.cost_usd += record["cost_usd"]


def _rows(items: PromptFile) -> list[dict[str, Any]]:
    """The good lines of the prompts file as rows, each with its id (the line number when it has none)."""
    if items.format != "jsonl":
        raise ConfigError(f"--ray reads JSONL prompts files; {items.path} is read as {items.format}")
    rows = []
    for row in items._rows():
        if row.number in items.bad:
            continue
        data = json.loads(row.text)
        data = {"prompt": data} if isinstance(data, str) else data
        rows.append({"id": row.number, **data})
    return rows


def _recipe(client: LLMClient) -> dict[str, Any]:
    """What an actor needs to build the same client: plain, picklable values."""
    cache = client.cache
    local = cache.local if isinstance(cache, SharedCache) else cache
    shared = client.shared
    return {
        "models": [m.model_dump(exclude_unset=True) for m in client.models],
        "fallbacks": [m.model_dump(exclude_unset=True) for m in client.context_window_fallbacks],
        "sampling": client.sampling.model_dump(exclude_unset=True) if client.sampling else None,
        "limits": client.limits.model_dump(exclude_unset=True) if client.limits else None,
        "retry": client.retry.model_dump(exclude_unset=True),
        "cache": (str(local.path), local.ttl, local.namespace) if local is not None else None,
        "shared": (shared.url, shared.namespace, isinstance(cache, SharedCache)) if shared is not None else None,
    }


def _rebuild(recipe: dict[str, Any]) -> LLMClient:
    """The client of ``recipe``, built in the actor."""
    from ._cache import ResponseCache

    local = None
    if recipe["cache"] is not None:
        path, ttl, namespace = recipe["cache"]
        local = ResponseCache(path, ttl=ttl, namespace=namespace)
    cache: ResponseCache | SharedCache | None = local
    shared = None
    if recipe["shared"] is not None:
        url, namespace, share_cache = recipe["shared"]
        shared = RedisState(url, namespace=namespace)
        if share_cache and local is not None:
            cache = shared.cache(local)
    return LLMClient(
        [_model(m) for m in recipe["models"]],
        sampling=SamplingParams(**recipe["sampling"]) if recipe["sampling"] else None,
        limits=RateLimits(**recipe["limits"]) if recipe["limits"] else None,
        retry=RetryPolicy(**recipe["retry"]),
        cache=cache,
        context_window_fallbacks=[_model(m) for m in recipe["fallbacks"]],
        shared=shared,
    )


def _model(data: dict[str, Any]) -> Model:
    key = data.get("api_key")
    return Model(**{**data, "api_key": key.get_secret_value() if key is not None else None})
