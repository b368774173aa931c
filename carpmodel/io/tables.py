"""Reading CSV and TOML tables whose errors name the file, line, column or key.

The building blocks of every carpmodel reader (:mod:`carpmodel.io.inputs`,
:mod:`carpmodel.io.covariate_file`, :mod:`carpmodel.io.climate_file`). A CSV table is read by
:func:`read_table` against one *cell parser* per column: a function ``str → value`` that
raises :class:`InvalidCell` with what it expected. :func:`read_table` turns that into a
:class:`~carpmodel.errors.DataError` naming ``file, line N, column C: expected …, got '…'``
(1-based lines, header = line 1). The ``*_cell`` names below are cell parsers; those taking
arguments (``number_cell("a positive weight in grams", lambda x: x > 0)``) build one.

TOML files are parsed with :func:`load_toml`; :class:`TomlWhere` writes the
``file, line N, key a.b`` prefix of a message (the line found best-effort).
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carpmodel.dims import CONFIDENCE_LEVELS
from carpmodel.errors import DataError

__all__ = [
    "CONFIDENCE_LEVELS",
    "YEAR_MAX",
    "YEAR_MIN",
    "InvalidCell",
    "Parser",
    "Table",
    "TomlWhere",
    "blank_or",
    "check_unique_keys",
    "check_years",
    "confidence_cell",
    "decode_utf8",
    "integer_cell",
    "load_toml",
    "nonempty_cell",
    "number_cell",
    "read_bytes",
    "read_table",
    "source_cell",
    "text_cell",
    "toml_line",
    "year_cell",
]


#: Calendar years a data file may hold.
YEAR_MIN, YEAR_MAX = 1900, 2100


# --------------------------------------------------------------------------- cell parsers


class InvalidCell(ValueError):
    """A cell does not parse; the argument says what was expected (``"a positive number"``)."""


#: A cell parser: the stripped cell text → its value, or :class:`InvalidCell`.
Parser = Callable[[str], Any]


def integer_cell(expected: str, lower: int, upper: int) -> Parser:
    """Parser of an integer in ``lower..upper``; ``expected`` is what a message says was expected."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise InvalidCell(expected) from None
        if not lower <= value <= upper:
            raise InvalidCell(expected)
        return value

    return parse


def number_cell(expected: str, check: Callable[[float], bool] = lambda x: True) -> Parser:
    """Parser of a finite float for which ``check`` holds."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise InvalidCell(expected) from None
        if not math.isfinite(value):
            raise InvalidCell(f"{expected} (finite)")
        if not check(value):
            raise InvalidCell(expected)
        return value

    return parse


def text_cell(text: str) -> str:
    """Parser of free text (any cell, empty included)."""
    return text


def nonempty_cell(expected: str) -> Parser:
    """Parser of any non-empty text."""
    def parse(text: str) -> str:
        if not text:
            raise InvalidCell(expected)
        return text

    return parse


def confidence_cell(text: str) -> str:
    """Parser of a confidence label, one of :data:`CONFIDENCE_LEVELS`."""
    if text not in CONFIDENCE_LEVELS:
        raise InvalidCell(f"one of {', '.join(CONFIDENCE_LEVELS)}")
    return text


def source_cell(sources: frozenset[str], sources_path: Path) -> Parser:
    """Parser of a source_id defined in ``sources`` (the headings of ``sources_path``)."""
    def parse(text: str) -> str:
        if not text:
            raise InvalidCell(f"a non-empty source_id defined in {sources_path}")
        if text not in sources:
            hint = difflib.get_close_matches(text, sorted(sources), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise InvalidCell(f"a source_id with a '## {text}' heading in {sources_path}{suffix}")
        return text

    return parse


def blank_or(parser: Parser) -> Parser:
    """Parser of an empty cell (kept as ``""``, an explicit missing value) or what ``parser`` takes."""
    def parse(text: str) -> Any:
        return "" if text == "" else parser(text)

    return parse


#: Parser of a calendar year in :data:`YEAR_MIN`..:data:`YEAR_MAX`.
year_cell: Parser = integer_cell(f"an integer year in {YEAR_MIN}..{YEAR_MAX}", YEAR_MIN, YEAR_MAX)


# --------------------------------------------------------------------------- CSV tables


@dataclass(frozen=True)
class Table:
    """Parsed CSV: column name → list of values, and the 1-based line of each row."""

    path: Path
    lines: list[int]
    columns: dict[str, list[Any]]


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``; a :class:`DataError` naming the file if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc.strerror}") from None


def decode_utf8(path: Path, raw: bytes) -> str:
    """Decode UTF-8 (a byte-order mark is allowed), naming the line of any invalid byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: expected UTF-8 text, got invalid byte "
            f"0x{raw[exc.start]:02x} at byte {exc.start}"
        ) from None


def read_table(
    path: Path, raw: bytes, required: Mapping[str, Parser], optional: Mapping[str, Parser]
) -> Table:
    """Parse and check every cell of a CSV file against its column parsers.

    ``required`` columns must all be present (the header message lists them in this order),
    ``optional`` ones may be (absent ones are filled with ``""``); any other column, a
    repeated column, a row with the wrong number of fields, an unparsable cell or a file
    without data rows raises a :class:`DataError` naming the file, line and column.
    Blank lines are skipped.
    """
    expected_header = ",".join(required)
    text = decode_utf8(path, raw)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise DataError(f"{path}, line 1: cannot parse the CSV header: {exc}") from None
    if not any(header):
        raise DataError(f"{path}, line 1: file is empty; expected a header line {expected_header}")
    _check_header(path, header, required, optional)
    parsers = {**required, **optional}
    columns: dict[str, list[Any]] = {name: [] for name in header}
    lines: list[int] = []
    previous_line = 1
    try:
        for row in reader:
            line, previous_line = previous_line + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {line}: expected {len(header)} fields ({','.join(header)}), "
                    f"found {len(row)}"
                )
            for name, cell in zip(header, row, strict=True):
                cell = cell.strip()
                try:
                    columns[name].append(parsers[name](cell))
                except InvalidCell as exc:
                    raise DataError(
                        f"{path}, line {line}, column {name}: expected {exc}, got {cell!r}"
                    ) from None
            lines.append(line)
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: cannot parse CSV: {exc}") from None
    if not lines:
        raise DataError(
            f"{path}, line 2: expected at least one data row after the header, found none"
        )
    for name in optional:
        columns.setdefault(name, [""] * len(lines))
    return Table(path, lines, columns)


def _check_header(
    path: Path, header: list[str], required: Mapping[str, Parser], optional: Mapping[str, Parser]
) -> None:
    allowed = [*required, *optional]
    listing = f"expected columns {', '.join(required)} (optional: {', '.join(optional)})"
    for index, name in enumerate(header):
        if name in header[:index]:
            raise DataError(f"{path}, line 1: column {name!r} appears twice; {listing}")
        if name not in allowed:
            raise DataError(
                f"{path}, line 1: unknown column {name!r}; allowed columns: {', '.join(allowed)}"
            )
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(f"{path}, line 1: missing column(s) {', '.join(missing)}; {listing}")


def check_years(table: Table, *, contiguous: bool) -> None:
    """Years must be ascending and unique; with ``contiguous`` also without gaps."""
    years, lines = table.columns["year"], table.lines
    for i in range(1, len(years)):
        year, previous = years[i], years[i - 1]
        where = f"{table.path}, line {lines[i]}, column year"
        if year == previous:
            raise DataError(f"{where}: duplicate year {year} (also on line {lines[i - 1]})")
        if year < previous:
            raise DataError(
                f"{where}: expected years in ascending order, got {year} after {previous}"
            )
        if contiguous and year != previous + 1:
            raise DataError(
                f"{where}: gap in years: expected {previous + 1} after {previous}, got {year}"
            )


def check_unique_keys(
    table: Table, key_columns: Sequence[str], group_column: str | None
) -> None:
    """Rows must be unique in ``key_columns``; years ascend within each ``group_column`` value."""
    seen: dict[tuple[Any, ...], int] = {}
    last_year: dict[Any, int] = {}
    for i, line in enumerate(table.lines):
        key = tuple(table.columns[c][i] for c in key_columns)
        where = f"{table.path}, line {line}, column year"
        if key in seen:
            raise DataError(
                f"{where}: duplicate ({', '.join(key_columns)}) = {key} (also on line {seen[key]})"
            )
        seen[key] = line
        group = table.columns[group_column][i] if group_column else None
        year = table.columns["year"][i]
        if group in last_year and year < last_year[group]:
            raise DataError(
                f"{where}: expected years in ascending order, got {year} after {last_year[group]}"
            )
        last_year[group] = year


# --------------------------------------------------------------------------- TOML


def load_toml(path: Path, raw: bytes) -> tuple[str, dict[str, Any]]:
    """(text, parsed document) of a TOML file; a :class:`DataError` naming it if invalid."""
    text = decode_utf8(path, raw)
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: invalid TOML: {exc}") from None


def toml_line(text: str, table: str, key: str | None = None) -> int | None:
    """Best-effort 1-based line of ``[table]`` (or of ``key = ...`` inside it)."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + re.escape(table) + r"\s*\]")
    inline = re.compile(r"^\s*" + re.escape(table) + r"\s*[.=]")
    start = next((i for i, s in enumerate(lines) if header.match(s)), None)
    if start is None:
        return next((i + 1 for i, s in enumerate(lines) if inline.match(s)), None)
    if key is not None:
        assignment = re.compile(r"^\s*" + re.escape(key) + r"\s*[.=]")
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if assignment.match(lines[i]):
                return i + 1
    return start + 1


@dataclass(frozen=True)
class TomlWhere:
    """``where(table, key)`` → ``"file, line N, key table.key"`` (without the line if not found)."""

    path: Path
    text: str

    def __call__(self, table: str, key: str | None = None) -> str:
        line = toml_line(self.text, table, key)
        dotted = table if key is None else f"{table}.{key}"
        return f"{self.path}, line {line}, key {dotted}" if line else f"{self.path}, key {dotted}"
