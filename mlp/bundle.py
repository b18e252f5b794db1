"""The model bundle as `mlp predict` and `mlp serve` load it: checked, with its own code, version and lineage.

A bundle (models/, written by stages/package.py) carries the code that featurizes and checks rows
(features.py, contract.py): that code is run from the bundle, not from this package, so a bundle scores
rows exactly as the pipeline's evaluate stage did, wherever it is copied. Before any of it runs, every
file is checked against the sha256 list in meta.json: a bundle changed after training is refused and
nothing in it is executed or unpickled.

A bundle built for monitoring also holds profile.json (the reference profile, stages/data_profile.py), parsed at load
as `profile`, and the code `mlp monitor` runs on new rows (data_profile.py, metrics.py). That code is loaded only
when asked for (`monitor_code()`), so `mlp predict` and `mlp serve` pay nothing for it; a bundle built before
monitoring has none of the three and still loads and scores.

The version is the bundle's content hash, computed the way DVC hashes a folder, so it is the md5 that
dvc.lock records for `models` (shortened): the same model has the same version in or out of a project.
No DVC is imported here: a bundle copied to a server scores without DVC installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError, ProjectError, UsageError

DEFAULT_DIR = "models"
CODE_FILES = ("features.py", "contract.py")
PROFILE_FILE = "profile.json"
VERSION_CHARS = 12


@dataclass
class LoadedBundle:
    """A checked bundle, its code loaded: `bundle` is the bundle's own features.Bundle."""

    path: Path
    meta: dict[str, Any]
    bundle: Any
    features: types.ModuleType
    contract: types.ModuleType
    version: str  # the short content hash (dvc.lock's md5 for models/)
    md5: str  # the full content hash, as DVC writes it ("...dir")
    root: Path | None = None  # the project the command runs in, if any
    lineage: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None  # profile.json; None for a bundle built before monitoring
    _code: dict[str, types.ModuleType] = field(default_factory=dict, repr=False)

    @property
    def schema(self) -> dict[str, Any]:
        """The data contract the model was trained under."""
        return self.bundle.schema

    @property
    def profile_code(self) -> types.ModuleType | None:
        """The bundle's data_profile.py (loaded on first use), None for a bundle built before monitoring."""
        return self._optional_code("data_profile")

    @property
    def metrics_code(self) -> types.ModuleType | None:
        """The bundle's metrics.py (loaded on first use), None for a bundle built before monitoring."""
        return self._optional_code("metrics")

    def monitor_code(self) -> tuple[types.ModuleType, types.ModuleType]:
        """(data_profile.py, metrics.py) of the bundle, with its profile: what `mlp monitor` needs, or DataError."""
        profile, metrics = self.profile_code, self.metrics_code
        if profile is None or metrics is None or self.profile is None:
            raise DataError(f"{self.path} was built before monitoring (it has no {PROFILE_FILE}, data_profile.py and "
                            "metrics.py); rebuild it with `mlp repro`.")
        return profile, metrics

    def _optional_code(self, name: str) -> types.ModuleType | None:
        if name not in self._code:
            if f"{name}.py" not in (self.meta.get("files") or {}):
                return None
            try:
                self._code[name] = _module(self.path, name, self.version)
            except (ValueError, KeyError, OSError, SyntaxError, ImportError) as exc:
                why = f"cannot load {self.path}/{name}.py: {exc}; rebuild the bundle with `mlp repro`."
                raise DataError(why) from None
        return self._code[name]

    def metadata(self) -> dict[str, Any]:
        """What /metadata and `--format json` show: version, lineage, contract, metrics, classes."""
        meta = self.meta
        return {"model_version": self.version, "model": meta.get("model"), "task": meta.get("task"),
                "target": meta.get("target"), "classes": meta.get("classes"),
                "input_columns": meta.get("input_columns"), "metrics": meta.get("metrics"),
                "params": meta.get("params"), "versions": meta.get("versions"),
                "lineage": {"inputs": meta.get("inputs"), **self.lineage}, "contract": self.schema}


def content_md5(folder: Path) -> str:
    """The md5 DVC records for a folder output: md5 of the sorted JSON list of {md5, relpath} of its files."""
    return _dir_md5(_file_digests(folder))


def _file_digests(folder: Path) -> dict[str, tuple[str, str]]:
    """relpath -> (md5, sha256) of every file below `folder`, each file read once for both."""
    digests = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            md5, sha256 = hashlib.md5(), hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    md5.update(chunk)
                    sha256.update(chunk)
            digests[path.relative_to(folder).as_posix()] = (md5.hexdigest(), sha256.hexdigest())
    return digests


def _dir_md5(digests: dict[str, tuple[str, str]]) -> str:
    entries = sorted(({"md5": md5, "relpath": rel} for rel, (md5, _) in digests.items()), key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def find_bundle(model: str | Path | None, cwd: Path | None = None) -> tuple[Path, Path | None]:
    """(bundle folder, project root or None). Without --model: models/ of the project around `cwd`."""
    from .project import find_project

    try:
        root: Path | None = find_project(cwd).root
    except ProjectError:
        root = None
    if model is not None:
        return Path(model).resolve(), root
    if root is None:
        raise UsageError("not inside an mlp project, so there is no models/ to use; pass --model DIR "
                         "with the folder of a model bundle.")
    return root / DEFAULT_DIR, root


def _check_files(path: Path, meta: dict[str, Any], digests: dict[str, tuple[str, str]]) -> None:
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise DataError(f"{path}/meta.json lists no files: it was not written by the package stage; "
                        "run `mlp repro` to build the bundle.")
    for name, digest in files.items():
        file = path / str(name)
        if os.path.basename(str(name)) != name or str(name) not in digests:
            raise DataError(f"{file} is missing from the bundle; copy the whole folder, or run `mlp repro`.")
        if digests[name][1] != digest:
            raise DataError(f"{file} changed after training (its sha256 differs from {path.name}/meta.json); "
                            "refusing to load the bundle. Rebuild it with `mlp repro`.")
    for name in CODE_FILES:
        if name not in files:
            raise DataError(f"{path}/{name} is not in the bundle; rebuild it with `mlp repro`.")


def _module(path: Path, name: str, tag: str) -> types.ModuleType:
    """Run a code file of the bundle as a fresh module, without writing __pycache__ into the bundle (that
    would change its content hash and make DVC see models/ as modified)."""
    module = types.ModuleType(f"mlp_bundle_{tag}_{name}")
    module.__file__ = str(path / f"{name}.py")
    code = compile((path / f"{name}.py").read_text(encoding="utf-8"), module.__file__, "exec")
    exec(code, module.__dict__)  # noqa: S102 - the bundle's own code, checked against meta.json above
    return module


def load(model: str | Path | None = None, cwd: Path | None = None) -> LoadedBundle:
    """Find, check and load a bundle; inside a project, note the git commit and whether dvc.lock agrees."""
    path, root = find_bundle(model, cwd)
    where = "--model" if model is not None else "the project"
    if not path.is_dir():
        raise DataError(f"{path} is not a folder; build the bundle with `mlp repro`, or pass --model DIR "
                        f"(the bundle of {where} is missing).")
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is not a model bundle (no meta.json); run `mlp repro`, or pass --model DIR.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}/meta.json is not valid JSON ({exc}); rebuild the bundle with `mlp repro`.") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}/meta.json is not a bundle's metadata; rebuild the bundle with `mlp repro`.")
    digests = _file_digests(path)
    _check_files(path, meta, digests)
    md5 = _dir_md5(digests)
    tag = md5[:VERSION_CHARS]
    try:
        features = _module(path, "features", tag)
        contract = _module(path, "contract", tag)
        bundle = features.load_bundle(str(path))
    except (ValueError, KeyError, OSError, SyntaxError, ImportError) as exc:
        raise DataError(f"cannot load the bundle in {path}: {exc}") from None
    lineage = _lineage(root, path, md5) if root is not None else {}
    return LoadedBundle(path, meta, bundle, features, contract, tag, md5, root, lineage, _profile(path, meta))


def _profile(path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """profile.json parsed, if the bundle lists it (its sha256 is checked with the other files)."""
    if PROFILE_FILE not in meta["files"]:
        return None
    try:
        profile = json.loads((path / PROFILE_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        why = f"{path}/{PROFILE_FILE} is not valid JSON ({exc}); rebuild the bundle with `mlp repro`."
        raise DataError(why) from None
    if not isinstance(profile, dict):
        raise DataError(f"{path}/{PROFILE_FILE} is not a reference profile; rebuild the bundle with `mlp repro`.")
    return profile


def lineage_note(lineage: dict[str, Any]) -> str:
    """A bundle's lineage as the commands say it: "commit 1a2b3c4, as dvc.lock records it" ("" outside a project)."""
    if not lineage:
        return ""
    commit = f"commit {lineage['commit'][:7]}" if lineage.get("commit") else "no commit yet"
    match = lineage.get("matches_lock")
    if match is None:
        return commit
    if match:
        return f"{commit}, as dvc.lock records it"
    return (f"{commit}, but NOT the bundle dvc.lock records: run `mlp repro` or `dvc checkout models` to score with "
            "the model the pipeline built")


def _lineage(root: Path, path: Path, md5: str) -> dict[str, Any]:
    """The commit the project is at, and whether dvc.lock's hash for the bundle is this bundle's."""
    from . import git
    from .dvc_adapter import lock_stages
    from .files import parse_yaml
    from .project import LOCK_FILE

    lineage: dict[str, Any] = {"commit": git.head(root)}
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        return {**lineage, "matches_lock": None}  # a bundle from elsewhere: dvc.lock says nothing about it
    try:
        lock = parse_yaml((root / LOCK_FILE).read_bytes())
    except (OSError, ValueError):
        return {**lineage, "matches_lock": None}
    locked = [out for stage in lock_stages(lock).values() for out_path, out in stage.outs.items() if out_path == rel]
    lineage["matches_lock"] = (locked[0] == md5) if locked else None
    return lineage
