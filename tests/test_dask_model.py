"""The model end of the Dask engine: train (xgboost.dask), evaluate and package on partitioned folders, and
`mlp predict --engine dask`, against the pandas engine on the same rows.

One temporary project: the pandas stages up to tune, then the splits and the training features cut into folders of
3000-row parts, and train / evaluate / package run with engine: dask on a real LocalCluster (2 workers, 1 thread).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import BIN, REPO, mlp, run

ROWS = 20_000
PART_ROWS = 3000
PYTHON = str(BIN / "python")
ENV = {**os.environ, "MLP_DASK_DASHBOARD": ":0", "MLP_PROGRESS": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
ENV.pop("MLP_DASK_SCHEDULER", None)

CUT = """
import os, sys
sys.path.insert(0, "stages")
import common, dask_engine
for path in sys.argv[1:]:
    table = common.read_table(path)
    os.remove(path)
    os.makedirs(path)
    for i, start in enumerate(range(0, table.num_rows, {rows})):
        common.write_parquet(table.slice(start, {rows}), dask_engine.part_name(path, i))
""".format(rows=PART_ROWS)


def stage(root: Path, name: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([PYTHON, f"stages/{name}.py"], cwd=root, capture_output=True, text=True,
                          env=env or ENV, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def set_params(root: Path, **changes) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        (params.setdefault(section, {}) if section else params)[name] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def metrics(root: Path) -> dict:
    return json.loads((root / "reports/metrics.json").read_text())


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"pandas": a project run with the pandas engine, "dask": the same up to tune, then dask train..package,
    "dask_model_1": data/model of the first of two dask train runs}."""
    base = tmp_path_factory.mktemp("dask_model")
    root = base / "pandas"
    root.mkdir()
    for name in ("stages", "params.yaml", "schema.yaml"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, root / name)
    mlp(root, "sample", "churn", "--rows", str(ROWS), "-o", "data/raw/churn.csv", check=True)
    for name in ("ingest", "validate", "prepare", "split", "featurize", "tune"):
        stage(root, name)
    dask_root = base / "dask"
    shutil.copytree(root, dask_root)
    for name in ("train", "evaluate", "package"):
        stage(root, name)

    run([PYTHON, "-c", CUT, "data/split/train.parquet", "data/split/test.parquet", "data/features/train.parquet"],
        dask_root, check=True)
    set_params(dask_root, engine="dask", **{"dask.workers": 2, "dask.threads": 1, "dask.partition_rows": PART_ROWS})
    stage(dask_root, "train")
    first = base / "dask_model_1"
    shutil.copytree(dask_root / "data/model", first)
    stage(dask_root, "train")
    stage(dask_root, "evaluate")
    stage(dask_root, "package")
    return {"pandas": root, "dask": dask_root, "dask_model_1": first}


def test_the_intermediates_are_folders_of_parts(projects: dict[str, Path]) -> None:
    parts = sorted(os.listdir(projects["dask"] / "data/features/train.parquet"))
    assert len(parts) == 6 and parts[0] == "part-00000.parquet"


def test_two_dask_train_runs_give_the_same_model_bytes(projects: dict[str, Path]) -> None:
    first, second = projects["dask_model_1"], projects["dask"] / "data/model"
    for name in ("model.json", "meta.json", "featurizer.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_the_dask_bundle_is_the_pandas_bundle_but_for_the_trees(projects: dict[str, Path]) -> None:
    pandas_model, dask_model = projects["pandas"] / "data/model", projects["dask"] / "data/model"
    assert sorted(os.listdir(pandas_model)) == sorted(os.listdir(dask_model))
    assert (pandas_model / "featurizer.json").read_bytes() == (dask_model / "featurizer.json").read_bytes()
    meta = {e: json.loads((projects[e] / "data/model/meta.json").read_text()) for e in ("pandas", "dask")}
    for key in ("classes", "feature_names", "input_columns", "params", "model", "model_file", "task", "target"):
        assert meta["pandas"][key] == meta["dask"][key], key
    assert meta["dask"]["classes"] == [0, 1]
    # distributed xgboost: each worker sketches its own rows' quantiles, so the trees differ a little
    assert (pandas_model / "model.json").read_bytes() != (dask_model / "model.json").read_bytes()


def test_dask_metrics_are_within_half_a_point_of_auc(projects: dict[str, Path]) -> None:
    pandas, dask = metrics(projects["pandas"]), metrics(projects["dask"])
    assert pandas["rows"] == dask["rows"] == {"train": 15838, "test": 3960}
    assert abs(pandas["roc_auc"] - dask["roc_auc"]) < 0.005
    assert abs(pandas["accuracy"] - dask["accuracy"]) < 0.02
    assert pandas["baseline"] == dask["baseline"]  # the training class shares, summed per part
    for name in ("confusion.csv", "roc.csv", "importance.csv"):
        assert (projects["dask"] / "reports/plots" / name).is_file()


def test_dask_evaluate_of_the_pandas_model_writes_the_pandas_reports(projects: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    root = tmp_path / "dask"
    shutil.copytree(projects["dask"], root)
    shutil.rmtree(root / "data/model")
    shutil.copytree(projects["pandas"] / "data/model", root / "data/model")
    stage(root, "evaluate")
    assert (root / "reports/metrics.json").read_bytes() == (projects["pandas"] / "reports/metrics.json").read_bytes()
    for name in ("confusion.csv", "roc.csv", "importance.csv"):
        assert (root / "reports/plots" / name).read_bytes() == \
            (projects["pandas"] / "reports/plots" / name).read_bytes(), name
    # and package then makes the pandas bundle, profile and all, but for the inputs' folder hashes
    stage(root, "package")
    for name in sorted(os.listdir(projects["pandas"] / "models")):
        if name != "meta.json":
            assert (root / "models" / name).read_bytes() == (projects["pandas"] / "models" / name).read_bytes(), name


def test_package_records_dvcs_folder_hashes(projects: dict[str, Path]) -> None:
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    odb = HashFileDB(fs, str(projects["dask"].parent / "odb"))
    meta = json.loads((projects["dask"] / "models/meta.json").read_text())
    for path in ("data/split/train.parquet", "data/split/test.parquet"):
        _, _, tree = build(odb, str(projects["dask"] / path), fs, "md5")
        assert meta["inputs"][path]["md5"] == tree.hash_info.value
        assert tree.hash_info.value.endswith(".dir")
    pandas_meta = json.loads((projects["pandas"] / "models/meta.json").read_text())
    assert not pandas_meta["inputs"]["data/split/train.parquet"]["md5"].endswith(".dir")


def test_the_profile_of_small_data_is_the_pandas_profile(projects: dict[str, Path]) -> None:
    pandas = json.loads((projects["pandas"] / "models/profile.json").read_text())
    dask = json.loads((projects["dask"] / "models/profile.json").read_text())
    assert dask["rows"] == pandas["rows"] and dask["columns"] == pandas["columns"]


def test_the_profile_sample_does_not_depend_on_the_partitions(projects: dict[str, Path], tmp_path: Path) -> None:
    code = """
import sys, json
sys.path.insert(0, "stages")
import package
a, total_a = package.sampled("data/split/train.parquet", ["tenure_months", "plan"], 5000)
b, total_b = package.sampled(sys.argv[1], ["tenure_months", "plan"], 5000)
everything, total = package.sampled(sys.argv[1], ["plan"], 10**6)
print(json.dumps([len(a), a.equals(b), total_a, total_b, len(everything), total]))
"""
    whole = tmp_path / "train.parquet"
    shutil.copy(projects["pandas"] / "data/split/train.parquet", whole)
    out = run([PYTHON, "-c", code, str(whole)], projects["dask"], check=True).out
    rows, same, total_a, total_b, everything, total = json.loads(out)
    assert same and 4000 < rows < 6000 and everything == 15838
    assert total_a == total_b == total == 15838


def test_a_sampled_profile_records_the_splits_sizes(projects: dict[str, Path], tmp_path: Path) -> None:
    """Columns are summarised from the sample, but "rows" are the splits' sizes: `mlp monitor` weighs the test
    metrics (measured on every test row) by them."""
    root = tmp_path / "project"
    shutil.copytree(projects["dask"], root)
    code = """
import sys
sys.path.insert(0, "stages")
import package
package.PROFILE_ROWS = {package.TRAIN: 4000, package.TEST: 1000}
package.main()
"""
    run([PYTHON, "-c", code], root, check=True)
    profile = json.loads((root / "models/profile.json").read_text())
    whole = json.loads((projects["dask"] / "models/profile.json").read_text())
    assert profile["rows"] == whole["rows"] == {"train": 15838, "test": whole["rows"]["test"]}
    assert 3000 < profile["columns"]["plan"]["rows"] < 5000


def test_the_dask_bundle_scores_through_mlp_predict_on_both_engines(projects: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    root = projects["dask"]
    new = tmp_path / "new.csv"
    mlp(tmp_path, "sample", "churn", "--rows", "7000", "--seed", "7", "-o", str(new), check=True)
    outputs = {}
    for engine in ("pandas", "dask"):
        out = tmp_path / f"{engine}.csv"
        result = run([str(BIN / "mlp"), "predict", str(new), str(out), "--model", str(root / "models"),
                      "--chunk-rows", "1000", "--keep", "customer_id", "--engine", engine], tmp_path)
        assert result.code == 0, result.err
        assert "Scored 7,000 of 7,000 rows" in result.err
        outputs[engine] = out.read_bytes()
    assert outputs["pandas"] == outputs["dask"]
    import pandas as pd

    scores = pd.read_csv(tmp_path / "dask.csv")
    assert list(scores.columns) == ["customer_id", "prediction", "probability_0", "probability_1"]
    assert len(scores) == 7000 and scores["prediction"].isin([0, 1]).all()


def test_predict_on_dask_marks_and_fails_like_pandas(projects: dict[str, Path], tmp_path: Path) -> None:
    import pandas as pd

    new = tmp_path / "new.csv"
    mlp(tmp_path, "sample", "churn", "--rows", "3000", "--seed", "8", "-o", str(new), check=True)
    df = pd.read_csv(new)
    df.loc[[5, 2500], "tenure_months"] = -3  # below the contract's minimum
    df.to_csv(new, index=False)
    model = str(projects["dask"] / "models")
    results = {}
    for engine in ("pandas", "dask"):
        marked = tmp_path / f"{engine}.parquet"
        ok = mlp(tmp_path, "predict", str(new), str(marked), "--model", model, "--chunk-rows", "500",
                 "--on-invalid", "mark", "--engine", engine)
        assert ok.code == 0, ok.err
        failed = mlp(tmp_path, "predict", str(new), str(tmp_path / f"{engine}-fail.csv"), "--model", model,
                     "--chunk-rows", "500", "--engine", engine)
        assert failed.code == 2 and not (tmp_path / f"{engine}-fail.csv").exists()
        results[engine] = (pd.read_parquet(marked), failed.err.strip().splitlines()[-1])
    assert results["pandas"][0].equals(results["dask"][0])
    assert results["dask"][0]["_invalid"].notna().sum() == 2
    assert results["pandas"][1] == results["dask"][1]
    assert "2 rows (first: row 5" in results["dask"][1]


def test_predict_on_an_unreachable_scheduler_is_one_line(projects: dict[str, Path], tmp_path: Path) -> None:
    new = tmp_path / "new.csv"
    mlp(tmp_path, "sample", "churn", "--rows", "200", "-o", str(new), check=True)
    out = tmp_path / "scores.csv"
    env = {**ENV, "MLP_DASK_SCHEDULER": "tcp://127.0.0.1:9"}
    proc = subprocess.run([str(BIN / "mlp"), "predict", str(new), str(out), "--model",
                           str(projects["dask"] / "models"), "--engine", "dask"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in lines[0]
    assert not out.exists() and os.listdir(tmp_path) == ["new.csv"]


def test_predict_without_dask_names_the_extra(projects: dict[str, Path], tmp_path: Path) -> None:
    code = ("import sys; sys.modules['distributed'] = None; from mlp.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    new = tmp_path / "new.csv"
    mlp(tmp_path, "sample", "churn", "--rows", "200", "-o", str(new), check=True)
    result = run([PYTHON, "-c", code, "predict", str(new), str(tmp_path / "s.csv"), "--model",
                  str(projects["dask"] / "models"), "--engine", "dask"], tmp_path)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "mlp-pipeline[dask]" in lines[0]
    assert not (tmp_path / "s.csv").exists()
    bad = mlp(tmp_path, "predict", str(new), str(tmp_path / "s.csv"), "--engine", "spark")
    assert bad.code == 2 and "spark" in bad.err and len(bad.err.strip().splitlines()) == 1


def test_mlp_and_its_help_do_not_import_dask(tmp_path: Path) -> None:
    code = ("import sys, contextlib, io\nimport mlp\nfrom mlp.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['--help']); main(['predict', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'xgboost')))")
    assert run([PYTHON, "-c", code], tmp_path, check=True).out.strip() == "[]"


def test_dask_train_refuses_other_models(projects: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "dask"
    shutil.copytree(projects["dask"], root)
    before = (root / "data/model/model.json").read_bytes()
    set_params(root, **{"train.model": "random_forest"})
    proc = stage(root, "train", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "engine: dask trains xgboost only" in lines[0], proc.stderr
    assert (root / "data/model/model.json").read_bytes() == before


def test_dask_train_of_a_regression(projects: dict[str, Path], tmp_path: Path) -> None:
    """A regression target goes to xgboost.dask as it is (no label encoding)."""
    root = tmp_path / "dask"
    shutil.copytree(projects["dask"], root)
    code = """
import sys, json
sys.path.insert(0, "stages")
import numpy as np, pyarrow as pa, common
for part in common.parquet_parts("data/features/train.parquet"):
    t = common.read_table(part)
    y = pa.array(np.arange(t.num_rows, dtype=np.float64) % 7)
    common.write_parquet(t.set_column(t.schema.get_field_index("churned"), "churned", y), part)
"""
    run([PYTHON, "-c", code], root, check=True)
    schema = yaml.safe_load((root / "schema.yaml").read_text())
    schema["task"] = "regression"
    (root / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    stage(root, "train")
    meta = json.loads((root / "data/model/meta.json").read_text())
    assert meta["task"] == "regression" and meta["classes"] is None
    booster_json = json.loads((root / "data/model/model.json").read_text())
    assert booster_json["learner"]["objective"]["name"] == "reg:squarederror"
    assert np.isfinite(float(booster_json["learner"]["learner_model_param"]["base_score"].strip("[]")))


@pytest.mark.parametrize("engine", ["pandas", "dask"])
def test_train_refuses_rows_without_a_target(projects: dict[str, Path], tmp_path: Path, engine: str) -> None:
    """Prepare drops them, so a features table with some was made another way: a one-line error, not xgboost's."""
    root = tmp_path / engine
    shutil.copytree(projects[engine], root)
    code = """
import sys
sys.path.insert(0, "stages")
import pyarrow as pa, pyarrow.compute as pc, common
path = "data/features/train.parquet"
part = common.parquet_parts(path)[-1]
t = common.read_table(part)
i = t.schema.get_field_index("churned")
y = pc.if_else(pa.array([k % 100 == 0 for k in range(t.num_rows)]), pa.scalar(None, t.schema.field(i).type), t.column(i))
common.write_parquet(t.set_column(i, "churned", y), part)
"""
    run([PYTHON, "-c", code], root, check=True)
    before = (root / "data/model/model.json").read_bytes()
    proc = stage(root, "train", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "have no 'churned'" in lines[0] and "prepare stage" in lines[0], proc.stderr
    assert (root / "data/model/model.json").read_bytes() == before


def test_one_dask_worker_trains_the_pandas_model(projects: dict[str, Path], tmp_path: Path) -> None:
    """The README's claim: with one worker, xgboost.dask sees every row as the pandas engine's xgboost does."""
    root = tmp_path / "dask"
    shutil.copytree(projects["dask"], root)
    set_params(root, **{"dask.workers": 1})
    stage(root, "train")
    assert (root / "data/model/model.json").read_bytes() == \
        (projects["pandas"] / "data/model/model.json").read_bytes()
