"""Data in object storage (s3://, gs://, az:// URLs) for `mlp init --data URL` and `mlp predict URL OUT`.

The bytes are fetched by the ingest stage's own code (stages/object_store.py, through sources.py as
`mlp predict` loads it), into a temporary copy that the usual local-file code then reads: the same sniffing
of format, delimiter and encoding as for a file, the same readers. A URL project's data is not copied into
data/raw/ nor `dvc add`ed: params.yaml's ingest.path is the URL and the ingest stage runs on every repro
(see scaffold._ingest_from_url). Credentials come from the environment or the project's .env, never from
the URL, and are never shown: the stage code redacts its messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .datafile import DataSource
from .errors import DataError, MlpError

SCHEMES = ("s3", "gs", "az")


def is_object_url(text: object) -> bool:
    """Whether `text` names object storage (s3:, gs: or az:), well formed or not (the stage code says which)."""
    return isinstance(text, str) and ":" in text and text.split(":", 1)[0].lower() in SCHEMES


@contextlib.contextmanager
def local_copy(url: str) -> Iterator[Path]:
    """A temporary local copy of the object at `url`, removed afterwards; its failures as one-line DataErrors."""
    from .predict_files import load_sources

    store = load_sources(None).object_store  # mlp's own copy of the stage code
    try:
        with store.local_copy(url) as (local, _version):
            yield Path(local)
    except SystemExit as exc:  # the stage's fail(): "<stage>: message"
        raise DataError(str(exc.code).split(": ", 1)[-1]) from None


def predict_url(url: str, output: str | Path, **options: Any) -> Any:
    """predict.predict_file on a temporary copy of the object at `url`; its messages and result name the URL."""
    import dataclasses

    from .predict import predict_file

    with local_copy(url) as local:
        try:
            result = predict_file(local, output, **options)
        except MlpError as exc:
            exc.message = exc.message.replace(str(local), url)
            exc.args = (exc.message,)
            raise
    return dataclasses.replace(result, input=url)


def inspect_url(url: str, table: str | None = None, query: str | None = None) -> DataSource:
    """What datafile.inspect tells of a local file, for an object: read from a temporary copy of it."""
    from .datafile import inspect

    with local_copy(url) as local:
        try:
            source = inspect(local, table, query)
        except MlpError as exc:
            raise type(exc)(exc.message.replace(str(local), url)) from None
    if source.format == "sqlite":
        raise DataError(f"{url} is a SQLite database; ingest reads CSV, Parquet or JSON lines from object storage: "
                        "download it and pass the local file with --data.")
    return DataSource(Path(local.name), source.format, source.ingest, source.notes, url=url)
