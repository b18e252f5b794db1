"""The experiment commands of the `mlp` command line: `mlp exp run / show / apply / remove` and `mlp sweep`.

Registered on the main group by mlp/cli.py; like every command there, each one parses, calls one library function
(mlp/sweep.py, mlp/experiments.py) and renders the result.
"""

from __future__ import annotations

from typing import Any

import click

from .cli_options import FORMAT_OPTION, SET_PARAM_OPTION, echo_err
from .errors import MlpError

NAME_HELP = "The experiment's name (default: one made from its params, so a rerun replaces it)."


def _failures(result: Any) -> MlpError:
    """One error naming every failed experiment and its combination; their last lines of output as details."""
    by_name = {p.name: p for p in result.planned}
    failed = result.failed
    named = "; ".join(f"{o.name} ({by_name[o.name].label or 'no -S'}): {(o.error or '').rstrip('.')}"
                      for o in failed[:3])
    more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
    details = "\n\n".join(f"--- {o.name}: last lines ---\n{o.details}" for o in failed if o.details)
    kept = len(result.outcomes) - len(failed)
    return MlpError(f"{len(failed)} of {len(result.planned)} experiments failed: {named}{more}. "
                    f"Recorded: {kept}; fix the cause and run the failed ones again.", details)


@click.command()
@click.argument("axes", nargs=-1, metavar="KEY=V1,V2,...")
@click.option("-j", "--jobs", type=int, default=1, show_default=True, help="Experiments to run at once.")
@click.option("--random", "sample", type=int, default=None, metavar="N",
              help="Run N combinations drawn at random (seeded) instead of the whole grid.")
@click.option("--seed", type=int, default=0, show_default=True, help="The seed of --random.")
@click.option("--name", "prefix", default="sweep", show_default=True, metavar="PREFIX",
              help="The experiments are named PREFIX-<6 hex digits of their params>.")
@FORMAT_OPTION
def sweep(axes: tuple[str, ...], jobs: int, sample: int | None, seed: int, prefix: str, fmt: str) -> None:
    """Run every combination of the params given (or --random N of them), -j N at a time, each recorded as a
    DVC experiment; the workspace and params.yaml stay as they are.

    \b
    Examples:
      mlp sweep train.max_depth=3,6,9 train.learning_rate=0.05,0.1 -j 2
      mlp sweep train.model=xgboost,random_forest featurize.max_categories=10,50 --random 3
    """
    from . import render
    from .project import find_project
    from .sweep import run
    from .sweep_plan import plan

    project = find_project()
    planned = plan(project, list(axes), prefix=prefix, sample=sample, seed=seed)
    say = echo_err if fmt in ("json", "csv") else click.echo
    say(f"{len(planned)} experiments, {min(jobs, len(planned))} at a time")
    result = run(project, planned, jobs,
                 on_prepared=lambda stages: stages and say(f"computed once for all: {', '.join(stages)}"),
                 on_done=lambda *progress: say(render.sweep_progress(*progress)))
    click.echo(("\n" if say is click.echo else "") + render.sweep_summary(result, fmt))
    if result.failed:
        raise _failures(result)


@click.group(name="exp")
def exp_group() -> None:
    """Experiments: run one, compare them like commits, bring one into the workspace, remove them.

    \b
    Examples:
      mlp exp run -S train.max_depth=4 --name shallow
      mlp exp show --sort roc_auc --params
      mlp exp apply shallow && git commit -am "shallower trees"
    """


@exp_group.command(name="run")
@SET_PARAM_OPTION
@click.option("--name", default=None, help=NAME_HELP)
def exp_run(overrides: tuple[str, ...], name: str | None) -> None:
    """Run the pipeline once with -S values, in a clone of its own, and record it as a DVC experiment of HEAD;
    the workspace and params.yaml stay as they are.

    \b
    Example:
      mlp exp run -S train.max_depth=4 -S train.learning_rate=0.1 --name shallow
    """
    from . import render
    from .project import find_project
    from .sweep import run
    from .sweep_plan import plan

    project = find_project()
    planned = plan(project, list(overrides), prefix="exp", single=True, name=name)
    result = run(project, planned, jobs=1)
    if result.failed:
        raise _failures(result)
    outcome = result.outcomes[0]
    click.echo(f"Recorded experiment {outcome.name} ({render.experiment_line(outcome, planned[0], None)})")
    if outcome.metrics:
        click.echo("\n" + render.metrics_table(outcome.metrics))
    click.echo(f"\nCompare: mlp exp show    Take it: mlp exp apply {outcome.name}")


@exp_group.command(name="show")
@click.option("--sort", "sort", metavar="METRIC", default=None, help="Best first by this metric.")
@click.option("--params", "params", is_flag=True, help="Also the params that differ between the experiments.")
@click.option("-n", "n", type=int, default=None, help="Show only the first N experiments.")
@FORMAT_OPTION
def exp_show(sort: str | None, params: bool, n: int | None, fmt: str) -> None:
    """The experiments of HEAD with their metrics, each against HEAD (the same rules as `mlp compare`).

    \b
    Example:
      mlp exp show --sort roc_auc --params -n 5
    """
    from . import render
    from .experiments import show
    from .project import find_project

    click.echo(render.experiments_table(show(find_project(), sort=sort, params=params, n=n), fmt))


@exp_group.command(name="apply")
@click.argument("name")
@click.option("--branch", default=None, help="Create this branch at the experiment instead (the workspace stays).")
def exp_apply(name: str, branch: str | None) -> None:
    """Bring experiment NAME into the workspace (params, dvc.lock, reports and outputs), ready to commit; or, with
    --branch, onto a new git branch.

    \b
    Examples:
      mlp exp apply shallow && git add -A && git commit -m "shallower trees"
      mlp exp apply shallow --branch shallow-trees
    """
    from .experiments import apply
    from .project import find_project

    applied = apply(find_project(), name, branch)
    if applied.branch:
        click.echo(f"Created branch {applied.branch} at experiment {name} ({applied.exp.sha[:7]}); "
                   f"switch to it with: git checkout {applied.branch}")
    else:
        click.echo(f"Applied experiment {name}: params.yaml, dvc.lock, reports/ and the outputs are the "
                   "experiment's now.\nKeep it: git add -A && git commit -m \"...\"   (then `mlp check` passes)")


@exp_group.command(name="remove")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every experiment of HEAD.")
def exp_remove(names: tuple[str, ...], everything: bool) -> None:
    """Remove experiments by name (or all of HEAD's with --all).

    \b
    Examples:
      mlp exp remove sweep-3f9a1c sweep-77b210
      mlp exp remove --all
    """
    from .experiments import remove
    from .project import find_project

    removed = remove(find_project(), list(names), everything)
    click.echo(f"Removed {len(removed)} experiment{'s' if len(removed) != 1 else ''}"
               + (f": {', '.join(r.name for r in removed)}" if removed else " (HEAD has none)") + ".")
