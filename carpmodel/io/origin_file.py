"""Read and validate ``origin_samples.csv``: fish examined for hatchery origin, by gear.

One row per sample (year × gear × release group × length range)::

    year,gear,fish_examined,fish_hatchery,method,detection_rate,false_positive_rate,
    length_min_cm,length_max_cm,release_group,design_effect,source_id,confidence[,note]

- ``gear``: one of :data:`GEARS` — ``survey_net`` (the fixed-point net: its size selectivity),
  ``spawning_run`` (mature fish: the maturity ogive), ``angler`` (the fishery's selectivity);
- ``fish_examined`` ≥ 1 and ``0 ≤ fish_hatchery ≤ fish_examined`` (integers);
- ``method`` (free text, e.g. "ALC otolith mark", "otolith chemistry"), its ``detection_rate``
  in (0, 1] (a hatchery fish read as hatchery) and ``false_positive_rate`` in [0, 1) (a wild
  fish read as hatchery), false positives below detections;
- ``length_min_cm``/``length_max_cm`` (optional, blank = open): only fish in that length range
  were examined (a window on top of the gear's selectivity);
- ``release_group`` (optional): a mark code ``YYYY-aN`` (released in year YYYY at age N) naming
  a row of releases_historical.csv released no later than the sample year; ``fish_hatchery``
  then counts fish carrying that mark; blank: any hatchery fish;
- ``design_effect`` (optional, ≥ 1, blank = 1): variance inflation of clustered sampling
  (beta-binomial).

Every error is a :class:`~carpmodel.errors.DataError` naming the file, line and column. No
such data exist for the Qinghai Lake naked carp (data/SOURCES.md, ``origin_samples``): the
file is optional and the bundled data do not have one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carpmodel.errors import DataError
from carpmodel.io.tables import (
    InvalidCell,
    Parser,
    blank_or,
    confidence_cell,
    integer_cell,
    nonempty_cell,
    number_cell,
    read_table,
    source_cell,
    text_cell,
    year_cell,
)

__all__ = ["GEARS", "ORIGIN_FILE", "OriginSampleTable", "parse_release_group", "read_origin_samples"]

ORIGIN_FILE = "origin_samples.csv"
#: gears an origin sample may come from, each with its own size selectivity
GEARS = ("survey_net", "spawning_run", "angler")
_GROUP = re.compile(r"^(\d{4})-a(\d{1,2})$")


@dataclass(frozen=True)
class OriginSampleTable:
    """The rows of ``origin_samples.csv`` (arrays of shape (n,); lengths NaN where open)."""

    path: Path
    year: np.ndarray
    gear: tuple[str, ...]
    fish_examined: np.ndarray
    fish_hatchery: np.ndarray
    method: tuple[str, ...]
    detection_rate: np.ndarray
    false_positive_rate: np.ndarray
    length_min_cm: np.ndarray
    length_max_cm: np.ndarray
    release_group: tuple[str, ...]
    design_effect: np.ndarray
    source_id: tuple[str, ...]
    confidence: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.year.size)


def parse_release_group(code: str) -> tuple[int, int]:
    """``(release year, age at release)`` of a mark code ``YYYY-aN``; ValueError otherwise."""
    match = _GROUP.match(code)
    if match is None:
        raise ValueError(f"expected a mark code YYYY-aN, got {code!r}")
    return int(match.group(1)), int(match.group(2))


def _gear(text: str) -> str:
    if text not in GEARS:
        raise InvalidCell(f"one of {', '.join(GEARS)}")
    return text


def _group(text: str) -> str:
    try:
        parse_release_group(text)
    except ValueError:
        raise InvalidCell("a mark code YYYY-aN (release year and age at release), or blank") from None
    return text


def read_origin_samples(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path,
                        releases: Any) -> OriginSampleTable:
    """Parse and check ``origin_samples.csv`` (see the module docstring); ``releases`` is the
    data directory's ReleaseHistory, against which mark codes are checked."""
    count: Parser = integer_cell("an integer number of fish, 0..10000000", 0, 10_000_000)
    required = {
        "year": year_cell,
        "gear": _gear,
        "fish_examined": integer_cell("an integer number of fish examined, 1..10000000", 1, 10_000_000),
        "fish_hatchery": count,
        "method": nonempty_cell("a non-empty description of the mark or method"),
        "detection_rate": number_cell("a detection rate in (0, 1]", lambda x: 0 < x <= 1),
        "false_positive_rate": number_cell("a false-positive rate in [0, 1)", lambda x: 0 <= x < 1),
        "source_id": source_cell(sources, sources_path),
        "confidence": confidence_cell,
    }
    length = blank_or(number_cell("a length in cm, 0..200", lambda x: 0 <= x <= 200))
    optional = {"length_min_cm": length, "length_max_cm": length, "release_group": blank_or(_group),
                "design_effect": blank_or(number_cell("a design effect >= 1", lambda x: x >= 1)),
                "note": text_cell}
    table = read_table(path, raw, required, optional)
    c = table.columns
    released = {(int(y), int(a)) for y, a, n in zip(releases.year, releases.age_at_release_yr,
                                                    releases.fish_released, strict=True) if n > 0}
    for i, line in enumerate(table.lines):
        def fail(column: str, expected: str, got: Any, line: int = line) -> DataError:
            return DataError(f"{path}, line {line}, column {column}: expected {expected}, got {got!r}")

        if c["fish_hatchery"][i] > c["fish_examined"][i]:
            raise fail("fish_hatchery", f"at most fish_examined ({c['fish_examined'][i]})",
                       c["fish_hatchery"][i])
        if c["false_positive_rate"][i] >= c["detection_rate"][i]:
            raise fail("false_positive_rate", f"below detection_rate ({c['detection_rate'][i]:g}): "
                       "otherwise a hatchery reading carries no information", c["false_positive_rate"][i])
        lo, hi = c["length_min_cm"][i], c["length_max_cm"][i]
        if lo != "" and hi != "" and not lo < hi:
            raise fail("length_max_cm", f"a length above length_min_cm ({lo:g})", hi)
        code = c["release_group"][i]
        if code:
            group = parse_release_group(code)
            if group not in released:
                raise fail("release_group", f"a mark code YYYY-aN of a release in {releases.path} "
                           "(year and age_at_release_yr of a row with fish released)", code)
            if group[0] > c["year"][i]:
                raise fail("release_group", f"a release no later than the sample year {c['year'][i]}", code)

    def numbers(name: str, blank: float) -> np.ndarray:
        return np.array([blank if v == "" else float(v) for v in c[name]], dtype=float)

    return OriginSampleTable(
        path=path, year=np.array(c["year"], dtype=int), gear=tuple(c["gear"]),
        fish_examined=np.array(c["fish_examined"], dtype=int),
        fish_hatchery=np.array(c["fish_hatchery"], dtype=int), method=tuple(c["method"]),
        detection_rate=np.array(c["detection_rate"], dtype=float),
        false_positive_rate=np.array(c["false_positive_rate"], dtype=float),
        length_min_cm=numbers("length_min_cm", np.nan), length_max_cm=numbers("length_max_cm", np.nan),
        release_group=tuple(c["release_group"]), design_effect=numbers("design_effect", 1.0),
        source_id=tuple(c["source_id"]), confidence=tuple(c["confidence"]))
