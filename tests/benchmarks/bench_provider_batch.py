"""Issue #15: llmkit's own CPU to prepare and collect a provider batch (OpenAI Batch API, Anthropic Message Batches).

    python tests/benchmarks/bench_provider_batch.py                  # 100,000 prompts per provider, 1 repetition
    python tests/benchmarks/bench_provider_batch.py --n 10000 --reps 3
    python tests/benchmarks/bench_provider_batch.py --quick          # 2,000 prompts

The fake provider runs in a subprocess (``_common.RemoteFake``; its batches end 2 s after creation), so the CPU
measured here is this process only: llmkit plus the LiteLLM code it calls (request transformation, files and batches
calls, response conversion, batch pricing). Phases: ``submit`` (plan and fingerprint every prompt, build every line
with LiteLLM's transformation, write the job directory, upload and create the provider jobs), ``collect`` (poll,
download the results, convert and price every line, store it in the cache, then every ``Completion`` in input
order); the waiting between polls is not CPU. Providers alternate within each repetition.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import gc
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# This checkout's llmkit, here and in the fake's subprocess (with the batch endpoints), not another installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [sys.path[0], os.environ.get("PYTHONPATH")]))

from _common import RemoteFake, environment, markdown_table, quiet_litellm, timed  # noqa: E402

from llmkit import LLMClient, Model  # noqa: E402

MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5"}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_once(fake: RemoteFake, provider: str, n: int, root: Path) -> dict[str, object]:
    cache = root / f"cache-{provider}"
    shutil.rmtree(cache, ignore_errors=True)
    client = LLMClient(Model(MODELS[provider], api_base=fake.api_base(provider), api_key="k"), cache=cache)
    prompts = [f"Label item {i}: is it a cat, a dog or a bird? Answer in one word." for i in range(n)]
    gc.collect()
    with timed() as submit:
        job = client.submit_batch(prompts)
    job_bytes = _size(job.path)
    gc.collect()
    with timed() as collect:
        results = job.wait(poll_s=0.5)
    assert len(results) == n and all(r.ok for r in results), "every prompt must be answered"
    cache_bytes = _size(cache) - _size(job.path)
    client.close()
    return {
        "provider": provider,
        "prompts": f"{n:,}",
        "provider jobs": str(len(job.status().jobs)),
        "submit CPU s": f"{submit.cpu_s:.1f}",
        "submit wall s": f"{submit.wall_s:.1f}",
        "collect CPU s": f"{collect.cpu_s:.1f}",
        "collect wall s": f"{collect.wall_s:.1f}",
        "CPU ms/prompt": f"{(submit.cpu_s + collect.cpu_s) / n * 1000:.2f}",
        "GC s": f"{submit.gc_s + collect.gc_s:.1f}",
        "job dir MB": f"{job_bytes / 1e6:.1f}",
        "cache MB": f"{cache_bytes / 1e6:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="prompts per provider batch")
    parser.add_argument("--reps", type=int, default=1, help="repetitions (providers alternate in each)")
    parser.add_argument("--quick", action="store_true", help="2,000 prompts")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.n
    quiet_litellm()
    print(environment())
    rows = []
    with RemoteFake() as fake, tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            order = ["openai", "anthropic"] if rep % 2 == 0 else ["anthropic", "openai"]
            for provider in order:
                rows.append(run_once(fake, provider, n, Path(tmp)))
                print(rows[-1], flush=True)
    print()
    print(markdown_table(list(rows[0]), [list(r.values()) for r in rows]))


if __name__ == "__main__":
    main()
