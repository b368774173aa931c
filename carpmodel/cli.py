"""Command-line interface: ``carpmodel <command> ...`` (also ``python -m carpmodel``).

Exit status: 0 success; 2 bad input, config or refused request (a :class:`CarpmodelError`,
printed as one line ``carpmodel: error: <message>`` on stderr, no traceback); 1 out of memory,
a full disk (one line) or an internal error (a bug: its traceback and how to report it);
130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM, 129 by SIGHUP (handled like Ctrl-C: the
current file is not left half-written and run.json records the stages completed).
Progress goes to stderr (:class:`carpmodel.runlog.Progress`: a bar on a terminal, one line per
stage otherwise; not with ``--quiet``); every command that writes results (``run``, ``fit``,
``project``, ``sensitivity``, ``monitoring``) writes ``run.json`` in its output directory
(:func:`carpmodel.runlog.run_record`).
Python warnings are shown as one ``carpmodel: note: …`` line each; ``--verbose`` shows them, and
the traceback of any error, in full (:mod:`carpmodel.terminal`).

Commands:

- ``check-data DIR [--config FILE]``: validate a data directory with every check a command
  runs on it (``climate_scenarios.toml``, the model the fit builds, the projection's scenarios,
  strategies and anomalies; :func:`carpmodel.preflight.check_data_directory`) and print what
  it holds.
- ``config --show-defaults``: print the default run config as TOML;
  ``config FILE``: validate a run config and print it with defaults filled in.
- ``simulate [--data DIR] [--config FILE] [--first-year Y] [--last-year Y] --out DIR [--force]``:
  run the engine at default parameters and write ``simulation.nc``.
- ``project --fit DIR --out DIR [...] [--ensemble [FILE]] [--budget [AMOUNT]]``: stochastic
  projections (projection.nc, metrics.csv); ``--ensemble`` adds a structural ensemble
  (:mod:`carpmodel.management.ensemble`), ``--budget`` the best split of a release budget (budget.csv,
  :mod:`carpmodel.management.budget`).
- ``sensitivity --fit DIR --out DIR``: the climate-sensitivity sweep (sensitivity.nc, figures;
  the fit's ``[sensitivity]`` settings, a few seconds by default).
- ``monitoring --fit DIR --out DIR [--full] [--origin-design-only]``: the monitoring design
  (monitoring.nc, monitoring_options.nc, monitoring.json, figures; a one-minute first look by
  default) and the analytic origin-sample design of marked releases (origin_design.nc,
  origin_design.json, its figure; seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from carpmodel import cli_parser, preflight
from carpmodel.cli_parser import FROM_FILE, version
from carpmodel.errors import ConfigError
from carpmodel.io.climate_file import CLIMATE_FILE, load_climate
from carpmodel.io.config import (
    DataOptions,
    RunConfig,
    config_sha256,
    default_config,
    load_config,
    to_toml,
)
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data, summarise
from carpmodel.io.outputs import check_output_dir, prepare_output_dir, write_netcdf_atomic
from carpmodel.terminal import note, report_failure, termination_as_interrupt, warnings_as_notes

__all__ = ["build_parser", "hindcast_skill_line", "main"]

def _note(message: str) -> None:
    note(message)


def _notes(messages: list[str]) -> None:
    for message in messages:
        note(message)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


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


def _inputs_for(args: argparse.Namespace, config: RunConfig) -> tuple[Any, list[Path]]:
    """Load the data of a writing command after checking its --out directory (before any work).

    Returns the data and the paths the output must never overwrite (the data directories).
    """
    data_directory = _data_directory(args.data, config)
    protected = [data_directory, BUNDLED_DATA_DIRECTORY]
    check_output_dir(args.out, args.force, protected)
    data = load_data(data_directory)
    _notes(list(data.notes))
    return data, protected


# --------------------------------------------------------------------------- commands


def _check_data(args: argparse.Namespace) -> int:
    data = load_data(args.directory)
    config = load_config(args.config) if args.config else default_config()
    if CLIMATE_FILE in data.files:
        load_climate(data)   # the validation `project` and `sensitivity` run on first use
    # every other check a command runs on the directory (fit, projection, sensitivity)
    notes = preflight.check_data_directory(data, config, explicit_config=args.config is not None)
    print(summarise(replace(data, notes=(*data.notes, *notes))))
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
    data, protected = _inputs_for(args, config)
    option = "--first-year/--last-year" if args.first_year or args.last_year else \
        "simulate.first_year/last_year"
    preflight.check_years_covered(data, years.first_year, years.last_year, option)

    from carpmodel.model.simulation import simulate_default

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
        "carpmodel_version": version(),
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


def _load_run_config(args: argparse.Namespace) -> RunConfig:
    config = load_config(args.config) if getattr(args, "config", None) else default_config()
    if getattr(args, "seed", None) is not None:
        config = replace(config, seed=args.seed)
    return config


def _progress(args: argparse.Namespace) -> Any:
    """The progress display of a command: off with --quiet; a bar on a terminal, lines otherwise."""
    from carpmodel.runlog import Progress

    return Progress(False if args.quiet else None)


def _recorded(args: argparse.Namespace, out: Path, config: RunConfig, log: Any, **fields: Any) -> Any:
    """run.json in ``out`` while a command writes (:func:`carpmodel.runlog.run_record`)."""
    from carpmodel.runlog import run_record

    return run_record(out / "run.json", config, log, started=args.started, command=args.command,
                      command_line=args.command_line, **fields)


def _fit(args: argparse.Namespace) -> int:
    from carpmodel.pipeline import RunLog, fit_stage, write_fit

    config = _load_run_config(args)
    if args.last_data_year is not None:
        try:
            config = replace(config, fit=replace(config.fit, last_data_year=args.last_data_year))
        except ConfigError as exc:
            raise ConfigError(f"--last-data-year: {exc}") from None
    data, protected = _inputs_for(args, config)
    spec = preflight.check_fit_request(
        data, config, hold_out=args.last_data_year is not None,
        option="--last-data-year" if args.last_data_year is not None else "fit.last_data_year")
    _notes(preflight.check_work([preflight.posterior_workload(config, len(spec.parameter_names)),
                                 *preflight.refit_workloads(config, power=False)]))
    log = RunLog()
    artifacts = fit_stage(data, config, log, _progress(args))
    out = prepare_output_dir(args.out, args.force, protected)
    with _recorded(args, out, config, log, config_file=args.config,
                   data_directory=str(Path(data.directory).resolve())):
        write_fit(artifacts, out, log, svg=args.svg)
    for path in log.outputs:
        print(f"wrote {path}")
    s = artifacts.summary
    print(f"converged {s['converged']}, max |gradient| {s['max_abs_gradient']:.2g} "
          f"({s['worst_gradient_parameter']}), Hessian positive definite "
          f"{s['hessian_positive_definite']}, NLL {s['nll']:.3f}")
    if artifacts.held_out is not None:
        print(hindcast_skill_line(artifacts.held_out))
    for warning in log.warnings:
        _note(warning)
    return 0


def hindcast_skill_line(held_out: Any) -> str:
    """:func:`carpmodel.diagnostics.hindcast.hindcast_skill_line` (imported when first used)."""
    from carpmodel.diagnostics.hindcast import hindcast_skill_line as line

    return line(held_out)


def _budget_amount(text: str | None) -> float | None:
    """``--budget`` value: None (absent), the strategies file's amount (flag alone), or a number."""
    if text is None or text == FROM_FILE:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--budget: expected an annual budget in cost units (e.g. 2e7), "
                          f"got {text!r}") from None


def _project(args: argparse.Namespace) -> int:
    from carpmodel.pipeline import RunLog, load_fit, project_stage, write_projection
    from carpmodel.study_stages import (
        budget_problem,
        budget_stage,
        ensemble_stage,
        write_budget,
        write_ensemble,
    )

    loaded = load_fit(args.fit, args.data)
    config = loaded.config
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    changes = {k: v for k, v in {"draws": args.draws, "first_year": args.first_year,
                                 "last_year": args.last_year, "chunk_draws": args.chunk_draws,
                                 "strategies": args.strategies, "effects": args.effects}.items()
               if v is not None}
    if args.scenarios is not None:
        changes["scenarios"] = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    try:
        config = replace(config, projection=replace(config.projection, **changes))
    except ConfigError as exc:
        raise ConfigError(f"project options: {exc}") from None
    plan = preflight.check_projection_request(loaded.data, config, scheduler=args.scheduler,
                                              fit_last_year=int(loaded.result.spec.years[-1]))
    _notes(preflight.check_work([preflight.projection_workload(config, len(plan.strategies.strategies),
                                                               len(plan.scenarios))],
                                chunking=_has("dask")))
    definition = None
    if args.ensemble is not None:
        from carpmodel.io.ensemble_file import load_ensemble
        from carpmodel.management.ensemble import EnsembleDefinition

        definition = EnsembleDefinition() if args.ensemble == FROM_FILE else load_ensemble(args.ensemble)
    problem = (budget_problem(config, _budget_amount(args.budget), loaded.result.spec.base.n_age)
               if args.budget is not None else None)
    if problem is not None:
        preflight.check_budget(problem, plan.strategies.costs,
                               "--budget" if args.budget != FROM_FILE else "budget.budget_per_year")
    protected = [loaded.data.directory, BUNDLED_DATA_DIRECTORY, Path(args.fit)]
    check_output_dir(args.out, args.force, protected)
    client = None
    if args.scheduler:
        from carpmodel.cluster import connect

        client = connect(args.scheduler)
    try:
        log = RunLog()
        progress = _progress(args)
        artifacts = project_stage(loaded, config, log, progress)
        ensemble = ensemble_stage(loaded, config, definition, log, progress) if definition else None
        budget = None
        if problem is not None:
            from carpmodel.management.ensemble import single_member

            posterior = loaded.posterior_theta if config.projection.parameter_draws == "posterior" else None
            fits = ensemble.fits if ensemble is not None else single_member(loaded.result,
                                                                            posterior_theta=posterior)
            budget = budget_stage(loaded, config, fits, problem, log, progress)
        out = prepare_output_dir(args.out, args.force, protected)
        with _recorded(args, out, config, log, fit_directory=str(args.fit),
                       data_directory=str(Path(loaded.data.directory).resolve())):
            write_projection(artifacts, out, log, svg=args.svg)
            if ensemble is not None:
                write_ensemble(ensemble, out, log, svg=args.svg)
            if budget is not None:
                write_budget(budget, out, log, svg=args.svg)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    for path in log.outputs:
        print(f"wrote {path}")
    for warning in log.warnings:
        _note(warning)
    return 0


def _run(args: argparse.Namespace) -> int:
    from carpmodel.pipeline import RunLog, run_all

    config = load_config(args.config_file) if args.config_file else default_config()
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    data, protected = _inputs_for(args, config)
    _notes(preflight.check_run_request(data, config))
    out = prepare_output_dir(args.out, args.force, protected)
    log = RunLog()
    try:
        record = run_all(data, config, out, log, _progress(args), svg=args.svg,
                         config_path=args.config_file, command_line=args.command_line)
    except BaseException as exc:   # said on the same line as the error (carpmodel.terminal)
        done = ", ".join(log.stages) or "none"
        exc.add_note(f"run stopped; stages completed: {done}; every file written is complete "
                     f"(see {out / 'run.json'})")
        raise
    print(f"wrote {len(log.outputs)} files to {out} in {record['total_s']:.0f} s "
          f"(stages: {', '.join(f'{k} {v:.1f} s' for k, v in record['timings_s'].items())})")
    print(f"report: {out / 'report.html'}")
    for warning in log.warnings:
        _note(warning)
    return 0


def _sensitivity(args: argparse.Namespace) -> int:
    from carpmodel.pipeline import RunLog, load_fit, sensitivity_stage, write_figures

    loaded = load_fit(args.fit, args.data)
    config = loaded.config
    changes = {k: v for k, v in {"draws": args.draws, "power_replicates": args.power_replicates,
                                 "chunk_draws": args.chunk_draws}.items() if v is not None}
    try:
        config = replace(config, sensitivity=replace(config.sensitivity, **changes),
                         seed=config.seed if args.seed is None else args.seed)
    except ConfigError as exc:
        raise ConfigError(f"sensitivity options: {exc}") from None
    if config.sensitivity.draws == 0:
        raise ConfigError("sensitivity.draws is 0: nothing to do; pass --draws N")
    preflight.check_sensitivity_request(loaded.data, config)
    _notes(preflight.check_work([preflight.sensitivity_workload(config),
                                 *preflight.refit_workloads(config, diagnostics=False)],
                                chunking=_has("dask")))
    protected = [loaded.data.directory, BUNDLED_DATA_DIRECTORY, Path(args.fit)]
    check_output_dir(args.out, args.force, protected)
    log = RunLog()
    ds, figures = sensitivity_stage(loaded, config, log, _progress(args))
    out = prepare_output_dir(args.out, args.force, protected)
    with _recorded(args, out, config, log, fit_directory=str(args.fit),
                   data_directory=str(Path(loaded.data.directory).resolve())):
        log.wrote(write_netcdf_atomic(ds, out / "sensitivity.nc"))
        write_figures(figures, out / "figures", log, svg=args.svg)
    for path in log.outputs:
        print(f"wrote {path}")
    return 0


def _monitoring(args: argparse.Namespace) -> int:
    from carpmodel.pipeline import RunLog, load_fit
    from carpmodel.studies.monitoring_design import FULL_DESIGN
    from carpmodel.study_stages import monitoring_stage, write_monitoring

    loaded = load_fit(args.fit, args.data)
    protected = [loaded.data.directory, BUNDLED_DATA_DIRECTORY, Path(args.fit)]
    check_output_dir(args.out, args.force, protected)
    design = dict(FULL_DESIGN) if args.full else {}
    design.update({k: v for k, v in {"n_replicates": args.replicates, "true_survivals": args.true_survivals,
                                     "fish_per_year": args.fish_per_year,
                                     "years_of_sampling": args.years_sampled}.items() if v is not None})
    from carpmodel.studies.monitoring_design import QUICK_DESIGN
    from carpmodel.study_stages import check_monitoring_design, origin_design_stage, write_origin_design

    settings = {**QUICK_DESIGN, **design}
    log = RunLog()
    artifacts = None
    if not args.origin_design_only:
        check_monitoring_design(settings, int(loaded.result.spec.observations.year.size))
        _notes(preflight.check_work([preflight.monitoring_workload(settings, not args.no_juvenile_option)]))
        artifacts = monitoring_stage(loaded, log, _progress(args), seed=args.seed,
                                     juvenile_option=not args.no_juvenile_option, **design)
    origin = origin_design_stage(loaded, log, _progress(args))
    out = prepare_output_dir(args.out, args.force, protected)
    config = loaded.config if args.seed is None else replace(loaded.config, seed=args.seed)
    with _recorded(args, out, config, log, fit_directory=str(args.fit),
                   data_directory=str(Path(loaded.data.directory).resolve()),
                   design={**settings, "juvenile_option": not args.no_juvenile_option,
                           "origin_design_only": bool(args.origin_design_only)}):
        if artifacts is not None:
            write_monitoring(artifacts, out, log, svg=args.svg)
        write_origin_design(origin, out, log, svg=args.svg)
    for path in log.outputs:
        print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- parser


#: environment variables that set BLAS's thread count; when one is set, ``main`` keeps it
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def blas_on_one_thread() -> threadpool_limits:
    """A context in which BLAS (numpy's and scipy's OpenBLAS) runs on one thread, unless a thread
    count is set in the environment (:data:`BLAS_THREAD_VARIABLES`). carpmodel's matrices are
    small (tens of parameters), and OpenBLAS's idle threads spin: about a third of a fit's CPU
    time, on the core the engine's and dask's threads would use. Every command runs in it."""
    limit = None if any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES) else 1
    return threadpool_limits(limits=limit, user_api="blas")


#: numpy's environment variable for its use of transparent huge pages; a value other than ``0``
#: keeps numpy's huge pages in commands
HUGEPAGE_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"


def _hugepage_setter() -> Any:
    """numpy's switch for ``madvise(MADV_HUGEPAGE)`` on large arrays (it returns the previous
    setting), or None where this numpy has none."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        with contextlib.suppress(ImportError):
            setter = getattr(__import__(module, fromlist=["_"]), "_set_madvise_hugepage", None)
            if setter is not None:
                return setter
    return None


@contextlib.contextmanager
def numpy_on_small_pages() -> Iterator[None]:
    """A context in which numpy does not ask Linux for transparent huge pages for its large arrays
    (the setting is restored after), unless :data:`HUGEPAGE_VARIABLE` asks for them (a value
    other than ``0``).

    A projection allocates its result and each chunk's engine buffers fresh (hundreds of MB);
    where the kernel's huge-page policy compacts memory at the first touch of such a page
    (``defrag=madvise``, the default of common distributions), that cost half of
    ``bench_project``'s system time on the development machine: with 4 KiB pages its whole
    process took ×0.89 the wall time and ×0.89 the CPU time, user time unchanged (paired, 4 runs,
    2026-12-04). Every command runs in it. The variable alone cannot say what numpy does: numpy
    reads it once, at import (and dask's local workers set it in this process's environment too)."""
    asked = os.environ.get(HUGEPAGE_VARIABLE, "0").strip() not in ("", "0")
    setter = None if asked else _hugepage_setter()
    try:
        previous = None if setter is None else setter(False)
    except Exception:   # noqa: BLE001 - a private numpy switch that changed: leave numpy as it is
        previous = None
    if previous is None:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            setter(previous)


@contextlib.contextmanager
def command_settings() -> Iterator[None]:
    """The process settings every command runs under: :func:`blas_on_one_thread` and
    :func:`numpy_on_small_pages` (benchmarks enter it to measure what a command does)."""
    with blas_on_one_thread(), numpy_on_small_pages():
        yield


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (:func:`carpmodel.cli_parser.build_parser`) with its handlers."""
    return cli_parser.build_parser({
        "check-data": _check_data, "config": _config, "simulate": _simulate, "fit": _fit,
        "project": _project, "sensitivity": _sensitivity, "monitoring": _monitoring, "run": _run})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    import matplotlib

    matplotlib.use("Agg")
    parser = build_parser()
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse exits 2)
        return exc.code if isinstance(exc.code, int) else 2
    # for run.json: when the command started and how it was called
    args.started, args.command_line = time.perf_counter(), shlex.join(["carpmodel", *argv])
    verbose = bool(getattr(args, "verbose", False))
    try:
        with termination_as_interrupt(), warnings_as_notes(verbose), command_settings():
            return args.handler(args)
    except BaseException as exc:  # noqa: BLE001 - every way a command ends is reported in words
        if isinstance(exc, SystemExit | GeneratorExit):
            raise
        return report_failure(exc, verbose=verbose, version=version())
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")   # a command's figures end with it (main may be called again in-process)
