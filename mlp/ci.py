"""`mlp ci init`: a CI workflow that reproduces, checks, gates and reports, for GitHub Actions or GitLab CI.

Both providers run the same commands (STEPS), so a test can run them locally in order. The files are small and
fixed: they are assembled here line by line, not rendered by a template engine.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import DISTRIBUTION, __version__, environment, git
from .environment import ENV_LOCK_FILE
from .errors import UsageError
from .files import write_text_atomic
from .project import Project

WORKFLOW_FILES = {"github": ".github/workflows/mlp.yml", "gitlab": ".gitlab-ci.yml"}
REQUIREMENTS_FILE = "requirements.txt"
REACHABLE_SCHEMES = ("https", "http", "ssh", "git")  # where a CI runner can fetch from; file:// is this machine's
VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
EXAMPLE = f"{DISTRIBUTION}=={__version__} or {DISTRIBUTION} @ git+https://HOST/REPO.git@COMMIT"


def _baseline(branch: str) -> str:
    return shlex.quote(f"origin/{branch}")


def steps(branch: str = git.DEFAULT_BRANCH) -> list[tuple[str, str]]:
    """What CI runs, in order, on every push and pull request: (step name, shell command)."""
    return [
        # the lock's pins as pip constraints: CI runs with the versions the pipeline was locked with
        ("Install", f"python -m pip install -r {REQUIREMENTS_FILE} -c {ENV_LOCK_FILE}"),
        ("Pull data", 'if [ -n "$(dvc remote list)" ]; then dvc pull --allow-missing; else echo "No DVC remote '
                      'is set: the data must be in the repository (see mlp init --remote)."; fi'),
        ("Reproduce", "mlp repro"),
        ("Check that dvc.lock and the reports are what the code produces", "mlp check"),
        (f"Gate: thresholds and no regression against {branch}", f"mlp gate --baseline {_baseline(branch)}"),
    ]


def report(branch: str = git.DEFAULT_BRANCH) -> str:
    """After the steps, pass or fail: the metrics against the branch, as markdown (the job summary on GitHub)."""
    return f"mlp compare {_baseline(branch)} --format md"


GITHUB_HEAD = """\
# Made by `mlp ci init`: on every push and pull request, reproduce the pipeline, check that the committed
# dvc.lock and reports are what the code produces, gate the metrics against {branch}, and post the comparison.
# A DVC remote in the cloud needs credentials: add them as repository secrets and pass them in `env:`.
name: mlp
on:
  push:
    branches: [{quoted}]
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
          fetch-depth: 0  # the whole history: the gate and the comparison read origin/{branch}
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
"""

GITHUB_REPORT = """\
      - name: {name}
        if: always()
        run: |
          echo {title} >> "$GITHUB_STEP_SUMMARY"
          {report} >> "$GITHUB_STEP_SUMMARY"
"""

GITLAB_HEAD = """\
# Made by `mlp ci init`: on every push and merge request, reproduce the pipeline, check that the committed
# dvc.lock and reports are what the code produces, gate the metrics against {branch}, and keep the comparison.
# A DVC remote in the cloud needs credentials: add them as CI/CD variables.
mlp:
  image: python:3.11
  variables:
    GIT_DEPTH: "0"  # the whole history: the gate and the comparison read origin/{branch}
  before_script:
    - git fetch --quiet origin {refspec}
  script:
"""

GITLAB_TAIL = """\
  after_script:
    - {report} > reports/compare.md
  artifacts:
    when: always
    expose_as: metrics against the default branch
    paths:
      - reports/compare.md
      - reports/gate.json
"""


def github_workflow(branch: str = git.DEFAULT_BRANCH) -> str:
    """The GitHub Actions workflow: it triggers on pushes to `branch` (and every pull request) and gates against it."""
    steps_text = "".join(f"      - name: {json.dumps(name)}\n        run: |\n          {command}\n"
                         for name, command in steps(branch))
    tail = GITHUB_REPORT.format(name=json.dumps(f"Post the metrics against {branch} to the job summary"),
                                title=shlex.quote(f"## Metrics against {branch}"), report=report(branch))
    return GITHUB_HEAD.format(branch=branch, quoted=json.dumps(branch)) + steps_text + tail


def gitlab_pipeline(branch: str = git.DEFAULT_BRANCH) -> str:
    """The GitLab CI job: it runs on every push and gates against `branch`, which it fetches first."""
    script = "".join(f"    # {name}\n    - |\n      {command}\n" for name, command in steps(branch))
    refspec = shlex.quote(f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
    return GITLAB_HEAD.format(branch=branch, refspec=refspec) + script + GITLAB_TAIL.format(report=report(branch))


def workflow_files(provider: str, branch: str = git.DEFAULT_BRANCH) -> dict[str, str]:
    """{relative path: text} of the CI files for `provider` (github or gitlab)."""
    if provider not in WORKFLOW_FILES:
        raise UsageError(f"--provider {provider}: unknown CI provider; choose one of: {', '.join(WORKFLOW_FILES)}.")
    text = github_workflow(branch) if provider == "github" else gitlab_pipeline(branch)
    return {WORKFLOW_FILES[provider]: text}


# --- what CI installs ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MlpRequirement:
    line: str  # the requirements.txt line that installs mlp
    unreachable: str | None = None  # where this mlp came from when a runner cannot get it from there

    @property
    def comment(self) -> str | None:
        """The line above `line` in requirements.txt when CI may not be able to install it."""
        if self.unreachable is None:
            return None
        return (f"# This mlp was installed from {self.unreachable}, which a CI runner cannot reach: point the next\n"
                f"# line at your package index, a wheel URL or git ({DISTRIBUTION} @ git+https://HOST/REPO.git@COMMIT);"
                " see `mlp init --requirement`.")

    @property
    def note(self) -> str | None:
        """What to tell the user at `mlp init` / `mlp ci init` when CI may not be able to install `line`."""
        if self.unreachable is None:
            return None
        return (f"{REQUIREMENTS_FILE} installs {self.line} in CI, but this mlp came from {self.unreachable}, which a "
                "runner cannot reach; edit that line (its comment says how) or pass --requirement SPEC.")


def requirement_for(direct_url: dict[str, Any] | None, version: str) -> MlpRequirement:
    """How a CI runner installs the mlp that is installed here, from its PEP 610 direct_url.json (None: it came from
    a package index): the same commit of a remote git repository, the same archive URL, or else the release."""
    pinned = f"{DISTRIBUTION}=={version}"
    if direct_url is None:
        return MlpRequirement(pinned)
    url = str(direct_url.get("url", ""))
    reachable = url.split(":", 1)[0].lower() in REACHABLE_SCHEMES
    vcs = direct_url.get("vcs_info")
    if isinstance(vcs, dict):
        if reachable and vcs.get("vcs") and vcs.get("commit_id"):
            subdirectory = direct_url.get("subdirectory")
            fragment = f"#subdirectory={subdirectory}" if subdirectory else ""
            return MlpRequirement(f"{DISTRIBUTION} @ {vcs['vcs']}+{url}@{vcs['commit_id']}{fragment}")
        return MlpRequirement(pinned, "a repository on this machine")
    if "archive_info" in direct_url:
        return MlpRequirement(f"{DISTRIBUTION} @ {url}" if reachable else pinned,
                              None if reachable else "a file on this machine")
    return MlpRequirement(pinned, "a folder on this machine")  # dir_info: a source tree, editable or not


def installed_requirement() -> MlpRequirement:
    """`requirement_for` this installation of mlp."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # imported from a source tree that pip never installed
        return MlpRequirement(f"{DISTRIBUTION}=={__version__}", "a folder on this machine")
    text = dist.read_text("direct_url.json")
    if text is None:
        return requirement_for(None, dist.version)
    try:
        direct_url = json.loads(text)
    except ValueError:
        direct_url = None
    # unreadable: an unknown source, which a runner may not reach either
    return requirement_for(direct_url if isinstance(direct_url, dict) else {}, dist.version)


def check_requirement(spec: str) -> MlpRequirement:
    """`--requirement SPEC` as the line of requirements.txt that installs mlp: a pip requirement naming
    mlp-pipeline (`NAME==V`, `NAME>=V`, `NAME @ URL`) or a bare URL or path of its wheel or of a VCS repository."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    text = spec.strip()
    shown = f"--requirement {text!r}"
    if not text or "\n" in text or text.startswith("-"):
        raise UsageError(f"{shown}: give one requirements.txt line that installs {DISTRIBUTION}, like {EXAMPLE}.")
    if text.startswith(VCS_PREFIXES):
        egg = re.search(r"[#&]egg=([^&]+)", text)  # the name, when the URL says it; pip reads it from the repository
        name = egg.group(1) if egg else DISTRIBUTION
    elif text.split("#", 1)[0].lower().endswith(".whl"):
        try:
            name = str(parse_wheel_filename(text.split("#", 1)[0].rsplit("/", 1)[-1])[0])
        except InvalidWheelFilename:
            raise UsageError(f"{shown}: not a wheel's file name (NAME-VERSION-...-PLATFORM.whl); give "
                             f"{EXAMPLE}.") from None
    else:
        try:
            name = Requirement(text).name
        except InvalidRequirement:
            raise UsageError(f"{shown}: not a pip requirement; give {EXAMPLE}, or the URL of its wheel.") from None
    if canonicalize_name(name) != DISTRIBUTION:
        raise UsageError(f"{shown} installs {name}, not {DISTRIBUTION} (mlp's name on the package index; the "
                         f"`{name}` there is another project); give {EXAMPLE}.")
    return MlpRequirement(text)


def mlp_requirement(spec: str | None) -> MlpRequirement:
    """The given `--requirement`, checked, or how this mlp was installed."""
    return check_requirement(spec) if spec is not None else installed_requirement()


def requirements(mlp: MlpRequirement, extra: list[str] | None = None) -> str:
    """requirements.txt for CI: this mlp (which brings DVC, pandas, scikit-learn, xgboost) and DVC plugins."""
    lines = ["# What CI installs (`pip install -r requirements.txt`): mlp brings DVC, pandas, scikit-learn, xgboost.",
             *([mlp.comment] if mlp.comment else []), mlp.line, *(extra or [])]
    return "\n".join(lines) + "\n"


def refuse_requirement_beside(root: Path, spec: str | None) -> None:
    """An explicit --requirement is never silently dropped: an existing requirements.txt is the user's."""
    if spec is not None and (root / REQUIREMENTS_FILE).exists():
        raise UsageError(f"{REQUIREMENTS_FILE} already exists in {root} and is never replaced; edit its "
                         f"{DISTRIBUTION} line instead of passing --requirement, or move it away.")


@dataclass
class CiResult:
    written: list[str]
    kept: list[str]  # files that existed and were left as they were
    notes: list[str] = field(default_factory=list)


def ci_init(project: Project, provider: str = "github", force: bool = False,
            requirement: str | None = None) -> CiResult:
    """Write the CI workflow (and requirements.txt and requirements.lock when the project has none), on the project's
    default branch (`git.default_branch`). An existing workflow is only replaced with `force`; an existing
    requirements.txt or requirements.lock is the user's and is never touched."""
    files = workflow_files(provider, git.default_branch(project.root))
    mlp = mlp_requirement(requirement)
    existing = [name for name in files if (project.root / name).exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists; pass --force to replace it, or edit it by hand.")
    refuse_requirement_beside(project.root, requirement)
    kept, notes = [], []
    if (project.root / REQUIREMENTS_FILE).exists():
        kept.append(REQUIREMENTS_FILE)
    else:
        files[REQUIREMENTS_FILE] = requirements(mlp)
        notes += [mlp.note] if mlp.note else []
    if not (project.root / ENV_LOCK_FILE).exists():  # the install step reads it
        files[ENV_LOCK_FILE] = environment.current_text(environment.engine_of(project.root))
    for name, text in files.items():
        target: Path = project.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, text)
    return CiResult(list(files), kept, notes)
