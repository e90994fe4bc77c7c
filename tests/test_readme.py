"""The README's Python examples run, in order, in one namespace, offline (they start their own FakeProvider)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_readme_python_examples_run() -> None:
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"__name__": "readme"}
    try:
        for number, code in enumerate(blocks, 1):
            try:
                exec(compile(code, f"README.md python block {number}", "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"README python block {number} failed: {exc!r}\n{code}")
    finally:
        fake = namespace.get("fake")
        if fake is not None:
            fake.stop()  # type: ignore[attr-defined]


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    readme = README.read_text()
    assert 'pip install -e ".[test,local]" && python -m pytest' in readme
    assert 'pip install --quiet -e ".[test,local]"' in ci and "\npython -m pytest" in ci
    cmake = re.search(r'CMAKE_ARGS="([^"]+)"', ci)
    assert cmake is not None and cmake.group(1) in readme


def test_readme_error_tree_matches_the_module() -> None:
    from llmkit import errors

    names_in_module = re.findall(r"[├└]── (\w+)", errors.__doc__)
    names_in_readme = re.findall(r"[├└]── (\w+)", README.read_text())
    assert len(names_in_module) == 14 and names_in_module == names_in_readme
    assert all(hasattr(errors, name) for name in names_in_module)
