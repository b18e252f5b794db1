"""Small helpers shared by the stage scripts.

- load_params(section) / load_schema(): read params.yaml and schema.yaml from the project root;
  load_params checks the section against params_spec.py, the declaration of what each knob may be.
- fail(message): stop the stage with one line on stderr, "<stage>: <message>", and exit code 1
  (a SystemExit carrying that line).
  Every stage reports its errors this way.
- read_table(path) / read_parquet(path): read a parquet file as a pyarrow Table / pandas DataFrame.
- write_parquet / write_json / write_csv: write an output atomically (write_parquet_batches: in batches). The data goes to a temporary
  name next to the target and is then renamed over it, so a stage that is killed half-way never
  leaves a half-written output in place (the rename is atomic on one filesystem).
- copy_file(src, path): the same for a plain copy.
- replace_dir(path): the same for an output directory (used for the model bundle).
- threads(): how many threads a stage may use (all cores, or MLP_THREADS when `mlp sweep` runs several at once).
- engine(): "pandas" or "dask", params.yaml's top-level `engine:` (the Dask paths are in dask_engine.py).
  With engine: dask an intermediate like data/split/train.parquet is a folder of part-NNNNN.parquet files;
  read_table and read_parquet read either (a folder in its parts' order).

DVC runs every stage from the project root, so the paths here are relative to it.
"""
import contextlib
import json
import os
import re
import shutil
import sys

import yaml

PARAMS_FILE = "params.yaml"
SCHEMA_FILE = "schema.yaml"


def fail(message):
    """Stop the stage: one line "<stage>: <message>" on stderr (the stage is named after its script), exit 1."""
    stage = os.path.splitext(os.path.basename(sys.argv[0]))[0] or "stage"
    # Python prints a SystemExit's text to stderr and exits with 1; code that calls a stage's functions
    # (`mlp predict` reads files with sources.py) catches it and has the message.
    raise SystemExit(f"{stage}: " + " ".join(str(message).splitlines()))


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except FileNotFoundError:
        fail(f"{path} not found in {os.getcwd()}; run the pipeline from the project root")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        fail(f"{path} is not valid YAML{where}: {getattr(e, 'problem', None) or e}; fix the file")


def load_params(section):
    """The `section` part of params.yaml as a dict (empty if absent). A value that params_spec.py does not
    allow stops the stage here, with one line naming the key and what it may be."""
    # Imported here, not at the top: only the stages that read params depend on it (see dvc.yaml).
    import params_spec

    params = _read_yaml(PARAMS_FILE)
    if not isinstance(params, dict):
        fail(f"{PARAMS_FILE} must be a mapping of sections (ingest:, train:, ...)")
    found = params_spec.problems(params, sections=[section])
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        fail(f"{PARAMS_FILE} {found[0]}{more}")
    return params.get(section) or {}


def engine():
    """params.yaml's `engine:` (pandas when absent), checked: a name that is not an engine stops the stage."""
    import params_spec

    params = _read_yaml(PARAMS_FILE)
    value = params.get("engine", "pandas") if isinstance(params, dict) else "pandas"
    expected = params_spec.check_value("engine", value)
    if expected:
        fail(f"{PARAMS_FILE} engine is {params_spec.show(value)}; use {expected}")
    return value


def threads():
    """The threads a stage may use: the machine's cores, unless MLP_THREADS says fewer. `mlp sweep -j N` sets it
    for each of its N workers so that workers times threads does not exceed the cores. It never changes a model:
    xgboost's hist trees and scikit-learn's forests are the same for any thread count."""
    cores = os.cpu_count() or 1
    try:
        wanted = int(os.environ.get("MLP_THREADS", "") or cores)
    except ValueError:
        wanted = cores
    return max(1, min(wanted, cores))


def _mix(h):
    """splitmix64's finalizer: every input bit moves every output bit (uint64 arrays, wrapping)."""
    import numpy as np

    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def row_hash(table, seed=0):
    """A 64-bit hash of each row's values (a pyarrow Table), the same for the same values whatever the rest of
    the table is: so it does not depend on how rows are cut into partitions. Numbers hash by value (2 and 2.0
    alike, a missing one like NaN), text by its characters."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    h = _mix(np.full(table.num_rows, seed, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    for column in table.columns:
        if pa.types.is_dictionary(column.type):  # its to_numpy() loses missing values (pyarrow 26)
            column = column.cast(column.type.value_type)
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            x = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False) + 0.0  # -0.0 becomes 0.0
            x[np.isnan(x)] = np.nan  # one bit pattern for every missing value
            values = x.view(np.uint64)
        elif pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_duration(kind):
            values = pc.fill_null(pc.cast(column, pa.int64()), -2**63).to_numpy().view(np.uint64)
        else:
            values = pd.util.hash_array(np.asarray(column.to_numpy(zero_copy_only=False), dtype=object))
        with np.errstate(over="ignore"):
            h = _mix(h ^ values)
    return h


def load_schema():
    """schema.yaml as a dict: target, task and columns."""
    return _read_yaml(SCHEMA_FILE)


def feature_columns(schema):
    """Columns that feed the model: role feature (the default), not the target, no identifiers."""
    target = schema.get("target")
    return [name for name, spec in (schema.get("columns") or {}).items()
            if name != target and (spec or {}).get("role", "feature") == "feature"
            and (spec or {}).get("kind") != "identifier"]


def read_table(path, columns=None):
    """A parquet file, or a folder of part files (the Dask engine's), as one pyarrow Table. (pq.ParquetFile
    rather than pq.read_table or pd.read_parquet: those import pyarrow.dataset, a third of a second that each
    stage would pay.)"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not os.path.isdir(path):
        return pq.ParquetFile(path).read(columns=columns)
    return pa.concat_tables([pq.ParquetFile(part).read(columns=columns) for part in parquet_parts(path)])


def parquet_parts(path):
    """The part files of a partitioned parquet folder in order (part-00000.parquet, ...), or [path] for a file."""
    if not os.path.isdir(path):
        return [path]
    return [os.path.join(path, name) for name in sorted(os.listdir(path))
            if name.endswith(".parquet") and not name.startswith((".", "_"))]


def read_parquet(path, columns=None):
    """A parquet file as a pandas DataFrame."""
    return read_table(path, columns).to_pandas()


def _temp_path(path):
    """A hidden sibling of `path` (.NAME.PID.tmp): in the same directory, so that the final rename
    stays on one filesystem; ending in .tmp, so that git ignores it."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Leftovers of earlier killed runs would otherwise pile up next to the output.
    leftover = re.compile(rf"\.{re.escape(name)}\.\d+(\.old)?\.tmp")
    for old in os.listdir(folder):
        if leftover.fullmatch(old):
            old = os.path.join(folder, old)
            shutil.rmtree(old) if os.path.isdir(old) else os.remove(old)
    return os.path.join(folder, f".{name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def _atomic(path):
    """Yield a temporary file name; on success rename it to `path`, on error remove it."""
    tmp = _temp_path(path)
    try:
        yield tmp
        if os.path.isdir(path) and not os.path.islink(path):  # the Dask engine's folder of parts, written before
            old = tmp[: -len(".tmp")] + ".old.tmp"
            os.replace(path, old)
            shutil.rmtree(old)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_parquet(data, path):
    """Write a pandas DataFrame or a pyarrow Table to parquet (no pandas index)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(data, pa.Table):
        data = pa.Table.from_pandas(data, preserve_index=False)
    with _atomic(path) as tmp:
        pq.write_table(data, tmp, write_statistics=_statistics_columns(data.schema))


def write_parquet_batches(schema, tables, path):
    """Write pyarrow Tables as they come (one row group each), atomically: for data larger than memory."""
    import pyarrow.parquet as pq

    with _atomic(path) as tmp:
        with pq.ParquetWriter(tmp, schema, write_statistics=_statistics_columns(schema)) as writer:
            for table in tables:
                writer.write_table(table)


def _statistics_columns(schema):
    """The columns whose min/max statistics the file keeps: all but text. Comparing every string to find
    a text column's min and max is about a fifth of the time it takes to write a file, and no stage
    filters on text by those statistics."""
    import pyarrow as pa

    return [field.name for field in schema
            if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))]


def write_json(obj, path):
    """Write JSON with sorted keys and a final newline, so the file is stable and diffs are small."""
    with _atomic(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True, allow_nan=False)
            f.write("\n")


def copy_file(src, path):
    """Copy a file to `path` (atomically, like the writers above)."""
    with _atomic(path) as tmp:
        shutil.copyfile(src, tmp)


def write_csv(df, path, float_format="%.6g"):
    """Write a DataFrame to CSV without its index; floats to 6 significant digits (stable files)."""
    with _atomic(path) as tmp:
        df.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")


@contextlib.contextmanager
def replace_dir(path):
    """Build a directory in a temporary sibling, then swap it in place of `path`.

        with replace_dir("models") as tmp:
            write_json(meta, os.path.join(tmp, "meta.json"))

    If the block fails, `path` is left as it was and the temporary directory is removed.
    """
    tmp = _temp_path(path)
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # A directory cannot be renamed over a non-empty one: move the old one aside first.
    old = None
    if os.path.lexists(path):
        old = tmp[: -len(".tmp")] + ".old.tmp"
        os.replace(path, old)
    os.replace(tmp, path)
    if old:
        shutil.rmtree(old) if os.path.isdir(old) else os.remove(old)
