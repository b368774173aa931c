"""A run's record and its progress display: :class:`RunLog` times each stage and records which
stages completed and which files were written, :func:`run_record` keeps run.json truthful from
them (so an interrupted command can say how far it got), and :class:`Progress` shows long steps
with the time left."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carpmodel.io.config import RunConfig

#: off a terminal, a counter's line is printed at each quarter done and at least this often, once
#: it has run MILESTONE_AFTER_S (a quick counter says nothing beyond its stage's line)
MILESTONE_INTERVAL_S, MILESTONE_AFTER_S = 300.0, 5.0


class Progress:
    """Stage messages and counters with the time left, on stderr (nothing when disabled: --quiet).

    On a terminal (``terminal``; default: whether stderr is one) a stage prints its start and its
    end, and :meth:`tick` redraws a bar in place (``\\r``) with ``done/total``, the time elapsed
    and the time left. Off a terminal (a log file, a pipe) every line is a whole line: one per
    stage when it ends (``[fit] done in 5.1 s``) and, for a counter running longer than
    :data:`MILESTONE_AFTER_S`, one at each quarter done and at least every
    :data:`MILESTONE_INTERVAL_S` (``[monitoring_design] refits: 40/100, 1 min 20 s elapsed,
    about 2 min 00 s left``).

    The time left is the mean time per item so far × the items left, counted from the
    ``done = 0`` tick or, without one, from the start of the current stage (``clock``: seconds,
    :func:`time.perf_counter`). :meth:`ticker` gives the ``progress(done, total)`` callable the
    studies take.
    """

    def __init__(self, enabled: bool | None = None, *, terminal: bool | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.enabled = True if enabled is None else enabled
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self._clock = clock
        self._stage: str | None = None
        self._stage_start: float | None = None
        self._started: dict[str, float] = {}
        self._width = 0
        self._quarter: dict[str, int] = {}
        self._last_line: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``: its end (and, on a terminal, its start) on stderr."""
        start = self._clock()
        self._stage, self._stage_start = name, start
        if self.enabled and self.terminal:
            _say(f"[{name}] ...")
        yield
        self._stage = None
        if self.enabled:
            _say(f"[{name}] done in {self._clock() - start:.1f} s")

    def tick(self, label: str, done: int, total: int) -> None:
        """Report ``done`` of ``total`` items of ``label`` (0 first marks the start)."""
        now = self._clock()
        if done == 0 or label not in self._started:
            self._started[label] = now if done == 0 or self._stage_start is None else self._stage_start
            self._quarter[label], self._last_line[label] = 0, now
        elapsed = now - self._started[label]
        finished = done >= total
        if finished:
            self._started.pop(label, None)
        if not self.enabled:
            return
        if finished:
            timing = f"done in {_duration(elapsed)}"
        elif done > 0:
            timing = f"{_duration(elapsed)} elapsed, about {_duration(elapsed / done * (total - done))} left"
        else:
            timing = "estimating the time left"
        if self.terminal:
            self._bar(label, done, total, timing)
            return
        # off a terminal: a whole line at each quarter and at least every MILESTONE_INTERVAL_S
        quarter = 4 * done // max(total, 1)
        if finished or done <= 0 or elapsed < MILESTONE_AFTER_S:
            return
        if quarter > self._quarter[label] or now - self._last_line[label] >= MILESTONE_INTERVAL_S:
            self._quarter[label], self._last_line[label] = quarter, now
            where = f"[{self._stage}] {label}" if self._stage else f"[{label}]"
            _say(f"{where}: {done}/{total}, {timing}")

    def _bar(self, label: str, done: int, total: int, timing: str) -> None:
        width = 30
        filled = int(width * min(done, total) / max(total, 1))
        line = f"  {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}, {timing}"
        padding = " " * max(self._width - len(line), 0)
        self._width = 0 if done >= total else len(line)
        print(f"\r{line}{padding}", end="\n" if done >= total else "", file=sys.stderr, flush=True)

    def ticker(self, label: str) -> Callable[[int, int], None]:
        """``progress(done, total)`` reporting under ``label`` (for the studies' callbacks)."""
        return partial(self.tick, label)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    """``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0.0, seconds)
    if seconds < 0.5:
        return "<1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


@dataclass
class RunLog:
    """What a run did so far (mutable while it runs): stage timings, outputs, warnings.

    ``on_change``, when set, is called after every completed stage and every file written
    (:func:`run_record` rewrites run.json there, so a killed run leaves a truthful record).
    """

    stages: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    on_change: Callable[[], None] | None = None

    @contextmanager
    def stage(self, name: str, progress: Progress) -> Iterator[None]:
        start = time.perf_counter()
        with progress.stage(name):
            yield
        self.stages[name] = round(time.perf_counter() - start, 3)
        self._changed()

    def wrote(self, path: Path) -> None:
        self.outputs.append(str(path))
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def dependency_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run's results depend on (None: not installed)."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for package in ("numpy", "scipy", "statsmodels", "xarray", "matplotlib", "h5netcdf", "h5py", "dask",
                    "distributed"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


@contextmanager
def run_record(run_json: Path, config: RunConfig, log: RunLog, *, started: float | None = None,
               **fields: Any) -> Iterator[dict[str, Any]]:
    """Keep ``run_json`` (run.json) truthful while inside.

    Written (atomically) on entry with ``status`` running, after every stage completed and file
    written (``log.on_change``), and on exit with ``status`` complete, interrupted (Ctrl-C,
    SIGTERM) or failed and the ``error``; the last write adds run.json to ``log.outputs``. The
    record holds ``fields`` (e.g. ``command``, ``command_line``, ``config_file``), the versions,
    seed and config, ``stages_completed``, ``timings_s``, ``total_s`` (from ``started``, a
    :func:`time.perf_counter` value, default now), ``outputs``, ``warnings`` and ``pid``.
    Yields the record (the block may add to it).
    """
    from carpmodel import __version__
    from carpmodel.io.config import config_sha256, to_toml
    from carpmodel.io.outputs import write_json_atomic

    started = time.perf_counter() if started is None else started
    began = datetime.now(UTC) - timedelta(seconds=time.perf_counter() - started)
    record: dict[str, Any] = {"status": "running", **fields,
                              "started_utc": began.isoformat(timespec="seconds")}
    fixed = {"carpmodel_version": __version__, "python": sys.version.split()[0],
             "dependencies": dependency_versions(), "seed": config.seed,
             "config_sha256": config_sha256(config), "config_toml": to_toml(config), "pid": os.getpid()}

    def current() -> dict[str, Any]:
        return {**record, **fixed, "stages_completed": list(log.stages), "timings_s": dict(log.stages),
                "total_s": round(time.perf_counter() - started, 3), "outputs": list(log.outputs),
                "warnings": list(log.warnings)}

    def checkpoint() -> None:
        write_json_atomic(run_json, current())

    def finish() -> None:
        log.on_change = previous
        record.update(current())
        log.wrote(write_json_atomic(run_json, record))

    checkpoint()
    previous, log.on_change = log.on_change, checkpoint
    try:
        yield record
    except BaseException as exc:
        record["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        try:
            finish()
        except Exception:   # noqa: BLE001, S110 - e.g. the disk that stopped the block is still full
            pass            # the error in flight is the one to report
        raise
    record["status"] = "complete"
    finish()
