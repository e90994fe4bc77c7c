"""The layer map, the public surface and import cost, checked mechanically."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import llmkit

PACKAGE = Path(llmkit.__file__).parent

# Each module may import only these llmkit modules (plus stdlib and third-party packages named in the docstring).
ALLOWED = {
    "errors": set(),
    "_types": set(),
    "_params": {"_messages", "_output", "errors"},
    "_output": {"_result", "_types", "errors"},
    "_result": {"errors"},
    "_files": {"errors"},
    "_messages": {"_files", "_types", "errors"},
    "_fingerprint": {"_files", "_messages", "_output", "_params", "_types"},
    "_cache": {"_result", "_vector_cache", "errors"},
    "_limiter": {"_params", "errors"},
    "_router": {"_params", "errors"},
    "_retry": {"_params", "errors"},
    "_status": {"_result"},
    "_normalize": {"_result", "errors"},
    "_transport": {"_budget", "_files", "_normalize", "_params", "_result", "_types", "errors"},
    "_fastpath": {"_fastpath_gemini", "_fastpath_stream", "_result", "_transport", "errors"},
    "_fastpath_gemini": {"errors"},
    "_fastpath_stream": {"_fastpath", "_result", "_transport"},
    "_upload_transport": {"_files", "_params", "_transport", "errors"},
    "_uploads": {"_cache", "_files", "_params", "_result", "_transport", "_upload_transport", "errors"},
    "_sync": {"errors"},
    "_lazy": set(),
    "_outfile": {"errors"},
    "_budget": {"_params", "_result", "errors"},
    "_trace": {"_result", "_transport", "errors"},
    "otel": {"_params", "_result", "_trace", "errors"},
    "local": {"_params", "errors"},
    "_settings": {"_cache", "_client", "_params", "_redis", "_uploads", "errors"},
    "_cli_input": {"_params", "errors"},
    "_batch": {"_budget", "_client", "_params", "_result", "_types", "errors"},
    "_batch_transport": {"_normalize", "_params", "_result", "_transport", "errors"},
    "_batch_manifest": set(),
    "_provider_batch": {
        "_batch",
        "_batch_manifest",
        "_cache",
        "_batch_transport",
        "_client",
        "_params",
        "_result",
        "_sync",
        "_types",
        "errors",
    },
    "_vector_cache": set(),
    "_embed_pack": set(),
    "_embed": {
        "_batch",
        "_cache",
        "_client",
        "_embed_pack",
        "_params",
        "_result",
        "_retry",
        "_transport",
        "_vector_cache",
        "errors",
    },
    "_redis": {"_cache", "_limiter", "_params", "_result", "_router", "errors"},
    "ray": {"_cli_input", "_cli_run", "_client", "_result", "errors"},
    "_cli_ray": {"_cache", "_cli_input", "_cli_run", "_client", "_params", "_redis", "errors", "ray"},
    "_client": {
        "_batch",
        "_budget",
        "_trace",
        "_provider_batch",
        "_embed",
        "_cache",
        "_settings",
        "_fingerprint",
        "_lazy",
        "_limiter",
        "_messages",
        "_output",
        "_params",
        "_redis",
        "_result",
        "_retry",
        "_router",
        "_status",
        "_sync",
        "_transport",
        "_fastpath",
        "_types",
        "_uploads",
        "_workers",
        "errors",
    },
    "_workers": {
        "_batch",
        "_budget",
        "_cache",
        "_client",
        "_fastpath",
        "_params",
        "_redis",
        "_result",
        "_transport",
        "_types",
        "errors",
    },
}
# _batch_transport: provider batch APIs are a second wire (files, jobs, result lines), see its docstring.
# _fastpath: LiteLLM's provider translation on llmkit's own HTTP session, see its docstring.
# _fastpath_gemini: the same for Gemini (AI Studio), whose handler lives outside its provider config.
# _fastpath_stream: LiteLLM's chunk parsers and stream wrapper on that session (streams on the fast path).
# _upload_transport: files APIs are a third wire (uploads referenced by id in chat), see its docstring.
LITELLM_ONLY_IN = {
    "_transport",
    "_batch_transport",
    "_fastpath",
    "_fastpath_gemini",
    "_fastpath_stream",
    "_upload_transport",
    "cli",
    "local",
    "_local",
}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(llmkit modules imported, top-level third-party names imported at module level)."""
    tree = ast.parse(path.read_text())
    internal, top_level = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                internal.add(node.module.split(".")[0])
            else:
                internal.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_level.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
    return internal, top_level


def test_layers_import_only_earlier_layers() -> None:
    for name, allowed in ALLOWED.items():
        internal, _ = _imports(PACKAGE / f"{name}.py")
        assert internal <= allowed, f"{name} imports {sorted(internal - allowed)} against the layer map"


def test_only_the_transport_imports_litellm() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        _, imported = _imports(path)
        if "litellm" in imported and path.stem not in LITELLM_ONLY_IN:
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_import_llmkit_stays_light() -> None:
    code = (
        "import sys, llmkit; "
        "heavy = [m for m in ('litellm', 'langchain_core', 'aiohttp', 'openai', 'opentelemetry', 'tenacity', "
        "'diskcache', 'multiprocessing', 'numpy', 'yaml', 'redis', 'llmkit._embed', 'llmkit._provider_batch', "
        "'llmkit._workers', 'llmkit._redis', 'llmkit._settings', 'llmkit._fastpath', 'llmkit._uploads', "
        "'llmkit._batch', 'llmkit._vector_cache') "
        "if m in sys.modules];"
        "print(','.join(heavy))"
    )
    # cwd: this tree's llmkit, not the installed one (the suite runs each test in a temporary directory).
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    ).stdout.strip()
    assert out == ""


def test_all_is_sorted_complete_and_resolvable() -> None:
    assert llmkit.__all__ == sorted(llmkit.__all__)
    for name in llmkit.__all__:
        assert getattr(llmkit, name) is not None
    public_classes = {
        name
        for name, obj in vars(llmkit).items()
        if isinstance(obj, type) and not name.startswith("_") and obj.__module__.startswith("llmkit")
    }
    assert public_classes <= set(llmkit.__all__)


def test_public_classes_show_the_public_module() -> None:
    assert llmkit.LLMClient.__module__ == "llmkit"
    assert "llmkit._" not in repr(llmkit.Completion)


def test_no_print_outside_the_cli() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.stem in {"cli", "__main__"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                raise AssertionError(f"print() in {path.relative_to(PACKAGE)}:{node.lineno}")
