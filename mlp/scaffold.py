"""`mlp init`: a new project with git, DVC, the reference stages, params, schema, data and a first commit.

The skeleton is small and fixed, so it is copied from the reference files (this repository's own `stages/`,
`params.yaml`, `dvc.yaml`, `schema.yaml`; the wheel carries them under `mlp/templates/`), not rendered.
With `--data`, the user's file is copied into data/raw/, the project's own ingest stage reads it, and
schema.yaml (and the task-dependent plots of dvc.yaml) are written from what it read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import DISTRIBUTION, dvc_adapter, environment, git
from .datafile import DataSource
from .errors import DataError, MlpError, UsageError
from .ci import (REQUIREMENTS_FILE, MlpRequirement, mlp_requirement, refuse_requirement_beside, requirements,
                 workflow_files)
from .files import write_text_atomic
from .params import with_values
from .project import PARAMS_FILE, PIPELINE_FILE, SCHEMA_FILE, Project
from .remote import RemoteUrl, remote_url

# Samples with a bundled data contract; other data arrives through schema inference (`--data`).
INIT_SAMPLES = {"churn": "data/raw/churn.csv"}
DEFAULT_ROWS = 10_000

GITIGNORE = """\
# mlp: DVC keeps data and models; git keeps code, params, dvc.lock and small reports.
__pycache__/
*.pyc
.venv/
*.tmp
# credentials for ingest's sources (database passwords, storage keys; stages/credentials.py reads it): never in git
.env
# written by `mlp gate` and CI on every run
reports/gate.json
reports/compare.md
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
Commit `dvc.lock` and `reports/` after a run so that any commit can be reproduced and compared:

    {compare:<33} # metrics and params against {branch}
    mlp check                         # dvc.lock matches the code, data and params, and is committed
    mlp gate                          # the rules of params.yaml's gate: section (thresholds, no regression)
    dvc push                          # share the data and models through the DVC remote; others `dvc pull`

CI (`.github/workflows/mlp.yml` or `.gitlab-ci.yml`, from `mlp ci init`) runs the same on every push.
"""


# dvc.yaml's `plots:` for a regression project (the template's are a classification's).
REGRESSION_PLOTS = """\
plots:
  - reports/plots/residuals.csv:
      template: scatter
      x: actual
      y: predicted
  - reports/plots/importance.csv:
      template: bar_horizontal
      x: importance
      y: feature
"""
INGESTED = "data/interim/ingested.parquet"

# params.yaml's gate rules for a regression project (the template's are a classification's, on roc_auc).
REGRESSION_GATE = """\
    r2:
      min: 0.0                    # value thresholds: min and/or max (r2 above 0: better than predicting the mean)
    rmse:
      max_rel_drop: 0.02          # rmse may rise at most 2% against the baseline (worse in the metric's direction)
      # max_drop: 1.0             # the same as an absolute amount
"""


@dataclass
class InitResult:
    root: Path
    commit: str
    data: str
    rows: int
    skipped: list[str] = field(default_factory=list)  # files that existed and were left alone (--force)
    notes: list[str] = field(default_factory=list)
    schema: Any = None  # the inferred mlp.schema.Schema, with --data
    remote: str | None = None  # the DVC remote's URL, with --remote


# engine: dask: what mlp-pipeline[dask] adds, for CI's requirements.txt (whose mlp line may be a plain URL or path).
DASK_REQUIREMENTS = ["dask[dataframe]>=2024.8", "distributed>=2024.8"]
DB_REQUIREMENTS = ["adbc-driver-postgresql>=1.0", "sqlalchemy>=2.0"]  # mlp-pipeline[db]: ingest.path a database URL


def template_root() -> Path:
    """Where the reference files are: inside the installed package, or the source checkout in development."""
    here = Path(__file__).resolve().parent
    for root in (here / "templates", here.parent):
        if (root / "stages").is_dir() and (root / PARAMS_FILE).is_file():
            return root
    raise MlpError(f"the stage templates are missing from this installation of mlp; reinstall it with "
                   f"`pip install {DISTRIBUTION}`.")


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
    sample: str | None = None,
    rows: int | None = None,
    force: bool = False,
    data: Path | str | None = None,
    target: str | None = None,
    task: str | None = None,
    table: str | None = None,
    query: str | None = None,
    remote: str | None = None,
    ci: str = "github",
    requirement: str | None = None,
    engine: str = "pandas",
) -> InitResult:
    """Scaffold a project at `path` and commit it: on the bundled sample, or on the user's `data` with the
    data contract inferred from it. On any failure, everything created is removed again."""
    from .samples import SAMPLES, write_sample

    if data is None and sample in SAMPLES and sample not in INIT_SAMPLES:
        # A sample without a bundled contract goes the way of the user's own data: its contract is inferred.
        import tempfile

        _check_data_options(sample, None, None, table, query)
        mlp_requirement(requirement)  # a bad --requirement is refused before the sample is generated

        with tempfile.TemporaryDirectory(prefix="mlp-sample-") as tmp:
            info = write_sample(sample, Path(tmp) / f"{sample}.csv", rows=rows)
            return init(path, force=force, data=Path(tmp) / f"{sample}.csv", target=target or info.target, task=task,
                        remote=remote, ci=ci, requirement=requirement, engine=engine)
    source = _check_data_options(sample, data, target, table, query)
    if ci != "none":
        workflow_files(ci)  # an unknown provider is refused before anything is created
    mlp_line = mlp_requirement(requirement)
    storage = remote_url(remote, path.resolve()) if remote else None
    sample = sample or "churn"
    if source is None and sample not in INIT_SAMPLES:
        raise UsageError(f"--sample {sample}: unknown sample; samples are: {', '.join(SAMPLES)}.")
    rows = DEFAULT_ROWS if rows is None else rows
    if rows < 1:
        raise UsageError(f"--rows {rows}: give a positive number of rows.")
    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file; give a folder for the new project.")
    existing = _existing_files(path)
    if source and source.path.parent == path and source.path.name in existing:
        existing.remove(source.path.name)  # `mlp init --data x.csv` in the folder that holds x.csv
    if existing and not force:
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise UsageError(
            f"{path} already has files ({shown}); pass --force to add the project beside them "
            "(existing files are never overwritten), or choose an empty folder."
        )
    if (path / ".dvc").exists():
        raise UsageError(f"{path} is already a DVC project; run `mlp repro` there, or choose another folder.")
    refuse_requirement_beside(path, requirement)
    raw = (source.url or f"data/raw/{source.path.name}") if source else INIT_SAMPLES[sample]
    if (path / raw).exists():
        raise UsageError(f"{raw} already exists in {path}; move it away or choose an empty folder.")
    if source and any((path / name).exists() for name in (PARAMS_FILE, SCHEMA_FILE, PIPELINE_FILE)):
        raise UsageError(f"{path} already has a params.yaml, schema.yaml or dvc.yaml; mlp init --data writes its "
                         "own from your data: move them away or choose an empty folder.")
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
        result = _scaffold(path, sample, rows, created, new_repo=top != path, raw=raw, source=source,
                           target=target, task=task, storage=storage, ci=ci, mlp_line=mlp_line, engine=engine)
    except BaseException:
        _undo(created)
        raise
    return result


def _check_data_options(sample: str | None, data: Path | str | None, target: str | None, table: str | None,
                        query: str | None) -> DataSource | None:
    """The user's data file as ingest will read it (None for a sample); option mistakes as UsageError."""
    from .datafile import inspect
    from . import database_source, object_source

    if data is None:
        if sample and (table or query):
            flag = "--table" if table else "--query"
            raise UsageError(f"{flag} reads a SQLite file given with --data; --sample {sample} is a bundled table: "
                             f"drop {flag}, or pass --data FILE instead of --sample.")
        given = [name for name, value in (("--target", target), ("--table", table), ("--query", query)) if value]
        if given:
            raise UsageError(f"{', '.join(given)} need --data FILE: the data file to build the pipeline on.")
        return None
    if sample:
        raise UsageError("--sample and --data exclude each other; pass one of them.")
    if not target:
        shown = database_source.redact(str(data))
        raise UsageError(f"--data {shown} needs --target COL: the column the model should predict.")
    if database_source.is_database_url(str(data)):
        return database_source.inspect_url(str(data), table, query)
    if object_source.is_object_url(data):  # s3://, gs://, az://: read where it is (object_source.py)
        return object_source.inspect_url(str(data), table, query)
    return inspect(Path(data).expanduser().resolve(), table, query)


def _mkdirs(folder: Path, created: list[Path]) -> None:
    """Create `folder` and its missing parents, remembering only the ones that did not exist."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for item in reversed(missing):
        item.mkdir()
        created.append(item)


def _scaffold(path: Path, sample: str, rows: int, created: list[Path], new_repo: bool, raw: str,
              source: DataSource | None, target: str | None, task: str | None, storage: RemoteUrl | None,
              ci: str, mlp_line: MlpRequirement, engine: str = "pandas") -> InitResult:
    from .database_source import is_database_url

    notes: list[str] = []
    if new_repo:
        created.append(path / ".git")
        branch = git.init(path)
    else:
        branch = git.default_branch(path)

    contents = {name: source.read_text(encoding="utf-8") for name, source in _template_files(template_root()).items()}
    values: dict[str, Any] = {"gate.baseline": branch, "engine": engine}  # the gate compares with the project's branch
    if source:
        values.update({f"ingest.{key}": value for key, value in {**source.ingest, "path": raw}.items()})
    contents[PARAMS_FILE] = with_values(contents[PARAMS_FILE], values)
    if source:
        # schema.yaml and the plots of dvc.yaml come from the data: written after ingest has read it.
        later = {name: contents.pop(name) for name in (SCHEMA_FILE, PIPELINE_FILE)}
    readme = README.format(name=path.name, branch=branch, compare=f"mlp compare {branch} --params")
    generated = {".gitignore": GITIGNORE, "README.md": readme,
                 REQUIREMENTS_FILE: requirements(mlp_line, ([storage.plugin] if storage and storage.plugin else [])
                                                 + (DASK_REQUIREMENTS if engine == "dask" else [])
                                                 + (DB_REQUIREMENTS if source and source.url and is_database_url(source.url) else [])),
                 environment.ENV_LOCK_FILE: environment.current_text(engine)}
    if ci != "none":
        generated.update(workflow_files(ci, branch))
    if source and source.path.parent == path:
        # The original stays where it was; the pipeline reads its DVC-tracked copy. Keep the original out of git.
        generated[".gitignore"] += f"/{source.path.name}\n"
        notes.append(f"your {source.path.name} stays where it is (ignored by git); the pipeline reads its copy {raw}")
    files, skipped = _write_new(path, {**contents, **generated}, created)
    if mlp_line.note and REQUIREMENTS_FILE in files:
        notes.append(mlp_line.note)
    if skipped:
        notes.append(f"kept your existing {', '.join(skipped)}; compare them with `mlp init` in an empty folder")

    schema = None
    if source and source.url:  # a database: read afresh by every repro, its password (if any) in .env
        from .database_source import write_secret

        write_secret(path, source, created)
    else:
        _mkdirs((path / raw).parent, created)
        created.append(path / raw)
    if source:
        from .schema import to_yaml

        if not source.url:
            shutil.copyfile(source.path, path / raw)  # a copy: the user's file is never touched
        schema, rows = _infer_contract(path, source, raw, target, task, created, notes)
        later[PIPELINE_FILE] = _pipeline_for(later[PIPELINE_FILE], schema.task)
        if source.url:
            later[PIPELINE_FILE] = _ingest_from_url(later[PIPELINE_FILE])
        if schema.task == "regression":  # params.yaml was written for ingest to read: its gate rules follow the task
            write_text_atomic(path / PARAMS_FILE, _regression_gate(contents[PARAMS_FILE]))
        later[SCHEMA_FILE] = to_yaml(schema, source.path.name)
        files += _write_new(path, later, created)[0]
        notes += source.notes
        label = f"mlp init: pipeline on {source.path.name}, target {target}"
    else:
        from .samples import write_sample

        write_sample(sample, path / raw, rows=rows)
        label = f"mlp init: {sample} sample pipeline"
    # DVC comes last: importing it costs memory that the ingest process above should not have to share.
    if not (path / ".dvcignore").exists():
        created.append(path / ".dvcignore")
    created.append(path / ".dvc")
    dvc_adapter.init(path)
    files += [".dvc", ".dvcignore"]
    if not (source and source.url):  # an object stays in its bucket: ingest reads it on every repro
        for pointer in (path / f"{raw}.dvc", (path / raw).parent / ".gitignore"):
            if not pointer.exists():
                created.append(pointer)
        dvc_adapter.add(Project(path), raw)
        files += [f"{raw}.dvc", str(Path(raw).parent / ".gitignore")]
    if storage:
        dvc_adapter.add_remote(Project(path), storage.url)
        notes += storage.notes

    if not git.has_identity(path):
        notes.append("git has no user.name/user.email here; the first commit is authored as 'mlp' — set yours with git config")
    sha = git.commit(path, files, label)
    return InitResult(path, sha, raw, rows, skipped, notes, schema, storage.url if storage else None)


def _write_new(path: Path, contents: dict[str, str], created: list[Path]) -> tuple[list[str], list[str]]:
    """Write each file that does not exist yet; return (written, skipped) names."""
    written, skipped = [], []
    for name, text in contents.items():
        target = path / name
        if target.exists():
            skipped.append(name)
            continue
        _mkdirs(target.parent, created)
        created.append(target)
        write_text_atomic(target, text)
        written.append(name)
    return written, skipped


def _infer_contract(path: Path, source: DataSource, raw: str, target: str, task: str | None,
                    created: list[Path], notes: list[str]) -> tuple[Any, int]:
    """Run the project's own ingest stage on the copied data and infer the schema from what it read.

    The ingest output is removed afterwards: the first `mlp repro` makes it again, tracked by DVC.
    """
    import pyarrow.parquet as pq

    from .schema import infer

    _mkdirs(path / Path(INGESTED).parent, created)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "stages/ingest.py"], cwd=path, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"the ingest stage exited with code {proc.returncode}"
        raise DataError(message.removeprefix("ingest: ").replace(raw, source.url or str(source.path)))
    table = pq.read_table(path / INGESTED)  # a file, or the Dask engine's folder of parts
    notes += _ingest_notes(table.schema.metadata or {})
    if table.num_rows == 0:
        raise DataError(f"{source.path} has a header but no data rows; pass a file with data rows under its header.")
    schema = infer(table, target, task)
    rows = table.num_rows
    del table
    shutil.rmtree(path / Path(INGESTED).parent)
    return schema, rows


def _ingest_notes(metadata: dict[bytes, bytes]) -> list[str]:
    """What ingest fixed while reading (its metadata), for the user to see at init."""
    import json

    info = json.loads(metadata.get(b"mlp.ingest", b"{}"))
    notes = []
    renamed = info.get("renamed_columns") or {}
    if renamed:
        shown = ", ".join(f"{old!r} -> {new!r}" for old, new in list(renamed.items())[:4])
        notes.append(f"cleaned {len(renamed)} header names ({shown}{' ...' if len(renamed) > 4 else ''})")
    skipped = info.get("skipped_lines") or {}
    if skipped.get("count"):
        first = (skipped.get("examples") or [{}])[0]
        rows = "a row" if skipped["count"] == 1 else f"{skipped['count']} rows"
        notes.append(f"skipped {rows} with the wrong number of fields (first: line "
                     f"{first.get('line', '?')}: {first.get('text', '')!r}); they are listed in reports/validation.json "
                     "after `mlp repro`")
    return notes


def _pipeline_for(text: str, task: str) -> str:
    """dvc.yaml for the task: a regression project plots residuals instead of a confusion matrix and ROC."""
    if task != "regression":
        return text
    return text[: text.index("\nplots:\n") + 1] + REGRESSION_PLOTS


def _ingest_from_url(pipeline_text: str) -> str:
    """dvc.yaml for data at a URL (a database, a bucket): ingest runs on every repro (always_changed: the source
    can change under us, and DVC cannot hash it) and has no data/raw dependency; it writes the same bytes for the
    same rows, so the stages after it rerun only when the data changed."""
    import re

    start = pipeline_text.index("\n  ingest:\n") + 1
    following = re.compile(r"^  \S", re.MULTILINE).search(pipeline_text, start + 1)  # the next stage
    end = following.start() if following else len(pipeline_text)
    block = "".join(line for line in pipeline_text[start:end].splitlines(keepends=True)
                    if line.strip() not in ("- data/raw", "- data/raw/"))
    if "always_changed:" not in block:
        block = block.replace("\n    cmd:", "\n    always_changed: true\n    cmd:", 1)
    return pipeline_text[:start] + block + pipeline_text[end:]


def _regression_gate(text: str) -> str:
    """params.yaml for a regression project: it gates on r2 and rmse instead of roc_auc."""
    start = text.index("    roc_auc:\n", text.index("\ngate:\n"))
    end = text.find("\n\n", start)
    return text[:start] + REGRESSION_GATE + (text[end + 1:] if end != -1 else "")


def _undo(created: list[Path]) -> None:
    for item in reversed(created):
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        elif item.exists() or item.is_symlink():
            item.unlink(missing_ok=True)
