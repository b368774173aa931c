"""Read a user's environmental covariate from a CSV file into an EnvSeries.

Any annual covariate beyond the lake temperature of ``temperature.csv`` (river temperature,
days inside the spawning window, salinity, lake level) comes in a file
``year,<column>,source_id,confidence[,note]`` with the data directory's conventions; gaps are
filled and recorded, never silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carpmodel.errors import DataError
from carpmodel.io.tables import (
    blank_or,
    check_years,
    confidence_cell,
    nonempty_cell,
    number_cell,
    read_bytes,
    read_table,
    source_cell,
    text_cell,
    year_cell,
)
from carpmodel.model.checks import year_list
from carpmodel.model.covariates import OBSERVED_CONFIDENCE, EnvSeries

__all__ = ["read_covariate_file"]


def read_covariate_file(path: str | Path, name: str, column: str, *, unit: str = "",
                        sources: frozenset[str] | None = None,
                        sources_path: Path | None = None) -> EnvSeries:
    """Read a user-supplied covariate ``year,<column>,source_id,confidence[,note]``.

    Same conventions as the data directory: UTF-8, header on line 1, years ascending and
    unique, ``confidence`` one of measured/reported/derived/assumed, a non-empty
    ``source_id`` (checked against ``sources`` when given). Years may have gaps and a value
    cell may be empty (an explicit missing value). Gaps and empty cells are filled:

    - inside the series, by linear interpolation between the nearest years with values;
    - an empty cell before the first (after the last) value holds the first (last) value.

    Filled years are listed in ``filled_years`` and described in ``note``; the series is
    named ``name``, in ``unit``, and ``observed`` when every row with a value is ``measured``.

    Raises
    ------
    DataError
        Naming the file, the 1-based line and column: bad header, unparsable or non-finite
        value, duplicate or unordered year, unknown confidence, no value at all.
    """
    path = Path(path)
    source = source_cell(sources, sources_path or path.parent / "SOURCES.md") if sources is not None \
        else nonempty_cell("a non-empty source_id")
    required = {
        "year": year_cell,
        column: blank_or(number_cell(f"a finite number{' in ' + unit if unit else ''} or an empty cell")),
        "source_id": source,
        "confidence": confidence_cell,
    }
    table = read_table(path, read_bytes(path), required, {"note": text_cell})
    check_years(table, contiguous=False)
    years = np.asarray(table.columns["year"], dtype=np.int64)
    cells = table.columns[column]
    present = np.array([cell != "" for cell in cells])
    if not present.any():
        raise DataError(f"{path}, line 2, column {column}: expected at least one value, "
                        f"found only empty cells")
    known_year = years[present]
    known = np.array([cells[i] for i in np.flatnonzero(present)], dtype=float)
    full_year = np.arange(years[0], years[-1] + 1)
    values = np.interp(full_year, known_year, known)   # holds the end values outside
    filled = tuple(int(y) for y in full_year if y not in set(known_year.tolist()))
    inside = [y for y in filled if known_year[0] < y < known_year[-1]]
    outside = [y for y in filled if y < known_year[0] or y > known_year[-1]]
    notes = [f"{column} read from {path}"]
    if inside:
        notes.append(f"{len(inside)} missing year(s) inside the series filled by linear "
                     f"interpolation: {year_list(inside)}")
    if outside:
        notes.append(f"{len(outside)} empty year(s) at the ends held at the nearest value: "
                     f"{year_list(outside)}")
    confidences = [table.columns["confidence"][i] for i in np.flatnonzero(present)]
    observed = all(c in OBSERVED_CONFIDENCE for c in confidences)
    source_id = "+".join(dict.fromkeys(table.columns["source_id"][i] for i in np.flatnonzero(present)))
    return EnvSeries(name, full_year, values, unit, observed, source_id, filled, "; ".join(notes))
