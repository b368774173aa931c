"""Exceptions raised by carpmodel.

Every error a user can cause (bad data file, bad config, impossible request) is a
:class:`CarpmodelError`; the CLI prints it as one line and exits with status 2.
"""

from __future__ import annotations


class CarpmodelError(Exception):
    """Base class for every error caused by user input or a refused request."""


class DataError(CarpmodelError):
    """A data file is missing, unreadable or holds an invalid value.

    The message names the file, the line (1-based, header = line 1) or key, and what was
    expected, e.g. ``data/biomass_observations.csv, line 4, column biomass_t: expected a
    positive number of tonnes, got '-3.1'``.
    """


class ConfigError(CarpmodelError):
    """A run configuration (TOML or API argument) is invalid; the message names the key."""


class OutputError(CarpmodelError):
    """An output cannot be written (for example the directory exists and --force was not given)."""


class FitError(CarpmodelError):
    """A fit cannot be started or is refused (for example no observations in the fit window)."""


class ConvergenceWarning(UserWarning):
    """A fit finished but did not meet its convergence criteria (gradient, Hessian)."""


class NumericalError(CarpmodelError):
    """A computation gave non-finite values from inputs that passed validation (the message names
    the quantity, where, and the likely cause); nothing is written from it."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (or SIGHUP): the work stops as for Ctrl-C (SIGINT)."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
