"""`mlp init`: a new project with git, DVC, the reference stages, params, schema, data and a first commit.

The skeleton is small and fixed, so it is copied from the reference files (this repository's own `stages/`,
`params.yaml`, `dvc.yaml`, `schema.yaml`; the wheel carries them under `mlp/templates/`), not rendered.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import dvc_adapter, git
from .errors import MlpError, UsageError
from .params import write_text_atomic
from .project import PARAMS_FILE, PIPELINE_FILE, SCHEMA_FILE, Project

# Samples with a bundled data contract; other data arrives through schema inference (`--data`).
INIT_SAMPLES = {"churn": "data/raw/churn.csv"}
DEFAULT_ROWS = 10_000

GITIGNORE = """\
# mlp: DVC keeps data and models; git keeps code, params, dvc.lock and small reports.
__pycache__/
*.pyc
.venv/
*.tmp
"""

README = """\
# {name}

A reproducible ML pipeline made with `mlp init`: every step is a DVC stage in `dvc.yaml`, every knob is in
`params.yaml`, and the data contract is `schema.yaml`. The code of each step is in `stages/`: yours to edit.

    mlp repro                         # run what changed, and say why
    mlp repro -S train.max_depth=4    # change a parameter and rerun what depends on it
    mlp status                        # what is out of date
    mlp dag                           # the stages and how they connect
    dvc repro                         # the same pipeline with stock DVC

Metrics land in `reports/metrics.json` (tracked by git); plots in `reports/plots/` (`dvc plots show`).
Commit `dvc.lock` and `reports/` after a run so that any commit can be reproduced and compared.
"""


@dataclass
class InitResult:
    root: Path
    commit: str
    data: str
    rows: int
    skipped: list[str] = field(default_factory=list)  # files that existed and were left alone (--force)
    notes: list[str] = field(default_factory=list)


def template_root() -> Path:
    """Where the reference files are: inside the installed package, or the source checkout in development."""
    here = Path(__file__).resolve().parent
    for root in (here / "templates", here.parent):
        if (root / "stages").is_dir() and (root / PARAMS_FILE).is_file():
            return root
    raise MlpError("the stage templates are missing from this installation of mlp; reinstall it with `pip install mlp`.")


def _template_files(source: Path) -> dict[str, Path]:
    files = {name: source / name for name in (PARAMS_FILE, PIPELINE_FILE, SCHEMA_FILE)}
    files.update({f"stages/{p.name}": p for p in sorted((source / "stages").glob("*.py"))})
    return files


def _existing_files(path: Path) -> list[str]:
    if not path.exists():
        return []
    return sorted(p.name for p in path.iterdir() if p.name not in (".git",))


def init(
    path: Path,
    sample: str = "churn",
    rows: int = DEFAULT_ROWS,
    force: bool = False,
) -> InitResult:
    """Scaffold a project at `path` and commit it. On any failure, everything created is removed again."""
    if sample not in INIT_SAMPLES:
        raise UsageError(
            f"--sample {sample}: mlp init has a ready data contract only for {', '.join(INIT_SAMPLES)}; "
            f"for other data write it with `mlp sample {sample} -o FILE` and use --data FILE --target COL."
        )
    if rows < 1:
        raise UsageError(f"--rows {rows}: give a positive number of rows.")
    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file; give a folder for the new project.")
    existing = _existing_files(path)
    if existing and not force:
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise UsageError(
            f"{path} already has files ({shown}); pass --force to add the project beside them "
            "(existing files are never overwritten), or choose an empty folder."
        )
    if (path / ".dvc").exists():
        raise UsageError(f"{path} is already a DVC project; run `mlp repro` there, or choose another folder.")
    if (path / INIT_SAMPLES[sample]).exists():
        raise UsageError(f"{INIT_SAMPLES[sample]} already exists in {path}; move it away or choose an empty folder.")
    nearest = next(p for p in (path, *path.parents) if p.exists())
    top = git.toplevel(nearest)
    # A folder the enclosing repository ignores (like a scratch or demo folder) gets a repository of its own.
    if top is not None and top != path and not git.is_ignored(top, path):
        raise UsageError(
            f"{path} is inside the git repository {top}; create the project at that repository's root, "
            "in a folder it ignores, or outside it (a project in a tracked subfolder is not supported yet)."
        )

    created: list[Path] = []  # undone in reverse order if anything fails
    try:
        _mkdirs(path, created)
        result = _scaffold(path, sample, rows, created, new_repo=top != path)
    except BaseException:
        _undo(created)
        raise
    return result


def _mkdirs(folder: Path, created: list[Path]) -> None:
    """Create `folder` and its missing parents, remembering only the ones that did not exist."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for item in reversed(missing):
        item.mkdir()
        created.append(item)


def _scaffold(path: Path, sample: str, rows: int, created: list[Path], new_repo: bool) -> InitResult:
    from .samples import write_sample

    notes: list[str] = []
    if new_repo:
        created.append(path / ".git")
        git.init(path)
    if not (path / ".dvcignore").exists():
        created.append(path / ".dvcignore")
    created.append(path / ".dvc")
    dvc_adapter.init(path)

    files: list[str] = [".dvc", ".dvcignore"]
    skipped: list[str] = []
    generated = {".gitignore": GITIGNORE, "README.md": README.format(name=path.name)}
    contents = {name: source.read_text(encoding="utf-8") for name, source in _template_files(template_root()).items()}
    for name, text in {**contents, **generated}.items():
        target = path / name
        if target.exists():
            skipped.append(name)
            continue
        _mkdirs(target.parent, created)
        created.append(target)
        write_text_atomic(target, text)
        files.append(name)
    if skipped:
        notes.append(f"kept your existing {', '.join(skipped)}; compare them with `mlp init` in an empty folder")

    data = INIT_SAMPLES[sample]
    _mkdirs((path / data).parent, created)
    created.append(path / data)
    write_sample(sample, path / data, rows=rows)
    for pointer in (path / f"{data}.dvc", (path / data).parent / ".gitignore"):
        if not pointer.exists():
            created.append(pointer)
    dvc_adapter.add(Project(path), data)
    files += [f"{data}.dvc", str(Path(data).parent / ".gitignore")]

    if not git.has_identity(path):
        notes.append("git has no user.name/user.email here; the first commit is authored as 'mlp' — set yours with git config")
    sha = git.commit(path, files, f"mlp init: {sample} sample pipeline")
    return InitResult(path, sha, data, rows, skipped, notes)


def _undo(created: list[Path]) -> None:
    for item in reversed(created):
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        elif item.exists() or item.is_symlink():
            item.unlink(missing_ok=True)
