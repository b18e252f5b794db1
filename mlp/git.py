"""The few git operations scaffolding needs, through the `git` command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import MlpError

# Used only when the user has no git identity yet, so that `mlp init` can still make its first commit.
# The branch `mlp init` creates when the user configured none, and the default branch when nothing says otherwise.
DEFAULT_BRANCH = "main"

FALLBACK_IDENTITY = ["-c", "user.name=mlp", "-c", "user.email=mlp@localhost"]


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if shutil.which("git") is None:
        raise MlpError("git is not installed or not on PATH; install git and run again.")
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise MlpError(f"git {args[0]} failed in {cwd}: {detail[-1] if detail else 'exit ' + str(result.returncode)}")
    return result


def toplevel(path: Path) -> Path | None:
    """The root of the git repository containing `path`, or None outside any repository."""
    result = _git(path, "rev-parse", "--show-toplevel", check=False)
    return Path(result.stdout.strip()).resolve() if result.returncode == 0 else None


def is_ignored(top: Path, path: Path) -> bool:
    """Whether the repository at `top` ignores the folder `path` (which may not exist yet)."""
    rel = path.relative_to(top).as_posix() + "/"
    return _git(top, "check-ignore", "-q", rel, check=False).returncode == 0


def init(path: Path) -> str:
    """`git init`, on a branch named `main` unless the user configured init.defaultBranch; returns the branch."""
    _git(path, "init", "-q", *([] if _configured_branch(path) else [f"--initial-branch={DEFAULT_BRANCH}"]))
    return current_branch(path) or DEFAULT_BRANCH


def _configured_branch(path: Path) -> str:
    return _git(path, "config", "--get", "init.defaultBranch", check=False).stdout.strip()


def current_branch(path: Path) -> str | None:
    """The branch HEAD is on (also before its first commit), or None on a detached HEAD."""
    return _git(path, "symbolic-ref", "--short", "-q", "HEAD", check=False).stdout.strip() or None


def default_branch(path: Path) -> str:
    """The project's main line, which the gate compares with and CI triggers on: origin's HEAD (the branch a clone
    checks out), else the branch `git init` gives here (init.defaultBranch) if it exists, else main or master,
    whichever exists (main first), else the current branch, else (a detached HEAD with none of these) main."""
    remote = _git(path, "symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD", check=False).stdout.strip()
    if remote.startswith("origin/"):
        return remote.removeprefix("origin/")
    for name in dict.fromkeys([_configured_branch(path), "main", "master"]):
        if name and _git(path, "show-ref", "--verify", "-q", f"refs/heads/{name}", check=False).returncode == 0:
            return name
    return current_branch(path) or DEFAULT_BRANCH


def has_identity(path: Path) -> bool:
    return bool(_git(path, "config", "user.email", check=False).stdout.strip())


def commit(path: Path, files: list[str], message: str) -> str:
    """Commit exactly `files` (nothing else the user had staged) and return the new commit's short sha."""
    _git(path, "add", "--", *files)
    identity = [] if has_identity(path) else FALLBACK_IDENTITY
    _git(path, *identity, "commit", "-q", "-m", message, "--", *files)
    return _git(path, "rev-parse", "--short", "HEAD").stdout.strip()


def head(path: Path) -> str | None:
    """The full sha of HEAD, or None in a repository without commits."""
    result = _git(path, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    return result.stdout.strip() or None


def uncommitted(path: Path, files: list[str]) -> dict[str, str]:
    """Which of `files` differ from HEAD: {path: modified | not committed | deleted}."""
    lines = _git(path, "status", "--porcelain=v1", "--untracked-files=all", "--", *files).stdout.splitlines()
    states = {}
    for line in lines:
        code, name = line[:2], line[3:].strip('"')
        states[name] = "not committed" if code == "??" else "deleted" if "D" in code else "modified"
    return states


def changed_files(path: Path) -> tuple[list[str], list[str]]:
    """The tracked files whose workspace content differs from HEAD (staged or not): (changed, deleted).
    Untracked files are not included."""
    out = _git(path, "diff", "--name-status", "--no-renames", "-z", "HEAD").stdout.split("\0")
    changed, deleted = [], []
    for status, name in zip(out[0::2], out[1::2]):
        (deleted if status == "D" else changed).append(name)
    return changed, deleted


def copy_identity(source: Path, dest: Path) -> None:
    """Give the repository `dest` the commit author `source` uses (mlp's fallback if it has none)."""
    for key, fallback in (("user.name", "mlp"), ("user.email", "mlp@localhost")):
        value = _git(source, "config", key, check=False).stdout.strip() or fallback
        _git(dest, "config", key, value)


def clone_at(source: Path, dest: Path, sha: str) -> None:
    """A clone of `source` at commit `sha` (its work tree only; nothing of the source's uncommitted changes)."""
    _git(source, "clone", "-q", "--no-checkout", str(source), str(dest))
    _git(dest, "-c", "advice.detachedHead=false", "checkout", "-q", sha)
