"""``llmkit run``'s input formats (JSONL, .txt, .csv), undecodable bytes, and results written in input order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["run", *argv, "--no-progress", "--offline", "--offline-latency-s", "0"])
    out, err = capsys.readouterr()
    assert out == ""
    return code, err


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_plain_text_is_one_prompt_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "prompts.txt").write_text('Say "hi"\n\n{not json} & <b>\nlast line without newline')
    code, err = run(capsys, "prompts.txt", "-o", "out.jsonl")
    assert code == 0, err
    got = [(r["id"], r["text"]) for r in results(tmp_path / "out.jsonl")]
    assert got == [(1, 'Echo: Say "hi"'), (3, "Echo: {not json} & <b>"), (4, "Echo: last line without newline")]


def test_csv_reads_prompt_and_id_and_keeps_other_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.csv").write_text(
        'id,prompt,topic\na1,"Hello, world",greeting\na2,"two\nlines",multi\n,no id here,x\na4,,empty\n',
        encoding="utf-8",
    )
    code, err = run(capsys, "data.csv", "-o", "out.jsonl")
    assert code == 1, err  # one bad row
    assert "data.csv:6: the 'prompt' cell is empty (skipped)" in err
    rows = results(tmp_path / "out.jsonl")
    assert [(r["id"], r["text"], r["metadata"]) for r in rows] == [
        ("a1", "Echo: Hello, world", {"topic": "greeting"}),
        ("a2", "Echo: two\nlines", {"topic": "multi"}),
        (5, "Echo: no id here", {"topic": "x"}),  # no id: the line the row starts on
    ]


def test_input_format_overrides_the_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "prompts.dat").write_text("first\nsecond\n")
    code, err = run(capsys, "prompts.dat", "-o", "out.jsonl", "--input-format", "txt")
    assert code == 0, err
    assert [r["text"] for r in results(tmp_path / "out.jsonl")] == ["Echo: first", "Echo: second"]


def test_plain_text_read_as_jsonl_stops_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "prompts.jsonl").write_text("What is 2+2?\nName a colour.\n")
    code, err = run(capsys, "prompts.jsonl", "-o", "out.jsonl")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "prompts.jsonl: expected JSONL (a JSON string or object per line), but line 1 is not JSON" in lines[0]
    assert "--input-format txt" in lines[0]
    assert not (tmp_path / "out.jsonl").exists()  # no output opened, no fake started


def test_jsonl_read_as_text_stops_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "prompts.txt").write_text('{"id": 1, "prompt": "a"}\n{"id": 2, "prompt": "b"}\n')
    code, err = run(capsys, "prompts.txt", "-o", "out.jsonl")
    assert code == 2 and "use --input-format jsonl" in err and not (tmp_path / "out.jsonl").exists()


def test_csv_without_a_prompt_column_says_which_columns_it_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data.csv").write_text("id,promt\n1,hello\n")
    code, err = run(capsys, "data.csv", "-o", "out.jsonl")
    assert code == 2
    assert "expected a CSV whose first line names a 'prompt' column" in err
    assert "its columns are 'id', 'promt' (did you mean 'promt'?)" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_a_file_with_no_good_line_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "prompts.jsonl").write_text('{"prompt": ""}\n"ok but"\n'.replace('"ok but"', '{"promt": "x"}'))
    code, err = run(capsys, "prompts.jsonl", "-o", "out.jsonl")
    assert code == 2 and "no prompt to send (2 bad line(s)" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_a_non_utf8_byte_is_a_bad_line_with_its_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b'\xef\xbb\xbf"first, after a BOM"\n"caf\xe9 in Latin-1"\n"third"\n')
    code, err = run(capsys, "prompts.jsonl", "-o", "out.jsonl")
    assert code == 1
    assert "prompts.jsonl:2: not UTF-8 (byte 0xe9 at byte 5 of the line); save the file as UTF-8 (skipped)" in err
    assert [(r["id"], r["text"]) for r in results(tmp_path / "out.jsonl")] == [
        (1, "Echo: first, after a BOM"),
        (3, "Echo: third"),
    ]
    code, err = run(capsys, "prompts.jsonl", "-o", "stopped.jsonl", "--on-bad-line", "stop")
    assert code == 2 and "1 bad line(s); nothing was sent" in err and not (tmp_path / "stopped.jsonl").exists()


def test_a_non_utf8_byte_in_a_csv_row_is_that_row_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.csv").write_bytes(b"\xef\xbb\xbfprompt\nfine\nna\xefve\nalso fine\n")
    code, err = run(capsys, "data.csv", "-o", "out.jsonl")
    assert code == 1
    assert "data.csv:3: not UTF-8 (byte 0xef at byte 3 of the line)" in err
    assert [r["text"] for r in results(tmp_path / "out.jsonl")] == ["Echo: fine", "Echo: also fine"]


def test_results_are_written_in_input_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first prompt answers last; without a cache (and with one) the output still follows the input."""
    lines = ["[[sleep:0.5]] slow first", *[f"quick {i}" for i in range(8)]]
    (tmp_path / "prompts.txt").write_text("\n".join(lines) + "\n")
    code, err = run(capsys, "prompts.txt", "-o", "out.jsonl", "--no-cache")
    assert code == 0, err
    assert [r["id"] for r in results(tmp_path / "out.jsonl")] == list(range(1, 10))
