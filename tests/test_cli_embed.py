"""``llmkit embed`` in-process through ``main(argv)``, against a FakeProvider the test can count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmkit.cli import main
from llmkit.testing import FakeProvider

KEY = "sk-cli-embed-marker-3f1a"


@pytest.fixture
def config(tmp_path: Path, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAKE_OPENAI", fake_provider.api_base("openai"))
    path = tmp_path / "llmkit.yaml"
    path.write_text(
        "pools:\n  default:\n    models:\n      - name: openai/text-embedding-3-small\n"
        f"        api_base: ${{FAKE_OPENAI}}\n        api_key: {KEY}\n"
    )
    return path


def texts_file(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def embed(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["embed", *argv, "--no-progress"])
    out, err = capsys.readouterr()
    assert out == "" and KEY not in err  # nothing on stdout, no key anywhere
    return code, err


def test_jsonl_then_a_longer_file_resumes_from_the_cache(tmp_path, config, fake_provider, capsys) -> None:
    texts_file(tmp_path / "texts.jsonl", ["alpha", "beta", "alpha"])
    code, _ = embed(capsys, "texts.jsonl", "-o", "vectors.jsonl", "--batch-size", "1")
    rows = [json.loads(line) for line in (tmp_path / "vectors.jsonl").read_text().splitlines()]
    assert code == 0 and sorted(r["id"] for r in rows) == ["t0", "t1", "t2"]
    by_id = {r["id"]: r["vector"] for r in rows}
    assert by_id["t0"] == by_id["t2"] and len(by_id["t0"]) == 16
    assert fake_provider.count == 2  # the repeated text went once
    texts_file(tmp_path / "texts.jsonl", ["alpha", "beta", "alpha", "gamma", "delta"])
    code, err = embed(capsys, "texts.jsonl", "-o", "vectors.jsonl", "--batch-size", "1")
    assert code == 0 and fake_provider.count == 4 and "2 requests" in err  # only gamma and delta were sent


def test_npy_is_a_float32_matrix_in_input_order(tmp_path, config, fake_provider, capsys) -> None:
    texts_file(tmp_path / "texts.jsonl", ["one", "two", "three [[fail:400]]", "four"])
    code, err = embed(capsys, "texts.jsonl", "-o", "vectors.npy", "--dimensions", "8", "--max-attempts", "1")
    matrix = np.load(tmp_path / "vectors.npy")
    assert code == 1 and "1 failed" in err
    assert matrix.shape == (4, 8) and matrix.dtype == np.float32
    assert np.isnan(matrix[2]).all() and not np.isnan(matrix[[0, 1, 3]]).any()
    code, _ = embed(capsys, "texts.jsonl", "-o", "again.jsonl", "--dimensions", "8")
    rows = {json.loads(line)["index"]: json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()}
    assert np.allclose(matrix[3], rows[3]["vector"]) and "error" in rows[2]


def test_the_input_file_is_never_the_output(tmp_path, config, capsys) -> None:
    path = texts_file(tmp_path / "texts.jsonl", ["one"])
    before = path.read_bytes()
    code, err = embed(capsys, "texts.jsonl", "-o", "texts.jsonl")
    assert code == 2 and "is the input file" in err and path.read_bytes() == before
    code, err = embed(capsys, "texts.jsonl", "-o", "vectors.csv")
    assert code == 2 and ".jsonl or .npy" in err


def test_offline_needs_no_config_or_key(tmp_path, capsys) -> None:
    texts_file(tmp_path / "texts.jsonl", ["one", "two"])
    code, err = embed(capsys, "texts.jsonl", "-o", "v.npy", "--offline")
    assert code == 0 and np.load(tmp_path / "v.npy").shape == (2, 16) and "offline" in err
