"""`mlp deploy docker`: a container recipe that serves a model bundle with `mlp serve`.

The build context it writes (default deploy/docker/):
  Dockerfile        a slim Python base, the runtime requirements, the bundle, `mlp serve` as a non-root
                    user, a HEALTHCHECK on /ready
  requirements.txt  only what serving needs, pinned: the versions the bundle was trained with for the
                    packages that compute predictions (numpy, pandas, xgboost or scikit-learn), this
                    environment's versions for the rest. No DVC, no training-only packages.
  mlp/              this mlp's own Python files (the package is pure Python; vendoring it pins the server
                    code to the mlp that built the recipe, with no package index involved)
  model/            a copy of the bundle
  .dockerignore, .gitignore (model/ and mlp/ are build inputs, not sources to commit)

The Dockerfile's commands are the recipe: tests run its `pip install` and its CMD in a fresh virtual
environment (no image can be built here), so what is tested is what the image runs.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .bundle import load
from .errors import DataError, UsageError

APP = "/app"
PORT = 8000
DEFAULT_OUTPUT = Path("deploy/docker")
# What `mlp serve` imports: the CLI, the bundle's code (features.py, contract.py) and the HTTP server.
SERVE = ["click", "PyYAML", "numpy", "pandas", "pyarrow", "fastapi", "uvicorn", "httptools", "uvloop",
         "prometheus-client"]
MODEL_PACKAGES = {"xgboost": ["xgboost-cpu"], "sklearn": ["scikit-learn", "joblib"]}
# The distribution that provides each version meta.json records (it records import names).
TRAINED_WITH = {"numpy": "numpy", "pandas": "pandas", "xgboost-cpu": "xgboost", "scikit-learn": "scikit-learn"}


@dataclass
class Recipe:
    output: Path
    model_version: str
    requirements: list[str]
    files: list[str]


def requirements(meta: dict) -> list[str]:
    """The pinned runtime requirements for a bundle (pure: versions from `meta` and the installed packages)."""
    kind = "xgboost" if meta.get("model") == "xgboost" else "sklearn"
    trained = meta.get("versions") or {}
    lines = []
    for name in SERVE + MODEL_PACKAGES[kind]:
        version = trained.get(TRAINED_WITH.get(name, ""))
        if version is None:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                if name in ("fastapi", "uvicorn", "httptools", "uvloop", "prometheus-client"):
                    raise UsageError(f"{name} is not installed here, so the recipe cannot pin it; install the "
                                     "serve extra: pip install 'mlp-pipeline[serve]'.") from None
                raise UsageError(f"{name} is not installed here, so the recipe cannot pin it; pip install {name}.") from None
        lines.append(f"{name}=={version}")
    return lines


def dockerfile(python: str, port: int = PORT) -> str:
    """The Dockerfile text for a Python `python` (major.minor) base image."""
    return f"""\
# Serves the model bundle in model/ with `mlp serve` (written by `mlp deploy docker`).
#   docker build -t churn-model . && docker run --rm -p {port}:{port} churn-model
FROM python:{python}-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PYTHONPATH={APP}
WORKDIR {APP}

# Only what serving needs (no DVC, no training-only packages), pinned; this layer is cached until they change.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY mlp/ {APP}/mlp/
COPY model/ {APP}/model/
RUN useradd --system --uid 10001 --no-create-home mlp
USER mlp

EXPOSE {port}
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \\
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/ready', timeout=2)"]
# uvicorn stops on SIGTERM (docker stop) after finishing the requests in flight.
CMD ["python", "-m", "mlp", "serve", "--model", "{APP}/model", "--host", "0.0.0.0", "--port", "{port}", "--workers", "2"]
"""


DOCKERIGNORE = """\
# Only the files the Dockerfile copies belong in the build context.
**/__pycache__
**/*.pyc
.git
"""

GITIGNORE = """\
# Build inputs copied by `mlp deploy docker`: the model is DVC's, mlp is the installed package.
/model/
/mlp/
"""


def _copy_package(dest: Path) -> None:
    """This mlp's Python files (without the stage templates, which only `mlp init` needs)."""
    source = Path(__file__).resolve().parent
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "templates"))


def write_docker(model: str | Path | None = None, output: Path | None = None, force: bool = False,
                 cwd: Path | None = None) -> Recipe:
    """Write the build context for an image that serves the bundle; nothing is written if anything fails."""
    loaded = load(model, cwd)
    output = Path(output or (cwd or Path.cwd()) / DEFAULT_OUTPUT)
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file; pass --output with a folder for the recipe.")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise UsageError(f"{output} already has files; pass --force to replace the recipe there, "
                         "or --output with another folder.")
    lines = requirements(loaded.meta)
    python = ".".join((loaded.meta.get("versions", {}).get("python") or platform.python_version()).split(".")[:2])
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the context from other users
        (tmp / "Dockerfile").write_text(dockerfile(python), encoding="utf-8")
        (tmp / "requirements.txt").write_text(
            f"# mlp serve's runtime for model {loaded.version} (numpy, pandas and the model's library at the "
            "versions it was trained with)\n" + "\n".join(lines) + "\n", encoding="utf-8")
        (tmp / ".dockerignore").write_text(DOCKERIGNORE, encoding="utf-8")
        (tmp / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
        shutil.copytree(loaded.path, tmp / "model", ignore=shutil.ignore_patterns("__pycache__"))
        _copy_package(tmp / "mlp")
        if output.exists():
            shutil.rmtree(output)
        tmp.replace(output)
    except OSError as exc:
        raise DataError(f"cannot write the recipe to {output}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = ["Dockerfile", "requirements.txt", ".dockerignore", ".gitignore", "model/", "mlp/"]
    return Recipe(output, loaded.version, lines, files)
