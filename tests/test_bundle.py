"""The bundle as predict and serve load it (mlp/bundle.py): its version is the md5 dvc.lock records for models/,
and inside a project the commands say the commit and whether dvc.lock records the bundle they use. A bundle built
before monitoring (no profile) still loads; a broken profile is refused in one line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import git, mlp
from mlp.bundle import content_md5, lineage_note, load
from mlp.errors import DataError
from test_errors import assert_one_line_error


def test_lineage_note() -> None:
    assert lineage_note({}) == ""
    assert lineage_note({"commit": "1a2b3c4d5e", "matches_lock": None}) == "commit 1a2b3c4"
    assert lineage_note({"commit": "1a2b3c4d5e", "matches_lock": True}) == "commit 1a2b3c4, as dvc.lock records it"
    assert "NOT the bundle dvc.lock records" in lineage_note({"commit": None, "matches_lock": False})


def _locked_models_md5(root: Path) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return next(out["md5"] for out in lock["stages"]["package"]["outs"] if out["path"] == "models")


def test_the_version_is_the_md5_dvc_records_and_travels_with_the_bundle(project: Path, tmp_path: Path) -> None:
    md5 = _locked_models_md5(project)
    assert content_md5(project / "models") == md5
    loaded = load(cwd=project)
    assert loaded.version == md5[:12] and loaded.md5 == md5
    assert loaded.lineage == {"commit": git(project, "rev-parse", "HEAD").strip(), "matches_lock": True}
    elsewhere = tmp_path / "copied"
    shutil.copytree(project / "models", elsewhere)
    outside = load(elsewhere, cwd=tmp_path)
    assert outside.version == loaded.version and outside.lineage == {}
    assert not list(elsewhere.rglob("__pycache__"))  # running the bundle's code wrote nothing into it


def test_predict_says_whether_dvc_lock_records_the_bundle(project: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.parquet"
    shutil.copy(project / "data/split/test.parquet", rows)
    result = mlp(project, "predict", str(rows), str(tmp_path / "a.parquet"), check=True)
    assert "as dvc.lock records it" in result.err
    lock = project / "dvc.lock"
    lock.write_text(lock.read_text().replace(_locked_models_md5(project), "0" * 32 + ".dir"))
    result = mlp(project, "predict", str(rows), str(tmp_path / "b.parquet"), check=True)
    assert "NOT the bundle dvc.lock records" in result.err


def test_a_folder_that_is_not_a_bundle_is_refused(project: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_one_line_error(mlp(project, "predict", "data/split/test.parquet", str(tmp_path / "y.csv"), "--model",
                              str(tmp_path / "empty")), "not a model bundle")
    assert not (tmp_path / "y.csv").exists()
    meta = project / "models/meta.json"
    meta.write_text(meta.read_text().replace('"files"', '"filez"'))
    assert_one_line_error(mlp(project, "serve", "--port", "0"), "lists no files")


def _rewrite(models: Path, drop: tuple[str, ...] = (), replace: dict[str, bytes] | None = None) -> None:
    """Change a bundle's files and record their new sha256 in meta.json, as an older or a broken package would."""
    meta = json.loads((models / "meta.json").read_text())
    for name in drop:
        (models / name).unlink()
        del meta["files"][name]
    for name, data in (replace or {}).items():
        (models / name).write_bytes(data)
        meta["files"][name] = hashlib.sha256(data).hexdigest()
    (models / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def test_a_bundle_built_before_monitoring_still_loads_and_scores(project: Path, tmp_path: Path) -> None:
    models = tmp_path / "old"
    shutil.copytree(project / "models", models)
    _rewrite(models, drop=("profile.json", "data_profile.py", "metrics.py"))
    loaded = load(models, cwd=tmp_path)
    assert loaded.profile is None and loaded.profile_code is None and loaded.metrics_code is None
    with pytest.raises(DataError, match=r"built before monitoring .*rebuild it with `mlp repro`"):
        loaded.monitor_code()
    result = mlp(project, "predict", "data/split/test.parquet", str(tmp_path / "y.csv"), "--model", str(models),
                 check=True)
    assert (tmp_path / "y.csv").is_file(), result.err


def test_a_profile_that_is_not_json_is_refused_in_one_line(project: Path, tmp_path: Path) -> None:
    models = tmp_path / "broken"
    shutil.copytree(project / "models", models)
    _rewrite(models, replace={"profile.json": b'{"format_version": 1, "columns": '})
    with pytest.raises(DataError, match="profile.json is not valid JSON"):
        load(models, cwd=tmp_path)
    assert_one_line_error(mlp(project, "predict", "data/split/test.parquet", str(tmp_path / "y.csv"), "--model",
                              str(models)), "profile.json is not valid JSON", "mlp repro")
    _rewrite(models, replace={"profile.json": b"[1, 2]\n"})
    with pytest.raises(DataError, match="is not a reference profile"):
        load(models, cwd=tmp_path)
    _rewrite(models, replace={"profile.json": b"{}", "data_profile.py": b"def broken(:\n"})
    with pytest.raises(DataError, match="cannot load .*data_profile.py"):
        load(models, cwd=tmp_path).monitor_code()
