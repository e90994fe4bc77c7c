"""``llmkit embed TEXTS.jsonl -o VECTORS.jsonl|.npy``: embed a file of texts, resumable from the cache like ``run``.

Each input line is a JSON string or ``{"id": ..., "text": ...}``. JSONL output gets one line per text as it is
answered (``{"id", "index", "vector"}`` or ``{"id", "index", "error"}``); ``.npy`` output is a float32 matrix in input
order, written through a memory map (flat memory for any number of texts), with NaN rows for texts that failed. The
output goes to a temporary file renamed into place at the end, so an interrupted run never leaves half a file and
never touches the input. The cache is on by default: rerunning the same command sends only what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import io
import json
import os
from pathlib import Path
from typing import IO, Any

from . import EmbeddingOptions, LLMClient, LLMError, RateLimits, RetryPolicy
from ._cli_run import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError, _backend, _cache, _override, note, setup

__all__ = ["add_embed_command"]

_OFFLINE_MODEL = "openai/text-embedding-3-small"


def add_embed_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``llmkit embed`` on the CLI's subcommands."""
    embed = commands.add_parser(
        "embed",
        parents=parents,
        help="embed a JSONL file of texts",
        description="Embed every text of a JSONL file with the pool's first model (or --model).",
    )
    embed.add_argument("texts", metavar="TEXTS.jsonl", help='one text per line: a JSON string, or {"id", "text"}')
    embed.add_argument("-o", "--output", required=True, metavar="VECTORS", help="a .jsonl or .npy file to write")
    embed.add_argument("--dimensions", type=int, metavar="N", help="output size, for models that take it")
    embed.add_argument("--input-type", metavar="T", help="what the texts are for, in the provider's words")
    embed.add_argument("--batch-size", type=int, metavar="N", help="most texts per request (default: the provider's)")
    embed.add_argument("--max-in-flight", type=int, metavar="N", help="requests in flight at once (default 16)")
    embed.add_argument("--tpm", type=float, metavar="N", help="tokens per minute")
    embed.add_argument("--max-attempts", type=int, metavar="N", help="attempts per request; 1: no retries")
    embed.add_argument("--offline", action="store_true", help="answer from the bundled fake provider")
    embed.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    embed.add_argument("--cache-dir", metavar="DIR", help="cache directory (default: LLMKIT_CACHE_DIR or ~/.cache)")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar")
    embed.set_defaults(handler=cmd_embed, local=False, fault_rate=0.0, offline_rpm=None, offline_latency_s=0.0)


def _read(path: Path) -> tuple[list[Any], list[str], dict[int, str]]:
    """(ids, texts, bad lines by number); a line's id defaults to its number."""
    ids: list[Any] = []
    texts: list[str] = []
    bad: dict[int, str] = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                bad[number] = f"not JSON ({exc.msg})"
                continue
            text = item.get("text") if isinstance(item, dict) else item
            if not isinstance(text, str):
                bad[number] = 'expected a JSON string or {"id", "text": "..."}'
                continue
            ids.append(item.get("id", number) if isinstance(item, dict) else number)
            texts.append(text)
    return ids, texts, bad


def cmd_embed(args: argparse.Namespace) -> int:
    path, output = Path(args.texts), Path(args.output)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if output.suffix not in (".jsonl", ".npy"):
        raise UsageError(f"{output}: the output must end in .jsonl or .npy")
    if output.suffix == ".npy" and importlib.util.find_spec("numpy") is None:
        raise UsageError("writing .npy needs numpy: pip install 'llmkit[numpy]', or write .jsonl")
    if output.resolve() == path.resolve():
        raise UsageError(f"{output} is the input file; write the vectors elsewhere")
    ids, texts, bad = _read(path)
    for number, problem in list(bad.items())[:20]:
        note(f"{path}:{number}: {problem} (skipped)")
    if args.offline and not args.model and args.config is None:
        args.model = [_OFFLINE_MODEL]
    chosen = setup(args)
    note(chosen.source)
    options = EmbeddingOptions(dimensions=args.dimensions, input_type=args.input_type, batch_size=args.batch_size)
    limits = _override(chosen.pool.limits, RateLimits, tokens_per_minute=args.tpm)
    retry = _override(chosen.pool.retry, RetryPolicy, max_attempts=args.max_attempts)
    with _backend(args, chosen.pool.models[:1]) as (models, _):
        cache = _cache(args, args.settings, chosen.pool.cache)
        note("cache off" if cache is None else f"cache {cache.path}")
        client = LLMClient(models, limits=limits, retry=retry, cache=cache)
        tmp = output.with_name(f".{output.stem}.part{output.suffix}")
        try:
            with client, contextlib.redirect_stdout(io.StringIO()):  # LiteLLM's banners: nothing on stdout
                failed = asyncio.run(_embed_all(client, ids, texts, options, tmp, args))
        except KeyboardInterrupt:
            tmp.unlink(missing_ok=True)
            note("interrupted: what finished is in the cache; rerun the same command to resume")
            return EXIT_INTERRUPTED
        os.replace(tmp, output)
    sent = client.status.requests_sent
    note(f"{len(texts) - failed} embedded, {failed} failed, {len(bad)} bad lines skipped, {sent} requests; {output}")
    return EXIT_FAILED if failed or bad else EXIT_OK


async def _embed_all(
    client: LLMClient, ids: list[Any], texts: list[str], options: EmbeddingOptions, tmp: Path, args: Any
) -> int:
    """Write each vector as it arrives; returns how many texts failed."""
    failed = 0
    matrix: Any = None
    progress = None if args.no_progress else _bar(len(texts))
    with contextlib.ExitStack() as stack:
        out: IO[str] | None = None
        if tmp.suffix == ".jsonl":
            out = stack.enter_context(open(tmp, "w", encoding="utf-8"))
        stream = client.embed_as_completed(texts, options=options, max_in_flight=args.max_in_flight)
        async for index, vector in stream:
            if progress is not None:
                progress.update(1)
            if isinstance(vector, LLMError):
                failed += 1
                record: dict[str, Any] = {"id": ids[index], "index": index, "error": vector.to_dict()}
            else:
                record = {"id": ids[index], "index": index, "vector": vector}
            if out is not None:
                out.write(json.dumps(record) + "\n")
                continue
            if matrix is None and "vector" in record:
                matrix = _npy(tmp, len(texts), len(record["vector"]))
            if matrix is not None and "vector" in record:
                matrix[index] = record["vector"]
        if progress is not None:
            progress.close()
    if out is None:
        _finish_npy(tmp, matrix, len(texts))
    return failed


def _bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="text", dynamic_ncols=True)


def _npy(tmp: Path, rows: int, dims: int) -> Any:
    """A float32 .npy of ``rows`` x ``dims`` on disk, NaN until written."""
    import numpy as np

    matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dims))
    matrix[:] = np.nan
    return matrix


def _finish_npy(tmp: Path, matrix: Any, rows: int) -> None:
    import numpy as np

    if matrix is None:  # nothing succeeded: an empty matrix still says how many rows there were
        np.save(tmp, np.full((rows, 0), np.nan, dtype=np.float32))
    else:
        matrix.flush()
