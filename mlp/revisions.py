"""Reading files at git revisions, straight from git's objects, never by checking a revision out.

One `git cat-file --batch` process serves every read (`GitReader`); `read_many` feeds it all requests at once, so
reading 300 commits x 3 files costs one process and a few milliseconds. Metrics that a revision keeps as DVC-cached
outputs are found through that revision's dvc.lock and read from the local DVC cache.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import dvc_adapter
from .errors import MlpError, ProjectError, UsageError
from .files import parse_yaml
from .project import LOCK_FILE

WORKSPACE = "workspace"  # the pseudo-revision for the files on disk; callers use read_workspace for it
_FIELD, _RECORD = "\x1f", "\x00"


def _need_git() -> None:
    if shutil.which("git") is None:
        raise MlpError("git is not installed or not on PATH; install git and run again.")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    _need_git()
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _label(rev: str) -> str:
    """A revision as a note shows it: full shas shortened."""
    return re.sub(r"^([0-9a-f]{7})[0-9a-f]{33}", r"\1", rev)


class GitReader:
    """Files at revisions through one long-lived `git cat-file --batch`. Use as a context manager."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        _need_git()
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["git", "cat-file", "--batch"], cwd=self.root,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def __enter__(self) -> GitReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def read(self, rev: str, path: str) -> bytes | None:
        """The file `path` (relative to the repository root) at `rev`, or None when it is not there."""
        return self.read_many([(rev, path)])[0]

    def read_many(self, requests: list[tuple[str, str]]) -> list[bytes | None]:
        """Many files at once, in the order asked: all requests are written (by a thread) while answers are read."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise MlpError("the git reader is closed; open a new GitReader.")
        lines = []
        for rev, path in requests:
            spec = f"{rev}:{path.lstrip('/')}"
            if "\n" in spec or "\r" in spec:
                raise UsageError(f"cannot read {spec!r}: revisions and paths must not contain line breaks.")
            lines.append(spec + "\n")
        payload = "".join(lines).encode("utf-8", "surrogateescape")

        def write() -> None:
            with contextlib.suppress(OSError, ValueError):  # git died: the reading below reports it
                proc.stdin.write(payload)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            answers = [self._answer(proc) for _ in requests]
        finally:
            writer.join()
        return answers

    def _answer(self, proc: subprocess.Popen[bytes]) -> bytes | None:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        if not header:
            message = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            self.close()
            last = message.splitlines()[-1] if message else "git cat-file stopped"
            raise ProjectError(f"cannot read git objects in {self.root}: {last}; run mlp inside a git repository.")
        parts = header.rstrip(b"\n").split(b" ")
        if parts[-1] in (b"missing", b"ambiguous"):  # "<what was asked> missing"; it may contain spaces
            return None
        if len(parts) != 3 or not parts[2].isdigit():
            self.close()
            raise MlpError(f"unexpected answer from git cat-file: {header[:80]!r}; check that git works here.")
        size = int(parts[2])
        content = proc.stdout.read(size + 1)[:size]  # the object, then one newline
        return content if parts[1] == b"blob" else None  # a folder (tree) is not a file


def resolve(root: str | Path, rev: str) -> str:
    """The full sha of the commit `rev` names: a branch, tag, sha, expression like HEAD~2, or a DVC experiment."""
    root = Path(root)
    if rev and not rev.startswith("-"):
        found = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
        refs = _git(root, "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
        matches = [ref for ref in refs if ref.rsplit("/", 1)[-1] == rev]
        if len(matches) > 1:  # the same experiment name on several baselines: prefer the one based on HEAD
            head = _git(root, "rev-parse", "HEAD").stdout.strip()
            on_head = [ref for ref in matches if ref.split("/")[2:4] == [head[:2], head[2:]]]
            if len(on_head) != 1:
                raise UsageError(f"experiment name '{rev}' matches {len(matches)} experiments on different "
                                 "baselines; name one by its sha (see `dvc exp show`).")
            matches = on_head
        if matches:
            found = _git(root, "rev-parse", "--verify", "--quiet", f"{matches[0]}^{{commit}}")
            if found.returncode == 0:
                return found.stdout.strip()
    raise UsageError(f"unknown revision '{rev}': not a branch, tag or commit here; see `git log --oneline`.")


@dataclass(frozen=True)
class Commit:
    sha: str
    short: str
    date: str  # committer date, ISO 8601 with offset
    subject: str


def history(root: str | Path, n: int | None = None, rev_range: str | None = None) -> list[Commit]:
    """The commits of `rev_range` (default: HEAD), newest first, at most `n`; one `git log` call."""
    args = ["log", "-z", f"--format=%H{_FIELD}%h{_FIELD}%cI{_FIELD}%s"]
    if n is not None:
        if n < 1:
            raise UsageError(f"-n must be at least 1, not {n}.")
        args.append(f"--max-count={n}")
    target = rev_range or "HEAD"
    if target.startswith("-"):
        raise UsageError(f"bad revision range '{target}': it must not start with '-'; see `git log --oneline`.")
    result = _git(Path(root), *args, *([rev_range] if rev_range else []), "--")
    if result.returncode != 0:
        if rev_range is None and "does not have any commits" in result.stderr:
            return []
        raise UsageError(f"bad revision range '{target}': not commits git knows here (use A..B with branches, "
                         "tags or shas); see `git log --oneline`.")
    commits = []
    for record in result.stdout.split(_RECORD):
        record = record.strip("\n")
        if record:
            sha, short, date, subject = record.split(_FIELD, 3)
            commits.append(Commit(sha, short, date, subject))
    return commits


def read_workspace(root: str | Path, path: str) -> bytes | None:
    """The file `path` as it is on disk now (the `workspace` pseudo-revision), or None when it is not there."""
    file = Path(root) / path
    return file.read_bytes() if file.is_file() else None


# How a metrics note starts when the revision simply has no metrics file (a first run), as opposed to one that
# cannot be read; `mlp gate` skips change rules only in the first case.
NO_METRICS_FILE = "no metrics file"


def read_yaml_at(reader: GitReader, rev: str, path: str) -> dict[str, Any] | None:
    """A YAML mapping (params.yaml) at `rev`, or None when the file is not there."""
    return yaml_mapping(reader.read(rev, path), path, rev)


def yaml_mapping(content: bytes | None, path: str, rev: str) -> dict[str, Any] | None:
    """`content` (the file `path` at `rev`, or in the workspace) as a YAML mapping; None when there is no file.
    A file that is not a valid YAML mapping is a one-line ProjectError naming where it is."""
    if content is None:
        return None
    where = "in the workspace" if rev == WORKSPACE else f"at {_label(rev)}"
    fix = "fix the file and run again" if rev == WORKSPACE else "fix it in a new commit or compare other revisions"
    try:
        data = parse_yaml(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise ProjectError(f"{path} is not valid YAML {where}{line}; {fix}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path} {where} is not a mapping of names to values; {fix}.")
    return data


def read_metrics_at(reader: GitReader, root: str | Path, rev: str,
                    path: str) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON metrics file at `rev` and a note: from git, else from the DVC cache through that revision's dvc.lock.

    Returns (metrics, None) when read, (None, why) when not: no such file, invalid JSON, or not in the local cache.
    """
    return read_metrics_many(reader, root, [rev], path)[0]


def read_metrics_many(reader: GitReader, root: str | Path, revs: list[str],
                      path: str) -> list[tuple[dict[str, Any] | None, str | None]]:
    """`read_metrics_at` for many revisions with one batch of git reads (what `mlp log -n 300` needs)."""
    answers = reader.read_many([(rev, name) for rev in revs for name in (path, LOCK_FILE)])
    return [_metrics(Path(root), rev, path, answers[2 * i], answers[2 * i + 1]) for i, rev in enumerate(revs)]


def _metrics(root: Path, rev: str, path: str, content: bytes | None,
             lock_bytes: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
    if content is None and lock_bytes is not None:
        try:
            lock = parse_yaml(lock_bytes)
        except yaml.YAMLError:
            return None, f"{LOCK_FILE} is not valid YAML at {_label(rev)}"
        found = dvc_adapter.cached_output(root, lock, path)
        if found.tracked:
            if found.content is None:
                return None, found.problem.replace("{rev}", _label(rev))
            content = found.content
    if content is None:
        return None, f"{NO_METRICS_FILE} at {_label(rev)}"
    return parse_metrics(content, "metrics file", f"at {_label(rev)}")


def parse_metrics(content: bytes, name: str, where: str) -> tuple[dict[str, Any] | None, str | None]:
    """A metrics file's JSON object, or None and why not (`{name} is not valid JSON {where}`)."""
    try:
        metrics = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None, f"{name} is not valid JSON {where}"
    if not isinstance(metrics, dict):
        return None, f"{name} is not a JSON object of metric names to values {where}"
    return metrics, None


def workspace_metrics(root: str | Path, path: str) -> tuple[dict[str, Any] | None, str | None]:
    """The metrics file on disk, or None and why not: missing (run `mlp repro`), not valid JSON, not an object."""
    content = read_workspace(root, path)
    if content is None:
        return None, f"no {path} in the workspace; run `mlp repro`"
    return parse_metrics(content, path, "in the workspace")
