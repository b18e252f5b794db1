"""One Dask cluster for a whole `mlp repro` of an engine: dask project.

Each stage is a process of its own; left alone, each starts (and stops) a LocalCluster of its own, which costs
a few seconds a stage (worker processes start and import pandas). When params.yaml names no scheduler, `mlp repro`
starts one LocalCluster with the project's dask: settings before the first stage that runs, hands its address to
the stages in MLP_DASK_SCHEDULER (stages/dask_engine.py connects to it), and stops it at the end. The cluster has
the shape the stages would have made themselves, so the results are the same (the README's determinism contract).
Stock `dvc repro` still works: then each stage starts its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from .errors import UsageError

ADDRESS_VARIABLE = "MLP_DASK_SCHEDULER"


def wants_local_cluster(params: dict[str, Any]) -> bool:
    """True for a dask project that names no scheduler (pure: params.yaml as a dict)."""
    section = params.get("dask") or {}
    return (params.get("engine") == "dask" and not section.get("scheduler")
            and not os.environ.get(ADDRESS_VARIABLE))


@contextlib.contextmanager
def shared_cluster(params: dict[str, Any]) -> Iterator[Callable[[], None]]:
    """Yields start(): call it before the first stage runs (nothing to run, no cluster). The cluster and the
    environment variable are gone when the block ends."""
    stack = contextlib.ExitStack()

    def start() -> None:
        if not wants_local_cluster(params) or os.environ.get(ADDRESS_VARIABLE):
            return
        try:
            import distributed
        except ImportError as exc:
            raise UsageError("engine: dask needs Dask; install it with pip install 'mlp-pipeline[dask]', "
                             "or set engine: pandas in params.yaml.") from exc
        section = params.get("dask") or {}
        if _too_small(section.get("memory_limit")):
            return  # workers would die starting up: each stage refuses the limit with one line instead
        cluster = stack.enter_context(distributed.LocalCluster(
            n_workers=section.get("workers") or 2, threads_per_worker=section.get("threads") or 1, processes=True,
            memory_limit=_memory(section.get("memory_limit")), silence_logs=logging.ERROR,
            dashboard_address=os.environ.get("MLP_DASK_DASHBOARD", ":8787")))
        stack.enter_context(_environment(ADDRESS_VARIABLE, cluster.scheduler_address))

    with stack:
        yield start


def _too_small(value: Any) -> bool:
    """Below what a worker needs for its own code (stages/dask_engine.py WORKER_BASE_MEMORY, 150 MiB)."""
    from dask.utils import parse_bytes

    return value not in (None, "auto") and parse_bytes(value) < 150 * 2**20


def _memory(value: Any) -> Any:
    # Dask reads "2GB" and "512MiB" itself; params_spec has already checked the value.
    return "auto" if value in (None, "auto") else value


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
