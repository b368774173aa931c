"""Tests of carpmodel.io.outputs: output directories and atomic writers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

from carpmodel.errors import OutputError
from carpmodel.io.outputs import (
    check_output_dir,
    prepare_output_dir,
    write_csv_atomic,
    write_figure_atomic,
    write_json_atomic,
    write_netcdf_atomic,
    write_text_atomic,
)


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def small_dataset() -> xr.Dataset:
    years = np.arange(2000, 2005)
    return xr.Dataset(
        {
            "biomass_t": ("year", np.linspace(2592.0, 12000.0, 5), {"units": "t"}),
            "count": ("year", np.arange(5), {"units": "1"}),
        },
        coords={"year": years},
        attrs={"seed": 1, "fit_converged": True},
    )


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- directories


def test_prepare_creates_missing_directory_with_parents(tmp_path: Path) -> None:
    out = prepare_output_dir(tmp_path / "a" / "b", force=False)
    assert out.is_dir() and out == tmp_path / "a" / "b"


def test_existing_directory_without_force_is_refused_and_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(OutputError, match=r"out: output directory exists; pass --force"):
        prepare_output_dir(out, force=False)
    assert listing(out) == {"old.txt": b"keep me"}
    assert prepare_output_dir(out, force=True) == out
    assert listing(out) == {"old.txt": b"keep me"}  # --force overwrites files, deletes none


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(OutputError, match="file.txt: exists and is not a directory"):
        prepare_output_dir(path, force=True)
    assert path.read_text() == "x"


def test_output_into_an_input_directory_is_refused_even_with_force(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for out in (data, data / "sub", tmp_path / "x" / ".." / "data"):
        with pytest.raises(OutputError, match="input directory"):
            check_output_dir(out, force=True, protected=[data])
    assert not (data / "sub").exists()
    assert check_output_dir(tmp_path / "elsewhere", force=False, protected=[data])


# --------------------------------------------------------------------------- writers


def test_text_json_and_csv_writers(tmp_path: Path) -> None:
    assert write_text_atomic(tmp_path / "a.txt", "héllo\n").read_text("utf-8") == "héllo\n"
    path = write_json_atomic(
        tmp_path / "run.json",
        {"z": 1, "a": {"nan": float("nan"), "inf": np.inf, "arr": np.array([1.5, np.nan]),
                       "n": np.int64(3), "ok": np.True_, "path": Path("x/y")}},
    )
    text = path.read_text()
    assert text.index('"a"') < text.index('"z"')  # sorted keys
    assert '\n  "a": {' in text  # indent 2
    assert json.loads(text) == {"a": {"arr": [1.5, None], "inf": None, "n": 3, "nan": None,
                                      "ok": True, "path": "x/y"}, "z": 1}
    path = write_csv_atomic(tmp_path / "m.csv", ["strategy", "value"],
                            [("a, b", 1.5), ("c", 2)])
    assert path.read_text() == 'strategy,value\n"a, b",1.5\nc,2\n'
    with pytest.raises(ValueError, match="line 3: row has 1 fields"):
        write_csv_atomic(tmp_path / "bad.csv", ["a", "b"], [(1, 2), (3,)])
    assert not (tmp_path / "bad.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "m.csv", "run.json"]


def test_written_files_have_normal_permissions(tmp_path: Path) -> None:
    # mkstemp creates 0600 files; the final file must get the umask default like open() would.
    path = write_text_atomic(tmp_path / "a.txt", "x")
    reference = tmp_path / "ref.txt"
    reference.write_text("x")
    assert path.stat().st_mode == reference.stat().st_mode


def test_netcdf_round_trip_with_compression(tmp_path: Path) -> None:
    ds = small_dataset()
    path = write_netcdf_atomic(ds, tmp_path / "sim.nc")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        xr.testing.assert_identical(back["biomass_t"].load(), ds["biomass_t"])
        assert back["biomass_t"].encoding["zlib"] is True
        assert back["count"].encoding.get("zlib", False) is False  # only floats compressed
        assert back.attrs["fit_converged"] == 1  # NetCDF has no bool attributes
    assert ds.attrs["fit_converged"] is True  # the caller's Dataset is not modified
    assert listing(tmp_path).keys() == {"sim.nc"}


def test_failing_netcdf_write_leaves_no_temp_and_keeps_old_target(tmp_path: Path) -> None:
    target = tmp_path / "sim.nc"
    target.write_bytes(b"old contents")
    bad = small_dataset()
    bad["bad"] = ("year", np.array([{"a": 1}] * 5, dtype=object))  # cannot be encoded
    with pytest.raises(Exception) as info:
        write_netcdf_atomic(bad, target)
    assert not isinstance(info.value, OutputError)  # a bug in the data, not an I/O problem
    assert listing(tmp_path) == {"sim.nc": b"old contents"}


def test_failing_figure_write_leaves_no_partial_file(tmp_path: Path, close_figures,
                                                     monkeypatch) -> None:
    fig, ax = plt.subplots()
    ax.plot([2000, 2001], [1.0, 2.0])

    def savefig_then_fail(fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG partial")  # half-written output, then a crash
        raise RuntimeError("disk went away mid-write")

    monkeypatch.setattr(fig, "savefig", savefig_then_fail)
    with pytest.raises(RuntimeError, match="mid-write"):
        write_figure_atomic(fig, tmp_path / "biomass.png")
    assert listing(tmp_path) == {}


def test_figures_by_suffix(tmp_path: Path, close_figures) -> None:
    fig, ax = plt.subplots()
    ax.plot([2000, 2001], [1.0, 2.0])
    png = write_figure_atomic(fig, tmp_path / "b.png")
    svg = write_figure_atomic(fig, tmp_path / "b.svg")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in svg.read_bytes()[:500]
    with pytest.raises(OutputError, match=r"b.gif: unsupported figure format '.gif'"):
        write_figure_atomic(fig, tmp_path / "b.gif")
    assert listing(tmp_path).keys() == {"b.png", "b.svg"}


def test_unwritable_directory_is_an_output_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        missing = tmp_path / "no" / "such" / "dir" / "a.txt"  # root ignores permissions
        with pytest.raises(OutputError, match="a.txt: cannot write"):
            write_text_atomic(missing, "x")
        return
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="a.txt: cannot write"):
        write_text_atomic(locked / "a.txt", "x")
