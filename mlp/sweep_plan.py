"""What a sweep will run: `key=v1,v2` axes to a grid (or a seeded random sample of it) of named experiments,
every one checked against params.yaml and the project's declaration before anything runs.

The parsing, the grid, the sample and the names are pure functions (tests/test_sweep_plan.py); `plan()` adds the
checks that read the project.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

from . import dvc_adapter, dvc_experiments
from .errors import MlpError, UsageError
from .params import check_overrides, load_spec, parse_override
from .project import Project


@dataclass(frozen=True)
class Axis:
    key: str
    texts: tuple[str, ...]  # each value as written, like "0.1" or "[year, month]"
    values: tuple[Any, ...]  # each value as YAML reads it


@dataclass(frozen=True)
class Planned:
    """One experiment to run: its name and the `-S key=value` overrides that make it."""

    name: str
    overrides: tuple[str, ...]
    values: tuple[tuple[str, Any], ...]  # (key, value) in axis order

    @property
    def label(self) -> str:
        """`train.max_depth=4 train.learning_rate=0.1`: how progress lines and errors name the combination."""
        return " ".join(self.overrides)


def split_values(text: str) -> list[str]:
    """'3,4,6' -> ['3', '4', '6']; commas inside brackets or quotes do not split: '[a, b],[c]' -> ['[a, b]', '[c]']."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def parse_axis(text: str) -> Axis:
    """'train.max_depth=3,6' -> Axis('train.max_depth', ('3', '6'), (3, 6)); a UsageError for a malformed one."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"'{text}' is not KEY=V1,V2,...; write it like train.max_depth=3,6.")
    texts = split_values(raw) if raw.strip() else []
    if not texts or any(not t for t in texts):
        raise UsageError(f"'{text}' has an empty value list or an empty value; write it like {key}=3,6.")
    values = tuple(parse_override(f"{key}={t}")[1] for t in texts)
    if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
        raise UsageError(f"'{text}' lists a value twice; give each value once.")
    return Axis(key, tuple(texts), values)


def experiment_name(prefix: str, values: tuple[tuple[str, Any], ...]) -> str:
    """A name that depends only on the combination: the same sweep run again replaces its experiments instead of
    adding copies. `sweep-3f9a1c` for the prefix 'sweep'."""
    digest = hashlib.sha1(json.dumps(sorted(values), sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix}-{digest[:6]}"


def grid(axes: list[Axis], prefix: str, sample: int | None = None, seed: int = 0) -> list[Planned]:
    """Every combination of the axes, in order (the last axis varies fastest), or `sample` of them drawn at random
    with `seed` (kept in grid order)."""
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise UsageError(f"{twice} is swept twice; give all of its values in one {twice}=V1,V2,... argument.")
    combos = list(itertools.product(*[list(zip(a.texts, a.values)) for a in axes]))
    if sample is not None:
        if sample < 1:
            raise UsageError(f"--random {sample}: give a positive number of experiments.")
        if sample > len(combos):
            raise UsageError(f"--random {sample}: the grid has only {len(combos)} combinations; "
                             f"ask for at most {len(combos)}, or drop --random to run them all.")
        chosen = sorted(random.Random(seed).sample(range(len(combos)), sample))
        combos = [combos[i] for i in chosen]
    planned = []
    for combo in combos:
        values = tuple((key, value) for key, (_, value) in zip(keys, combo))
        overrides = tuple(f"{key}={text}" for key, (text, _) in zip(keys, combo))
        planned.append(Planned(experiment_name(prefix, values), overrides, values))
    return planned


def plan(project: Project, axes_text: list[str], prefix: str = "sweep", sample: int | None = None,
         seed: int = 0, single: bool = False, name: str | None = None) -> list[Planned]:
    """The experiments of `mlp sweep` (or, `single`, the one of `mlp exp run`, named `name` if given), all checked
    before any runs: each key exists in params.yaml and is read by a stage, each value has the right type and is
    allowed by stages/params_spec.py, and so is every combination as a whole (params.yaml as it would be)."""
    if not axes_text and not single:
        raise UsageError("give at least one KEY=V1,V2,... to sweep, like mlp sweep train.max_depth=3,6.")
    dvc_experiments.check_name(project.root, name or prefix)
    axes = [parse_axis(text) for text in axes_text]
    if single and any(len(a.values) > 1 for a in axes):
        many = next(a for a in axes if len(a.values) > 1)
        raise UsageError(f"-S {many.key}= gives {len(many.values)} values; `mlp exp run` runs one experiment, "
                         f"`mlp sweep {many.key}={','.join(many.texts)}` runs one per value.")
    planned = grid(axes, prefix, sample, seed)
    if name is not None:  # `mlp exp run --name`: named by the user
        planned = [Planned(name, p.overrides, p.values) for p in planned]
    spec = load_spec(project.root)
    for p in planned:
        try:
            check_overrides(project.params_path, list(p.overrides), spec)
        except MlpError as exc:
            where = f" (in the combination {p.label})" if len(p.values) > 1 else ""
            message = exc.message.removeprefix("-S ") if not single else exc.message
            raise UsageError(f"{message.rstrip('.')}{where}; nothing was run.") from None
    read = {k for keys in dvc_adapter.param_keys(project).values() for k in keys}
    for axis in axes:  # every key exists (checked above); one that no stage reads would give identical results
        if not any(axis.key == k or axis.key.startswith(k + ".") for k in read):
            raise UsageError(f"{axis.key} is in params.yaml but no stage of dvc.yaml lists it under `params:`, so "
                             "every experiment would be the same; add it to the stage that reads it, or sweep "
                             "another key.")
    return planned
