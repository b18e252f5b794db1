"""The pinned environment: requirements.lock written by `mlp init` and `mlp lock`, the versions the bundle records,
and `mlp check`'s warnings when the running environment differs from either (mlp/environment.py).

The pure tests parse and compare; the integration tests run real git and DVC projects. A different xgboost or
scikit-learn is made by editing the lock or the bundle's meta.json (committed through DVC as a user's rebuilt bundle
would be): really installing an older one would download wheels of tens of megabytes. One test does really install
another version, of mlp-pipeline itself, built here from this source, into a throwaway venv.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import pytest

from conftest import dvc, git, load_stage, mlp, snapshot
from mlp.environment import (BUNDLE_META, DASK_PACKAGES, ENV_LOCK_FILE, PACKAGES, Pin, VersionDiff,
                             compare_bundle, compare_lock, key, lock_text, parse_lock, required)
from test_errors import assert_one_line_error

RUNNING = {"mlp-pipeline": Pin("mlp-pipeline", "0.1.0"), "numpy": Pin("numpy", "2.1.0"),
           "xgboost": Pin("xgboost-cpu", "3.2.0"), "scikit-learn": Pin("scikit-learn", "1.9.1")}


def installed_version(dist: str) -> str:
    return metadata.version(dist)


XGBOOST = "xgboost-cpu"  # what mlp depends on, so what the test environment has
KEEP = ("pyproject.toml", "README.md", "params.yaml", "dvc.yaml", "schema.yaml", "mlp", "stages")  # what a wheel needs


def warnings_of(result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("Warning: ")]


def set_pin(root: Path, dist: str, version: str) -> None:
    lines = (root / ENV_LOCK_FILE).read_text().splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith(f"{dist}==")]
    assert found, (dist, lines)
    lines[found[0]] = f"{dist}=={version}"
    (root / ENV_LOCK_FILE).write_text("\n".join(lines) + "\n")


# --- pure: parsing and comparing --------------------------------------------------------------------------------

def test_parse_lock_reads_pins_and_skips_comments():
    lock = parse_lock("# a comment\n\nnumpy==2.1.0\nXGBoost_CPU == 3.2.0  # the CPU build\nscikit-learn==1.9.1\n")
    assert lock.problems == []
    assert lock.pins == {"numpy": Pin("numpy", "2.1.0"), "xgboost": Pin("XGBoost_CPU", "3.2.0"),
                         "scikit-learn": Pin("scikit-learn", "1.9.1")}


@pytest.mark.parametrize("line", ["xgboost>=2", "numpy", "-r requirements.txt", "pandas @ https://x/y.whl",
                                  "numpy==2.1; python_version<'3.12'"])
def test_a_line_that_is_not_name_equals_version_is_a_problem_naming_its_line(line):
    lock = parse_lock(f"# header\nnumpy==2.1.0\n{line}\n")
    assert len(lock.problems) == 1 and lock.problems[0].startswith(f"{ENV_LOCK_FILE} line 3: ")
    assert "NAME==VERSION" in lock.problems[0] and "mlp lock" in lock.problems[0]
    assert "numpy" in lock.pins  # the good lines still count


def test_a_package_pinned_twice_is_a_problem():
    lock = parse_lock("xgboost-cpu==3.2.0\nxgboost==3.1.0\n")
    assert lock.problems == [f"{ENV_LOCK_FILE} line 2: xgboost is pinned twice; delete one of the lines."]


def test_keys_normalize_names_and_join_the_xgboost_builds():
    assert [key(n) for n in ("xgboost-cpu", "xgboost", "Scikit_Learn", "MLP.Pipeline", "lightgbm")] == [
        "xgboost", "xgboost", "scikit-learn", "mlp-pipeline", "lightgbm"]
    assert required("pandas") == list(PACKAGES) and required("dask") == [*PACKAGES, *DASK_PACKAGES]


def test_lock_text_parses_back():
    pins = [Pin("numpy", "2.1.0"), Pin("xgboost-cpu", "3.2.0")]
    text = lock_text(pins)
    assert text.startswith(f"# {ENV_LOCK_FILE}:") and "-c requirements.lock" in text and "mlp lock" in text
    assert list(parse_lock(text).pins.values()) == pins and text.endswith("xgboost-cpu==3.2.0\n")


def test_the_same_versions_are_no_difference_even_when_written_differently():
    lock = parse_lock("numpy==2.1\nxgboost-cpu==3.2.0\n")
    assert compare_lock(lock, RUNNING, ["numpy", "xgboost"]) == []


def test_a_different_xgboost_names_the_package_and_both_versions():
    (diff,) = compare_lock(parse_lock("xgboost-cpu==2.1.4\nnumpy==2.1.0\n"), RUNNING)
    assert diff == VersionDiff("xgboost-cpu", "3.2.0", "2.1.4", ENV_LOCK_FILE)
    assert diff.message.startswith("xgboost-cpu 3.2.0 is installed, but requirements.lock pins 2.1.4")
    assert "pip install xgboost-cpu==2.1.4" in diff.message and "`mlp lock`" in diff.message


def test_missing_and_unpinned_packages():
    lock = parse_lock("pyarrow==26.0.1\n")
    diffs = compare_lock(lock, RUNNING, ["numpy", "dask"])  # dask needed but not installed: nothing to pin yet
    assert diffs == [VersionDiff("pyarrow", None, "26.0.1", ENV_LOCK_FILE),
                     VersionDiff("numpy", "2.1.0", None, ENV_LOCK_FILE)]
    assert "pyarrow is not installed, but requirements.lock pins 26.0.1" in diffs[0].message
    assert "numpy 2.1.0 is installed" in diffs[1].message and "does not pin it; run `mlp lock`" in diffs[1].message


def test_the_bundle_comparison_names_what_the_model_was_trained_with():
    trained = {"python": "3.9.0", "numpy": "2.1.0", "scikit-learn": "1.5.2", "xgboost": "3.2.0", "other": "1"}
    (diff,) = compare_bundle(trained, RUNNING)  # python and unknown names are not compared
    assert diff == VersionDiff("scikit-learn", "1.9.1", "1.5.2", BUNDLE_META)
    assert diff.message == ("scikit-learn: the model in models/meta.json was trained with 1.5.2, this environment "
                            "has 1.9.1; install scikit-learn==1.5.2 to reproduce it, or retrain with `mlp repro -f` "
                            "and commit dvc.lock.")
    (gone,) = compare_bundle({"dask": "2026.8.0"}, RUNNING)
    assert gone.package == "dask" and "it is not installed here" in gone.message


def test_the_bundle_records_the_same_packages_the_lock_pins():
    assert load_stage("features").RESULT_PACKAGES == {**PACKAGES, **DASK_PACKAGES}


# --- integration: real projects ---------------------------------------------------------------------------------

def test_init_locks_the_running_versions_and_commits_the_lock(fresh_project):
    pins = parse_lock((fresh_project / ENV_LOCK_FILE).read_text())
    assert pins.problems == [] and list(pins.pins) == list(PACKAGES)  # engine: pandas: no Dask
    for k, pin in pins.pins.items():
        assert pin.version == installed_version(pin.name), pin
    assert pins.pins["xgboost"].name == XGBOOST
    assert ENV_LOCK_FILE in git(fresh_project, "ls-files").split()
    assert git(fresh_project, "status", "--porcelain", ENV_LOCK_FILE) == ""
    workflow = (fresh_project / ".github/workflows/mlp.yml").read_text()
    assert "python -m pip install -r requirements.txt -c requirements.lock" in workflow
    result = mlp(fresh_project, "lock")  # the same environment: nothing to change
    assert result.code == 0 and "requirements.lock is up to date with this environment (7 packages" in result.out
    assert git(fresh_project, "status", "--porcelain") == ""


def test_check_has_no_environment_warnings_and_the_bundle_records_the_running_versions(project):
    result = mlp(project, "check")
    assert result.code == 0, result.err
    assert warnings_of(result) == []
    versions = json.loads((project / BUNDLE_META).read_text())["versions"]
    for k, dists in PACKAGES.items():
        assert versions[k] == installed_version(dists[0] if k != "xgboost" else XGBOOST), k
    assert "dask" not in versions  # the pandas engine: Dask did not train it
    data = json.loads(mlp(project, "check", "--format", "json").out)
    assert data["status"] == "passed" and data["warnings"] == []


@pytest.mark.parametrize("dist", [XGBOOST, "scikit-learn"])
def test_check_warns_when_the_lock_pins_another_version(project, dist):
    set_pin(project, dist, "1.0.0")
    result = mlp(project, "check")
    assert result.code == 0, result.err  # a warning: the pipeline's hashes still decide
    (line,) = warnings_of(result)
    assert line == (f"Warning: {dist} {installed_version(dist)} is installed, but requirements.lock pins 1.0.0; "
                    f"install the locked version (pip install {dist}==1.0.0) or, after a deliberate upgrade, "
                    "refresh the lock with `mlp lock` and commit it.")
    json_result = mlp(project, "check", "--format", "json")
    assert json.loads(json_result.out)["warnings"] == [line.removeprefix("Warning: ")]
    refreshed = mlp(project, "lock")  # the deliberate upgrade
    assert refreshed.code == 0 and f"  {dist}: 1.0.0 -> {installed_version(dist)}" in refreshed.out
    assert "Wrote requirements.lock (7 packages pinned); commit it" in refreshed.out
    assert git(project, "status", "--porcelain") == ""  # back to what init wrote, byte for byte
    assert warnings_of(mlp(project, "check")) == []


@pytest.mark.parametrize(("name", "dist"), [("xgboost", XGBOOST), ("scikit-learn", "scikit-learn")])
def test_check_warns_when_the_bundle_was_trained_with_another_version(project, name, dist):
    # The bundle as another environment would have built it: meta.json records another version. meta.json is not
    # in the bundle's sha256 list (it holds it), so the bundle still loads; DVC records the new bundle in dvc.lock.
    meta = json.loads((project / BUNDLE_META).read_text())
    meta["versions"][name] = "1.0.0"
    (project / BUNDLE_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    dvc(project, "commit", "-f", "package")
    git(project, "commit", "-qam", "a bundle trained elsewhere")
    assert mlp(project, "predict", "data/raw/churn.csv", str(project.parent / "scores.csv")).code == 0
    result = mlp(project, "check")
    assert result.code == 0, result.err
    assert warnings_of(result) == [
        f"Warning: {dist}: the model in models/meta.json was trained with 1.0.0, this environment has "
        f"{installed_version(dist)}; install {dist}==1.0.0 to reproduce it, or retrain with `mlp repro -f` and "
        "commit dvc.lock."]


def test_a_missing_lock_is_one_warning_and_mlp_lock_writes_it_again(project):
    written = (project / ENV_LOCK_FILE).read_bytes()
    (project / ENV_LOCK_FILE).unlink()
    result = mlp(project, "check")
    assert result.code == 0, result.err
    assert warnings_of(result) == ["Warning: requirements.lock is missing, so the versions this pipeline runs with "
                                   "are not pinned; write it with `mlp lock` and commit it."]
    result = mlp(project, "lock")
    assert result.code == 0 and f"  {XGBOOST}: (not pinned) -> {installed_version(XGBOOST)}" in result.out
    assert (project / ENV_LOCK_FILE).read_bytes() == written


def test_a_malformed_lock_is_a_warning_for_check_and_refused_by_mlp_lock(project):
    with (project / ENV_LOCK_FILE).open("a") as f:
        f.write("lightgbm>=4\n")
    result = mlp(project, "check")
    assert result.code == 0, result.err
    assert warnings_of(result) == ["Warning: requirements.lock line 13: 'lightgbm>=4' is not NAME==VERSION; fix that "
                                   "line, or delete it and run `mlp lock`."]
    before = snapshot(project)
    assert_one_line_error(mlp(project, "lock"), "requirements.lock line 13: 'lightgbm>=4' is not NAME==VERSION")
    assert snapshot(project) == before


def test_mlp_lock_keeps_and_refreshes_a_users_own_pin(fresh_project):
    with (fresh_project / ENV_LOCK_FILE).open("a") as f:
        f.write("tabulate==0.0.1\n")
    result = mlp(fresh_project, "check")  # the dvc.lock is stale before a first run; the warning is there anyway
    assert f"Warning: tabulate {installed_version('tabulate')} is installed, but requirements.lock pins 0.0.1" in (
        result.err)
    result = mlp(fresh_project, "lock")
    assert result.code == 0 and f"  tabulate: 0.0.1 -> {installed_version('tabulate')}" in result.out
    assert (fresh_project / ENV_LOCK_FILE).read_text().endswith(f"\ntabulate=={installed_version('tabulate')}\n")
    assert "Wrote requirements.lock (8 packages pinned)" in result.out


def test_the_dask_engine_locks_dask_and_check_asks_for_it(tmp_path):
    mlp(tmp_path, "init", "big", "--engine", "dask", "--rows", "200", check=True)
    root = tmp_path / "big"
    pins = parse_lock((root / ENV_LOCK_FILE).read_text()).pins
    assert list(pins) == required("dask") and pins["distributed"].version == installed_version("distributed")
    lines = [line for line in (root / ENV_LOCK_FILE).read_text().splitlines() if not line.startswith("dask==")]
    (root / ENV_LOCK_FILE).write_text("\n".join(lines) + "\n")
    assert [w for w in warnings_of(mlp(root, "check")) if "dask" in w] == [
        f"Warning: dask {installed_version('dask')} is installed and this project uses it, but requirements.lock "
        "does not pin it; run `mlp lock` and commit requirements.lock."]


def test_ci_init_writes_a_missing_lock_and_keeps_an_existing_one(fresh_project):
    (fresh_project / ENV_LOCK_FILE).unlink()
    (fresh_project / ".github/workflows/mlp.yml").unlink()
    result = mlp(fresh_project, "ci", "init")
    assert result.code == 0, result.err
    assert git(fresh_project, "status", "--porcelain") == ""  # the same files init wrote, byte for byte
    (fresh_project / ENV_LOCK_FILE).write_text("numpy==1.0.0\n")
    assert mlp(fresh_project, "ci", "init", "--force").code == 0
    assert (fresh_project / ENV_LOCK_FILE).read_text() == "numpy==1.0.0\n"  # the user's, never touched


def test_a_really_installed_other_version_is_named(project, tmp_path):
    """Not an edited lock: another mlp-pipeline release really installed in a throwaway venv (built here from this
    source with another version number, so nothing is downloaded), which sees the test environment's other packages
    through a .pth written after the install (so pip never touches the test environment)."""
    import re
    import shutil
    import sysconfig
    import venv

    from conftest import REPO, run

    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if n not in KEEP and Path(d) == REPO]
                    + [n for n in names if n == "__pycache__"])
    pyproject = src / "pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', 'version = "0.0.1"', pyproject.read_text(), count=1))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)], REPO,
        check=True)
    (wheel,) = (tmp_path / "dist").glob("mlp_pipeline-0.0.1-*.whl")
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    run([sys.executable, "-m", "pip", "--python", str(env / "bin/python"), "install", "-q", "--no-deps",
         "--no-index", str(wheel)], tmp_path, check=True)
    (purelib,) = (env / "lib").glob("python*/site-packages")
    (purelib / "test_environment_base.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    result = run([str(env / "bin/mlp"), "check"], project)
    assert result.code == 0, result.err
    assert warnings_of(result) == [
        "Warning: mlp-pipeline 0.0.1 is installed, but requirements.lock pins 0.1.0; install the locked version "
        "(pip install mlp-pipeline==0.1.0) or, after a deliberate upgrade, refresh the lock with `mlp lock` and "
        "commit it.",
        "Warning: mlp-pipeline: the model in models/meta.json was trained with 0.1.0, this environment has 0.0.1; "
        "install mlp-pipeline==0.1.0 to reproduce it, or retrain with `mlp repro -f` and commit dvc.lock."]
    assert warnings_of(mlp(project, "check")) == []  # the test environment itself is as locked
