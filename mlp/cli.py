"""The `mlp` command line: each command parses its options, calls one library function and renders the result.

Errors are handled in one place, `main()`: an MlpError becomes `Error: <message>` on stderr and its exit code;
anything else is a bug, reported in one line unless `--debug` asks for the traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from . import __version__, cli_experiments, cli_monitor, cli_stage
from .cli_options import FORMAT_OPTION, MODEL_OPTION, SET_PARAM_OPTION, echo_err
from .errors import EXIT_ERROR, CheckFailed, MlpError

DEBUG_FLAG = "--debug"


def _verdict(result: Any) -> None:
    """A check's result (after it is printed): exit 1 with its one-line summary when it did not pass."""
    if not result.passed:
        raise CheckFailed(result.summary)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="mlp")
@click.option(DEBUG_FLAG, is_flag=True, expose_value=False, help="Show the full traceback when something fails.")
def cli() -> None:
    """mlp: a tabular dataset to a reproducible, versioned ML pipeline on git and DVC.

    \b
    Example:
      mlp init churn-demo && cd churn-demo && mlp repro
    """


@cli.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@click.option("--data", metavar="FILE|URL",
              help="Your data: CSV, Parquet, JSON lines or SQLite; a database URL (postgresql://user@host/db); "
                   "or an s3://, gs:// or az:// URL.")
@click.option("--target", help="The column to predict (with --data).")
@click.option("--task", type=click.Choice(["classification", "regression"]),
              help="Override the task inferred from the target.")
@click.option("--table", help="SQLite or a database URL: the table to read.")
@click.option("--query", help="SQLite or a database URL: a SELECT query to read instead of a table.")
@click.option("--sample", default=None,
              help="Bundled sample to start from: churn (the default without --data), iris, wine, breast_cancer, diabetes.")
@click.option("--rows", type=int, default=None, help="Rows of sample data to generate (churn: 10000).")
@click.option("--remote", metavar="URL",
              help="DVC remote for data and models: a shared folder, or s3://, gs://, azure://, ssh:// ...")
@click.option("--ci", type=click.Choice(["github", "gitlab", "none"]), default="github", show_default=True,
              help="CI workflow to write (see `mlp ci init`).")
@click.option("--requirement", metavar="SPEC",
              help="The line of requirements.txt that installs mlp in CI, like 'mlp-pipeline @ git+https://...@COMMIT' "
                   "(default: how this mlp was installed, when a runner can reach that).")
@click.option("--engine", type=click.Choice(["pandas", "dask"]), default="pandas", show_default=True,
              help="What runs the stages: pandas in one process, or Dask (a LocalCluster, or dask.scheduler in params.yaml).")
@click.option("--force", is_flag=True, help="Scaffold into a folder that already has files (never overwrites them).")
def init(path: Path, data: str | None, target: str | None, task: str | None, table: str | None,
         query: str | None, sample: str | None, rows: int | None, remote: str | None, ci: str,
         requirement: str | None, engine: str, force: bool) -> None:
    """Scaffold a project: git, DVC, stages, params, a data contract (schema.yaml), the data, a first commit.

    With --data, your file is copied into data/raw/ (the original is never changed; an s3://, gs:// or az://
    URL is read where it is, on every repro) and schema.yaml is inferred from it: each column's kind, range
    and categories, and which columns to leave out and why.

    \b
    Examples:
      mlp init churn-demo --rows 50000
      mlp init wine-demo --sample wine
      mlp init titanic --data titanic.csv --target Survived
      mlp init shop --data shop.sqlite --query "SELECT * FROM orders" --target returned
@click.option("--data", metavar="FILE|URL",
              help="Your data: CSV, Parquet, JSON lines or SQLite; a database URL (postgresql://user@host/db); "
                   "or an s3://, gs:// or az:// URL.")
      mlp init churn-demo --remote /mnt/shared/churn-dvc-storage
      mlp init big-churn --engine dask --rows 5000000
    """
    from . import render
    from .scaffold import init

    result = init(path, sample=sample, rows=rows, force=force, data=data, target=target, task=task,
                  table=table, query=query, remote=remote, ci=ci, requirement=requirement, engine=engine)
    for note in result.notes:
        echo_err(f"Note: {note}")
    click.echo(f"Created {result.root} ({result.rows} rows in {result.data}, commit {result.commit}).")
    if result.schema is not None:
        click.echo(render.schema_summary(result.schema))
    click.echo(f"Next: cd {click.format_filename(str(path))} && mlp repro")
    if result.remote:
        click.echo(f"Share: commit dvc.lock and reports/, git push, and `dvc push` (data and models go to {result.remote}).")


@cli.command()
@click.argument("stages", nargs=-1)
@click.option("-f", "--force", is_flag=True, help="Run the stages even if nothing changed.")
@click.option("--dry", is_flag=True, help="Say what would run and why, without running anything.")
@SET_PARAM_OPTION
@click.option("-v", "--verbose", is_flag=True, help="Show each stage's own output as it runs.")
def repro(stages: tuple[str, ...], force: bool, dry: bool, overrides: tuple[str, ...], verbose: bool) -> None:
    """Run what changed (all stages, or STAGES and what they depend on), saying per stage why and how long.

    \b
    Examples:
      mlp repro
      mlp repro -S train.max_depth=4 -S train.n_estimators=500
      mlp repro train --dry
    """
    from . import render
    from .project import find_project
    from .repro import repro

    def started(name: str, changes: list) -> None:
        if sys.stderr.isatty() and not verbose:
            echo_err(f"running   {name} ...")

    result = repro(find_project(), list(stages) or None, force=force, dry=dry, overrides=list(overrides),
                   capture=not verbose, on_start=started, on_done=lambda r: click.echo(render.stage_run(r)))
    if result.dry:
        click.echo(render.dry_run(result.planned))
    else:
        click.echo(render.repro_summary(result.runs, result.params))
    if result.metrics:
        click.echo("\n" + render.metrics_table(result.metrics))


@cli.command()
@FORMAT_OPTION
@click.option("--json", "as_json", is_flag=True, hidden=True, help="The same as --format json.")
def status(fmt: str, as_json: bool) -> None:
    """What is out of date and why (changed params with old and new values, files, commands).

    \b
    Examples:
      mlp status
      mlp status --format json
    """
    from . import render
    from .project import find_project
    from .repro import status

    click.echo(render.status_report(status(find_project()), "json" if as_json else fmt))


@cli.command()
@click.option("--mermaid", is_flag=True, help="A Mermaid flowchart (renders in GitHub markdown).")
def dag(mermaid: bool) -> None:
    """The pipeline's stages in run order and how they connect.

    \b
    Example:
      mlp dag --mermaid
    """
    from . import dvc_adapter, render
    from .project import find_project

    nodes = dvc_adapter.pipeline(find_project())
    click.echo(render.dag_mermaid(nodes) if mermaid else render.dag_text(nodes))


@cli.command()
@click.option("--reproduce", "rebuild", is_flag=True,
              help="Rebuild the commit from scratch in a temporary clone and compare every output's hash.")
@FORMAT_OPTION
def check(rebuild: bool, fmt: str) -> None:
    """CI: exit 0 when dvc.lock matches the workspace and is committed; exit 1 naming each stale stage and why.

    With --reproduce, HEAD is rebuilt from scratch in a temporary clone (data from the local DVC cache or the
    DVC remote) and every output's hash is compared with dvc.lock: exit 1 names each output that differs.

    \b
    Examples:
      mlp check
      mlp check --reproduce --format md
    """
    from . import render
    from .check import check, reproduce
    from .project import find_project

    project = find_project()
    if rebuild:
        result = reproduce(project, on_done=lambda r: echo_err(render.stage_run(r)))
        click.echo(render.reproduce_report(result, fmt))
    else:
        result = check(project)
        for warning in result.warnings:  # the environment differs from requirements.lock or the bundle
            echo_err(f"Warning: {warning}")
        click.echo(render.check_report(result, fmt))
    _verdict(result)


@cli.command()
@FORMAT_OPTION
def doctor(fmt: str) -> None:
    """Check each stage's declared deps and params against what its script uses (read, never run): exit 1
    naming each local module, project file or param key a stage uses without declaring it in dvc.yaml; what a
    stage declares but does not use is a warning.

    \b
    Examples:
      mlp doctor
      mlp doctor --format json
    """
    from . import render
    from .doctor import doctor
    from .project import find_project

    result = doctor(find_project())
    click.echo(render.doctor_report(result, fmt))
    _verdict(result)


@cli.command()
def lock() -> None:
    """Write requirements.lock from this environment: the exact versions of the packages that change results.

    Run it after a deliberate upgrade (mlp check warns until you do), then commit the file: CI installs
    with it (pip install -r requirements.txt -c requirements.lock). Lines you added are kept and refreshed.

    \b
    Example:
      pip install -U xgboost-cpu && mlp lock && git commit -m "xgboost upgrade" requirements.lock
    """
    from . import render
    from .environment import refresh
    from .project import find_project

    click.echo(render.lock_report(refresh(find_project().root)))


@cli.command()
@click.argument("revs", nargs=-1)
@click.option("--params", "with_params", is_flag=True, help="Also compare params.yaml (the keys that differ).")
@click.option("--all", "show_all", is_flag=True, help="Show unchanged keys too.")
@FORMAT_OPTION
def compare(revs: tuple[str, ...], with_params: bool, show_all: bool, fmt: str) -> None:
    """Metrics (and params) side by side across revisions and the workspace, with the change and whether it is better.

    No REV compares HEAD with the workspace; one REV compares it with the workspace; more put them side by side.

    \b
    Examples:
      mlp compare                        # HEAD against the workspace
      mlp compare main --params          # main against the workspace, with the params that differ
      mlp compare main~3 main HEAD --format md
    """
    from . import render
    from .compare import compare
    from .project import find_project

    click.echo(render.comparison(compare(find_project(), list(revs), params=with_params, show_all=show_all), fmt))


@cli.command()
@click.argument("rev_range", required=False)
@click.option("-n", "count", type=int, default=None, help="Show at most N commits.")
@FORMAT_OPTION
def log(rev_range: str | None, count: int | None, fmt: str) -> None:
    """Metric history along the commits, newest first, with the params each commit changed.

    \b
    Examples:
      mlp log -n 20
      mlp log main..HEAD --format csv
    """
    from . import render
    from .compare import log
    from .project import find_project

    click.echo(render.metric_log(log(find_project(), count, rev_range), fmt))


@cli.command()
@click.option("--baseline", metavar="REV", default=None,
              help="The revision change rules compare with (default: gate.baseline in params.yaml, else the "
                   "project's default branch).")
@FORMAT_OPTION
def gate(baseline: str | None, fmt: str) -> None:
    """CI: check reports/metrics.json against the rules of params.yaml's gate: section; exit 1 when rejected.

    Value rules (min, max) judge the metrics; change rules (max_drop, max_rel_drop) judge how much worse they
    got, in each metric's direction, against the baseline revision. The result is written to reports/gate.json.

    \b
    Examples:
      mlp gate
      mlp gate --baseline origin/main --format md
    """
    from . import render
    from .gate import run_gate
    from .project import find_project

    result = run_gate(find_project(), baseline)
    click.echo(render.gate_report(result, fmt))
    _verdict(result)


@cli.group(name="ci")
def ci_group() -> None:
    """CI for the project: a workflow that reproduces, checks, gates and reports on every push."""


@ci_group.command(name="init")
@click.option("--provider", type=click.Choice(["github", "gitlab"]), default="github", show_default=True,
              help="GitHub Actions (.github/workflows/mlp.yml) or GitLab CI (.gitlab-ci.yml).")
@click.option("--requirement", metavar="SPEC",
              help="The line of a new requirements.txt that installs mlp in CI (default: how this mlp was installed, "
                   "when a runner can reach that).")
@click.option("--force", is_flag=True, help="Replace an existing workflow file.")
def ci_init(provider: str, requirement: str | None, force: bool) -> None:
    """Write a CI workflow: install, pull data (if a DVC remote is set), mlp repro, mlp check,
    mlp gate --baseline origin/BRANCH, and the metrics against BRANCH in the job summary. BRANCH is the
    project's default branch: origin's HEAD, else init.defaultBranch, else main or master.

    \b
    Examples:
      mlp ci init
      mlp ci init --provider gitlab
      mlp ci init --requirement "mlp-pipeline @ git+https://github.com/you/mlp.git@v0.1.0"
    """
    from .ci import ci_init
    from .project import find_project

    result = ci_init(find_project(), provider, force=force, requirement=requirement)
    for name in result.kept:
        echo_err(f"Note: kept your {name}; CI installs what it lists, so it must name mlp-pipeline.")
    for note in result.notes:
        echo_err(f"Note: {note}")
    click.echo(f"Wrote {', '.join(result.written)}. Commit it: git add {' '.join(result.written)} && git commit")


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())  # a str: an s3:// URL must stay as it is
@click.argument("output", type=click.Path(path_type=Path))
@MODEL_OPTION
@click.option("--chunk-rows", type=int, default=100_000, show_default=True, metavar="N",
              help="Rows read, checked and scored at a time (memory grows with it, not with the file).")
@click.option("--on-invalid", type=click.Choice(["fail", "mark", "drop"]), default="fail", show_default=True,
              help="Rows that break the contract: stop; score the rest and say why in an _invalid column; leave them out.")
@click.option("--keep", multiple=True, metavar="COL", help="Copy this input column (an id) into the output; repeatable.")
@click.option("--engine", type=click.Choice(["pandas", "dask"]), default="pandas", show_default=True,
              help="Score here, or the chunks on a Dask cluster (MLP_DASK_SCHEDULER, the project's dask.scheduler, "
                   "or a LocalCluster); needs mlp-pipeline[dask].")
def predict(input_path: str, output: Path, model: Path | None, chunk_rows: int, on_invalid: str,
            keep: tuple[str, ...], engine: str) -> None:
    """Score a CSV, Parquet or JSON lines file (or an s3://, gs:// or az:// object) into OUTPUT (.parquet, .csv
    or .jsonl), in chunks: the prediction, one probability_<class> column per class, rows checked against the
    model's contract.

    \b
    Examples:
      mlp predict data/new/customers.csv scores.parquet --keep customer_id
      mlp predict new.parquet scores.csv --model /srv/models/churn --on-invalid mark
      mlp predict huge.csv scores.parquet --engine dask --chunk-rows 500000
      mlp predict s3://my-bucket/new/customers.csv scores.parquet
    """
    from .predict import predict_file

    with _progress_line("scoring") as progress:
        result = predict_file(input_path, output, model=model, chunk_rows=chunk_rows, on_invalid=on_invalid, keep=keep,
                       progress=progress, engine=engine)
    echo_err(result.summary)


@contextlib.contextmanager
def _progress_line(label: str) -> Iterator[Callable[[int, float], None] | None]:
    """On a terminal, a callback drawing `label [#####-----] 42% 1,234 rows` on one line, redrawn in place and
    erased at the end; elsewhere (a pipe, a log file, CI) None: nothing is drawn."""
    if not sys.stderr.isatty():
        yield None
        return

    def show(rows: int, share: float) -> None:
        filled = int(share * 30)
        click.echo(f"\r{label} [{'#' * filled}{'-' * (30 - filled)}] {share:4.0%} {rows:,} rows", err=True, nl=False)

    try:
        yield show
    finally:
        click.echo("\r\033[K", err=True, nl=False)


@cli.group(name="deploy")
def deploy_group() -> None:
    """Ship the model: recipes that package the bundle with `mlp serve`."""


@deploy_group.command(name="docker")
@MODEL_OPTION
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="The folder for the build context (default: deploy/docker).")
@click.option("--force", is_flag=True, help="Replace a recipe already in that folder.")
def deploy_docker(model: Path | None, output: Path | None, force: bool) -> None:
    """Write a Dockerfile (slim Python, runtime dependencies only, non-root, HEALTHCHECK on /ready), its
    requirements.txt and .dockerignore, with copies of the bundle and of mlp, ready for `docker build`.

    \b
    Examples:
      mlp deploy docker
      mlp deploy docker --model models --output build/image && docker build -t churn build/image
    """
    from .deploy import write_docker

    recipe = write_docker(model, output, force=force)
    echo_err(f"Wrote {recipe.output}/ ({', '.join(recipe.files)}) for model {recipe.model_version}.")
    click.echo(f"docker build -t mlp-model {recipe.output} && docker run --rm -p 8000:8000 mlp-model")


@cli.command()
@click.argument("name")
@click.option("--rows", type=int, default=None, help="Rows to write (default: the sample's own size).")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed: the same arguments give the same bytes.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="File to write: .csv, .parquet or .jsonl.")
def sample(name: str, rows: int | None, seed: int, output: Path) -> None:
    """Write a bundled sample dataset (churn scales to millions of rows).

    \b
    Examples:
      mlp sample churn --rows 1000000 -o churn.csv
      mlp sample iris -o iris.parquet
    """
    from .samples import write_sample

    info = write_sample(name, output, rows=rows, seed=seed)
    echo_err(f"Wrote {output} ({info.name}: {info.task}, target '{info.target}').")


@cli.command()
@MODEL_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes (each loads the model).")
@click.option("--log", "log_file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Append one JSON line per scored row to FILE (the request log `mlp monitor` reads).")
@click.option("--max-body-bytes", type=int, default=1 << 20, show_default=True,
              help="Larger request bodies get 413.")
@click.option("--max-records", type=int, default=10_000, show_default=True,
              help="Requests with more records get 413.")
def serve(model: Path | None, host: str, port: int, workers: int, log_file: Path | None, max_body_bytes: int,
          max_records: int) -> None:
    """Serve the model over HTTP: POST /predict, MLflow's POST /invocations, /health, /ready, /metadata, /metrics
    and OpenAPI docs at /docs. SIGTERM or Ctrl-C: finish in-flight requests, flush the log, exit 0.

    \b
    Examples:
      mlp serve
      mlp serve --model /srv/churn-model --host 0.0.0.0 --port 8080 --workers 2 --log requests.jsonl
      curl -s localhost:8000/invocations -H 'Content-Type: text/csv' --data-binary @new_customers.csv
    """
    from .serve import ServeOptions, run_server

    def ready(started: Any) -> None:
        workers_note = f", {started.workers} workers" if started.workers > 1 else ""
        lineage = f" ({started.lineage})" if started.lineage else ""
        echo_err(f"Serving model {started.model_version}{lineage} on {started.url}{workers_note} "
                  f"(docs: {started.url}/docs); Ctrl-C or SIGTERM stops it.")

    run_server(ServeOptions(str(model) if model else None, host, port, workers, str(log_file) if log_file else None,
                            max_body_bytes, max_records), on_ready=ready)


def _failure(exc: Exception) -> tuple[str, str, int]:
    """Lines to show above the error, the one-line message, and the exit code."""
    if isinstance(exc, MlpError):
        return exc.details, exc.message, exc.exit_code
    if isinstance(exc, OSError):  # a path that cannot be read or written: the user's to fix, not a bug
        where = f": {exc.filename}" if exc.filename else ""
        return "", f"{exc.strerror or exc}{where}. Check that the path exists and that you may write there.", EXIT_ERROR
    # A bug in mlp, or something it did not anticipate.
    return "", (f"unexpected {type(exc).__name__}: {exc}. Rerun with --debug for the traceback, "
                "and report it if it looks like a bug in mlp."), EXIT_ERROR


cli.add_command(cli_experiments.sweep)
cli.add_command(cli_experiments.exp_group)
cli.add_command(cli_monitor.monitor)
cli.add_command(cli_stage.stage_group)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn every failure into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or os.environ.get("MLP_DEBUG") == "1"
    # --debug is accepted anywhere on the line, so a failing command can be rerun with it appended.
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        cli.main(args=args, prog_name="mlp", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:
        # Bare `mlp` (or `mlp ci`) asks what there is: the help, on stdout, not an error.
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        return 0
    except click.UsageError as exc:
        # One line, like every other error, instead of click's three-line usage block.
        where = exc.ctx.command_path if exc.ctx else "mlp"
        echo_err(f"Error: {exc.format_message()} See '{where} --help'.")
        return EXIT_ERROR
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    except click.exceptions.Abort:
        echo_err("Error: aborted.")
        return 130
    except KeyboardInterrupt:
        echo_err("Error: interrupted; nothing half-written is kept, run the command again to finish.")
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        details, message, code = _failure(exc)
        if details:
            echo_err(details)
        echo_err(f"Error: {message}")
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
