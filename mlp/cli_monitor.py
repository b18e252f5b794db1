"""`mlp monitor`: registered on the main group by mlp/cli.py; it parses, calls mlp/monitor.py and renders."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_options import FORMAT_OPTION, MODEL_OPTION, echo_err
from .errors import CheckFailed


@click.command()
@click.argument("current", type=click.Path(path_type=Path))
@MODEL_OPTION
@click.option("--reference", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="A profile.json to compare with (default: the bundle's models/profile.json).")
@click.option("--window", default=None, metavar="ROWS|DURATION",
              help="Cut CURRENT into windows of N rows or of a duration (30m, 1h, 1d, 2w); the verdict is the "
                   "last window's.")
@click.option("--html", "html", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Also write a self-contained HTML report (charts, no network needed).")
@FORMAT_OPTION
def monitor(current: Path, model: Path | None, reference: Path | None, window: str | None, html: Path | None,
            fmt: str) -> None:
    """Drift, performance and serving health of CURRENT against the model's reference profile; exit 1 on an alert.

    CURRENT is new data (CSV, Parquet, JSON lines) or the request log of `mlp serve --log FILE`, read as it is.
    Thresholds and tests: the monitor: section of params.yaml.

    \b
    Examples:
      mlp monitor data/new/customers.csv
      mlp monitor requests.jsonl --window 1h --html reports/monitor.html
      mlp monitor new.parquet --model path/to/models --format json
    """
    from . import render
    from .monitor import monitor_current

    report = monitor_current(current, model, reference, window)
    if html is not None:
        from .monitor_html import write_html

        write_html(report, html)
        echo_err(f"Wrote {html}")
    click.echo(render.monitor_report(report, fmt))
    if report.alerts:
        raise CheckFailed(render.monitor_summary(report))
