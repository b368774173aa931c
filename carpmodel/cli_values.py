"""Values of command-line options, checked as they are parsed (argparse types) with their valid
range in the message, and the parser whose usage error is one line (exit 2)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from carpmodel.io.config import SEED_MAX, YEAR_MAX, YEAR_MIN


def count(minimum: int) -> Any:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def seed(text: str) -> int:
    """argparse type: a seed, 0..2**63 - 1 (stored as a 64-bit integer in every output)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in 0..{SEED_MAX}, got {text!r}")
    return value


def year(text: str) -> int:
    """argparse type: a calendar year in YEAR_MIN..YEAR_MAX."""
    try:
        value = int(text)
    except ValueError:
        value = YEAR_MIN - 1
    if not YEAR_MIN <= value <= YEAR_MAX:
        raise argparse.ArgumentTypeError(f"expected a year in {YEAR_MIN}..{YEAR_MAX}, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (``carpmodel: error: …; see --help``), exit 2."""

    def error(self, message: str) -> Any:
        print(f"carpmodel: error: {self.prog}: {message}; see `{self.prog} --help`", file=sys.stderr)
        raise SystemExit(2)


def numbers(kind: type) -> Any:
    """argparse type: a comma-separated list of ``kind`` values, e.g. ``0,200,1000``."""

    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, "
                                             f"got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")
        return values

    return parse
