"""`mlp init --data postgresql://...`: a database table or query as the project's data.

The contract is inferred by the project's own ingest stage, as for a file (stages/database.py reads the rows);
this module only checks the options, takes a password out of the URL and keeps it in the project's `.env`
(git-ignored, mode 600), so that params.yaml, dvc.lock and git never hold it. The URL checks and the password
handling are the stages' own (stages/database.py, stages/credentials.py), loaded from mlp's copy of them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

from .datafile import DataSource
from .errors import UsageError

ENV_FILE = ".env"


def _stage_module(name: str) -> ModuleType:
    """A module of mlp's copy of stages/ (database.py imports common and credentials from its folder)."""
    from .scaffold import template_root

    folder = template_root() / "stages"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(f"_mlp_stage_{name}", folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def is_database_url(data: str) -> bool:
    """Is --data a database URL (postgresql://..., mysql+pymysql://...), not a file or an object-storage URL?"""
    return "://" in data and _stage_module("database").is_url(data)


def redact(text: str) -> str:
    """`text` without the password of any URL in it (nor any secret of the environment)."""
    return _stage_module("credentials").redact(text)


def password_variable(url: str) -> str:
    """The variable that holds the URL's password: libpq's own for PostgreSQL, mlp's for any other database."""
    return "PGPASSWORD" if urlsplit(url).scheme.lower() in ("postgresql", "postgres") else "MLP_DB_PASSWORD"


def inspect_url(url: str, table: str | None, query: str | None) -> DataSource:
    """The database URL as ingest will read it (the password taken out: in DataSource.secret); option mistakes
    as UsageError."""
    shown = redact(url)
    try:
        urlsplit(url).port
    except ValueError:
        raise UsageError(f"--data {shown} is not a valid database URL (its port is not a number from 1 to 65535); "
                         "write it like postgresql://user@host:5432/dbname.") from None
    bare, secret = _stage_module("credentials").split_password(url)
    parts = urlsplit(bare)
    if parts.scheme.split("+")[0] != "sqlite" and not parts.hostname:
        raise UsageError(f"--data {shown} names no host; write it like postgresql://user@host:5432/dbname.")
    if bool(table) == bool(query):
        raise UsageError(f"--data {shown} is a database; pass --table NAME or --query 'SELECT ...' (one of them).")
    notes = []
    if secret:
        notes.append(f"the password in --data went to .env as {password_variable(bare)} (git-ignored, readable only "
                     f"by you), not into params.yaml; in CI set {password_variable(bare)} as a secret variable")
    name = Path(str(table) if table else "query")
    return DataSource(name, "database", {"format": "auto", "table": table, "query": query}, notes,
                      url=bare, secret=secret)


def write_secret(root: Path, source: DataSource, created: list[Path]) -> None:
    """Add the URL's password to the project's .env (mode 600), for the ingest stage to read; nothing without one."""
    if not source.secret or not source.url:
        return
    env = root / ENV_FILE
    if not env.exists():
        created.append(env)
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        quote = "'" if "'" not in source.secret else '"'  # .env values are taken as written between the quotes
        f.write(f"# the database password for ingest.path (mlp init); never commit this file\n"
                f"{password_variable(source.url)}={quote}{source.secret}{quote}\n")
    os.chmod(env, 0o600)
