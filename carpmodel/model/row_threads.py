"""A large batch's rows shared among threads, for compiled functions that release the GIL and
compute each row on its own (the per-recruit schedule and the equilibrium root of
:mod:`carpmodel.model.kernel_cells`): the rows split into contiguous ranges, one per thread,
give the same values bit for bit as one call over all of them.

They use plain Python threads, not numba's: a ``prange`` version of those functions would
compile two more entry points (8 s CPU once per installation) for a few milliseconds per call.
The thread count is numba's (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``), as the year
kernel's; calls from other threads than the main one (dask's workers, which already run
chunks in parallel) stay on their thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numba
from numba.np.ufunc import parallel as numba_parallel

__all__ = ["SPLIT_ROWS", "row_ranges", "run_parts", "thread_count"]

#: batches of at least this many rows are split (a thread's start costs ~0.1 ms, the
#: per-recruit schedule of 1,000 rows ~0.5 ms)
SPLIT_ROWS = 1024


def thread_count() -> int:
    """numba's thread count, without starting numba's threading layer where it has not started:
    ``numba.get_num_threads()`` starts it (GNU OpenMP here), and a process forked after that
    cannot run the engine's threads (``carpmodel.model.kernel._on_threads``), so asking
    must not start it. Before the layer starts, the count is ``NUMBA_NUM_THREADS``
    (``numba.set_num_threads`` starts the layer)."""
    if not getattr(numba_parallel, "_is_initialized", True):   # numba's own flag
        return int(numba.config.NUMBA_NUM_THREADS)
    return numba.get_num_threads()


def row_ranges(n_rows: int, min_rows: int = SPLIT_ROWS) -> list[tuple[int, int]]:
    """Contiguous ``(first, stop)`` ranges that cover rows ``0..n_rows``: one per numba thread
    (:func:`thread_count`) for a batch of at least ``min_rows`` rows called from the main
    thread, else one."""
    main = threading.current_thread() is threading.main_thread()
    n_parts = max(min(thread_count(), n_rows), 1) if main and n_rows >= min_rows else 1
    return [(i * n_rows // n_parts, (i + 1) * n_rows // n_parts) for i in range(n_parts)]


def run_parts(parts: Sequence[Callable[[], None]]) -> None:
    """Call each of ``parts``: the first on the calling thread, each other on a thread of its
    own started for it; returns once all have finished, raising the first error any raised."""
    errors: list[BaseException] = []

    def guarded(part: Callable[[], None]) -> None:
        try:
            part()
        except BaseException as error:   # noqa: BLE001 - re-raised on the calling thread
            errors.append(error)

    threads = []
    try:
        for part in parts[1:]:
            thread = threading.Thread(target=guarded, args=(part,), daemon=True)
            thread.start()
            threads.append(thread)
        if parts:
            parts[0]()
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
