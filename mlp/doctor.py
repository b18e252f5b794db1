"""`mlp doctor`: each stage declares in dvc.yaml what its script uses, and uses what it declares.

DVC reruns a stage when one of its declared deps or params changes, and only then: a helper module, a file or a
param key the script reads without declaring it can change while DVC keeps serving the cached result. So for every
stage whose command runs a Python script of the project (`python stages/train.py`), mlp/code_scan.py reads the
script and the project modules it imports, statically, and this module compares what they use with the stage's
deps, outs and params:
- undeclared (the check fails, exit 1): a local module imported (directly or through another), a file under the
  project that is read, a param key that is read;
- unused (a warning): a declared dep that nothing reads, a declared param key that no code reads.
A dep folder (data/raw) covers the files under it; a file the stage writes (its outs) is not an input; a dep named
by the value of a param the stage reads (ingest.path: data/raw/churn.csv) is used. params.yaml itself is declared
through params:, and the project's .env holds credentials, never a dependency (DVC would hash it into dvc.lock).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .code_scan import ScanError, ScriptUses, scan_script
from .errors import ProjectError
from .project import PARAMS_FILE, PIPELINE_FILE, Project

SCRIPT = re.compile(r"^\s*python[0-9.]*\s+(?:-\S+\s+)*(?P<script>[^\s;&|]+\.py)(?:\s|$)")
NOT_INPUTS = {PARAMS_FILE, ".env"}  # declared through params: / credentials, never a DVC dependency


@dataclass(frozen=True)
class Finding:
    stage: str
    problem: str  # undeclared (used, not in dvc.yaml) | unused (in dvc.yaml, not used)
    kind: str  # module | file | param | dep
    name: str  # stages/helper.py, data/lookup.csv, train.new_key
    where: str = ""  # where the code uses it (path:line), for undeclared ones


@dataclass
class DoctorResult:
    stages: list[str]  # the stages checked
    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # stage -> why its command was not checked

    @property
    def undeclared(self) -> list[Finding]:
        return [f for f in self.findings if f.problem == "undeclared"]

    @property
    def unused(self) -> list[Finding]:
        return [f for f in self.findings if f.problem == "unused"]

    @property
    def passed(self) -> bool:
        return not self.undeclared

    @property
    def summary(self) -> str:
        found = self.undeclared
        shown = ", ".join(f"{f.stage} uses {f.kind} {f.name} ({f.where})" for f in found[:3])
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        return (f"{len(found)} undeclared {'dependency' if len(found) == 1 else 'dependencies'}: {shown}{more}. "
                "Add modules and files to the stage's deps and param keys to its params in dvc.yaml, so that "
                "DVC reruns the stage when they change.")


def doctor(project: Project) -> DoctorResult:
    """Check every stage of the project's dvc.yaml against what its script uses (read, never run)."""
    from . import files
    from .params import load_params

    pipeline = project.root / PIPELINE_FILE
    try:
        parsed = files.parse_yaml(pipeline.read_bytes())
    except OSError as exc:
        raise ProjectError(f"cannot read {PIPELINE_FILE}: {exc.strerror or exc}; check the file.") from exc
    except Exception as exc:  # yaml.YAMLError: where it is broken
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProjectError(f"{PIPELINE_FILE} is not valid YAML{where}: {problem}. Fix the file and run again.") from exc
    stages = parsed.get("stages") if isinstance(parsed, dict) else None
    if not isinstance(stages, dict) or not all(isinstance(s, dict) for s in stages.values()):
        raise ProjectError(f"{PIPELINE_FILE} has no stages: mapping of stage names to cmd/deps/outs; fix the file.")
    params = load_params(project.params_path) if project.params_path.is_file() else {}
    try:
        return diagnose(stages, params, _source_reader(project.root))
    except ScanError as exc:
        raise ProjectError(f"{exc.path} line {exc.line} does not parse ({exc.problem}); fix it and run again.") from exc


def _source_reader(root: Path) -> Callable[[str], str | None]:
    cache: dict[str, str | None] = {}

    def read(path: str) -> str | None:
        if path not in cache:
            file = root / path
            cache[path] = file.read_text(encoding="utf-8", errors="replace") if file.is_file() else None
        return cache[path]

    return read


def diagnose(stages: Mapping[str, Any], params: Mapping[str, Any],
             read_source: Callable[[str], str | None]) -> DoctorResult:
    """The findings for dvc.yaml's stages (parsed), params.yaml (parsed) and the project's sources. Pure."""
    result = DoctorResult([])
    for name, stage in stages.items():
        if "foreach" in stage or "matrix" in stage:
            result.skipped[name] = "foreach/matrix stages are not checked"
            continue
        commands = stage.get("cmd") or []
        commands = [commands] if isinstance(commands, str) else [str(c) for c in commands]
        wdir = str(stage.get("wdir") or ".")
        scripts = [m.group("script") for m in map(SCRIPT.match, commands) if m]
        script = _path(wdir, scripts[0]) if scripts else None
        if script is None or read_source(script) is None:
            result.skipped[name] = ("its command runs no Python script of the project" if script is None
                                    else f"{script} not found")
            continue
        result.stages.append(name)
        result.findings += stage_findings(name, stage, scan_script(script, read_source), params, wdir)
    return result


def stage_findings(name: str, stage: Mapping[str, Any], uses: ScriptUses, params: Mapping[str, Any],
                   wdir: str = ".") -> list[Finding]:
    """What one stage uses but does not declare, then what it declares but does not use."""
    deps = [_path(wdir, _entry(d)) for d in stage.get("deps") or []]
    outs = [_path(wdir, _entry(o)) for key in ("outs", "metrics", "plots") for o in stage.get(key) or []]
    declared = [str(p) for p in stage.get("params") or [] if isinstance(p, str)]  # keys of params.yaml
    other_files = [k for p in stage.get("params") or [] if isinstance(p, dict) for k in p]
    found: list[Finding] = []
    for module, where in uses.modules.items():
        if not _covered(module, deps):
            found.append(Finding(name, "undeclared", "module", module, where))
    reads = {path.rstrip("/"): (where, path.endswith("/")) for path, where in uses.files.items()}
    for path, (where, inside) in reads.items():
        if _inside_project(path) and path not in NOT_INPUTS and path not in other_files \
                and not _covered(path, deps, inside) and not _covered(path, outs, inside):
            found.append(Finding(name, "undeclared", "file", path, where))
    missing = [key for key in uses.params if not _key_covered(key, declared, params)]
    for key in missing:
        if not any(key.startswith(f"{other}.") for other in missing if other != key):  # the parent says it
            found.append(Finding(name, "undeclared", "param", key or "(all of params.yaml)", uses.params[key]))

    named = [str(v) for key in [*uses.params, *uses.runtime] for v in _strings(_value(params, key))]
    used = [*uses.modules, *(p.rstrip("/") for p in [*uses.files, *uses.runtime]), *named]
    for dep in deps:
        if not any(u == dep or u.startswith(f"{dep}/") or dep.startswith(f"{u}/") for u in used):
            found.append(Finding(name, "unused", "dep", dep))
    read = [*uses.params, *uses.runtime]
    for key in declared:
        if not any(r == key or _under(r, key) or _under(key, r) for r in read):
            found.append(Finding(name, "unused", "param", key))
    return found


def _entry(entry: Any) -> str:
    """A deps/outs entry: a path, or {path: options}."""
    return str(next(iter(entry)) if isinstance(entry, dict) else entry)


def _path(wdir: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(wdir, path))


def _inside_project(path: str) -> bool:
    return bool(path) and path != "." and not path.startswith(("/", "../")) and "://" not in path and path != ".."


def _covered(path: str, declared: list[str], inside: bool = False) -> bool:
    """A path is covered by itself or a folder above it; something inside a folder also by a dep inside it."""
    return any(path == d or path.startswith(f"{d}/") or (inside and d.startswith(f"{path}/")) for d in declared)


def _under(key: str, parent: str) -> bool:
    return parent == "" or key.startswith(f"{parent}.")


def _key_covered(key: str, declared: list[str], params: Mapping[str, Any]) -> bool:
    """A key read is declared by itself or a key above it, or (read whole) when every value under it is."""
    if any(key == d or _under(key, d) for d in declared):
        return True
    value = _value(params, key)
    leaves = list(_leaves(value, key)) if isinstance(value, dict) else []
    return bool(leaves) and all(any(leaf == d or _under(leaf, d) for d in declared) for leaf in leaves)


def _value(params: Any, key: str) -> Any:
    for part in key.split(".") if key else []:
        if not isinstance(params, dict) or part not in params:
            return None
        params = params[part]
    return params


def _leaves(value: Any, key: str) -> Any:
    for name, inner in value.items():
        path = f"{key}.{name}" if key else str(name)
        if isinstance(inner, dict) and inner:
            yield from _leaves(inner, path)
        else:
            yield path


def _strings(value: Any) -> list[str]:
    """The text values of a param (a path, a list of paths), as dvc.yaml paths."""
    values = value if isinstance(value, list) else [value]
    return [posixpath.normpath(v) for v in values if isinstance(v, str) and v]
