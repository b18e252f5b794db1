"""Stock DVC and mlp write the same dvc.lock: teammates who mix `mlp repro` and `dvc repro` get no diff noise."""

from __future__ import annotations

from pathlib import Path

from conftest import dvc, mlp


def test_mlp_repro_with_params_and_dvc_repro_write_the_same_lock(project: Path) -> None:
    lock = project / "dvc.lock"
    assert "query: null" in (project / "params.yaml").read_text()  # the value DVC used to rewrite

    mlp(project, "repro", "-S", "train.max_depth=4", check=True)  # edits params.yaml in the process that locks
    by_mlp = lock.read_bytes()
    assert b"query:\n" in by_mlp and b"query: null" not in by_mlp  # as stock DVC writes an empty value
    dvc(project, "repro", "-f")
    assert lock.read_bytes() == by_mlp

    # and the reverse: stock DVC first, then mlp with an override, forced so that it rewrites every entry
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("max_depth: 4 ", "max_depth: 5 "))
    dvc(project, "repro")
    by_dvc = lock.read_bytes()
    mlp(project, "repro", "-f", "-S", "train.max_depth=5", "-S", "split.seed=42", check=True)
    assert lock.read_bytes() == by_dvc
