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

__all__ = ["SPLIT_ROWS", "row_ranges", "run_parts"]

#: batches of at least this many rows are split (a thread's start costs ~0.1 ms, the
#: per-recruit schedule of 1,000 rows ~0.5 ms)
SPLIT_ROWS = 1024


def row_ranges(n_rows: int, min_rows: int = SPLIT_ROWS) -> list[tuple[int, int]]:
    """Contiguous ``(first, stop)`` ranges that cover rows ``0..n_rows``: one per numba thread
    for a batch of at least ``min_rows`` rows called from the main thread, else one."""
    main = threading.current_thread() is threading.main_thread()
    n_parts = max(min(numba.get_num_threads(), n_rows), 1) if main and n_rows >= min_rows else 1
    return [(i * n_rows // n_parts, (i + 1) * n_rows // n_parts) for i in range(n_parts)]


def run_parts(parts: Sequence[Callable[[], None]]) -> None:
    """Call each of ``parts``: the first on the calling thread, each other on a thread of its
    own started for it; returns once all have finished, raising the first error any raised."""
    errors: list[Exception] = []

    def guarded(part: Callable[[], None]) -> None:
        try:
            part()
        except Exception as error:   # noqa: BLE001 - re-raised on the calling thread
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(part,), daemon=True) for part in parts[1:]]
    for thread in threads:
        thread.start()
    try:
        if parts:
            parts[0]()
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]

