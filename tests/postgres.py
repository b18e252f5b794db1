"""A throwaway PostgreSQL server for the tests and bench/database.py: Debian's `postgresql` package, a fresh data
folder, 127.0.0.1 on a free port, password (scram) authentication. PostgreSQL refuses to run as root: as root,
the server runs as the `postgres` user (runuser), in a folder it owns."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "me"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: Debian keeps them in /usr/lib/postgresql/VERSION/bin, off the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    folder: Path
    port: int
    password: str
    bin: Path
    as_postgres: bool

    def url(self, database: str = "postgres", password: bool = False) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def psql(self, database: str, sql: str, *args: str) -> str:
        """Run SQL with psql (stops on the first error); its output."""
        env = {**os.environ, "PGPASSWORD": self.password}
        proc = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", USER, "-d", database, *args, "-c", sql],
                              capture_output=True, text=True, env=env, check=False)
        if proc.returncode:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, name: str) -> str:
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start(password: str = "s3cret-Pw.42") -> Server:
    """Initialise and start a server; Server.stop() stops it and removes its folder."""
    bin_ = binaries()
    if bin_ is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (or `make sysdeps` as root)")
    folder = Path(tempfile.mkdtemp(prefix="mlp-pg-"))  # not under pytest's tmp: the postgres user must reach it
    as_postgres = os.getuid() == 0
    (folder / "pw").write_text(password)
    if as_postgres:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    server = Server(folder, free_port(), password, bin_, as_postgres)
    data = folder / "data"
    server._run(str(bin_ / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={folder / 'pw'}",
                "--auth=scram-sha-256", "--no-sync")
    (folder / "pw").unlink()
    try:
        server._run(str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "-o",
                    f"-p {server.port} -h 127.0.0.1 -k {data} -c fsync=off", "start")
    except subprocess.CalledProcessError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server
