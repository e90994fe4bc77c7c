"""One worker process of a fleet: runs prompts through an ``LLMClient`` against a fake provider, maybe sharing state.

Used by the multi-process tests and by ``tests/benchmarks/bench_scale.py``::

    python fleet_worker.py --api-base URL --prompts w1:0:250 [--redis URL] [--rpm 600] [--cache DIR] [--echo]

``--warm-up`` makes one call on another key first. Prints one JSON line per finished prompt with ``--echo`` (its
index), then a summary line: ok, failed, requests sent, 429s answered, wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from llmkit import LLMClient, Model, RateLimits, RedisState, RetryPolicy


async def main(args: argparse.Namespace) -> dict[str, float]:
    prefix, start, count = args.prompts.split(":")
    prompts = [f"{prefix} prompt {i}" for i in range(int(start), int(start) + int(count))]
    shared = RedisState(args.redis) if args.redis else None
    cache = None
    if args.cache:
        cache = shared.cache(local=args.cache) if shared is not None else args.cache
    elif shared is not None and args.shared_cache:
        cache = shared.cache()
    client = LLMClient(
        Model("openai/gpt-4o-mini", api_base=args.api_base, api_key=args.key),
        limits=RateLimits(requests_per_minute=args.rpm) if args.rpm else None,
        retry=RetryPolicy(max_attempts=args.max_attempts),
        shared=shared,
        cache=cache,
    )

    if args.warm_up:  # LiteLLM's first call in a process is slow (lazy imports): make it on another key
        await LLMClient(Model("openai/gpt-4o-mini", api_base=args.api_base, api_key="sk-warm-up")).acomplete("hi")

    def echo(index: int, completion: object) -> None:
        if args.echo:
            print(json.dumps({"done": index}), flush=True)

    started, wall, cpu = time.time(), time.perf_counter(), time.process_time()
    answers = await client.abatch(prompts, on_result=echo, max_in_flight=args.max_in_flight)
    summary = {
        "started": started,
        "ended": time.time(),
        "ok": sum(c.ok for c in answers),
        "failed": sum(not c.ok for c in answers),
        "sent": client.status.requests_sent,
        "rate_limited": client.status.rate_limited,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
    }
    client.close()
    if shared is not None:
        await shared.aclose()
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--key", default="sk-fleet-shared-key-0001")
    parser.add_argument("--prompts", required=True, help="PREFIX:START:COUNT")
    parser.add_argument("--redis")
    parser.add_argument("--shared-cache", action="store_true")
    parser.add_argument("--cache")
    parser.add_argument("--rpm", type=float)
    parser.add_argument("--max-attempts", type=int, default=8)
    parser.add_argument("--max-in-flight", type=int, default=100)
    parser.add_argument("--echo", action="store_true")
    parser.add_argument("--warm-up", action="store_true", help="one call on another key before the batch")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
    sys.exit(0)
