"""``import llmkit`` loads only what most programs use (issue 16); the rest loads at first use, unchanged.

Import time itself is measured in tests/benchmarks/bench_import.py, not here: these tests pin what makes it fast
(which modules load, and that no pydantic validator is built at import) without timing anything.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import llmkit
from llmkit import _batch, _embed, _provider_batch, _sync, _workers
from llmkit._client import LLMClient

TREE = Path(llmkit.__file__).parent.parent


def _run(code: str) -> object:
    """``code``'s printed JSON, run in a fresh interpreter on this tree's llmkit."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=TREE)
    return json.loads(out.stdout)


def test_import_builds_no_pydantic_validator() -> None:
    # Building one runs pydantic's plugin scan over every installed package's entry points (~15 ms) and each model's
    # schema: models are built at their first use instead (defer_build).
    code = (
        "import json, llmkit, pydantic\n"
        "from pydantic._internal._mock_val_ser import MockValSer\n"
        "def subclasses(cls):\n"
        "    for sub in cls.__subclasses__():\n"
        "        yield sub\n"
        "        yield from subclasses(sub)\n"
        "built = sorted(c.__qualname__ for c in subclasses(pydantic.BaseModel) if c.__module__.startswith('llmkit')"
        " and not isinstance(c.__dict__.get('__pydantic_validator__'), MockValSer))\n"
        "print(json.dumps(built))"
    )
    assert _run(code) == []


def test_lazy_public_names_load_on_first_use_with_their_public_path() -> None:
    code = (
        "import json, sys, llmkit\n"
        "before = 'llmkit._embed' in sys.modules\n"
        "cls = llmkit.EmbeddingResult\n"
        "print(json.dumps([before, 'llmkit._embed' in sys.modules, cls.__module__, repr(cls),"
        " 'EmbeddingResult' in dir(llmkit), 'EmbeddingResult' in vars(llmkit)]))"
    )
    assert _run(code) == [False, True, "llmkit", "<class 'llmkit.EmbeddingResult'>", True, True]


def test_a_client_method_loads_its_module_and_its_public_names() -> None:
    # Reached through LLMClient first, the module's public classes still show the public path.
    code = (
        "import json, sys, llmkit\n"
        "method = llmkit.LLMClient.asubmit_batch\n"
        "from llmkit import _provider_batch\n"
        "print(json.dumps([method is _provider_batch.asubmit_batch, _provider_batch.BatchStatus.__module__]))"
    )
    assert _run(code) == [True, "llmkit"]


def test_lazy_methods_are_the_module_functions() -> None:
    assert LLMClient.abatch is _batch.abatch
    assert LLMClient.as_completed is _batch.as_completed
    assert LLMClient.aembed is _embed.aembed
    assert LLMClient.embed_as_completed is _embed.embed_as_completed
    assert LLMClient.asubmit_batch is _provider_batch.asubmit_batch
    assert LLMClient.abatch_in_workers is _workers.abatch_in_workers
    assert LLMClient.as_completed_in_workers is _workers.as_completed_in_workers
    for twin, coroutine in [
        (LLMClient.batch, _batch.abatch),
        (LLMClient.embed, _embed.aembed),
        (LLMClient.submit_batch, _provider_batch.asubmit_batch),
        (LLMClient.batch_in_workers, _workers.abatch_in_workers),
    ]:
        eager = _sync.sync_twin(coroutine)  # what the class body assigned before
        assert not inspect.iscoroutinefunction(twin)
        assert inspect.signature(twin) == inspect.signature(eager)
        assert (twin.__name__, twin.__doc__) == (eager.__name__, eager.__doc__)
    # After the first access the class holds the function itself, as an eager assignment would.
    assert vars(LLMClient)["aembed"] is _embed.aembed


def test_a_subclass_reaches_a_lazy_method_first() -> None:
    code = (
        "import json, inspect, llmkit\n"
        "class Mine(llmkit.LLMClient):\n"
        "    pass\n"
        "method = Mine.embed\n"
        "print(json.dumps([callable(method), 'embed' in vars(llmkit.LLMClient), 'embed' in vars(Mine),"
        " list(inspect.signature(method).parameters)[:2]]))"
    )
    assert _run(code) == [True, True, False, ["client", "texts"]]
