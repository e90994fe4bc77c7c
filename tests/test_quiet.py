"""Nothing on a user's stdout or stderr that they did not ask for: LiteLLM's prints, asyncio's exit warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmkit import LLMClient, Model, ProviderError, RetryPolicy, _transport
from llmkit.testing import FakeProvider

ROOT = Path(__file__).resolve().parent.parent


def test_litellm_prints_nothing_on_stdout(fake_provider: FakeProvider, capfd: pytest.CaptureFixture[str]) -> None:
    """An unknown model name (the ``supports=`` case) and a failed attempt: LiteLLM would print on both."""
    unknown = Model("openai/not-known-to-litellm-1", api_base=fake_provider.api_base("openai"), api_key="k",
                    supports=frozenset({"logprobs"}))  # fmt: skip
    assert LLMClient([unknown]).complete("hi").text == "Echo: hi"
    failing = Model("openai/gpt-4o-mini", api_base=fake_provider.api_base("openai"), api_key="k")
    with pytest.raises(ProviderError):
        LLMClient([failing], retry=RetryPolicy(max_attempts=1)).complete("[[fail:500]] no")
    assert capfd.readouterr().out == ""


def test_llmkit_litellm_debug_keeps_litellm_prints(
    fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    litellm = _transport._litellm()
    monkeypatch.setattr(litellm, "suppress_debug_info", False)  # restored afterwards, like the cache below
    monkeypatch.setenv("LLMKIT_LITELLM_DEBUG", "1")
    _transport._litellm.cache_clear()
    try:
        unknown = Model("openai/not-known-to-litellm-2", api_base=fake_provider.api_base("openai"), api_key="k")
        LLMClient([unknown]).complete("hi")
    finally:
        _transport._litellm.cache_clear()
    assert "Provider List" in capfd.readouterr().out


SCRIPT = """
import asyncio
import sys
import time
from langchain_core.messages import HumanMessage
from llmkit import LLMClient, Model, RetryPolicy
from llmkit.langchain import ChatLLMKit
from llmkit.testing import FakeProvider

fake = FakeProvider().start()
client = LLMClient([Model("openai/my-unknown-model", api_base=fake.api_base("openai"), api_key="k",
                          supports=frozenset({"tools"}))], retry=RetryPolicy(max_attempts=1))
started = time.perf_counter()
first = client.complete("one")  # the README quickstart's order: a sync call, then asyncio.run
wall_s = time.perf_counter() - started
print("sync:", first.text)
# The first call imports LiteLLM (seconds); latency_s starts at the send, so it is a small part of the wall time.
print("latency_s excludes the import:", first.latency_s < wall_s / 2, file=sys.stderr)
try:
    client.complete("[[fail:500]] failing")
except Exception as exc:
    print("failed:", type(exc).__name__)

async def main():
    print("async:", (await client.acomplete("two")).text)
    async for index, completion in client.as_completed(["three", "four"]):
        print("as_completed:", index, completion.text)

asyncio.run(main())
llm = ChatLLMKit(model="openai/gpt-4o-mini", base_url=fake.api_base("openai"), api_key="k")
print("langchain:", llm.invoke([HumanMessage("five")]).content)
print("langchain async:", asyncio.run(llm.ainvoke("six")).content)

# Through acompletion, whose logging worker moves from llmkit's loop to asyncio.run's and leaves its old task behind:
# a garbage collection while the script still runs must not destroy that task (asyncio would print a warning).
slow = LLMClient([Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key="k", transport="litellm")])
slow.complete("seven")
asyncio.run(slow.acomplete("eight"))
import gc
gc.collect()
"""


@pytest.mark.slow
def test_a_script_mixing_sync_and_async_calls_exits_quietly(tmp_path: Path) -> None:
    """A fresh process, as a user runs it: only its own prints on stdout, and no asyncio warning on stderr at exit
    ("Task was destroyed but it is pending! ... LoggingWorker._worker_loop()")."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("LLMKIT_LITELLM_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)], capture_output=True, text=True, env=env, timeout=120,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["sync: Echo: one", "failed: ProviderError", "async: Echo: two"]
    assert sorted(lines[3:5]) == ["as_completed: 0 Echo: three", "as_completed: 1 Echo: four"]
    assert lines[5:] == ["langchain: Echo: five", "langchain async: Echo: six"]
    assert "latency_s excludes the import: True" in done.stderr
    assert "Task was destroyed" not in done.stderr and "never awaited" not in done.stderr, done.stderr
