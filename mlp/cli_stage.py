"""The `mlp stage add / remove` commands: custom stages (mlp/custom_stages.py). Registered by mlp/cli.py."""

from __future__ import annotations

import click


@click.group("stage")
def stage_group() -> None:
    """Add a stage of your own to the pipeline, or take it out again.

    \b
    Example:
      mlp stage add clip --after prepare && mlp repro
    """


@stage_group.command("add")
@click.argument("name")
@click.option("--after", "after", required=True, metavar="STAGE", help="The stage whose output it reads.")
def add(name: str, after: str) -> None:
    """Add stage NAME after STAGE: a script skeleton, wired into dvc.yaml and params.yaml.

    stages/NAME.py reads STAGE's output, runs your code at its marked place and writes
    data/interim/NAME.parquet; the stages that read STAGE's output now read NAME's.

    \b
    Example:
      mlp stage add clip --after prepare
    """
    from . import render
    from .custom_stages import add_stage
    from .project import find_project

    click.echo(render.stage_edit(add_stage(find_project(), name, after)))


@stage_group.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove stages/NAME.py even though you edited it.")
def remove(name: str, force: bool) -> None:
    """Take out a stage `mlp stage add` made: dvc.yaml, params.yaml and the scripts as they were.

    Its script, its output and its line in .gitignore go too; the next `mlp repro` updates dvc.lock.

    \b
    Example:
      mlp stage remove clip
    """
    from . import render
    from .custom_stages import remove_stage
    from .project import find_project

    click.echo(render.stage_edit(remove_stage(find_project(), name, force=force)))
