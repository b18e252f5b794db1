"""Reading params.yaml, checking it, and changing it from the command line (`-S key=value`) without losing
comments or order.

What each param may be is declared in the project's own stages/params_spec.py, which the stage scripts use
too: mlp loads that file from the project (standard library only, so it is cheap), so a knob a user declares
there is checked here as well. A project without it gets the plain type check of `-S` values only.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from . import diffs
from .errors import ProjectError, UsageError
from .files import write_text_atomic

SPEC_FILE = "stages/params_spec.py"


@dataclass(frozen=True)
class ParamChange:
    key: str
    old: Any
    new: Any


def _yaml(typ: str = "rt"):
    from ruamel.yaml import YAML
    from ruamel.yaml.representer import RoundTripRepresenter

    class Representer(RoundTripRepresenter):
        """Writes null as `null`, not as an empty value that reads like a mistake. A subclass of its own: ruamel's
        add_representer changes the class it is called on, and DVC writes dvc.lock with RoundTripRepresenter in
        this same process, so changing that class would make mlp's dvc.lock differ from stock DVC's."""

    Representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    yaml = YAML(typ=typ)
    if typ == "rt":
        yaml.Representer = Representer
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a user's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _load(path: Path, typ: str) -> Any:
    from ruamel.yaml import YAMLError

    if not path.is_file():
        raise ProjectError(f"{path.name} not found in {path.parent}; create it or run `mlp init` to scaffold one.")
    text = path.read_text(encoding="utf-8")
    try:
        data = _yaml(typ).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProjectError(f"{path.name} is not valid YAML{where}: {problem}. Fix the file and run again.") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path.name} must be a mapping of sections (ingest:, train:, ...), not a {type(data).__name__}.")
    return data


def load_params(path: Path) -> dict:
    """params.yaml as plain dicts and lists; a one-line ProjectError when it is missing or not valid YAML."""
    return _load(path, "safe")


def parse_override(text: str) -> tuple[str, Any]:
    """'train.max_depth=4' -> ('train.max_depth', 4). The value is read as YAML: 4, 0.1, true, null, [a, b], text."""
    from ruamel.yaml import YAMLError

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"-S '{text}' is not KEY=VALUE; write it like -S train.max_depth=4.")
    if not raw.strip():
        raise UsageError(f"-S '{text}' has no value; write it like -S {key}=4 (use null for an empty value).")
    try:
        value = _yaml("safe").load(raw)
    except YAMLError as exc:
        raise UsageError(f"-S '{text}': the value is not valid YAML; quote text and write lists like [a, b].") from exc
    return key, value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """A value as it would be written in params.yaml."""
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _check_type(key: str, old: Any, new: Any) -> None:
    """Refuse a value whose type cannot be what the stage expects (a number where a number was)."""
    if old is None or new is None:
        return
    if isinstance(old, (dict, list)) and isinstance(new, (dict, list)):
        return  # a search space's range {low, high} may become a list of values and back; the declaration checks it
    if isinstance(old, dict):
        keys = ", ".join(f"{key}.{k}" for k in old)
        raise UsageError(f"-S {key}: '{key}' is a section, not a value; set one of its keys: {keys}.")
    expected = None
    if isinstance(old, bool) and not isinstance(new, bool):
        expected = "true or false"
    elif _is_number(old) and not _is_number(new):
        expected = "a number"
    elif isinstance(old, list) and not isinstance(new, list):
        expected = "a list like [a, b]"
    if expected:
        raise UsageError(f"-S {key}={_show(new)}: {key} takes {expected} (it is {_show(old)} now).")


def _lookup(data: dict, key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _unknown_key(key: str, flat: dict[str, Any]) -> UsageError:
    close = difflib.get_close_matches(key, list(flat), n=1)
    hint = f"did you mean {close[0]}?" if close else f"keys are: {', '.join(list(flat)[:12])}{' ...' if len(flat) > 12 else ''}"
    return UsageError(f"-S {key}: no such parameter in params.yaml; {hint}")


def load_spec(root: Path) -> ModuleType | None:
    """The project's declaration of what each param may be (stages/params_spec.py), or None if it has none."""
    path = root / SPEC_FILE
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"_mlp_params_spec_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)  # not put in sys.modules: each project has its own
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:
        raise ProjectError(f"{SPEC_FILE} does not load ({type(exc).__name__}: {_one_line(exc)}); fix it, "
                           "it declares what each param in params.yaml may be.") from exc
    if not (callable(getattr(module, "check_value", None)) and callable(getattr(module, "problems", None))):
        raise ProjectError(f"{SPEC_FILE} has no check_value() or problems(); "
                           "copy them back from the stages/params_spec.py of `mlp init`.")
    return module


def check_params(path: Path, data: dict | None = None, spec: ModuleType | None = None) -> None:
    """params.yaml (or `data`: params.yaml as it is about to be) against the project's declaration; a one-line
    ProjectError naming the first value it does not allow. Nothing to check without a declaration."""
    spec = spec or load_spec(path.parent)
    if spec is None:
        return
    found = _ask(spec, "problems", load_params(path) if data is None else data)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ProjectError(f"{path.name} {found[0]}{more}.")


def _ask(spec: ModuleType, function: str, *args: Any) -> Any:
    try:
        return getattr(spec, function)(*args)
    except Exception as exc:
        raise ProjectError(f"{SPEC_FILE} failed in {function}() ({type(exc).__name__}: {_one_line(exc)}); "
                           "fix it, it declares what each param in params.yaml may be.") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def set_params(path: Path, overrides: list[str]) -> list[ParamChange]:
    """Apply `-S key=value` overrides to params.yaml, keeping its comments and order.

    Everything is checked before anything is written, so a bad value leaves the file untouched: each override
    (an existing key, a value of the right type, one the project's declaration allows), then the whole file as
    it would be written.
    """
    changes = check_overrides(path, overrides)
    if all(c.old == c.new for c in changes):
        return changes
    data = _load(path, "rt")
    for change in changes:
        _assign(data, change.key, change.new)
    write_text_atomic(path, _dump(data))
    return changes


def check_overrides(path: Path, overrides: list[str], spec: ModuleType | None = None) -> list[ParamChange]:
    """What `-S key=value` overrides would change in params.yaml, each checked (an existing key, a value of the
    right type, one the project's declaration allows) and then the whole file as it would be; nothing is written.
    A UsageError or ProjectError names the first problem. (`mlp sweep` checks every combination with it.)"""
    parsed = [parse_override(text) for text in overrides]
    plain = load_params(path)
    flat = diffs.flatten(plain)
    spec = spec or load_spec(path.parent)
    changes: list[ParamChange] = []
    for text, (key, new) in zip(overrides, parsed):
        try:
            old = _lookup(plain, key)
        except KeyError:
            raise _unknown_key(key, flat) from None
        expected = _ask(spec, "check_value", key, new) if spec else None
        if not isinstance(old, dict) or not expected:  # where a section stands, the declaration says more
            _check_type(key, old, new)
        if expected:
            raise UsageError(f"-S {text.strip()}: {key} must be {expected}.")
        changes.append(ParamChange(key, flat.get(key, old), new))
    merged = copy.deepcopy(plain)
    for key, new in parsed:
        _assign(merged, key, new)
    check_params(path, merged, spec)
    return changes


def with_values(text: str, values: dict[str, Any]) -> str:
    """params.yaml text with the dotted keys of `values` set, comments and order kept (used by `mlp init`)."""
    data = _yaml("rt").load(text)
    for key, value in values.items():
        _assign(data, key, value)
    return _dump(data)


def _assign(data: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[leaf] = value


def _dump(data: Any) -> str:
    buffer = io.StringIO()
    _yaml("rt").dump(data, buffer)
    return buffer.getvalue()
