"""Reading back what carpmodel wrote: NetCDF and JSON results, and a fit directory.

Every problem (missing, truncated or foreign file, a variable or attribute that is not there,
a wrong shape, a non-finite estimate) is a :class:`~carpmodel.errors.DataError` naming the file
and what is wrong, so the CLI answers a damaged fit directory with one line and exit 2, never
an HDF5 traceback.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from carpmodel.errors import DataError

__all__ = ["FIT_ATTRS", "FIT_VARIABLES", "FitFiles", "read_fit_directory", "read_json", "read_netcdf"]

#: What ``project``, ``sensitivity`` and ``monitoring`` need from ``fit.nc``.
FIT_VARIABLES = ("theta", "covariance")
FIT_ATTRS = ("config_toml", "data_directory", "data_sha256")

_REFIT = "refit with `carpmodel fit --out DIR --force`"


def read_netcdf(path: str | Path, *, variables: Sequence[str] = (), attrs: Sequence[str] = (),
                hint: str = "") -> xr.Dataset:
    """Load a NetCDF file written by carpmodel into memory (the file is closed on return).

    Raises
    ------
    DataError
        The file is missing, not NetCDF4/HDF5 (or truncated), or lacks one of ``variables`` or
        ``attrs``; ``hint`` (e.g. how to make the file again) ends the message.
    """
    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not path.is_file():
        raise DataError(f"{path}: file not found{suffix}")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise DataError(f"{path}: not a readable NetCDF file ({_reason(exc)}){suffix}") from None
    for name in variables:
        if name not in ds.variables:
            raise DataError(f"{path}: variable {name!r} is missing{suffix}")
    for name in attrs:
        if name not in ds.attrs:
            raise DataError(f"{path}: attribute {name!r} is missing{suffix}")
    return ds


def read_json(path: str | Path, *, hint: str = "") -> dict[str, Any]:
    """A JSON object from ``path``; DataError naming the file (and line) if it is not one."""
    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found{suffix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {_reason(exc)}{suffix}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}){suffix}") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(value).__name__}{suffix}")
    return value


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message, without HDF5's call-site prefix."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.replace("Unable to synchronously open file", "").strip().strip("()").strip()
    return text or type(exc).__name__


@dataclass(frozen=True)
class FitFiles:
    """A fit directory as read: ``fit.nc`` (loaded), its run config as a parsed TOML mapping,
    and ``fit.json`` (None when the directory has none)."""

    path: Path
    dataset: xr.Dataset
    config: dict[str, Any]
    summary: dict[str, Any] | None


def read_fit_directory(fit_dir: str | Path) -> FitFiles:
    """Read and check the files of a directory written by ``carpmodel fit`` or ``run``.

    ``fit.nc`` must hold :data:`FIT_VARIABLES` and :data:`FIT_ATTRS`, ``theta`` finite with one
    value per ``parameter``, ``covariance`` square of the same size, and a parseable
    ``config_toml``; ``fit.json``, when present, must be a JSON object (a damaged one means a
    damaged fit directory).

    Raises
    ------
    DataError
        Naming the file and what is wrong, with how to make the fit again.
    """
    directory = Path(fit_dir)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise DataError(f"{directory}: fit directory {what}; --fit takes a directory written by "
                        f"`carpmodel fit` or `carpmodel run`")
    path = directory / "fit.nc"
    if not path.is_file():
        raise DataError(f"{path}: no fit.nc here; run `carpmodel fit --out {fit_dir}` first")
    ds = read_netcdf(path, variables=FIT_VARIABLES, attrs=FIT_ATTRS, hint=_REFIT)
    theta, covariance = ds["theta"], ds["covariance"]
    n = theta.size
    if theta.dims != ("parameter",) or n == 0:
        raise DataError(f"{path}: variable 'theta' must have one value per parameter, has dims "
                        f"{theta.dims} and {n} values; {_REFIT}")
    if not np.all(np.isfinite(theta.values)):
        raise DataError(f"{path}: variable 'theta' holds non-finite estimates; {_REFIT}")
    if covariance.shape != (n, n):
        raise DataError(f"{path}: variable 'covariance' must be {n} x {n} (one row per parameter), "
                        f"is {' x '.join(map(str, covariance.shape))}; {_REFIT}")
    if "posterior_theta" in ds and (ds["posterior_theta"].ndim != 2 or ds["posterior_theta"].shape[1] != n):
        raise DataError(f"{path}: variable 'posterior_theta' must have {n} columns (one per parameter); "
                        f"{_REFIT}")
    try:
        config = tomllib.loads(str(ds.attrs["config_toml"]))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: attribute 'config_toml' is not valid TOML ({exc}); {_REFIT}") from None
    summary_path = directory / "fit.json"
    summary = read_json(summary_path, hint=_REFIT) if summary_path.exists() else None
    return FitFiles(directory, ds, config, summary)
