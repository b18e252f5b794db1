"""`mlp predict`: real files, the real command in a subprocess, the bundle's own numbers to compare with.

Parity: on the test split (written out as CSV, Parquet and JSON lines), `mlp predict` gives bit for bit the
predictions and probabilities that the bundle gives on the same rows in memory (`bundle.predict_proba` on the
parquet rows: what evaluate computes), for the churn sample and two real datasets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import BIN, REPO, mlp, run
from test_errors import assert_one_line_error

# The public datasets and their targets, from bench/quality.py (loaded as tests/test_public_datasets.py loads it).
_spec = importlib.util.spec_from_file_location("mlp_bench_quality", REPO / "bench" / "quality.py")
quality = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
if not hasattr(quality, "DATASETS"):
    _spec.loader.exec_module(quality)

TEST_SPLIT = "data/split/test.parquet"
TEMP_SUFFIX = ".predict.tmp"


# --- helpers ----------------------------------------------------------------------------------------------------

def load_bundle(project: Path):
    """The project's bundle, loaded in this process as predict loads it (its own features.py)."""
    from mlp.bundle import load

    return load(project / "models")


def split_rows(project: Path) -> pd.DataFrame:
    return pq.ParquetFile(project / TEST_SPLIT).read().to_pandas()


def write_as(df: pd.DataFrame, path: Path, schema: dict) -> Path:
    """The rows as a user's file: CSV (dates in the contract's format), Parquet or JSON lines."""
    df = df.copy()
    for name, spec in (schema.get("columns") or {}).items():
        if name in df.columns and (spec or {}).get("kind") == "datetime" and spec.get("format") \
                and path.suffix != ".parquet":
            df[name] = df[name].dt.strftime(spec["format"])
    if path.suffix == ".csv":
        df.to_csv(path, index=False)  # floats as repr: they read back as the same numbers
    elif path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        with path.open("w", encoding="utf-8") as f:
            for row in df.to_dict("records"):
                row = {k: None if not isinstance(v, str) and pd.isna(v) else
                       v.isoformat(sep=" ") if isinstance(v, pd.Timestamp) else v for k, v in row.items()}
                f.write(json.dumps(row, default=lambda v: v.item()) + "\n")
    return path


def schema_of(project: Path) -> dict:
    return yaml.safe_load((project / "schema.yaml").read_text(encoding="utf-8"))


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).read().to_pandas()
    if path.suffix == ".csv":
        return pd.read_csv(path)  # pandas parses floats exactly (round trip)
    return pd.read_json(path, lines=True, precise_float=True, dtype=False)


def assert_same_scores(out: pd.DataFrame, loaded, rows: pd.DataFrame) -> None:
    """Bit for bit what the bundle gives on `rows` in memory."""
    bundle = loaded.bundle
    if bundle.task == "classification":
        expected = bundle.predict_proba(rows)
        for k, label in enumerate(bundle.classes):
            got = out[f"probability_{label}"].to_numpy(dtype=np.float64)
            assert np.array_equal(got, expected[:, k]), (label, np.abs(got - expected[:, k]).max())
        assert list(out["prediction"]) == list(bundle.predict(rows))
    else:
        assert np.array_equal(out["prediction"].to_numpy(dtype=np.float64), bundle.predict(rows))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX))


def assert_nothing_written(folder: Path, output: Path) -> None:
    assert not output.exists(), output
    if folder.exists():
        assert leftovers(folder) == [], leftovers(folder)


# --- projects -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def churn(built_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn project after `mlp repro` (a copy this module shares: the tests only read it)."""
    root = tmp_path_factory.mktemp("predict") / "proj"
    shutil.copytree(built_template, root, symlinks=True)
    return root


DATASETS = {d.name: d for d in quality.DATASETS}


@pytest.fixture(scope="module", params=["auto-mpg", "penguins-raw"])
def public(request, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project made from a real file: auto-mpg (regression, `?` markers) and penguins-raw (3 classes, a date
    column, NA markers, column names with spaces and brackets)."""
    ds = DATASETS[request.param]
    parent = tmp_path_factory.mktemp(ds.name)
    mlp(parent, "init", "proj", "--data", str(ds.path), "--target", ds.target, check=True)
    mlp(parent / "proj", "repro", check=True)
    return parent / "proj"


# --- parity ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_churn_scores_match_the_bundle_in_memory(churn: Path, tmp_path: Path, fmt: str) -> None:
    rows = split_rows(churn)
    source = write_as(rows, tmp_path / f"test.{fmt}", schema_of(churn))
    result = mlp(churn, "predict", str(source), str(tmp_path / "scores.parquet"))
    assert result.code == 0, result.err
    assert f"Scored {len(rows):,} of {len(rows):,} rows" in result.err
    out = read_output(tmp_path / "scores.parquet")
    loaded = load_bundle(churn)
    assert list(out.columns) == ["prediction", *(f"probability_{c}" for c in loaded.bundle.classes)]
    assert_same_scores(out, loaded, rows)


def test_every_output_format_holds_the_same_numbers(churn: Path, tmp_path: Path) -> None:
    rows = split_rows(churn)
    source = write_as(rows, tmp_path / "test.parquet", schema_of(churn))
    loaded = load_bundle(churn)
    for ext in ("csv", "jsonl"):
        output = tmp_path / f"scores.{ext}"
        result = mlp(churn, "predict", str(source), str(output))
        assert result.code == 0, result.err
        assert_same_scores(read_output(output), loaded, rows)


def test_real_datasets_score_as_in_memory(public: Path, tmp_path: Path) -> None:
    rows = split_rows(public)
    loaded = load_bundle(public)
    for fmt in ("csv", "parquet"):
        source = write_as(rows, tmp_path / f"test.{fmt}", schema_of(public))
        output = tmp_path / f"scores-{fmt}.parquet"
        result = mlp(public, "predict", str(source), str(output))
        assert result.code == 0, result.err
        assert_same_scores(read_output(output), loaded, rows)


# --- chunks, columns, order ---------------------------------------------------------------------------------------

def test_chunk_size_does_not_change_the_output(churn: Path, tmp_path: Path) -> None:
    source = write_as(split_rows(churn), tmp_path / "test.csv", schema_of(churn))
    for rows in ("7", "1000000"):
        result = mlp(churn, "predict", str(source), str(tmp_path / f"scores-{rows}.csv"), "--chunk-rows", rows)
        assert result.code == 0, result.err
    assert (tmp_path / "scores-7.csv").read_bytes() == (tmp_path / "scores-1000000.csv").read_bytes()


def test_keep_copies_columns_in_row_order(churn: Path, tmp_path: Path) -> None:
    rows = split_rows(churn).sample(frac=1.0, random_state=3).reset_index(drop=True)  # not in any sorted order
    source = write_as(rows, tmp_path / "test.csv", schema_of(churn))
    output = tmp_path / "scores.parquet"
    result = mlp(churn, "predict", str(source), str(output), "--keep", "customer_id", "--keep", "region",
                 "--chunk-rows", "50")
    assert result.code == 0, result.err
    out = read_output(output)
    assert list(out.columns[:3]) == ["customer_id", "region", "prediction"]
    assert list(out["customer_id"]) == list(rows["customer_id"])
    assert list(out["region"]) == list(rows["region"])
    assert_same_scores(out, load_bundle(churn), rows)


# --- rows that break the contract ------------------------------------------------------------------------------------

@pytest.fixture
def with_invalid(churn: Path, tmp_path: Path) -> tuple[Path, pd.DataFrame, dict[int, str]]:
    """Test rows as CSV with broken ones after the first chunk of 7: {row: the rule it breaks}."""
    rows = split_rows(churn).head(60).reset_index(drop=True)
    text = rows.astype(object)
    broken = {9: "age: max", 20: "age: type", 33: "plan: categories", 41: "tenure_months: min"}
    text.loc[9, "age"] = 150
    text.loc[20, "age"] = "abc"
    text.loc[33, "plan"] = "gold"
    text.loc[41, "tenure_months"] = -3
    source = tmp_path / "new.csv"
    text.to_csv(source, index=False)
    return source, rows, broken


def test_on_invalid_fail_names_column_rule_and_count(churn: Path, tmp_path: Path, with_invalid) -> None:
    source, _, _ = with_invalid
    output = tmp_path / "out" / "scores.parquet"
    result = mlp(churn, "predict", str(source), str(output), "--chunk-rows", "7")
    assert_one_line_error(result, "column 'age' rule max", "in 1 rows", "row 9", "--on-invalid")
    assert "plan: categories (1 rows)" in result.err  # every broken rule counted, over the whole file
    assert not (tmp_path / "out").exists()  # the folder made for OUTPUT is gone too


def test_on_invalid_mark_explains_and_leaves_the_prediction_empty(churn: Path, tmp_path: Path, with_invalid) -> None:
    source, rows, broken = with_invalid
    output = tmp_path / "scores.parquet"
    result = mlp(churn, "predict", str(source), str(output), "--chunk-rows", "7", "--on-invalid", "mark",
                 "--keep", "customer_id")
    assert result.code == 0, result.err
    assert "4 invalid" in result.err
    out = read_output(output)
    assert len(out) == len(rows) and list(out["customer_id"]) == list(rows["customer_id"])
    for i, rule in broken.items():
        assert out.loc[i, "_invalid"].startswith(rule), (i, out.loc[i, "_invalid"])
        assert pd.isna(out.loc[i, "prediction"]) and pd.isna(out.loc[i, "probability_1"])
    valid = ~out.index.isin(list(broken))
    assert out.loc[valid, "_invalid"].isna().all()
    assert_same_scores(out[valid].reset_index(drop=True), load_bundle(churn), rows[valid].reset_index(drop=True))


def test_on_invalid_drop_writes_only_valid_rows(churn: Path, tmp_path: Path, with_invalid) -> None:
    source, rows, broken = with_invalid
    output = tmp_path / "scores.jsonl"
    result = mlp(churn, "predict", str(source), str(output), "--chunk-rows", "7", "--on-invalid", "drop",
                 "--keep", "customer_id")
    assert result.code == 0, result.err
    assert "4 invalid dropped" in result.err and "Scored 56 of 60 rows" in result.err
    out = read_output(output)
    kept = rows.drop(index=list(broken)).reset_index(drop=True)
    assert list(out["customer_id"]) == list(kept["customer_id"])
    assert_same_scores(out, load_bundle(churn), kept)


# --- bad input: one line, exit 2, nothing written ---------------------------------------------------------------

def _bad_inputs(churn: Path, tmp: Path) -> dict[str, tuple[Path, list[str], list[str]]]:
    """name -> (cwd, arguments after `mlp predict`, what the error must say)."""
    good = write_as(split_rows(churn).head(20), tmp / "good.csv", schema_of(churn))
    binary = tmp / "sheet.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary\x00data" * 10)
    broken_parquet = tmp / "broken.parquet"
    broken_parquet.write_bytes(b"PAR1" + b"not really parquet" * 10)
    no_age = tmp / "no_age.csv"
    pd.read_csv(good).drop(columns=["age"]).to_csv(no_age, index=False)
    not_bundle = tmp / "not-a-bundle"
    not_bundle.mkdir()
    (not_bundle / "notes.txt").write_text("hello")
    out = str(tmp / "out" / "scores.parquet")
    return {
        "missing input": (churn, [str(tmp / "nope.csv"), out], ["nope.csv does not exist"]),
        "binary file": (churn, [str(binary), out], ["not a text file"]),
        "broken parquet": (churn, [str(broken_parquet), out], ["not a readable parquet file"]),
        "unknown output extension": (churn, [str(good), str(tmp / "out" / "scores.xlsx")], ["scores.xlsx", ".parquet"]),
        "missing column": (churn, [str(no_age), out], ["no column 'age'", "its columns: customer_id"]),
        "unknown --keep": (churn, [str(good), out, "--keep", "id"], ["--keep 'id'", "customer_id, signup_date"]),
        "outside a project": (tmp, [str(good), out], ["not inside an mlp project", "--model"]),
        "not a bundle": (tmp, [str(good), out, "--model", str(not_bundle)], ["not a model bundle", "meta.json"]),
    }


CASES = ["missing input", "binary file", "broken parquet", "unknown output extension", "missing column",
         "unknown --keep", "outside a project", "not a bundle"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_writes_nothing(churn: Path, tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    cwd, args, needles = _bad_inputs(churn, outside)[case]
    result = mlp(cwd, "predict", *args)
    assert_one_line_error(result, *needles)
    assert not (outside / "out").exists(), list((outside / "out").iterdir())


@pytest.mark.parametrize("changed", ["model.json", "features.py"])
def test_a_bundle_changed_after_training_is_refused(churn: Path, tmp_path: Path, changed: str) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(churn / "models", bundle)
    ran = tmp_path / "bundle-code-ran"
    if changed == "features.py":  # would leave a trace if any of the bundle's code ran
        with (bundle / changed).open("a", encoding="utf-8") as f:
            f.write(f"\nopen({str(ran)!r}, 'w').close()\n")
    else:
        with (bundle / changed).open("ab") as f:
            f.write(b" ")
    source = write_as(split_rows(churn).head(20), tmp_path / "new.csv", schema_of(churn))
    result = mlp(tmp_path, "predict", str(source), str(tmp_path / "scores.parquet"), "--model", str(bundle))
    assert_one_line_error(result, f"{changed} changed after training", "refusing to load")
    assert not ran.exists() and not (tmp_path / "scores.parquet").exists()


# --- outside a project: no DVC --------------------------------------------------------------------------------------

def test_outside_a_project_with_model_and_no_dvc_imported(churn: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "copied-bundle"
    shutil.copytree(churn / "models", bundle)
    rows = split_rows(churn)
    source = write_as(rows, tmp_path / "new.csv", schema_of(churn))
    output = tmp_path / "scores.parquet"
    code = ("import sys; from mlp.cli import main; code = main(sys.argv[1:]); "
            "print('dvc imported' if any(m == 'dvc' or m.startswith('dvc.') for m in sys.modules) else 'no dvc'); "
            "sys.exit(code)")
    result = run([sys.executable, "-c", code, "predict", str(source), str(output), "--model", str(bundle)], tmp_path)
    assert result.code == 0, result.err
    assert result.out.strip() == "no dvc"
    assert_same_scores(read_output(output), load_bundle(churn), rows)


# --- interrupted runs --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "customers.csv"
    mlp(path.parent, "sample", "churn", "--rows", "300000", "-o", str(path), check=True)
    return path


def start_predict(churn: Path, source: Path, output: Path) -> subprocess.Popen:
    """`mlp predict` in small chunks (so it runs for a while); returns once it is writing its temporary file."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen([str(BIN / "mlp"), "predict", str(source), str(output), "--chunk-rows", "1000"],
                            cwd=churn, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not leftovers(output.parent) or (output.parent / leftovers(output.parent)[0]).stat().st_size == 0:
        assert proc.poll() is None, f"mlp predict ended before it was stopped: {proc.communicate()}"
        assert time.monotonic() < deadline, "mlp predict wrote nothing in 2 minutes"
        time.sleep(0.1)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_predict_leaves_no_file(churn: Path, big_csv: Path, tmp_path: Path, sig: int) -> None:
    output = tmp_path / "scores.parquet"
    proc = start_predict(churn, big_csv, output)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 128 + sig), (proc.returncode, err)
    assert err.strip().splitlines()[-1].startswith("Error: "), err
    assert "Traceback" not in err
    assert_nothing_written(tmp_path, output)


def test_after_a_killed_predict_a_rerun_succeeds_and_cleans_up(churn: Path, big_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "scores.parquet"
    proc = start_predict(churn, big_csv, output)
    proc.kill()
    proc.communicate(timeout=60)
    assert not output.exists()
    assert len(leftovers(tmp_path)) == 1  # SIGKILL leaves no chance to clean up: the name says what it is
    assert leftovers(tmp_path)[0].startswith(".scores.parquet.")
    result = mlp(churn, "predict", str(big_csv), str(output))
    assert result.code == 0, result.err
    assert leftovers(tmp_path) == []
    assert pq.ParquetFile(output).metadata.num_rows == 300_000
