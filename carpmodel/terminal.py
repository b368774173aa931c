"""What the command line shows on the terminal besides results: notes, warnings, faults.

- :func:`note` prints ``carpmodel: note: …`` (one line) on stderr.
- :func:`warnings_as_notes`: a Python warning raised while a command runs becomes one note line
  (each distinct message once); the raw warning, with its source line, only with ``--verbose``.
- :func:`termination_as_interrupt`: SIGTERM and SIGHUP stop the work like Ctrl-C (raise
  :class:`~carpmodel.errors.Terminated`, a KeyboardInterrupt), so every stage cleans up and
  ``run`` records how far it got; a second signal during the clean-up is ignored.
- :func:`report_failure`: the one line (and exit status) for an exception that ends a command.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from carpmodel.errors import CarpmodelError, Terminated

__all__ = ["EXIT_BUG", "EXIT_INPUT", "EXIT_INTERRUPT", "exit_status_of_signal", "note",
           "report_failure", "termination_as_interrupt", "warnings_as_notes"]

#: exit statuses: bad input or refused request; anything else (a bug, no memory, a full disk)
EXIT_INPUT, EXIT_BUG = 2, 1
#: Ctrl-C (SIGINT); SIGTERM gives 143, SIGHUP 129 (128 + the signal number, as shells report)
EXIT_INTERRUPT = 130

_SIGNALS = ("SIGTERM", "SIGHUP")
_PACKAGE = Path(__file__).resolve().parent


def note(message: str) -> None:
    """Print ``carpmodel: note: <message>`` (newlines folded into one line) on stderr."""
    print(f"carpmodel: note: {' '.join(str(message).split())}", file=sys.stderr)


def _where(filename: str) -> str:
    path = Path(filename).resolve()
    try:
        return f"carpmodel/{path.relative_to(_PACKAGE)}"
    except ValueError:
        return path.name


@contextmanager
def warnings_as_notes(verbose: bool) -> Iterator[None]:
    """Inside, a warning is shown as one note line (each distinct message once); the warning
    filters are Python's (so warnings ignored by default stay ignored). ``verbose``: Python's
    own display."""
    if verbose:
        yield
        return
    seen: set[str] = set()

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        text = " ".join(str(message).split())
        if text in seen:
            return
        seen.add(text)
        if issubclass(category, UserWarning) and Path(filename).resolve().is_relative_to(_PACKAGE):
            note(text)
        else:
            note(f"{text} ({category.__name__} in {_where(filename)}; --verbose shows it in full)")

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP raise :class:`Terminated` in the main thread while inside (then further
    ones are ignored, so the clean-up finishes); the previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [getattr(signal, name) for name in _SIGNALS if hasattr(signal, name)]

    def terminate(signum: int, frame: Any) -> None:
        for number in numbers:
            signal.signal(number, signal.SIG_IGN)
        raise Terminated(signal.Signals(signum).name)

    previous = {number: signal.signal(number, terminate) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def exit_status_of_signal(name: str) -> int:
    """128 + the signal's number (what a shell reports for a process killed by it)."""
    return 128 + int(getattr(signal, name, signal.SIGTERM))


def report_failure(exc: BaseException, *, verbose: bool, version: str) -> int:
    """Print how a command ended on ``exc`` and return the exit status.

    A :class:`CarpmodelError` (bad input, refused request) is one ``carpmodel: error:`` line and
    status 2; running out of memory or disk one line and status 1; an interruption one line and
    130 (Ctrl-C) or 128 + the signal. Anything else is a bug: the traceback, then how to report
    it, status 1. With ``verbose`` the traceback is printed in every case.
    """
    if verbose and not isinstance(exc, KeyboardInterrupt):
        traceback.print_exception(exc)
    # what the command adds (exc.add_note, e.g. how far `run` got) ends the same line
    context = "".join(f"; {' '.join(str(n).split())}" for n in getattr(exc, "__notes__", ()))

    def say(line: str) -> None:
        print(f"carpmodel: {line}{context}", file=sys.stderr)

    if isinstance(exc, Terminated):
        say(f"terminated ({exc.signal_name})")
        return exit_status_of_signal(exc.signal_name)
    if isinstance(exc, KeyboardInterrupt):
        say("interrupted")
        return EXIT_INTERRUPT
    if isinstance(exc, CarpmodelError):
        say(f"error: {' '.join(str(exc).split())}")
        return EXIT_INPUT
    if isinstance(exc, MemoryError):
        say("error: out of memory; use fewer draws or replicates, or set the chunk_draws option of the "
            "section that ran (--chunk-draws) to bound memory")
        return EXIT_BUG
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f"{exc.filename}: " if exc.filename else ""
        say(f"error: {where}cannot write: {exc.strerror}; free space or choose another --out")
        return EXIT_BUG
    if not verbose:
        traceback.print_exception(exc)
    say(f"internal error ({type(exc).__name__}): this is a bug in carpmodel {version}, not in your input; "
        f"please report it to the carpmodel maintainers with the command line, the traceback above and "
        f"the output of `carpmodel --version`")
    return EXIT_BUG
