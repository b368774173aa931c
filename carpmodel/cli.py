"""Command-line interface: ``carpmodel <command> ...`` (also ``python -m carpmodel``).

Exit status: 0 success; 2 bad input, config or refused request (a :class:`CarpmodelError`,
printed as one line ``carpmodel: error: <message>`` on stderr, no traceback); 1 anything else
(an internal error, printed with its traceback).

Commands:

- ``check-data DIR``: validate a data directory and print what it holds.
- ``config --show-defaults``: print the default run config as TOML;
  ``config FILE``: validate a run config and print it with defaults filled in.
- ``simulate [--data DIR] [--config FILE] [--first-year Y] [--last-year Y] --out DIR [--force]``:
  run the engine at default parameters and write ``simulation.nc``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from carpmodel.config import (
    DataOptions,
    RunConfig,
    config_sha256,
    default_config,
    load_config,
    to_toml,
)
from carpmodel.errors import CarpmodelError, ConfigError
from carpmodel.inputs import BUNDLED_DATA_DIRECTORY, load_data, summarise
from carpmodel.outputs import check_output_dir, prepare_output_dir, write_netcdf_atomic

__all__ = ["build_parser", "main"]


def _version() -> str:
    try:
        return metadata.version("carpmodel")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _note(message: str) -> None:
    print(f"carpmodel: note: {message}", file=sys.stderr)


def _data_directory(option: str | None, config: RunConfig) -> Path:
    """The data directory: ``--data``, else the config's; the default falls back to bundled."""
    if option is not None:
        return Path(option)
    directory = Path(config.data.directory)
    if (
        config.data.directory == DataOptions().directory
        and not directory.exists()
        and BUNDLED_DATA_DIRECTORY.is_dir()
    ):
        return BUNDLED_DATA_DIRECTORY
    return directory


# --------------------------------------------------------------------------- commands


def _check_data(args: argparse.Namespace) -> int:
    data = load_data(args.directory)
    print(summarise(data))
    return 0


def _config(args: argparse.Namespace) -> int:
    config = default_config() if args.show_defaults else load_config(args.file)
    print(to_toml(config), end="")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else default_config()
    try:
        years = replace(
            config.simulate,
            first_year=config.simulate.first_year if args.first_year is None else args.first_year,
            last_year=config.simulate.last_year if args.last_year is None else args.last_year,
        )
    except ConfigError as exc:
        raise ConfigError(f"--first-year/--last-year: {exc}") from None
    config = replace(config, simulate=years)
    data_directory = _data_directory(args.data, config)
    protected = [data_directory, BUNDLED_DATA_DIRECTORY]
    check_output_dir(args.out, args.force, protected)
    data = load_data(data_directory)
    for note in data.notes:
        _note(note)

    from carpmodel.simulation import simulate_default

    ds = simulate_default(
        data,
        first_year=years.first_year,
        last_year=years.last_year,
        recruitment=config.model.recruitment,
    )
    provenance = {
        "seed": config.seed,
        "config_sha256": config_sha256(config),
        "config_toml": to_toml(config),
        "data_sha256": data.sha256,
        "data_directory": str(data.directory),
        "carpmodel_version": _version(),
    }
    ds = ds.assign_attrs({k: v for k, v in provenance.items() if k not in ds.attrs})
    out = prepare_output_dir(args.out, args.force, protected)
    print(f"wrote {write_netcdf_atomic(ds, out / 'simulation.nc')}")
    biomass_t = ds["biomass_t"]
    first, last = biomass_t.isel(year=0), biomass_t.isel(year=-1)
    print(
        f"biomass_t {int(first['year'])}: {float(first):,.0f} t; "
        f"{int(last['year'])}: {float(last):,.0f} t"
    )
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``carpmodel`` command."""
    parser = argparse.ArgumentParser(
        prog="carpmodel",
        description="Population model of the Qinghai Lake naked carp (Gymnocypris przewalskii).",
    )
    parser.add_argument("--version", action="version", version=f"carpmodel {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check-data", help="validate a data directory and print what it holds"
    )
    check.add_argument("directory", metavar="DIR", help="data directory to check")
    check.set_defaults(handler=_check_data)

    config = commands.add_parser("config", help="print or validate a run config (TOML)")
    which = config.add_mutually_exclusive_group(required=True)
    which.add_argument("--show-defaults", action="store_true",
                       help="print the default config as TOML")
    which.add_argument("file", nargs="?", metavar="FILE",
                       help="config file to validate and print with defaults filled in")
    config.set_defaults(handler=_config)

    simulate = commands.add_parser(
        "simulate", help="run the engine at default parameters and write simulation.nc"
    )
    simulate.add_argument("--data", metavar="DIR",
                          help="data directory (default: the config's, else the bundled data)")
    simulate.add_argument("--config", metavar="FILE", help="run config (TOML)")
    simulate.add_argument("--first-year", type=int, metavar="Y",
                          help="first simulated year (default: config [simulate])")
    simulate.add_argument("--last-year", type=int, metavar="Y",
                          help="last simulated year (default: config [simulate])")
    simulate.add_argument("--out", required=True, metavar="DIR", help="output directory")
    simulate.add_argument("--force", action="store_true",
                          help="write into DIR even if it exists")
    simulate.set_defaults(handler=_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    import matplotlib

    matplotlib.use("Agg")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse exits 2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except CarpmodelError as exc:
        message = " ".join(str(exc).splitlines())
        print(f"carpmodel: error: {message}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("carpmodel: internal error (traceback above); please report it", file=sys.stderr)
        return 1
