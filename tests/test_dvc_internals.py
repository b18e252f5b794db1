"""mlp runs DVC through a few of its internals (no public API plans a run or runs one stage at a time); pyproject.toml
bounds dvc's version to releases checked here. A DVC release that changes one fails this test, naming it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from mlp import dvc_adapter

ROOT = Path(__file__).resolve().parent.parent


def test_the_dvc_internals_mlp_uses_are_there() -> None:
    problems = dvc_adapter.internals_problems()
    assert not problems, (
        f"DVC {metadata.version('dvc')} changed internals that mlp/dvc_adapter.py uses: {'; '.join(problems)}. "
        "Adapt mlp/dvc_adapter.py to this DVC, or keep dvc below the version bound in pyproject.toml.")


def test_dvc_has_an_upper_version_bound_that_includes_the_installed_one() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    spec = re.search(r'"dvc(>=[\d.]+),\s*<([\d.]+)"', text)
    assert spec, "pyproject.toml must bound dvc from above (dvc>=X,<Y): mlp uses DVC internals"
    installed = tuple(int(p) for p in metadata.version("dvc").split(".")[:3])
    bound = tuple(int(p) for p in spec.group(2).split("."))
    assert installed < bound, f"dvc {installed} is not below the bound {bound}"


def test_the_check_notices_a_missing_internal(monkeypatch) -> None:
    import dvc.repo.reproduce

    monkeypatch.delattr(dvc.repo.reproduce, "plan_repro")
    problems = dvc_adapter.internals_problems()
    assert len(problems) == 1 and problems[0].startswith("dvc.repo.reproduce.plan_repro(graph, stages): AttributeError")
