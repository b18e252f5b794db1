"""The Dask engine (engine: dask in params.yaml): the cluster, the partitioned parquet folders, progress.

Each stage keeps its pandas path and has a short Dask path beside it (`main_dask()` in the stage's file). The
Dask paths use what is here:
- cluster(): a distributed Client, as a context manager. dask.scheduler (or the environment variable
  MLP_DASK_SCHEDULER, which wins) is a running cluster's address; null starts a LocalCluster of dask.workers
  worker processes with dask.threads threads and dask.memory_limit memory each, stopped when the stage ends.
  The stage's own modules (common.py, features.py, ...) are sent to the workers, so a worker on another host
  needs the Python packages only (see the README's "On a real cluster").
- map_parts(client, fn, items, what): fn(*item) for each item as a Dask task, one per partition, with
  progress on a terminal; the results in order. A task that fails (a stage's `fail`) stops the stage with its
  message; a worker that dies (out of memory) with what to change.
- Intermediates are folders of part-00000.parquet, part-00001.parquet, ... (DVC outputs like any other).
  Partitions are fixed by the data and dask.partition_rows alone (ingest cuts them, later stages keep them,
  part i from part i), never by the number of workers: the same settings give the same files.
- check_memory(client, parts): refuses partitions too big for a worker's memory limit, before any task runs.

Task functions read and write their part with the same pyarrow code as the pandas path (common.read_table,
common.write_parquet), so a partition gets exactly the treatment the whole table gets under pandas.
All paths must be the same for the stage and its workers: on a cluster of several hosts, a shared filesystem.
"""
import contextlib
import os
import sys

from common import fail, load_params, parquet_parts

PART = "part-{:05d}.parquet"
DEFAULTS = {"scheduler": None, "workers": 2, "threads": 1, "memory_limit": "auto", "partition_rows": 500_000}
# A worker holds a partition about three times at once while a task runs (the arrow table, its pandas copy, the
# result), and needs room for its own code: below this, a partition does not fit.
MEMORY_PER_PARTITION = 3
WORKER_BASE_MEMORY = 150 * 2**20
CONNECT_TIMEOUT = "10s"


def settings():
    """The dask: section of params.yaml with its defaults filled in."""
    return {**DEFAULTS, **{k: v for k, v in load_params("dask").items() if v is not None or k == "scheduler"}}


def import_distributed():
    try:
        import distributed
    except ImportError:
        fail("engine: dask needs Dask; install it with pip install 'mlp-pipeline[dask]', "
             "or set engine: pandas in params.yaml")
    return distributed


def part_name(folder, i):
    return os.path.join(folder, PART.format(i))


# --- the cluster ---------------------------------------------------------------------------------

@contextlib.contextmanager
def cluster():  # doctor: runtime (where the stage runs; train declares the dask.* keys that change its model)
    """A Client of the configured cluster (or of a LocalCluster started for this stage)."""
    distributed = import_distributed()
    s = settings()
    address = os.environ.get("MLP_DASK_SCHEDULER") or s["scheduler"]
    import logging

    with contextlib.ExitStack() as stack:
        if address:
            client = stack.enter_context(_connect(distributed, address))
        else:
            from params_spec import memory_bytes

            limit = memory_bytes(s["memory_limit"])
            if limit is not None and limit < WORKER_BASE_MEMORY:  # the workers would die loading the stage code
                fail(f"a Dask worker needs about {WORKER_BASE_MEMORY / 2**20:,.0f} MiB for its own code, over its "
                     f"memory limit of {limit / 2**20:,.0f} MiB; raise dask.memory_limit in params.yaml (a "
                     f"partition of dask.partition_rows rows needs about {MEMORY_PER_PARTITION} times its size on top)")
            local = stack.enter_context(distributed.LocalCluster(
                n_workers=s["workers"], threads_per_worker=s["threads"], processes=True,
                memory_limit=memory_bytes(s["memory_limit"]) or "auto", silence_logs=logging.ERROR,
                dashboard_address=os.environ.get("MLP_DASK_DASHBOARD", ":8787")))
            client = stack.enter_context(distributed.Client(local))
        _share_code(client, scheduler_too=bool(address))  # a LocalCluster's scheduler is this process
        link = _dashboard(client)
        if link:
            progress_line(f"Dask dashboard: {link}", end="\n")
        yield client


@contextlib.contextmanager
def _connect(distributed, address):
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        fail(f"cannot reach the Dask scheduler at {address} ({reason}); start it (`dask scheduler`), fix "
             "dask.scheduler in params.yaml (or MLP_DASK_SCHEDULER), or set it to null for a local cluster")
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            fail(f"the Dask scheduler at {address} has no workers; start some (`dask worker {address}`)")
        yield client
    finally:
        client.close()


def _dashboard(client):
    try:
        return client.dashboard_link if client.scheduler_info().get("services", {}).get("dashboard") else None
    except (KeyError, AttributeError):
        return None


def _share_code(client, scheduler_too):
    """Send the stage files this process has imported to the workers (and to the scheduler, which unpickles the
    tasks, when it is not this process), then (re)load them there: a cluster that outlives the stage must not run
    an older common.py, and one on other hosts has none. All files go first, then all load, so that the order in
    which they import each other does not matter; loaded twice, so that names one imported from another are fresh."""
    from distributed.diagnostics.plugin import SchedulerUploadFile, UploadFile

    here = os.path.dirname(os.path.abspath(__file__))
    names = []
    for name, module in list(sys.modules.items()):
        path = os.path.abspath(getattr(module, "__file__", None) or "")
        if not name.startswith("__") and os.path.dirname(path) == here and path.endswith(".py"):  # not __main__
            client.register_plugin(UploadFile(path, load=False), name=f"mlp-stage-{name}")
            if scheduler_too:
                client.register_plugin(SchedulerUploadFile(path, load=False), name=f"mlp-stage-{name}")
            names.append(name)
    client.run(_load_modules, names)
    if scheduler_too:
        client.run_on_scheduler(_load_modules, names)


def _load_modules(names):
    import importlib

    for _ in range(2):
        for name in names:
            if name in sys.modules:
                importlib.reload(sys.modules[name])
            else:
                importlib.import_module(name)


def worker_memory(client):
    """The smallest memory limit among the workers, in bytes (None: unlimited)."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    return min(limits) if limits and all(limits) else None


def check_memory(client, in_memory_bytes, rows):
    """Stop before anything runs when a partition of `rows` rows (`in_memory_bytes` as arrow data) cannot fit a
    worker's memory limit."""
    limit = worker_memory(client)
    need = MEMORY_PER_PARTITION * in_memory_bytes + WORKER_BASE_MEMORY
    if limit is not None and need > limit:
        fail(f"a partition of {rows:,} rows takes about {in_memory_bytes / 2**20:,.0f} MiB in memory, and a Dask "
             f"worker needs about {need / 2**20:,.0f} MiB to work on it, over its memory limit of "
             f"{limit / 2**20:,.0f} MiB; raise dask.memory_limit or lower dask.partition_rows in params.yaml")


def part_memory(parts):
    """(bytes, rows) of the biggest part file when read into memory (from the parquet footers alone)."""
    import pyarrow.parquet as pq

    biggest = (0, 0)
    for part in parts:
        meta = pq.ParquetFile(part).metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        biggest = max(biggest, (size, meta.num_rows))
    return biggest


def open_parts(client, path):
    """The part files of an input folder (or [path] for a file), checked against the workers' memory. Absolute
    paths: a worker of a cluster elsewhere does not run in the project folder."""
    parts = [os.path.abspath(part) for part in parquet_parts(path)]
    if not parts:
        fail(f"{path} has no part files; run the stages before this one again (`mlp repro`)")
    check_memory(client, *part_memory(parts))
    return parts


# --- tasks ---------------------------------------------------------------------------------------

class TaskFailed(Exception):
    """A stage's `fail` inside a task: SystemExit must not reach a worker's event loop."""


def _run_task(fn, *args):
    try:
        return fn(*args)
    except SystemExit as e:
        raise TaskFailed(str(e)) from None


def map_parts(client, fn, items, what):
    """[fn(*item) for item in items], each a task on the cluster; progress says `what` is being done."""
    distributed = import_distributed()
    futures = [client.submit(_run_task, fn, *item, pure=False) for item in items]
    try:
        done = 0
        for _ in distributed.as_completed(futures):
            done += 1
            progress_line(f"{stage_name()}: {what}: {done}/{len(futures)} partitions")
        progress_line("", end="")
        return client.gather(futures)
    except TaskFailed as e:
        fail(str(e).split(": ", 1)[-1])
    except distributed.KilledWorker:
        fail(f"a Dask worker died while {what} (out of memory?); raise dask.memory_limit or lower "
             "dask.partition_rows in params.yaml")
    finally:
        client.cancel(futures)


def stage_name():
    return os.path.splitext(os.path.basename(sys.argv[0]))[0] or "stage"


# --- progress ------------------------------------------------------------------------------------

_TTY = []


def _terminal():
    """Where progress goes: stderr if it is a terminal, else the terminal the run was started from (mlp repro
    sends a stage's own output to a log file), else nowhere (CI logs get no progress lines)."""
    if not _TTY:
        stream = sys.stderr if sys.stderr.isatty() else None
        if stream is None and os.environ.get("MLP_PROGRESS", "1") != "0":
            with contextlib.suppress(OSError):
                stream = open("/dev/tty", "w", encoding="utf-8")  # noqa: SIM115 (kept open for the stage)
        _TTY.append(stream)
    return _TTY[0]


def progress_line(text, end=""):
    """Overwrite the terminal's current line with `text` (end="\\n" keeps it)."""
    stream = _terminal()
    if stream is not None:
        stream.write(f"\r{text}\x1b[K{end}")
        stream.flush()
