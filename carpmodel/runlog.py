"""A run's record and its progress display: :class:`RunLog` times each stage and records which
stages completed and which files were written (run.json), so an interrupted run can say how far
it got; :class:`Progress` shows long steps with the time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path


class Progress:
    """Stage messages and counters with the time left, on stderr, only when enabled (a terminal
    and not --quiet).

    :meth:`tick` draws a bar with ``done/total``, the time elapsed and the time left (the mean
    time per item so far × the items left), counted from the ``done = 0`` tick or, without one,
    from the start of the current stage. :meth:`ticker` gives the ``progress(done, total)``
    callable the studies take.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._stage_start: float | None = None
        self._started: dict[str, float] = {}
        self._width = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._stage_start = start
        if self.enabled:
            print(f"[{name}] ...", file=sys.stderr, flush=True)
        yield
        if self.enabled:
            print(f"[{name}] done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)

    def tick(self, label: str, done: int, total: int) -> None:
        """Report ``done`` of ``total`` items of ``label`` (0 first marks the start)."""
        now = time.perf_counter()
        if done == 0 or label not in self._started:
            self._started[label] = now if done == 0 or self._stage_start is None else self._stage_start
        elapsed = now - self._started[label]
        if done >= total:
            self._started.pop(label, None)
        if not self.enabled:
            return
        if done >= total:
            timing = f"done in {_duration(elapsed)}"
        elif done > 0:
            timing = f"{_duration(elapsed)} elapsed, about {_duration(elapsed / done * (total - done))} left"
        else:
            timing = "estimating the time left"
        width = 30
        filled = int(width * min(done, total) / max(total, 1))
        line = f"  {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}, {timing}"
        padding = " " * max(self._width - len(line), 0)
        self._width = 0 if done >= total else len(line)
        print(f"\r{line}{padding}", end="\n" if done >= total else "", file=sys.stderr, flush=True)

    def ticker(self, label: str) -> Callable[[int, int], None]:
        """``progress(done, total)`` reporting under ``label`` (for the studies' callbacks)."""
        return partial(self.tick, label)


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
    (``run`` rewrites run.json there, so a killed run leaves a truthful record).
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
