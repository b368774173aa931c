"""Run chunked projections on a dask.distributed cluster (optional extra ``[distributed]``)."""

from __future__ import annotations

import os
from typing import Any

from carpmodel.errors import ConfigError

#: workers of the LocalCluster started by ``--scheduler local`` (one per core of a 2-core machine)
LOCAL_WORKERS = 2


def connect(scheduler: str, *, n_workers: int = LOCAL_WORKERS) -> Any:
    """A ``distributed.Client`` for ``scheduler``: ``"local"`` starts a LocalCluster with
    ``n_workers`` single-threaded worker processes; anything else is a scheduler address
    (``tcp://host:8786``). The client becomes dask's default, so computing a chunked Dataset
    (or writing it to NetCDF) runs on the cluster. Close it with ``client.close()``.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--scheduler needs dask.distributed: "
                          "pip install 'carpmodel[distributed]'") from None
    if scheduler == "local":
        import dask

        # dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which makes glibc hand every
        # freed state-sized temporary back to the OS: the engine then page-faults on each of
        # its array operations and runs ~4x slower. Unset it (glibc's adaptive default). The
        # workers also run numpy on ordinary pages, as commands do
        # (:func:`carpmodel.cli.numpy_on_small_pages`), unless the environment says otherwise.
        environ = "distributed.nanny.pre-spawn-environ."
        hugepages = dask.config.get(environ + "NUMPY_MADVISE_HUGEPAGE", "0")   # os.environ wins
        # the nannies write their workers' variables into this process's environment too: put
        # it back as it was once the workers have started
        saved = dict(os.environ)
        try:
            with dask.config.set({environ + "MALLOC_TRIM_THRESHOLD_": None,
                                  environ + "NUMPY_MADVISE_HUGEPAGE": hugepages}):
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
        finally:
            for key in set(os.environ) - set(saved):
                del os.environ[key]
            os.environ.update(saved)
        return Client(cluster)
    try:
        return Client(scheduler, timeout="10s")
    except OSError as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
