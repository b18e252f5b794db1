"""`mlp deploy docker`: the recipe's own commands (its pip install and its CMD), run in a fresh virtual environment
whose pip sees only the wheelhouse, start a server that answers /ready — with no DVC and no scikit-learn installed.
No image registry is reachable here, so no image is built: what is run is what the Dockerfile says."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
import venv
from pathlib import Path

import pytest

from conftest import mlp, snapshot
from test_ci import _runner_env
from test_errors import assert_one_line_error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_dockerfile(text: str) -> dict:
    """The instructions this recipe uses, joined across line continuations: ENV pairs, RUN commands, CMD and the
    HEALTHCHECK command (exec form)."""
    lines, current = [], ""
    for raw in text.splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        current += raw.rstrip().removesuffix("\\") + (" " if raw.rstrip().endswith("\\") else "")
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    parsed: dict = {"ENV": {}, "RUN": [], "FROM": None, "USER": None, "CMD": None, "HEALTHCHECK": None}
    for line in lines:
        op, _, rest = line.partition(" ")
        if op == "ENV":
            parsed["ENV"].update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif op == "RUN":
            parsed["RUN"].append(rest)
        elif op == "CMD":
            parsed["CMD"] = json.loads(rest)
        elif op == "HEALTHCHECK":
            parsed["HEALTHCHECK"] = json.loads(rest[rest.index(" CMD ") + 5:])
        elif op in ("FROM", "USER"):
            parsed[op] = rest
    return parsed


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_recipe_installs_only_the_runtime_and_its_cmd_serves_the_model(project: Path, tmp_path: Path,
                                                                            wheelhouse: Path) -> None:
    context = tmp_path / "image"
    result = mlp(project, "deploy", "docker", "--output", str(context), check=True)
    assert "docker build" in result.out
    names = sorted(p.name for p in context.iterdir())
    assert names == [".dockerignore", ".gitignore", "Dockerfile", "mlp", "model", "requirements.txt"]
    recipe = parse_dockerfile((context / "Dockerfile").read_text())
    assert recipe["FROM"] == "python:3.11-slim"
    assert recipe["USER"] and recipe["USER"] != "root"
    assert recipe["HEALTHCHECK"] and "/ready" in " ".join(recipe["HEALTHCHECK"])
    meta = json.loads((project / "models/meta.json").read_text())
    pins = dict(line.split("==") for line in (context / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert pins["numpy"] == meta["versions"]["numpy"] and pins["xgboost-cpu"] == meta["versions"]["xgboost"]
    assert not {"dvc", "scikit-learn", "tabulate", "ruamel.yaml"} & set(pins)  # runtime only
    assert snapshot(context / "model") == snapshot(project / "models")

    # A fresh venv stands in for the image: /app is the build context, pip sees only the wheelhouse.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    env = {**_runner_env(env_dir, wheelhouse), **recipe["ENV"], "PYTHONPATH": str(context)}
    env.pop("PIP_NO_CACHE_DIR", None)  # pip reads "1" as a cache folder name in some versions; the flag is passed
    for command in recipe["RUN"]:
        if command.startswith("pip install"):
            proc = subprocess.run(shlex.split(command), cwd=context, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert proc.returncode == 0, proc.stdout + proc.stderr
    python = env_dir / "bin/python"
    for absent in ("dvc", "sklearn", "tabulate"):  # no DVC, no training-only packages in the image
        proc = subprocess.run([str(python), "-c", f"import {absent}"], env=env, capture_output=True)
        assert proc.returncode != 0, f"{absent} is installed in the runtime"

    port = _free_port()
    command = [str(python) if c == "python" else c.replace("/app", str(context)) for c in recipe["CMD"]]
    command[command.index("--port") + 1] = str(port)
    server = subprocess.Popen(command, cwd=context, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        status = None
        while time.time() < deadline and server.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/ready")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert status == 200, server.stderr.read() if server.poll() is not None else "no /ready within 120 s"
        meta_now = json.loads(_get(f"http://127.0.0.1:{port}/metadata")[1])
        assert meta_now["model_version"] == result.err.split("for model ")[1].rstrip(".\n")
        health = [str(python) if c == "python" else c for c in recipe["HEALTHCHECK"]]
        health = [c.replace(":8000/", f":{port}/") for c in health]
        assert subprocess.run(health, env=env, timeout=30).returncode == 0  # the HEALTHCHECK passes
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # what `docker stop` sends
        code = server.wait(timeout=60)
    assert code == 0, server.stderr.read()


def test_bad_inputs_leave_nothing_behind(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    result = mlp(outside, "deploy", "docker")
    assert_one_line_error(result, "--model")
    assert list(outside.iterdir()) == []

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = mlp(project, "deploy", "docker", "--output", str(taken))
    assert_one_line_error(result, "--force")
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]

    model = project / "models/model.json"
    model.write_bytes(model.read_bytes().replace(b'"', b"'", 1))
    result = mlp(project, "deploy", "docker", "--output", str(tmp_path / "new"))
    assert_one_line_error(result, "changed after training")
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("args", [["--output"], ["--model"]])
def test_options_need_values(project: Path, args: list[str]) -> None:
    assert_one_line_error(mlp(project, "deploy", "docker", *args), "requires an argument")
