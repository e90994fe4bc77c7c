"""The peers of ``bench_workers.py``, run by the benchmark's own venv (never llmkit's): lm-deluge, raw aiohttp posting
prebuilt JSON, and langchain-litellm's ``ChatLiteLLM.abatch``. One measurement per process, printed as one JSON line.

    python -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install lm-deluge aiohttp langchain-litellm \\
        "litellm==1.109.3"
    /tmp/bench-venv/bin/python tests/benchmarks/peers_fastpath.py deluge --url http://127.0.0.1:PORT --n 2000

Only the fake provider on 127.0.0.1 is contacted. lm-deluge takes a base URL per registered model
(``lm_deluge.models.register_model(..., api_base=...)``, which its OpenAI request appends ``/chat/completions`` to);
its rate limits are raised far above the run so only ``max_concurrent_requests`` binds, as ``max_in_flight`` does
for llmkit.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable

KEY = "k"


async def _deluge(url: str, prompts: list[str], concurrency: int) -> int:
    from lm_deluge import LLMClient
    from lm_deluge.models import register_model, registry

    os.environ["FAKE_OPENAI_KEY"] = KEY
    model_id = "fake-gpt-4o-mini"
    if model_id not in registry:
        register_model(
            id=model_id,
            name="gpt-4o-mini",
            api_base=f"{url}/v1",
            api_key_env_var="FAKE_OPENAI_KEY",
            api_spec="openai",
            input_cost=0.15,
            output_cost=0.6,
        )
    client = LLMClient(
        model_id,
        max_requests_per_minute=10_000_000,
        max_tokens_per_minute=10_000_000_000,
        max_concurrent_requests=concurrency,
        max_new_tokens=64,
        progress="manual",
    )
    results = await client.process_prompts_async(prompts, show_progress=False)
    return sum(1 for r in results if r is not None and not r.is_error)


async def _raw(url: str, prompts: list[str], concurrency: int) -> int:
    import aiohttp

    bodies = [
        json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": p}]}).encode() for p in prompts
    ]
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes) -> bool:
            async with gate, session.post(f"{url}/v1/chat/completions", data=body, headers=headers) as reply:
                data = await reply.json()
                return bool(data.get("choices"))

        return sum(await asyncio.gather(*(one(b) for b in bodies)))


async def _chatlitellm(url: str, prompts: list[str], concurrency: int) -> int:
    import litellm
    from langchain_litellm import ChatLiteLLM

    litellm.suppress_debug_info = True
    chat = ChatLiteLLM(model="openai/gpt-4o-mini", api_base=f"{url}/v1", api_key=KEY, max_retries=0)
    replies = await chat.abatch(prompts, config={"max_concurrency": concurrency})
    return sum(1 for r in replies if r.content)


PEERS: dict[str, Callable[[str, list[str], int], Awaitable[int]]] = {
    "deluge": _deluge,
    "raw": _raw,
    "chatlitellm": _chatlitellm,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rep", type=int, default=0)
    args = parser.parse_args()
    run = PEERS[args.peer]
    asyncio.run(run(args.url, [f"warm {i}" for i in range(50)], args.concurrency))  # imports, pools, registry
    prompts = [f"rep {args.rep} {args.peer} prompt {i}" for i in range(args.n)]
    gc_s, full = [0.0], [0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - started[0]
            full[0] += info["generation"] == 2

    gc.callbacks.append(on_gc)
    wall, cpu = time.perf_counter(), time.process_time()
    ok = asyncio.run(run(args.url, prompts, args.concurrency))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gc.callbacks.remove(on_gc)
    print(json.dumps({"ok": ok, "wall_s": wall, "cpu_s": cpu, "gc_s": gc_s[0], "full_collections": full[0]}))


if __name__ == "__main__":
    main()
