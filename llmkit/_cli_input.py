"""``llmkit run``'s input: a prompts file as JSONL, plain text or CSV, every line checked before anything starts.

The format comes from ``--input-format`` or the file's extension (``.txt``: one prompt per line; ``.csv``: a
``prompt`` column, ``id`` if present, other columns kept as the result's ``metadata``; anything else: JSONL). When
the first lines show the file is not in that format, ``scan`` raises ``ConfigError`` with one line saying what was
expected, before a backend starts or the output is opened.

Bytes are decoded line by line: a byte that is not UTF-8 makes that line bad (reported with its number, skipped or
stopping the run like any bad line), never the whole run; a UTF-8 byte-order mark at the start is not an error.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._params import Prompt, RequestOptions, SamplingParams
from .errors import ConfigError, did_you_mean

__all__ = ["FORMATS", "PromptFile", "format_of"]

InputFormat = Literal["jsonl", "txt", "csv"]
FORMATS: tuple[InputFormat, ...] = ("jsonl", "txt", "csv")
LINE_KEYS = ("id", "prompt", "messages", "sampling", "metadata")
_BY_SUFFIX: dict[str, InputFormat] = {".txt": "txt", ".text": "txt", ".csv": "csv"}
# How many of the first non-empty lines must all fail before the file is judged to be in another format.
_SNIFF_LINES = 5
_BOM = "\ufeff"
_TRY_OTHER = (
    "for plain text (one prompt per line) use --input-format txt or a .txt file; for a CSV with a 'prompt' column, "
    "--input-format csv or a .csv file"
)


class _BadLine(Exception):
    pass


def format_of(path: Path, given: str | None) -> InputFormat:
    """``--input-format`` if given, else by extension: .txt and .csv, and JSONL for anything else."""
    if given is not None:
        return given  # type: ignore[return-value]  # argparse restricts it to FORMATS
    return _BY_SUFFIX.get(path.suffix.lower(), "jsonl")


def _decoded(number: int, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadLine(
            f"not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line); save the file as UTF-8"
        ) from None
    return text.removeprefix(_BOM) if number == 1 else text


def _jsonl_item(text: str, number: int) -> tuple[str | int, Prompt]:
    """One JSONL line as (id, Prompt); ``_BadLine`` says what is wrong with it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(data, str):
        data = {"prompt": data}
    if not isinstance(data, dict):
        raise _BadLine(f"expected a JSON string or object, got {type(data).__name__}")
    unknown = [k for k in data if k not in LINE_KEYS]
    if unknown:
        hint = did_you_mean(unknown[0], list(LINE_KEYS))
        raise _BadLine(f"unknown key {unknown[0]!r}{hint}; allowed: {', '.join(LINE_KEYS)}")
    line_id = data.get("id", number)
    if isinstance(line_id, bool) or not isinstance(line_id, (str, int)):
        raise _BadLine(f"id must be a string or an integer, got {json.dumps(line_id)}")
    if ("prompt" in data) == ("messages" in data):
        raise _BadLine("give exactly one of 'prompt' (a string) or 'messages' (a list of {role, content})")
    messages: Any = data.get("prompt", data.get("messages"))
    if "prompt" in data and (not isinstance(messages, str) or not messages.strip()):
        raise _BadLine("'prompt' must be a non-empty string")
    if "messages" in data and (
        not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and "role" in m for m in messages)
    ):
        raise _BadLine("'messages' must be a non-empty list of objects with 'role' and 'content'")
    sampling = data.get("sampling")
    if sampling is not None and not isinstance(sampling, dict):
        raise _BadLine(f"'sampling' must be an object, got {type(sampling).__name__}")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _BadLine(f"'metadata' must be an object, got {type(metadata).__name__}")
    options = RequestOptions(metadata=metadata) if metadata is not None else None  # comes back on the result line
    try:
        return line_id, Prompt(
            messages=messages, sampling=SamplingParams(**sampling) if sampling else None, options=options
        )
    except ConfigError as exc:
        raise _BadLine(str(exc)) from None


@dataclass
class _Row:
    """One input record: where it starts, its text (JSONL, txt) or cells (CSV), or why it cannot be read."""

    number: int
    text: str = ""
    cells: dict[str, str] | None = None
    error: str | None = None


@dataclass
class PromptFile:
    """A prompts file read twice: once to check every line before anything is sent, then lazily to run it.

    ``bad``: line number -> what is wrong. ``ids``: the id of each prompt yielded so far, in order. ``metadata``:
    a CSV row's other columns by prompt index, taken (``pop``) when its result is written.
    """

    path: Path
    format: InputFormat = "jsonl"
    bad: dict[int, str] = field(default_factory=dict)
    good: int = 0
    ids: list[str | int] = field(default_factory=list)
    metadata: dict[int, dict[str, str]] = field(default_factory=dict)
    _columns: list[str] = field(default_factory=list)

    def scan(self) -> None:
        """Check every line; ``ConfigError`` when the file is not in its format at all (nothing has started yet)."""
        self._check_format()
        first_line_of: dict[str | int, int] = {}
        for row in self._rows():
            try:
                line_id, _, _ = self._item(row)
            except _BadLine as exc:
                self.bad[row.number] = str(exc)
                continue
            if line_id in first_line_of:
                self.bad[row.number] = f"duplicate id {json.dumps(line_id)} (first on line {first_line_of[line_id]})"
                continue
            first_line_of[line_id] = row.number
            self.good += 1

    def _check_format(self) -> None:
        if self.format == "csv":
            self._columns = self._header()
            if "prompt" not in self._columns:
                shown = ", ".join(repr(c) for c in self._columns) or "none"
                raise ConfigError(
                    f"{self.path}: expected a CSV whose first line names a 'prompt' column (and optionally 'id'); "
                    f"its columns are {shown}{did_you_mean('prompt', self._columns)}"
                )
            return
        first = [row for _, row in zip(range(_SNIFF_LINES), self._rows(), strict=False)]
        if self.format == "jsonl" and first and all(_not_json(row) for row in first):
            raise ConfigError(
                f"{self.path}: expected JSONL (a JSON string or object per line), but line {first[0].number} is "
                f"not JSON; {_TRY_OTHER}"
            )
        if self.format == "txt" and first and all(_jsonl_object(row) for row in first):
            raise ConfigError(
                f"{self.path}: read as plain text (one prompt per line), but its lines are JSON objects; "
                "use --input-format jsonl to read them as JSONL"
            )

    def _header(self) -> list[str]:
        for row in self._csv_rows(header_only=True):
            if row.error is not None:
                raise ConfigError(f"{self.path}:{row.number}: the CSV header is {row.error}")
            return list(row.cells or ())
        raise ConfigError(f"{self.path}: the file is empty; expected a CSV header line with a 'prompt' column")

    def _lines(self) -> Iterator[_Row]:
        with self.path.open("rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    text = _decoded(number, raw)
                except _BadLine as exc:
                    yield _Row(number, error=str(exc))
                    continue
                if text.strip():
                    yield _Row(number, text=text)

    def _rows(self) -> Iterator[_Row]:
        return self._csv_rows() if self.format == "csv" else self._lines()

    def _csv_rows(self, header_only: bool = False) -> Iterator[_Row]:
        """CSV records (a quoted cell may span lines), each numbered by the line it starts on.

        Lines are decoded one by one; an undecodable one is kept with its bytes escaped, so only its record is bad.
        """
        undecodable: dict[int, str] = {}

        def text_lines() -> Iterator[str]:
            with self.path.open("rb") as f:
                for number, raw in enumerate(f, 1):
                    try:
                        yield _decoded(number, raw)
                    except _BadLine as exc:
                        undecodable[number] = str(exc)
                        yield raw.decode("utf-8", errors="replace")

        reader = csv.reader(text_lines())
        start = 1
        header: list[str] | None = None
        try:
            for cells in reader:
                number, start = start, reader.line_num + 1
                error = next((undecodable[n] for n in range(number, reader.line_num + 1) if n in undecodable), None)
                if header is None:
                    header = [c.strip() for c in cells]
                    if header_only:
                        yield _Row(number, cells=dict.fromkeys(header, ""), error=error)
                        return
                    continue
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    error = error or f"{len(cells)} cells where the header has {len(header)}"
                yield _Row(number, cells=dict(zip(header, cells, strict=False)), error=error)
        except csv.Error as exc:
            yield _Row(start, error=f"not valid CSV ({exc})")

    def _item(self, row: _Row) -> tuple[str | int, Prompt, dict[str, str] | None]:
        """(id, prompt, metadata) of one record; ``_BadLine`` says what is wrong with it."""
        if row.error is not None:
            raise _BadLine(row.error)
        if self.format == "jsonl":
            return (*_jsonl_item(row.text, row.number), None)
        if self.format == "txt":
            return row.number, Prompt(messages=row.text.rstrip("\r\n")), None
        cells = dict(row.cells or {})
        prompt = cells.pop("prompt")
        if not prompt.strip():
            raise _BadLine("the 'prompt' cell is empty")
        line_id = cells.pop("id", "") or row.number
        return line_id, Prompt(messages=prompt), cells or None

    def __len__(self) -> int:
        return self.good

    def __iter__(self) -> Iterator[Prompt]:
        for row in self._rows():
            if row.number in self.bad:
                continue
            line_id, prompt, metadata = self._item(row)
            if metadata:
                self.metadata[len(self.ids)] = metadata
            self.ids.append(line_id)
            yield prompt


def _not_json(row: _Row) -> bool:
    if row.error is not None:  # undecodable: no telling which format it was meant to be
        return False
    try:
        json.loads(row.text)
    except json.JSONDecodeError:
        return True
    return False


def _jsonl_object(row: _Row) -> bool:
    if row.error is not None or not row.text.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(row.text), dict)
    except json.JSONDecodeError:
        return False
