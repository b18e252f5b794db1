"""What the command modules share, defined once (mlp/cli.py and mlp/cli_experiments.py use them): the click
options several commands take, and the one way to write to stderr."""

from __future__ import annotations

import os
from pathlib import Path

import click

FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "md", "json", "csv"]), default="table",
                             show_default=True, help="Output format.")
MODEL_OPTION = click.option("--model", "model", type=click.Path(path_type=Path), default=None, metavar="DIR",
                            help="A model bundle folder (default: models/ of the project you are in).")
SET_PARAM_OPTION = click.option("-S", "--set-param", "overrides", multiple=True, metavar="KEY=VALUE",
                                help="Set a value in params.yaml for this run (repeatable).")


def echo_err(text: str) -> None:
    click.echo(text, err=True, color=False if os.environ.get("NO_COLOR") else None)
