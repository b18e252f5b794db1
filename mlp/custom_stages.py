"""Custom stages: `mlp stage add NAME --after STAGE` and `mlp stage remove NAME`.

Adding a stage writes stages/NAME.py (a skeleton that passes the rows through) and wires it in as text edits, so
every other byte of dvc.yaml, params.yaml and the scripts stays as it was (comments and layout included):
- dvc.yaml: a stage block after STAGE's, under a marker comment (the marker is how `remove` knows a custom stage);
  the stages that read STAGE's output now list NAME's output in their deps instead;
- params.yaml: a `NAME:` section after STAGE's, with one example key;
- the downstream scripts: their quoted path literal of STAGE's output ("data/interim/prepared.parquet") becomes
  NAME's ("data/interim/NAME.parquet").
Removing applies the same edits in reverse, which gives back the files byte for byte.

The text edits are pure functions of the files' text (tested without git or DVC); positions come from PyYAML's
node marks (character offsets), not from a round trip through a YAML writer.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
import yaml

from .errors import ProjectError, UsageError
from .files import write_text_atomic
from .project import PARAMS_FILE, PIPELINE_FILE, Project

STAGES_DIR = "stages"
OUT_TEMPLATE = "data/interim/{name}.parquet"
MARKER = "# custom stage, made by `mlp stage add`: `mlp stage remove {name}` takes it out"
PARAM_KEY = "query"  # the skeleton's one example param
COMMENT_COLUMN = 34  # where params.yaml's comments start
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# Stages whose output a custom stage must not change: featurize writes the training rows' features only (evaluate,
# predict and serve featurize their own rows with the bundle), so a change there would reach training alone.
NOT_AFTER = {"featurize": "it writes the training features only (test rows, predict and serve are featurized by "
                          "the model bundle), so a change there would skew training against serving"}


@dataclass(frozen=True)
class StageEdit:
    """What `stage add` or `stage remove` did: the stage, what it reads and writes, and the files touched."""

    action: str  # added | removed
    name: str
    reads: str  # the upstream output it reads
    writes: str  # its own output
    downstream: tuple[str, ...]  # the stages that read its output (add) or read the upstream's again (remove)
    created: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


# --- the skeleton ------------------------------------------------------------------------------------------------

def skeleton(name: str, reads: str, writes: str) -> str:
    """The text of stages/NAME.py: read `reads`, change the rows at the marked place, write `writes` atomically."""
    return f'''"""{name}: a stage of your own. It reads IN (the output of the stage before it), changes the rows in change()
below and writes OUT, which the next stages read.

Its params are the {name}: section of params.yaml. dvc.yaml lists what it reads: when you read another key or
file here, add it to this stage's params: or deps: there, so that changing it reruns the stage.
Made by `mlp stage add {name}`; `mlp stage remove {name}` takes it out again.
"""
import os

from common import load_params, parquet_parts, read_parquet, replace_dir, write_parquet

IN = "{reads}"
OUT = "{writes}"


def change(rows, params):
    """The rows (a pandas DataFrame) this stage passes on."""
    # ---- your code here: return the rows to pass on (as written, all of them, unchanged) ----
    if params.get("{PARAM_KEY}"):  # like "age >= 18": keep only the rows it matches
        rows = rows.query(params["{PARAM_KEY}"])
    # ---- end of your code ----
    return rows


def main():
    params = load_params("{name}")
    if os.path.isdir(IN):  # engine: dask wrote a folder of parts: change each part, write the same parts
        with replace_dir(OUT) as tmp:
            for part in parquet_parts(IN):
                write_parquet(change(read_parquet(part), params), os.path.join(tmp, os.path.basename(part)))
    else:
        write_parquet(change(read_parquet(IN), params), OUT)


if __name__ == "__main__":
    main()
'''


# --- reading YAML with positions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Stage:
    name: str
    key: yaml.Node
    value: yaml.MappingNode

    def field(self, key: str) -> yaml.Node | None:
        return next((v for k, v in self.value.value if k.value == key), None)

    def paths(self, key: str) -> list[yaml.ScalarNode]:
        """The plain path items of `deps:` or `outs:` (an item with options, `- path: {cache: false}`, by its key)."""
        seq = self.field(key)
        items = seq.value if isinstance(seq, yaml.SequenceNode) else []
        return [i if isinstance(i, yaml.ScalarNode) else i.value[0][0] for i in items
                if isinstance(i, yaml.ScalarNode) or (isinstance(i, yaml.MappingNode) and i.value)]


def _compose(text: str, file: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)  # the pure-Python parser: marks count characters
    except yaml.YAMLError as exc:
        raise ProjectError(f"{file} is not valid YAML ({exc.__class__.__name__}); fix it, then run the command again")


def _pipeline(text: str) -> dict[str, _Stage]:
    root = _compose(text, PIPELINE_FILE)
    stages = None
    if isinstance(root, yaml.MappingNode):
        stages = next((v for k, v in root.value if k.value == "stages"), None)
    if not isinstance(stages, yaml.MappingNode) or stages.flow_style:
        raise ProjectError(f"{PIPELINE_FILE} has no block `stages:` mapping; restore it (git checkout {PIPELINE_FILE})")
    return {k.value: _Stage(k.value, k, v) for k, v in stages.value if isinstance(v, yaml.MappingNode)}


def _end(node: yaml.Node) -> int:
    """Where the node's last value ends (a block collection's own end mark lies after the comments that follow)."""
    if isinstance(node, yaml.ScalarNode) or node.flow_style or not node.value:
        return node.end_mark.index
    last = node.value[-1]
    return _end(last[1] if isinstance(node, yaml.MappingNode) else last)


def _line_end(text: str, index: int) -> int:
    found = text.find("\n", index)
    return len(text) if found < 0 else found


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _replace(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _swap_path(text: str, node: yaml.ScalarNode, old: str, new: str) -> tuple[int, int, str]:
    start, end = node.start_mark.index, node.end_mark.index
    return start, end, text[start:end].replace(old, new)


def _script(stage: _Stage) -> str | None:
    cmd = stage.field("cmd")
    found = re.fullmatch(r"python3?\s+(\S+\.py)", cmd.value.strip()) if isinstance(cmd, yaml.ScalarNode) else None
    return found.group(1) if found else None


def _data_output(stages: dict[str, _Stage], name: str) -> str:
    """The one parquet output of a stage, which a stage after it can read."""
    outs = [n.value for n in stages[name].paths("outs") if n.value.endswith(".parquet")]
    if len(outs) != 1:
        has = f"{len(outs)} data outputs ({', '.join(outs)})" if outs else "no data output (a .parquet file)"
        able = ", ".join(s for s in stages if s not in NOT_AFTER and len(
            [n for n in stages[s].paths("outs") if n.value.endswith(".parquet")]) == 1)
        raise UsageError(f"stage '{name}' has {has} to read; put the stage after one with one: {able}")
    return outs[0]


def _readers(stages: dict[str, _Stage], path: str) -> list[_Stage]:
    return [s for s in stages.values() if any(n.value == path for n in s.paths("deps"))]


# --- the text edits (pure) ---------------------------------------------------------------------------------------

def add_to_pipeline(text: str, name: str, after: str, script: str) -> tuple[str, str, str, list[str]]:
    """dvc.yaml with stage `name` after `after`, its readers rewired: (text, reads, writes, downstream stages)."""
    stages = _pipeline(text)
    if after not in stages:
        raise UsageError(f"no stage '{after}' in {PIPELINE_FILE}; stages are: {', '.join(stages)}")
    if after in NOT_AFTER:
        raise UsageError(f"a stage cannot go after '{after}': {NOT_AFTER[after]}; put it after prepare or earlier")
    if name in stages:
        raise UsageError(f"stage '{name}' is already in {PIPELINE_FILE}; pick another name")
    reads, writes = _data_output(stages, after), OUT_TEMPLATE.format(name=name)
    taken = [s.name for s in stages.values() for n in s.paths("outs") + s.paths("deps") if n.value == writes]
    if taken:
        raise UsageError(f"stage '{taken[0]}' already uses {writes}; pick another name")
    upstream = stages[after]
    indent = upstream.key.start_mark.column
    inner = upstream.value.start_mark.column
    deps = upstream.field("deps")
    item = " " * (deps.start_mark.column if isinstance(deps, yaml.SequenceNode) else inner + 2) + "- "
    block = [" " * indent + MARKER.format(name=name), " " * indent + f"{name}:",
             " " * inner + f"cmd: python {script}", " " * inner + "deps:",
             *(item + p for p in (script, f"{STAGES_DIR}/common.py", f"{STAGES_DIR}/params_spec.py", reads)),
             " " * inner + "params:", item + f"{name}.{PARAM_KEY}", " " * inner + "outs:", item + writes]
    at = _line_end(text, _end(upstream.value))
    readers = _readers(stages, reads)
    edits = [(at, at, "\n\n" + "\n".join(block))]
    edits += [_swap_path(text, n, reads, writes) for s in readers for n in s.paths("deps") if n.value == reads]
    return _replace(text, edits), reads, writes, [s.name for s in readers]


def remove_from_pipeline(text: str, name: str) -> tuple[str, str, str, list[str]]:
    """dvc.yaml without custom stage `name`, its readers reading its input again: (text, reads, writes, downstream)."""
    stages = _pipeline(text)
    if name not in stages:
        custom = [s for s in stages if _marked(text, stages[s])]
        raise UsageError(f"no stage '{name}' in {PIPELINE_FILE}; custom stages are: {', '.join(custom) or 'none'}")
    stage = stages[name]
    if not _marked(text, stage):
        raise UsageError(f"stage '{name}' was not made by `mlp stage add`; only those can be removed")
    outs = [n.value for n in stage.paths("outs") if n.value.endswith(".parquet")]
    others = {n.value for s in stages.values() if s is not stage for n in s.paths("outs")}
    ins = [n.value for n in stage.paths("deps") if n.value in others]
    if len(outs) != 1 or len(ins) != 1:
        raise ProjectError(f"stage '{name}' in {PIPELINE_FILE} no longer reads one stage's output and writes one "
                           f"parquet file; put its deps: and outs: back as `mlp stage add` wrote them")
    reads, writes = ins[0], outs[0]
    marker_start = _line_start(text, _line_start(text, stage.key.start_mark.index) - 1)
    start = marker_start - 2 if text[max(marker_start - 2, 0):marker_start] == "\n\n" else max(marker_start - 1, 0)
    readers = _readers(stages, writes)
    edits = [(start, _line_end(text, _end(stage.value)), "")]
    edits += [_swap_path(text, n, writes, reads) for s in readers for n in s.paths("deps") if n.value == writes]
    return _replace(text, edits), reads, writes, [s.name for s in readers]


def _marked(text: str, stage: _Stage) -> bool:
    """Whether the line above the stage's key is the marker `stage add` writes."""
    key_line = _line_start(text, stage.key.start_mark.index)
    if key_line == 0:
        return False
    return text[_line_start(text, key_line - 1):key_line - 1].strip() == MARKER.format(name=stage.name)


def _params_root(text: str) -> yaml.MappingNode:
    root = _compose(text, PARAMS_FILE)
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not root.value:
        raise ProjectError(f"{PARAMS_FILE} is not a block mapping of sections (ingest:, train:, ...); fix it")
    return root


def _commented(code: str, comment: str) -> str:
    return f"{code:<{COMMENT_COLUMN - 1}} # {comment}" if len(code) < COMMENT_COLUMN - 1 else f"{code}  # {comment}"


def add_to_params(text: str, name: str, after: str) -> str:
    """params.yaml with a `name:` section (one example key), after `after`'s section or at the end."""
    root = _params_root(text)
    if any(k.value == name for k, _ in root.value):
        raise UsageError(f"{PARAMS_FILE} already has a '{name}:' section; pick another name")
    section = next((v for k, v in root.value if k.value == after), root)
    at = _line_end(text, _end(section))
    lines = [_commented(f"{name}:", f"your stage {STAGES_DIR}/{name}.py (`mlp stage add`): the params it reads"),
             _commented(f"  {PARAM_KEY}: null", 'keep only the rows this pandas query matches, like "age >= 18"; '
                                                'null: all')]
    return text[:at] + "\n\n" + "\n".join(lines) + text[at:]


def remove_from_params(text: str, name: str) -> str:
    """params.yaml without its `name:` section (as it was before `add_to_params`); unchanged if there is none."""
    root = _params_root(text)
    found = next(((k, v) for k, v in root.value if k.value == name), None)
    if found is None:
        return text
    key, value = found
    start = _line_start(text, key.start_mark.index)
    start = start - 2 if text[max(start - 2, 0):start] == "\n\n" else max(start - 1, 0)
    return text[:start] + text[_line_end(text, _end(value)):]


def rewire(text: str, old: str, new: str) -> str:
    """A script with its quoted path literal `old` ("..." or '...') replaced by `new`."""
    for quote in ('"', "'"):
        text = text.replace(f"{quote}{old}{quote}", f"{quote}{new}{quote}")
    return text


def names_path(text: str, path: str) -> bool:
    return f'"{path}"' in text or f"'{path}'" in text


# --- the commands ------------------------------------------------------------------------------------------------

def _check_name(project: Project, name: str) -> None:
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise UsageError(f"'{name}' is not a stage name; use lowercase letters, digits and _ (like clip_outliers)")
    if (project.root / STAGES_DIR / f"{name}.py").exists():
        raise UsageError(f"{STAGES_DIR}/{name}.py already exists; pick another name")
    # stages/ is first on the stage scripts' import path: stages/json.py would hide the json module from all of them
    if name in sys.stdlib_module_names or importlib.util.find_spec(name) is not None:
        raise UsageError(f"'{name}' is the name of a Python module ({STAGES_DIR}/{name}.py would hide it from the "
                         "stages); pick another name")
    out = project.root / OUT_TEMPLATE.format(name=name)
    if out.exists():
        raise UsageError(f"{OUT_TEMPLATE.format(name=name)} already exists; pick another name or remove it")


def _scripts_of(project: Project, stages: list[_Stage], path: str) -> dict[str, str]:
    """The scripts of `stages` that name `path` (every reader must have one, or it cannot be rewired)."""
    found: dict[str, str] = {}
    for stage in stages:
        hits = {}
        for dep in [n.value for n in stage.paths("deps") if n.value.endswith(".py")]:
            text = _read(project, dep) if (project.root / dep).is_file() else ""
            if names_path(text, path):
                hits[dep] = text
        if not hits:
            raise ProjectError(f"stage '{stage.name}' reads {path} but none of its scripts names it in quotes "
                               f"(like IN = \"{path}\"), so it cannot be rewired; name it so, then run this again")
        found.update(hits)
    return found


def _write_all(project: Project, files: dict[str, str | None]) -> None:
    """Write (or delete, for None) every file; if one fails, put back those already done."""
    done: dict[Path, bytes | None] = {}
    try:
        for rel, text in files.items():
            path = project.root / rel
            done[path] = path.read_bytes() if path.exists() else None
            if text is None:
                path.unlink()
            else:
                write_text_atomic(path, text)
    except BaseException:
        for path, old in done.items():
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)
        raise


def _read(project: Project, rel: str) -> str:
    """A file's text with its own line endings (read_text would turn \\r\\n into \\n)."""
    return (project.root / rel).read_bytes().decode("utf-8")


def add_stage(project: Project, name: str, after: str) -> StageEdit:
    """Write stages/NAME.py and wire it in after stage `after`. Nothing is written if anything is wrong."""
    _check_name(project, name)
    script = f"{STAGES_DIR}/{name}.py"
    dvc_text, params_text = _read(project, PIPELINE_FILE), _read(project, PARAMS_FILE)
    new_dvc, reads, writes, downstream = add_to_pipeline(dvc_text, name, after, script)
    new_params = add_to_params(params_text, name, after)
    for other in sorted((project.root / STAGES_DIR).glob("*.py")):
        if names_path(other.read_text(encoding="utf-8"), writes):
            raise UsageError(f"{STAGES_DIR}/{other.name} already names {writes}; pick another name")
    stages = _pipeline(dvc_text)
    scripts = _scripts_of(project, [stages[s] for s in downstream], reads)
    files: dict[str, str | None] = {rel: rewire(text, reads, writes) for rel, text in scripts.items()}
    files.update({PIPELINE_FILE: new_dvc, PARAMS_FILE: new_params, script: skeleton(name, reads, writes)})
    _write_all(project, files)
    return StageEdit("added", name, reads, writes, tuple(downstream), created=(script,),
                     changed=(PIPELINE_FILE, PARAMS_FILE, *scripts))


def remove_stage(project: Project, name: str, force: bool = False) -> StageEdit:
    """Take out a stage `add_stage` made: its script, its dvc.yaml stage and params.yaml section, the rewiring.
    A script with the user's own edits is deleted only with `force`. Its output and .gitignore line go too."""
    dvc_text, params_text = _read(project, PIPELINE_FILE), _read(project, PARAMS_FILE)
    new_dvc, reads, writes, downstream = remove_from_pipeline(dvc_text, name)
    stages = _pipeline(dvc_text)
    script = f"{STAGES_DIR}/{name}.py"
    path = project.root / script
    if path.is_file() and _read(project, script) != skeleton(name, reads, writes) and not force:
        raise UsageError(f"{script} has edits of yours; pass --force to remove it anyway "
                         "(commit it first to keep a copy in git)")
    scripts = _scripts_of(project, [stages[s] for s in downstream], writes)
    files: dict[str, str | None] = {rel: rewire(text, writes, reads) for rel, text in scripts.items()}
    files.update({PIPELINE_FILE: new_dvc, PARAMS_FILE: remove_from_params(params_text, name)})
    if path.is_file():
        files[script] = None
    ignore = project.root / Path(writes).parent / ".gitignore"
    entry = f"/{Path(writes).name}\n"
    ignored = _read(project, str(ignore.relative_to(project.root))) if ignore.is_file() else ""
    if entry in ignored:
        files[str(ignore.relative_to(project.root))] = ignored.replace(entry, "", 1)
    from . import dvc_adapter  # DVC only here: its lock entry (the next repro rewrites the readers' entries)

    dvc_adapter.forget_stage(project, name)
    _write_all(project, files)
    deleted = [script] if script in files else []
    out = project.root / writes
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
        deleted.append(writes)
    changed = tuple(rel for rel, text in files.items() if text is not None)
    return StageEdit("removed", name, reads, writes, tuple(downstream), changed=changed, deleted=tuple(deleted))
