"""`mlp ci init`: a CI workflow that reproduces, checks, gates and reports, for GitHub Actions or GitLab CI.

Both providers run the same commands (STEPS), so a test can run them locally in order. The files are small and
fixed: they are assembled here line by line, not rendered by a template engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import UsageError
from .files import write_text_atomic
from .project import Project

WORKFLOW_FILES = {"github": ".github/workflows/mlp.yml", "gitlab": ".gitlab-ci.yml"}
REQUIREMENTS_FILE = "requirements.txt"
BASELINE = "origin/main"

# What CI runs, in order, on every push and pull request: (step name, shell command).
STEPS: list[tuple[str, str]] = [
    ("Install", f"python -m pip install -r {REQUIREMENTS_FILE}"),
    ("Pull data", 'if [ -n "$(dvc remote list)" ]; then dvc pull --allow-missing; '
                  'else echo "No DVC remote is set: the data must be in the repository (see mlp init --remote)."; fi'),
    ("Reproduce", "mlp repro"),
    ("Check that dvc.lock and the reports are what the code produces", "mlp check"),
    ("Gate: thresholds and no regression against main", f"mlp gate --baseline {BASELINE}"),
]
# After the steps, pass or fail: the metrics against main, as markdown (the job summary on GitHub).
REPORT = f"mlp compare {BASELINE} --format md"

GITHUB_HEAD = """\
# Made by `mlp ci init`: on every push and pull request, reproduce the pipeline, check that the committed
# dvc.lock and reports are what the code produces, gate the metrics against main, and post the comparison.
# A DVC remote in the cloud needs credentials: add them as repository secrets and pass them in `env:`.
name: mlp
on:
  push:
    branches: [main]
  pull_request:
jobs:
  pipeline:
    runs-on: ubuntu-latest
    defaults:
      run:
        shell: bash
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # the whole history: the gate and the comparison read origin/main
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
"""

GITHUB_REPORT = f"""\
      - name: Post the metrics against main to the job summary
        if: always()
        run: |
          echo "## Metrics against main" >> "$GITHUB_STEP_SUMMARY"
          {REPORT} >> "$GITHUB_STEP_SUMMARY"
"""

GITLAB_HEAD = """\
# Made by `mlp ci init`: on every push and merge request, reproduce the pipeline, check that the committed
# dvc.lock and reports are what the code produces, gate the metrics against main, and keep the comparison.
# A DVC remote in the cloud needs credentials: add them as CI/CD variables.
mlp:
  image: python:3.11
  variables:
    GIT_DEPTH: "0"  # the whole history: the gate and the comparison read origin/main
  before_script:
    - git fetch --quiet origin +refs/heads/main:refs/remotes/origin/main
  script:
"""

GITLAB_TAIL = f"""\
  after_script:
    - {REPORT} > reports/compare.md
  artifacts:
    when: always
    expose_as: metrics against main
    paths:
      - reports/compare.md
      - reports/gate.json
"""


def github_workflow() -> str:
    steps = "".join(f"      - name: {json.dumps(name)}\n        run: |\n          {command}\n" for name, command in STEPS)
    return GITHUB_HEAD + steps + GITHUB_REPORT


def gitlab_pipeline() -> str:
    script = "".join(f"    # {name}\n    - |\n      {command}\n" for name, command in STEPS)
    return GITLAB_HEAD + script + GITLAB_TAIL


def requirements(extra: list[str] | None = None) -> str:
    """requirements.txt for CI: this mlp (which brings DVC, pandas, scikit-learn, xgboost) and DVC plugins."""
    lines = ["# What CI installs (`pip install -r requirements.txt`): mlp brings DVC, pandas, scikit-learn, xgboost.",
             f"mlp=={__version__}", *(extra or [])]
    return "\n".join(lines) + "\n"


def workflow_files(provider: str) -> dict[str, str]:
    """{relative path: text} of the CI files for `provider` (github or gitlab)."""
    if provider not in WORKFLOW_FILES:
        raise UsageError(f"--provider {provider}: unknown CI provider; choose one of: {', '.join(WORKFLOW_FILES)}.")
    text = github_workflow() if provider == "github" else gitlab_pipeline()
    return {WORKFLOW_FILES[provider]: text}


@dataclass
class CiResult:
    written: list[str]
    kept: list[str]  # files that existed and were left as they were


def ci_init(project: Project, provider: str = "github", force: bool = False) -> CiResult:
    """Write the CI workflow (and requirements.txt when the project has none). An existing workflow is only
    replaced with `force`; an existing requirements.txt is the user's and is never touched."""
    files = workflow_files(provider)
    existing = [name for name in files if (project.root / name).exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists; pass --force to replace it, or edit it by hand.")
    kept = []
    if (project.root / REQUIREMENTS_FILE).exists():
        kept.append(REQUIREMENTS_FILE)
    else:
        files[REQUIREMENTS_FILE] = requirements()
    for name, text in files.items():
        target: Path = project.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, text)
    return CiResult(list(files), kept)
