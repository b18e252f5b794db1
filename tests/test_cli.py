"""The command line's contract, over every command: help with an example, `--format` wherever a command prints
data, machine output that scripts can read, and bare `mlp` as help rather than an error."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
import pytest

from conftest import git, mlp
from mlp.cli import cli

FORMATS = ["table", "md", "json", "csv"]
# Commands that print data (a table a script may want as JSON or CSV); every other command must be named in
# OTHER with why it has no --format, so that a new command cannot slip through unclassified.
DATA = {"status", "check", "compare", "log", "gate", "sweep", "exp show", "monitor", "doctor"}
OTHER = {
    "init": "prints what it created",
    "repro": "prints progress per stage as it runs",
    "dag": "prints a graph (text or --mermaid)",
    "sample": "writes a file",
    "predict": "writes a file (the scores)",
    "ci init": "writes a file",
    "serve": "runs a server",
    "deploy docker": "writes a build context",
    "exp run": "prints progress, then the experiment's metrics",
    "exp apply": "changes the workspace (or makes a branch)",
    "exp remove": "removes experiments",
    "stage add": "writes a script and edits dvc.yaml, params.yaml",
    "stage remove": "undoes stage add",
    "lock": "writes a file (requirements.lock)",
}


def commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(commands(command, f"{path} "))
        else:
            found[path] = command
    return found


ALL = commands()


def test_every_command_is_classified() -> None:
    assert set(ALL) == DATA | set(OTHER), set(ALL) ^ (DATA | set(OTHER))


@pytest.mark.parametrize("name", sorted(ALL))
def test_help_has_an_example_and_data_commands_take_format(name: str, tmp_path: Path) -> None:
    result = mlp(tmp_path, *name.split(), "--help")
    assert result.code == 0 and result.err == "", result.err
    assert "Example" in result.out, f"`mlp {name} --help` shows no example"
    assert f"mlp {name}" in result.out.split("Example", 1)[1], "the example should show the command itself"
    options = {opt for param in ALL[name].params for opt in getattr(param, "opts", [])}
    if name in DATA:
        fmt = next(p for p in ALL[name].params if "--format" in getattr(p, "opts", []))
        assert list(fmt.type.choices) == FORMATS and fmt.default == "table"
        assert "--format" in result.out
    else:
        assert "--format" not in options


@pytest.mark.parametrize("args", [[], ["ci"]])
def test_a_bare_group_prints_its_help_not_an_error(args: list[str], tmp_path: Path) -> None:
    result = mlp(tmp_path, *args)
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.startswith(f"Usage: mlp {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND")
    assert "Commands:" in result.out


def test_status_in_every_format(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("max_depth: 6 ", "max_depth: 4 "))
    as_json = json.loads(mlp(project, "status", "--format", "json", check=True).out)
    train = next(s for s in as_json if s["name"] == "train")
    assert train["changes"][0] == {"kind": "param", "target": "train.max_depth", "state": "modified", "old": 6,
                                   "new": 4}
    table = list(csv.reader(io.StringIO(mlp(project, "status", "--format", "csv", check=True).out)))
    assert table[0] == ["stage", "state", "why"]
    assert dict((r[0], r[1]) for r in table[1:]) == {
        "ingest": "ok", "validate": "ok", "prepare": "ok", "split": "ok", "featurize": "ok", "tune": "stale", "train": "stale",
        "evaluate": "stale", "package": "stale"}
    md = mlp(project, "status", "--format", "md", check=True).out
    assert md.splitlines()[0].startswith("| stage") and "train.max_depth 6 → 4" in md
    assert "4 of 9 stages out of date" in mlp(project, "status", check=True).out
    assert json.loads(mlp(project, "status", "--json", check=True).out) == as_json  # the old flag still works


def test_a_branch_named_like_a_column_keeps_its_own_column(project: Path) -> None:
    git(project, "branch", "key")
    out = mlp(project, "compare", "key", "HEAD", "--all", "--format", "csv", check=True).out
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == ["key", "key", "HEAD", "change HEAD"]
    roc = next(r for r in table if r[0] == "roc_auc")
    assert roc[1] == roc[2] and float(roc[1]) > 0.5 and roc[3] == "="
    same = list(csv.reader(io.StringIO(mlp(project, "compare", "HEAD", "HEAD", "--all", "--format", "csv",
                                           check=True).out)))
    assert same[0] == ["key", "HEAD", "HEAD", "change HEAD"]


def test_csv_writes_params_as_json(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("stratify: true ", "stratify: false"))
    out = mlp(project, "compare", "--params", "--all", "--format", "csv", check=True).out
    table = {r[1]: r for r in csv.reader(io.StringIO(out))}
    assert json.loads(table["featurize.datetime_parts"][2])[:2] == ["year", "month"]
    assert table["split.stratify"][2:4] == ["true", "false"]
    assert "True" not in out and "['" not in out
