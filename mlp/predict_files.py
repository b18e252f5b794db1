"""The files `mlp predict` reads and writes: the ingest readers it borrows from stages/sources.py, a thread that
reads one chunk ahead, the output's writers, and the temporary output file that only a finished run renames.

The output is written to a hidden temporary file beside OUTPUT (.NAME.PID.predict.tmp) and renamed at the end,
so a failed or interrupted run (Ctrl-C, SIGTERM) leaves no OUTPUT and no temporary file; one killed outright
(SIGKILL) can leave its temporary file, which the next run writing the same OUTPUT removes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import DataError, Interrupted, MlpError

TEMP_SUFFIX = ".predict.tmp"
# The stage modules sources.py imports: loaded from its folder, and not left in sys.modules.
STAGE_HELPERS = ("common", "params_spec", "object_store", "credentials")


class Writer:
    """Parquet, CSV or JSON lines, one chunk at a time."""

    def __init__(self, path: Path, fmt: str, schema: Any) -> None:
        import pyarrow as pa
        import pyarrow.csv as pv
        import pyarrow.parquet as pq

        self.fmt = fmt
        if fmt == "parquet":
            # Dictionary encoding only where values repeat (kept ids may, probabilities never do): trying it on
            # every column took a tenth of the scoring time.
            repeats = [f.name for f in schema if not pa.types.is_floating(f.type)]
            self.out: Any = pq.ParquetWriter(path, schema, use_dictionary=repeats)
        elif fmt == "csv":
            self.out = pv.CSVWriter(path, schema, write_options=pv.WriteOptions(quoting_style="needed"))
        else:
            self.out = path.open("w", encoding="utf-8")

    def write(self, chunk: Any) -> None:
        if self.fmt != "jsonl":
            self.out.write_table(chunk)
            return
        import json

        import pyarrow as pa
        import pyarrow.compute as pc

        for i, column in enumerate(chunk.columns):  # JSON has no NaN: a missing value is null
            if pa.types.is_floating(column.type):
                chunk = chunk.set_column(i, chunk.schema.field(i), pc.if_else(pc.is_nan(column), None, column))
        self.out.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in chunk.to_pylist())

    def close(self) -> None:
        self.out.close()


def read(function: Callable[..., Any], path: str, *args: Any) -> Iterator[Any]:
    """What a reader of sources.py returns or yields, its one-line failures (SystemExit("mlp: ...")) as DataError."""
    import pyarrow as pa

    try:
        result = function(path, *args)
        if isinstance(result, Iterator):
            yield from result
        else:
            yield result
    except SystemExit as exc:
        message = str(exc.code).split(": ", 1)[-1] if isinstance(exc.code, str) else f"cannot read {path}"
        raise DataError(message) from None
    except (pa.ArrowException, OSError, UnicodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def ahead(items: Iterator[Any]) -> Iterator[Any]:
    """The items, made by a thread one item ahead: reading and tidying the next chunk (pyarrow, which releases
    the GIL) overlaps checking and scoring this one. At most two chunks more are in memory. An error of the
    thread's (a DataError from read) is raised here."""
    import queue

    done = object()
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(item, timeout=0.1)
                return

    def produce() -> None:
        try:
            for item in items:
                put((item, None))
                if stop.is_set():
                    return
            put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put((done, exc))

    threading.Thread(target=produce, name="mlp-predict-reader", daemon=True).start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()  # the thread stops at its next chunk (a daemon: it never holds up the exit)


def load_sources(root: Path | None) -> types.ModuleType:
    """The ingest readers: the project's stages/sources.py (the one its ingest stage runs), else mlp's copy.
    Loaded as a private module: its `from common import ...` is resolved from its own folder, and neither
    name is left in sys.modules (a project's common.py must not shadow another's)."""
    from .scaffold import template_root

    folder = root / "stages" if root is not None else None
    if folder is None or not _has_batches(folder / "sources.py"):
        folder = template_root() / "stages"  # also for a project made before sources.py could read in chunks
    saved = {name: sys.modules.pop(name) for name in STAGE_HELPERS if name in sys.modules}
    sys.path.insert(0, str(folder))
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec = importlib.util.spec_from_file_location(f"mlp_sources_{abs(hash(str(folder)))}", folder / "sources.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, SyntaxError) as exc:
        raise MlpError(f"cannot load the ingest readers {folder / 'sources.py'}: {exc}; fix that file.") from None
    finally:
        sys.dont_write_bytecode = writes_bytecode
        sys.path.remove(str(folder))
        for name in STAGE_HELPERS:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return module


def _has_batches(path: Path) -> bool:
    try:
        return "def read_batches(" in path.read_text(encoding="utf-8")
    except OSError:
        return False


@contextlib.contextmanager
def output_file(output: Path) -> Iterator[Path]:
    """A temporary name beside `output`, renamed to it when the block succeeds; removed (with any folders
    made for it) when it fails. Leftovers of killed runs (whose process is gone) are removed first."""
    folder = output.absolute().parent
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"\.{re.escape(output.name)}\.(\d+){re.escape(TEMP_SUFFIX)}")
    for name in os.listdir(folder):
        found = pattern.fullmatch(name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                os.remove(folder / name)
    tmp = folder / f".{output.name}.{os.getpid()}{TEMP_SUFFIX}"
    try:
        yield tmp
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        for path in made:  # innermost first
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of an earlier process that had this number
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) interrupts like Ctrl-C does, so the temporary file is removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        error = Interrupted("stopped by SIGTERM; nothing was written, run the command again to score the file.")
        error.exit_code = 128 + signum
        raise error

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- mlp predict --engine dask -------------------------------------------------------------------

DASK_DEFAULTS = {"workers": 2, "threads": 1, "memory_limit": "auto"}  # stages/dask_engine.py's defaults
SCHEDULER_VARIABLE = "MLP_DASK_SCHEDULER"
CONNECT_TIMEOUT = "10s"


def import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        from .errors import UsageError

        raise UsageError("--engine dask needs Dask; install it with pip install 'mlp-pipeline[dask]', "
                         "or leave out --engine dask.") from None
    return distributed


@contextlib.contextmanager
def dask_client(root: Path | None) -> Iterator[Any]:
    """A Client of MLP_DASK_SCHEDULER, else of the project's dask.scheduler (params.yaml), else of a LocalCluster
    shaped by the project's dask: section (2 workers of 1 thread outside a project), stopped at the end."""
    import logging

    distributed = import_distributed()
    section = _dask_section(root)
    address = os.environ.get(SCHEDULER_VARIABLE) or section.get("scheduler")
    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(distributed.Client(address, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError, ValueError) as exc:
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise DataError(f"cannot reach the Dask scheduler at {address} ({reason}); start it, or fix "
                                f"{SCHEDULER_VARIABLE} / dask.scheduler in params.yaml.") from None
        else:
            s = {**DASK_DEFAULTS, **{k: v for k, v in section.items() if v is not None}}
            local = stack.enter_context(distributed.LocalCluster(
                n_workers=s["workers"], threads_per_worker=s["threads"], processes=True,
                memory_limit=s["memory_limit"], silence_logs=logging.ERROR,
                dashboard_address=os.environ.get("MLP_DASK_DASHBOARD", ":8787")))
            client = stack.enter_context(distributed.Client(local))
        yield client


def _dask_section(root: Path | None) -> dict[str, Any]:
    if root is None:
        return {}
    import yaml

    from .files import parse_yaml

    try:
        params = parse_yaml((root / "params.yaml").read_bytes())
    except (OSError, yaml.YAMLError):  # the pipeline's own commands report a broken params.yaml
        return {}
    section = params.get("dask") if isinstance(params, dict) else None
    return section if isinstance(section, dict) else {}


def score_on_dask(client: Any, chunks: Iterator[Any], scorer: Any, loaded: Any) -> Iterator[tuple[Any, float]]:
    """(output chunk or None, share read) for each input chunk, in input order, each chunk checked and scored by a
    task on the cluster (the same _Scorer code as the pandas path, on a copy of the bundle each worker loads);
    the counts and the broken rules are merged into `scorer`. At most two chunks per worker are in flight, so
    memory stays flat however big the input is."""
    from collections import deque

    window = 2 * max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    pending: deque = deque()
    offset = 0
    path = str(loaded.path)

    def collect() -> tuple[Any, float]:
        future, share = pending.popleft()
        return _merge(scorer, *future.result()), share

    for table, share in chunks:
        data = client.scatter(table)
        pending.append((client.submit(score_chunk, path, loaded.md5, str(scorer.input), scorer.on_invalid,
                                      scorer.keep, data, offset, pure=False), share))
        offset += table.num_rows
        if len(pending) >= window:
            yield collect()
    while pending:
        yield collect()


_LOADED: dict[tuple[str, str], Any] = {}  # a worker's bundles, loaded once per process


def score_chunk(path: str, md5: str, input: str, on_invalid: str, keep: list[str], table: Any,
                offset: int) -> tuple[Any, int, int, int, dict]:
    """A task: one chunk checked and scored as _Scorer.score does it; (output, rows, scored, invalid, broken)."""
    from .bundle import load
    from .predict import _Scorer

    if (path, md5) not in _LOADED:
        loaded = load(path, Path(path))
        if loaded.md5 != md5:
            raise DataError(f"the bundle {path} changed while scoring; run the command again.")
        _LOADED[(path, md5)] = loaded
    scorer = _Scorer(_LOADED[(path, md5)], Path(input), on_invalid, keep)
    scorer.rows = offset  # rows of earlier chunks: the broken rules' first rows count from the file's start
    out = scorer.score(table)
    return out, scorer.rows - offset, scorer.scored, scorer.invalid, scorer.broken


def _merge(scorer: Any, out: Any, rows: int, scored: int, invalid: int, broken: dict) -> Any:
    """Add a chunk's counts to `scorer`; the chunk in the output's types (fixed by the first one), or None."""
    scorer.rows += rows
    scorer.scored += scored
    scorer.invalid += invalid
    for key, found in broken.items():  # in file order: the first chunk that broke a rule has its first row
        if key in scorer.broken:
            scorer.broken[key].count += found.count
        else:
            scorer.broken[key] = found
    if scorer.broken or out is None:  # in fail mode nothing more is written once a rule is broken
        return None
    if scorer.schema is None:
        scorer.schema, scorer.columns = out.schema, out.schema.names
        return out
    return scorer._cast(out)
