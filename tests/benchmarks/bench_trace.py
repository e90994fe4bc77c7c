"""Issue #17: what hooks and traces cost per call, side by side with none.

    python tests/benchmarks/bench_trace.py                 # 7 alternating repetitions of 400 calls per variant
    python tests/benchmarks/bench_trace.py --calls 200 --reps 3
    python tests/benchmarks/bench_trace.py --only pipeline          # llmkit alone, over an in-process transport

Variants, run in rotating order inside each repetition so machine noise spreads over all of them:

- ``off``: no hooks (the default);
- ``noop-hook``: one ``Hooks`` subclass that overrides nothing (the cost of building and dispatching the events);
- ``trace-dir``: a ``Tracer`` writing JSON lines to a directory;
- ``trace-dir-4k``: the same with ``max_body_bytes=4096``;
- ``budget``: a cost ``Budget`` (a reservation and a settlement per attempt), for comparison.

Each call is one ``abatch`` of ``--calls`` distinct prompts against the fake provider in its own process, so the
client's process CPU (``time.process_time``) is llmkit + LiteLLM alone. Reported: CPU microseconds per call (median
of the repetitions, and min-max), the ratio to ``off``, and garbage-collector time.

End to end, LiteLLM's ~5 ms of CPU per call swamps the tracer's share in machine noise, so a second table times the
tracer alone: the events of one answered call (``completed`` with a real response) and one failed attempt, fed to
a ``Tracer`` many times over, with the same alternation.

``--only pipeline`` times llmkit's own pipeline per call (cache miss, routing, retry bookkeeping, result) over an
in-process transport that answers at once: no HTTP, no LiteLLM. With ``PYTHONPATH`` pointed at an older tree that has
no hooks, only ``off`` runs, which is how "tracing off costs nothing" was checked against the tree before it.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    MODEL,
    RemoteFake,
    Timing,
    environment,
    markdown_table,
    median,
    progress,
    quiet_litellm,
    section,
    timed,
)

VARIANTS = ("off", "noop-hook", "trace-dir", "trace-dir-4k", "budget")


def _client(variant: str, base: str, traces: Path) -> Any:
    from llmkit import Budget, Hooks, LLMClient, Model, SamplingParams, Tracer

    kwargs: dict[str, Any] = {}
    if variant == "noop-hook":
        kwargs["hooks"] = Hooks()
    elif variant == "trace-dir":
        kwargs["hooks"] = Tracer(traces / variant)
    elif variant == "trace-dir-4k":
        kwargs["hooks"] = Tracer(traces / variant, max_body_bytes=4096)
    elif variant == "budget":
        kwargs["budget"] = Budget(max_cost_usd=1000.0)
    model = Model(MODEL, api_base=base, api_key="k-trace")
    return LLMClient(model, sampling=SamplingParams(max_tokens=32), **kwargs)


async def _run(variant: str, base: str, traces: Path, calls: int, rep: int) -> Timing:
    client = _client(variant, base, traces)
    prompts = [f"rep {rep} variant {variant} prompt {i}" for i in range(calls)]
    with timed() as timing:
        results = await client.abatch(prompts, max_in_flight=16)
    client.close()
    failed = sum(not r.ok for r in results)
    if failed:
        raise SystemExit(f"{variant}: {failed} calls failed")
    return timing


def _tracer_alone(reps: int, events: int, tmp: Path) -> None:
    """CPU per traced call of the Tracer itself: build the lines, redact, serialize, write."""
    from llmkit import LLMClient, Model, Tracer
    from llmkit._trace import AttemptFailed, CallCompleted
    from llmkit.errors import ProviderError
    from llmkit.testing import FakeProvider

    with FakeProvider() as fake:
        model = Model(MODEL, api_base=fake.api_base("openai"), api_key="sk-bench-trace-key")
        answer = LLMClient(model).complete("a realistic prompt of a dozen words or so, to be traced many times")
    client = LLMClient(model)
    request = client.plan("a realistic prompt of a dozen words or so, to be traced many times").requests[0]
    done = CallCompleted("c0ffee", answer, request, False, {"row": 1})
    failed = AttemptFailed("c0ffee", 1, request, ProviderError("boom", status=500), 0.1, "retry", False, {"row": 1})
    variants = {
        "answered call (attempt + call lines)": lambda t: t.completed(done),
        "failed attempt (1 line)": lambda t: t.attempt_failed(failed),
    }
    rows = []
    for name, emit in variants.items():
        for cut in (None, 4096):
            samples = []
            for rep in range(reps):
                tracer = Tracer(tmp / f"alone-{rep}", max_body_bytes=cut)
                with timed() as timing:
                    for _ in range(events):
                        emit(tracer)
                tracer.close()
                samples.append(timing.cpu_s / events * 1e6)
            rows.append(
                (
                    name,
                    "whole" if cut is None else f"{cut} chars",
                    f"{median(samples):.0f}",
                    f"{min(samples):.0f}-{max(samples):.0f}",
                )
            )
    print(markdown_table(("event", "bodies", "CPU µs (median)", "min-max"), rows))


async def main(calls: int, reps: int) -> None:
    quiet_litellm()
    section("Hooks and traces: CPU per call")
    print(environment())
    print(
        "\nThe fake provider runs in its own process; CPU is this process's (llmkit + LiteLLM), per call of a "
        f"{calls}-prompt batch, 16 in flight. {reps} repetitions, variants in rotating order.\n"
    )
    per_call: dict[str, list[float]] = {v: [] for v in VARIANTS}
    gc_share: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with RemoteFake() as fake, tempfile.TemporaryDirectory() as tmp:
        base = fake.api_base()
        await _run("off", base, Path(tmp), calls, -1)  # warm-up: imports, connection pool, price lookups
        for rep in range(reps):
            order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
            for variant in order:
                timing = await _run(variant, base, Path(tmp), calls, rep)
                per_call[variant].append(timing.cpu_s / calls * 1e6)
                gc_share[variant].append(timing.gc_s / calls * 1e6)
            progress(f"repetition {rep + 1}/{reps} done")
        trace_bytes = sum(p.stat().st_size for p in Path(tmp).rglob("*.jsonl"))
        trace_lines = sum(len(p.read_text().splitlines()) for p in Path(tmp).rglob("*.jsonl"))
    base_cpu = median(per_call["off"])
    rows = [
        (
            variant,
            f"{median(per_call[variant]):.0f}",
            f"{min(per_call[variant]):.0f}-{max(per_call[variant]):.0f}",
            f"{median(per_call[variant]) / base_cpu:.3f}",
            f"{median(per_call[variant]) - base_cpu:+.0f}",
            f"{median(gc_share[variant]):.0f}",
        )
        for variant in VARIANTS
    ]
    headers = ("variant", "CPU µs/call (median)", "min-max", "ratio to off", "Δ µs/call", "GC µs/call")
    print(markdown_table(headers, rows))
    print(f"\nTrace files: {trace_lines:,} lines, {trace_bytes / max(trace_lines, 1):.0f} bytes per line on average.")


class _Instant:
    """A transport that answers every request at once with the same completion: llmkit's pipeline alone."""

    def __init__(self) -> None:
        from llmkit import Completion, Usage

        self._answer = Completion(text="ok", finish_reason="stop", usage=Usage(input_tokens=5, output_tokens=2))

    def check(self, request: Any) -> None:
        pass

    async def acomplete(self, request: Any) -> Any:
        return self._answer

    def astream(self, request: Any) -> Any:
        raise NotImplementedError


def pipeline(reps: int, calls: int = 20_000) -> None:
    """CPU per call of llmkit's pipeline with hooks off, a no-op hook and a Tracer (when this tree has them)."""
    import llmkit
    from llmkit import LLMClient

    section("llmkit's pipeline alone: CPU per call")
    print(f"llmkit from {Path(llmkit.__file__).parent}; {calls:,} sequential calls per sample")
    variants = ["off"] + (["noop-hook", "tracer"] if hasattr(llmkit, "Hooks") else [])
    samples: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for variant in variants[rep % len(variants) :] + variants[: rep % len(variants)]:
                hooks: Any = None
                if variant == "noop-hook":
                    hooks = llmkit.Hooks()  # type: ignore[attr-defined]
                elif variant == "tracer":
                    hooks = llmkit.Tracer(Path(tmp) / f"t{rep}")  # type: ignore[attr-defined]
                extra = {"hooks": hooks} if hooks is not None else {}
                client = LLMClient("openai/gpt-4o-mini", transport=_Instant(), **extra)

                async def run(client: Any = client) -> None:
                    for i in range(calls):
                        await client.acomplete(f"prompt {i}")

                with timed() as timing:
                    asyncio.run(run())
                samples[variant].append(timing.cpu_s / calls * 1e6)
    rows = [
        (v, f"{median(s):.1f}", f"{min(s):.1f}-{max(s):.1f}", f"{median(s) / median(samples['off']):.3f}")
        for v, s in samples.items()
    ]
    print(markdown_table(("variant", "CPU µs/call (median)", "min-max", "ratio to off"), rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--only", choices=("e2e", "pipeline"))
    args = parser.parse_args()
    if args.only == "pipeline":
        pipeline(args.reps)
        raise SystemExit(0)
    asyncio.run(main(args.calls, args.reps))
    section("The Tracer alone: CPU per event")
    with tempfile.TemporaryDirectory() as tmp:
        _tracer_alone(args.reps, 2000, Path(tmp))
