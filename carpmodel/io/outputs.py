"""Atomic output writers: text, JSON, CSV, NetCDF and figures.

Every writer writes to a temporary file in the target's directory and then moves it onto the
target with :func:`os.replace`, so a reader sees either the old file or the complete new one,
never a partial file. On any exception the temporary file is removed and the target is left as
it was. Operating-system failures (permission denied, disk full) become :class:`OutputError`;
other exceptions (for example a Dataset that cannot be encoded) propagate unchanged.

NetCDF files are encoded in memory and then written with plain file I/O: HDF5 does not survive
a full disk (it crashes the interpreter while cleaning up), so it never writes to the disk
itself. Dask-backed Datasets (chunked projections, too large to hold at once) are the
exception: they are streamed by HDF5, after a check that the free space can hold them
uncompressed. A process killed mid-write (SIGKILL) leaves its temporary file
(``.NAME.XXXXXXXX.tmp``); :func:`prepare_output_dir` with ``force`` removes such leftovers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from carpmodel.errors import OutputError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = [
    "FIGURE_FORMATS",
    "check_output_dir",
    "prepare_output_dir",
    "stale_temporaries",
    "write_csv_atomic",
    "write_figure_atomic",
    "write_json_atomic",
    "write_netcdf_atomic",
    "write_text_atomic",
]

#: Figure file suffixes and the matplotlib format each one selects.
FIGURE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def _file_mode() -> int:
    """Permission bits a normally created file gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


# --------------------------------------------------------------------------- directories


def check_output_dir(path: str | Path, force: bool, protected: Iterable[str | Path] = ()) -> Path:
    """Check that ``path`` may be used as an output directory, without creating anything.

    Parameters
    ----------
    path : str or Path
        The requested output directory.
    force : bool
        Allow an existing directory (files in it with the same names are overwritten; other
        files are kept).
    protected : iterable of paths
        Input directories (e.g. the data directory) that must not be written into: the output
        directory may be neither one of them nor inside one.

    Raises
    ------
    OutputError
        If ``path`` is a file, is or lies inside a protected directory, or exists and
        ``force`` is False.
    """
    path = Path(path)
    resolved = path.resolve()
    for item in protected:
        guarded = Path(item).resolve()
        if resolved == guarded or guarded in resolved.parents:
            raise OutputError(
                f"{path}: output directory would write into the input directory {item}; "
                "choose another --out"
            )
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory; choose another --out")
    if path.exists() and not force:
        raise OutputError(f"{path}: output directory exists; pass --force to overwrite")
    _check_writable(path)
    return path


def _check_writable(path: Path) -> None:
    """OutputError unless ``path`` (or, if it does not exist yet, its nearest existing ancestor,
    where it would be created) is a directory this process may write into."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot create output directory: {existing} is not a directory; "
                          f"choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "output directory is not writable" if existing == path else \
            f"cannot create output directory: {existing} is not writable"
        raise OutputError(f"{path}: {what}; choose another --out")


def prepare_output_dir(
    path: str | Path, force: bool, protected: Iterable[str | Path] = ()
) -> Path:
    """Check ``path`` with :func:`check_output_dir`, create it (with parents) and return it."""
    path = check_output_dir(path, force, protected)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create output directory: {exc.strerror}") from None
    if force:
        for leftover in stale_temporaries(path):
            leftover.unlink(missing_ok=True)
    return path


#: Name of a writer's temporary file: ``.`` + target name + ``.`` + 8 random characters + ``.tmp``
#: (:func:`tempfile.mkstemp` with the prefix and suffix of :func:`_write_atomic`).
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def stale_temporaries(directory: str | Path) -> list[Path]:
    """Temporary files of the atomic writers left in ``directory`` and its ``figures/`` (by a
    process that was killed while writing): what :func:`prepare_output_dir` with ``force``
    removes."""
    directory = Path(directory)
    found = []
    for folder in (directory, directory / "figures"):
        if folder.is_dir():
            found.extend(p for p in sorted(folder.iterdir()) if p.is_file() and _TEMPORARY.match(p.name))
    return found


# --------------------------------------------------------------------------- atomic core


def _write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` and move the result onto ``path``; clean up on failure."""
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror}") from None
    os.close(fd)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return _write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _jsonable(value: Any) -> Any:
    """Convert to plain JSON types: NaN/inf → None, numpy → Python, tuples → lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2, NaN and inf as null) atomically."""
    text = json.dumps(_jsonable(obj), sort_keys=True, indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def write_csv_atomic(
    path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> Path:
    """Write a CSV file (header line, then one line per row) atomically.

    Rows whose length differs from the header raise ValueError and nothing is written.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for number, row in enumerate(rows, start=2):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {number}: row has {len(row)} fields, header has {len(header)}"
            )
        writer.writerow(row)
    return write_text_atomic(path, buffer.getvalue())


def _netcdf_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """NetCDF has no boolean attributes: store True/False as 1/0."""
    return {k: int(v) if isinstance(v, bool | np.bool_) else v for k, v in attrs.items()}


def write_netcdf_atomic(ds: xr.Dataset, path: str | Path, *, complevel: int = 4) -> Path:
    """Write a Dataset as NetCDF4 (h5netcdf engine) atomically.

    Float variables are zlib-compressed at ``complevel``. Boolean attributes (which NetCDF
    cannot hold) are written as 1/0; string labels get a ``long_name`` and lose any ``units``
    (:func:`carpmodel.dims.describe_labels`); ``ds`` itself is not modified.
    """
    from carpmodel.dims import describe_labels

    ds = ds.copy(deep=False)
    ds.attrs = _netcdf_attrs(ds.attrs)
    for variable in ds.variables.values():
        variable.attrs = _netcdf_attrs(variable.attrs)
    describe_labels(ds.variables)   # every label says what it is, none claims a unit
    encoding: dict[str, dict[str, Any]] = {
        name: {"zlib": True, "complevel": complevel}
        for name, variable in ds.data_vars.items()
        if np.issubdtype(variable.dtype, np.floating)
    }
    for name, variable in ds.data_vars.items():
        if variable.chunks and name in encoding:   # dask-backed: one HDF5 chunk per dask chunk
            encoding[name]["chunksizes"] = tuple(max(sizes) for sizes in variable.chunks)
    if ds.chunks:
        _check_free_space(Path(path), int(ds.nbytes))
        return _write_atomic(
            path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
        )
    payload = ds.to_netcdf(None, engine="h5netcdf", encoding=encoding)   # in memory (see above)
    return _write_atomic(path, lambda tmp: tmp.write_bytes(payload))


def _check_free_space(path: Path, nbytes: int) -> None:
    """OutputError when the disk of ``path`` has less free space than ``nbytes`` (+ 1 MB)."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    if free < nbytes + 2**20:
        raise OutputError(f"{path}: cannot write: needs up to {nbytes / 2**20:,.0f} MB (uncompressed) and "
                          f"{free / 2**20:,.0f} MB are free on its disk; free space or choose another --out")


def write_figure_atomic(fig: Figure, path: str | Path, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib Figure atomically; the format follows the suffix (.png, .svg, .pdf).

    The figure is not closed.
    """
    path = Path(path)
    file_format = FIGURE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise OutputError(
            f"{path}: unsupported figure format {path.suffix!r}; use one of "
            f"{', '.join(FIGURE_FORMATS)}"
        )
    return _write_atomic(
        path, lambda tmp: fig.savefig(tmp, format=file_format, **savefig_kwargs)
    )
