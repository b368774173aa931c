"""Tests of carpmodel.io.covariate_file: a user's covariate CSV, gaps filled and recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carpmodel.errors import DataError
from carpmodel.io.covariate_file import read_covariate_file


def test_csv_covariate_fills_gaps_and_records_them(tmp_path: Path):
    path = tmp_path / "salinity.csv"
    path.write_text(
        "year,salinity_g_per_l,source_id,confidence\n"
        "2000,14.0,survey,measured\n"
        "2001,,survey,measured\n"          # empty cell: missing value
        "2004,12.5,survey,measured\n"      # 2002-2003 missing years
        "2005,12.0,survey,measured\n"
        "2006,,survey,measured\n",         # trailing empty cell: held at the last value
        encoding="utf-8",
    )
    series = read_covariate_file(path, "salinity_g_per_l", "salinity_g_per_l", unit="g/L")
    np.testing.assert_array_equal(series.year, np.arange(2000, 2007))
    # linear interpolation between 2000 (14.0) and 2004 (12.5): −0.375 per year (exact in binary)
    np.testing.assert_allclose(series.values, [14.0, 13.625, 13.25, 12.875, 12.5, 12.0, 12.0], rtol=1e-12)
    assert series.filled_years == (2001, 2002, 2003, 2006)
    assert "linear interpolation" in series.note and "held at the nearest value" in series.note
    assert series.observed


def test_csv_covariate_errors_name_file_and_line(tmp_path: Path):
    path = tmp_path / "level.csv"
    path.write_text("year,level_m,source_id,confidence\n2000,3194.2,gauge,measured\n"
                    "2001,high,gauge,measured\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_covariate_file(path, "level_m", "level_m")
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "level_m" in message
    path.write_text("year,level_m,source_id,confidence\n2001,1,gauge,measured\n2000,2,gauge,measured\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match="line 3.*ascending"):
        read_covariate_file(path, "level_m", "level_m")

