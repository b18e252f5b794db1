"""The bundle as predict and serve load it (mlp/bundle.py): its version is the md5 dvc.lock records for models/,
and inside a project the commands say the commit and whether dvc.lock records the bundle they use."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from conftest import git, mlp
from mlp.bundle import content_md5, lineage_note, load
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
