"""Serve a FakeProvider until Ctrl-C: `python -m llmkit.testing [--port N] [--latency-s S] [--seed N]`.

Useful for pointing a notebook, a script or another language's client at the fake by hand.
"""

from __future__ import annotations

import argparse
import threading

from ._server import FakeProvider


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmkit.testing", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--latency-s", type=float, default=0.0, help="seconds each request waits")
    parser.add_argument("--seed", type=int, default=0, help="seed for random faults")
    args = parser.parse_args(argv)
    with FakeProvider(latency_s=args.latency_s, seed=args.seed, host=args.host, port=args.port) as fake:
        print(f"FakeProvider serving on {fake.url}", flush=True)
        for provider in ("openai", "anthropic", "gemini"):
            print(f"  {provider:<9} api_base={fake.api_base(provider)}", flush=True)
        print("Any API key works except 'invalid-key'. Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
