"""The command-line parser of :mod:`carpmodel.cli`: every command, its options, their defaults
and units (``--help``). The commands' functions are given as ``handlers`` by name."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from carpmodel import cli_values
from carpmodel.io.config import default_config

#: what the projection figures draw (``project`` and ``run`` --help)
PROJECTION_FIGURES = (
    "Figures (figures/*.png) cover every requested scenario: projection_fan (biomass gained over "
    "no_releases, paired by draw, median and 90 % band, one row of panels per scenario), "
    "strategy_comparison (gain in 2050 with its 90 % interval and release cost, one row per "
    "scenario), hatchery_fraction (hatchery share of SSB, one panel per scenario) and "
    "projection_scenarios (status_quo under every scenario); with --ensemble, ensemble_gains (one panel "
    "per scenario). Release strategies and fishing options "
    "(strategies that catch fish) are drawn in separate panels, each on its own scale.")

#: ``--ensemble`` / ``--budget`` given without a value: the default ensemble / the file's budget
FROM_FILE = "<default>"


def version() -> str:
    """carpmodel's installed version (or a note that it is not installed)."""
    try:
        return metadata.version("carpmodel")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


_VERBOSE_HELP = "show Python warnings and error tracebacks in full (default: off, one line each)"

#: what every writing command's --help says at its end: progress and run.json
_WRITING_EPILOG = (
    "Progress goes to stderr: on a terminal a bar per long step with the time left; otherwise (a log "
    "file, a pipe) one line per stage ('[fit] done in 5.1 s') and, for steps longer than a few seconds, "
    "a line at each quarter done with the time elapsed and left; --quiet silences it. DIR/run.json "
    "records the command line, versions, config, stages completed with their timings and every file "
    "written (rewritten after each; status running/complete/interrupted/failed).")


def build_parser(handlers: Mapping[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """Return the argument parser of the ``carpmodel`` command.

    Every option's help ends with its default (``(default: …)``, or ``(required)``) and names the
    unit of its value where it has one (calendar years, draws, fish a year, cost units …).
    """
    from carpmodel.studies.monitoring_design import FULL_DESIGN, QUICK_DESIGN

    defaults = default_config()
    projection, sensitivity, simulation = defaults.projection, defaults.sensitivity, defaults.simulate

    def listed(values: Any) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    parser = cli_values.Parser(
        prog="carpmodel",
        description="Population model of the Qinghai Lake naked carp (Gymnocypris przewalskii).",
    )
    parser.add_argument("--version", action="version", version=f"carpmodel {version()}")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check-data", help="validate a data directory and print what it holds"
    )
    check.add_argument("directory", metavar="DIR", help="data directory to check (required)")
    check.add_argument("--config", metavar="FILE",
                       help="also check the directory against this run config (TOML) (default: the "
                            "built-in defaults)")
    check.set_defaults(handler=handlers["check-data"])

    config = commands.add_parser("config", help="print or validate a run config (TOML)")
    which = config.add_mutually_exclusive_group(required=True)
    which.add_argument("--show-defaults", action="store_true",
                       help="print the default config as TOML (default: off; required unless FILE)")
    which.add_argument("file", nargs="?", metavar="FILE",
                       help="config file to validate and print with defaults filled in (required unless "
                            "--show-defaults)")
    config.set_defaults(handler=handlers["config"])

    simulate = commands.add_parser(
        "simulate", help="run the engine at default parameters and write simulation.nc"
    )
    simulate.add_argument("--data", metavar="DIR",
                          help="data directory (default: the config's [data] directory, else the bundled "
                               "data)")
    simulate.add_argument("--config", metavar="FILE",
                          help="run config (TOML) (default: the built-in defaults, see `carpmodel config "
                               "--show-defaults`)")
    simulate.add_argument("--first-year", type=cli_values.year, metavar="Y",
                          help=f"first simulated calendar year (default: the config's [simulate] first_year, "
                               f"{simulation.first_year})")
    simulate.add_argument("--last-year", type=cli_values.year, metavar="Y",
                          help=f"last simulated calendar year (default: the config's [simulate] last_year, "
                               f"{simulation.last_year})")
    simulate.add_argument("--out", required=True, metavar="DIR", help="output directory (required)")
    simulate.add_argument("--force", action="store_true",
                          help="write into DIR even if it exists (default: off, an existing DIR is refused)")
    simulate.set_defaults(handler=handlers["simulate"])

    fit_cmd = commands.add_parser(
        "fit", help="fit the model to the biomass record → fit.json, fit.nc, figures",
        epilog=_WRITING_EPILOG)
    fit_cmd.add_argument("--data", metavar="DIR",
                         help="data directory (default: the config's [data] directory, else the bundled "
                              "data)")
    fit_cmd.add_argument("--config", metavar="FILE",
                         help="run config (TOML) (default: the built-in defaults, see `carpmodel config "
                              "--show-defaults`)")
    fit_cmd.add_argument("--last-data-year", type=cli_values.year, metavar="Y",
                         help="fit observations up to calendar year Y and predict the later ones (hindcast, "
                              "hindcast.nc) (default: the config's [fit] last_data_year; none: every "
                              "observation is fitted)")
    fit_cmd.add_argument("--seed", type=cli_values.seed, metavar="S",
                         help=f"random seed, an integer (default: the config's seed, {defaults.seed})")
    _common_output_options(fit_cmd)
    fit_cmd.set_defaults(handler=handlers["fit"])

    project_cmd = commands.add_parser(
        "project", help="stochastic projections of strategies × scenarios → projection.nc, metrics.csv",
        description="Stochastic projections of every strategy x scenario from a fit's parameter draws "
                    "(projection.nc, metrics.csv: one row per strategy x scenario). " + PROJECTION_FIGURES,
        epilog=_WRITING_EPILOG)
    _fit_source_options(project_cmd)
    project_cmd.add_argument("--scenarios", metavar="LIST",
                             help=f"comma-separated climate scenarios of the data's climate_scenarios.toml, "
                                  f"e.g. baseline,ssp245 (default: the fit's [projection] scenarios; "
                                  f"{listed(projection.scenarios)} in the default config)")
    project_cmd.add_argument("--strategies", metavar="FILE",
                             help="strategies TOML (default: the fit's [projection] strategies; the bundled "
                                  "carpmodel/management/default_strategies.toml in the default config)")
    project_cmd.add_argument("--draws", type=cli_values.count(1), metavar="N",
                             help=f"number of parameter draws (stochastic replicates) (default: the fit's "
                                  f"[projection] draws; {projection.draws} in the default config)")
    project_cmd.add_argument("--first-year", type=cli_values.year, metavar="Y",
                             help=f"first projected calendar year (default: the fit's [projection] "
                                  f"first_year; {projection.first_year} in the default config)")
    project_cmd.add_argument("--last-year", type=cli_values.year, metavar="Y",
                             help=f"last projected calendar year (default: the fit's [projection] last_year; "
                                  f"{projection.last_year} in the default config)")
    project_cmd.add_argument("--seed", type=cli_values.seed, metavar="S",
                             help="random seed, an integer (default: the fit's seed)")
    project_cmd.add_argument("--effects", choices=("default", "none"),
                             help=f"temperature effects: the assumed defaults, or none (reference) "
                                  f"(default: the fit's [projection] effects; {projection.effects} in the "
                                  f"default config)")
    project_cmd.add_argument("--chunk-draws", type=cli_values.count(1), metavar="N",
                             help="process draws in chunks of N draws (dask-backed, bounded memory) "
                                  "(default: the fit's [projection] chunk_draws; none: all draws at once)")
    project_cmd.add_argument("--scheduler", metavar="ADDRESS",
                             help="run on a dask.distributed scheduler ('local' starts a LocalCluster) "
                                  "(default: none, in this process)")
    project_cmd.add_argument("--ensemble", nargs="?", const=FROM_FILE, metavar="FILE",
                             help="also fit and project an ensemble of model structures (density-dependence "
                                  "window x release-survival prior x Lorenzen M exponent x initial state; "
                                  "FILE: an [ensemble] TOML; the flag alone: "
                                  "carpmodel.management.ensemble.EnsembleDefinition) "
                                  "→ ensemble_projection.nc, ensemble_metrics.csv, ensemble_members.csv "
                                  "(default: off)")
    project_cmd.add_argument("--budget", nargs="?", const=FROM_FILE, metavar="AMOUNT",
                             help="also find the best split of an annual release budget, AMOUNT in cost "
                                  "units a year (the strategies file's currency), over release sizes: "
                                  "the strategies file's [budget] question, its amount replaced by "
                                  "AMOUNT; across the ensemble with --ensemble → budget.csv (default: "
                                  "off; the flag alone: the file's budget_per_year)")
    _common_output_options(project_cmd)
    project_cmd.set_defaults(handler=handlers["project"])

    sens_cmd = commands.add_parser(
        "sensitivity", help="climate sensitivity: warming × temperature-effect strength → sensitivity.nc "
                            "(defaults: about 5 s)",
        description="Climate sensitivity of projected biomass: warming by 2100 x the strength of each "
                    "temperature effect, one projection with common random numbers. Settings are the "
                    "fit's [sensitivity] section (default 100 draws: about 5 s on two quiet cores; "
                    "500 draws about 8 s). The temperature-effect test ([sensitivity] temperature_test) "
                    "adds ~10 s to minutes, the power analysis (--power-replicates N) ~1 s per replicate "
                    "per slope (4 slopes).",
        epilog=_WRITING_EPILOG)
    _fit_source_options(sens_cmd)
    sens_cmd.add_argument("--draws", type=cli_values.count(1), metavar="N",
                          help=f"number of parameter draws (default: the fit's [sensitivity] draws; "
                               f"{sensitivity.draws} in the default config)")
    sens_cmd.add_argument("--power-replicates", type=cli_values.count(0), metavar="N",
                          help=f"also run the power analysis with N simulated data sets (replicates) per "
                               f"slope (default: the fit's [sensitivity] power_replicates; "
                               f"{sensitivity.power_replicates}, no power analysis, in the default config)")
    sens_cmd.add_argument("--seed", type=cli_values.seed, metavar="S",
                          help="random seed, an integer (default: the fit's seed)")
    sens_cmd.add_argument("--chunk-draws", type=cli_values.count(1), metavar="N",
                          help="run the engine on chunks of N draws (memory bounded; same results) (default: "
                               "the fit's [sensitivity] chunk_draws; none: all draws at once)")
    _common_output_options(sens_cmd)
    sens_cmd.set_defaults(handler=handlers["sensitivity"])

    quick, full = QUICK_DESIGN, FULL_DESIGN
    mon_cmd = commands.add_parser(
        "monitoring", help="how many fish to examine for hatchery origin → monitoring.nc, figures "
                           "(defaults: about a minute)",
        description="Monitoring design: simulate hatchery-origin samples (and a wild juvenile index) "
                    "from the fit, refit each replicate, and report how the intervals of release "
                    "survival, contribution and gain narrow and whether they cover the truth. The "
                    "defaults are a quick first look (true survival 0.3; 0 or 1000 fish a year in "
                    "the last 5 survey years; 5 replicates; the juvenile-index comparison): about a minute "
                    "on two quiet cores. --full runs the full grid (3 true survivals x 16 designs x 20 "
                    "replicates): about 45 min.",
        epilog=_WRITING_EPILOG)
    _fit_source_options(mon_cmd)
    mon_cmd.add_argument("--replicates", type=cli_values.count(2), metavar="N",
                         help=f"simulated data sets (replicates) per design (default: "
                              f"{quick['n_replicates']}; --full: {full['n_replicates']})")
    mon_cmd.add_argument("--true-survivals", type=cli_values.numbers(float), metavar="LIST",
                         help=f"true release survivals, fractions in (0, 1), e.g. 0.05,0.3,0.8 (default: "
                              f"{listed(quick['true_survivals'])}; --full: {listed(full['true_survivals'])})")
    mon_cmd.add_argument("--fish-per-year", type=cli_values.numbers(int), metavar="LIST",
                         help=f"fish examined for hatchery marks, in fish a year, e.g. 0,200,1000; 0 = no "
                              f"samples, always run (default: {listed(quick['fish_per_year'])}; --full: "
                              f"{listed(full['fish_per_year'])})")
    mon_cmd.add_argument("--years-sampled", type=cli_values.numbers(int), metavar="LIST",
                         help=f"how many of the last survey years are sampled, in years, e.g. 1,3,5 "
                              f"(default: {listed(quick['years_of_sampling'])}; --full: "
                              f"{listed(full['years_of_sampling'])})")
    mon_cmd.add_argument("--full", action="store_true",
                         help="the full study's grid and replicates; the other options still override "
                              "(default: off, the quick first look)")
    mon_cmd.add_argument("--no-juvenile-option", action="store_true",
                         help="skip the comparison with a wild juvenile index, monitoring_options.nc "
                              "(default: off, the comparison runs)")
    mon_cmd.add_argument("--origin-design-only", action="store_true",
                         help="only the analytic origin-sample design (marked releases; origin_design.nc, "
                              ".json and figure; seconds), which otherwise runs after the simulation "
                              "study (default: off)")
    mon_cmd.add_argument("--seed", type=cli_values.seed, metavar="S",
                         help="random seed, an integer (default: the fit's seed)")
    _common_output_options(mon_cmd)
    mon_cmd.set_defaults(handler=handlers["monitoring"])

    run_cmd = commands.add_parser(
        "run", help="the main job: fit, diagnostics, projections, strategies, climate sensitivity, report",
        description="The main job: fit, diagnostics, attribution, projections of every strategy x "
                    "scenario, climate sensitivity and report.html (a strategy table per scenario). "
                    + PROJECTION_FIGURES,
        epilog=_WRITING_EPILOG)
    run_cmd.add_argument("config_file", nargs="?", metavar="CONFIG.toml",
                         help="run config (default: the built-in defaults, see `carpmodel config "
                              "--show-defaults`)")
    run_cmd.add_argument("--data", metavar="DIR",
                         help="data directory (default: the config's [data] directory, else the bundled "
                              "data)")
    run_cmd.add_argument("--seed", type=cli_values.seed, metavar="S",
                         help=f"random seed, an integer (default: the config's seed, {defaults.seed})")
    _common_output_options(run_cmd)
    run_cmd.set_defaults(handler=handlers["run"])
    for command in commands.choices.values():   # also after the command (SUPPRESS: keeps a global one)
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
    return parser


def _fit_source_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--fit", required=True, metavar="DIR",
                         help="a directory written by `fit` or `run` (required)")
    command.add_argument("--data", metavar="DIR", help="data directory (default: the fit's)")


def _common_output_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--out", required=True, metavar="DIR", help="output directory (required)")
    command.add_argument("--force", action="store_true",
                         help="write into DIR even if it exists (default: off, an existing DIR is refused)")
    command.add_argument("--quiet", action="store_true",
                         help="no progress on stderr (default: off; progress is shown, see below)")
    command.add_argument("--svg", action="store_true",
                         help="also write figures as SVG (default: off, PNG only)")


