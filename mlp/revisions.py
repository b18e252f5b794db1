"""Reading files at git revisions, straight from git's objects, never by checking a revision out.

One `git cat-file --batch` process serves every read (`GitReader`); `read_many` feeds it all requests at once, so
reading 300 commits x 3 files costs one process and a few milliseconds. Metrics that a revision keeps as DVC-cached
outputs are found through that revision's dvc.lock and read from the local DVC cache.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import posixpath
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import MlpError, ProjectError, UsageError
from .files import parse_yaml

WORKSPACE = "workspace"  # the pseudo-revision for the files on disk; callers use read_workspace for it
LOCK_FILE = "dvc.lock"
_FIELD, _RECORD = "\x1f", "\x00"


def _need_git() -> None:
    if shutil.which("git") is None:
        raise MlpError("git is not installed or not on PATH; install git and run again.")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    _need_git()
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _label(rev: str) -> str:
    """A revision as a note shows it: full shas shortened."""
    return rev[:7] if re.fullmatch(r"[0-9a-f]{40}", rev) else rev


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
    content = reader.read(rev, path)
    if content is None:
        return None
    try:
        data = parse_yaml(content)
    except yaml.YAMLError:
        raise ProjectError(f"{path} is not valid YAML at {_label(rev)}; fix it in a new commit or compare "
                           "other revisions.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path} at {_label(rev)} is not a mapping of names to values; fix it in a new commit.")
    return data


def _cache_dirs(root: Path) -> list[Path]:
    """The local DVC cache folders to look in: a configured `cache.dir`, else .dvc/cache."""
    dirs = []
    for name in ("config.local", "config"):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(root / ".dvc" / name)
            configured = parser.get("cache", "dir", fallback=None)
        except configparser.Error:
            continue
        if configured:
            dirs.append((root / ".dvc" / configured.strip("'\"")).resolve())
            break
    dirs.append(root / ".dvc" / "cache")
    return dirs


def _from_cache(root: Path, md5: str) -> bytes | None:
    """An object of the local DVC cache by its md5: the DVC 3 layout, then the DVC 2 one."""
    for cache in _cache_dirs(root):
        for file in (cache / "files" / "md5" / md5[:2] / md5[2:], cache / md5[:2] / md5[2:]):
            if file.is_file():
                return file.read_bytes()
    return None


def _locked_md5(lock: Any, path: str) -> tuple[str | None, bool]:
    """The md5 dvc.lock records for `path` (directly, or inside a tracked folder) and whether it was found."""
    target = posixpath.normpath(path)
    stages = lock.get("stages") if isinstance(lock, dict) else None
    for stage in (stages or {}).values():
        for out in (stage or {}).get("outs") or []:
            if not isinstance(out, dict) or "path" not in out:
                continue
            out_path = posixpath.normpath(str(out["path"]))
            md5 = out.get("md5")
            if out_path == target:
                return (str(md5) if md5 else None), True
            if target.startswith(out_path + "/") and isinstance(md5, str) and md5.endswith(".dir"):
                return f"{md5}:{target[len(out_path) + 1:]}", True
    return None, False


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
        md5, tracked = _locked_md5(lock, path)
        if tracked:
            if md5 is None:
                return None, f"{path} has no hash in {LOCK_FILE} at {_label(rev)}; run `dvc repro` and commit"
            if ":" in md5:  # inside a tracked folder: find the file's own hash in the folder's listing
                md5 = _md5_in_folder(root, *md5.split(":", 1))
            content = _from_cache(root, md5) if md5 else None
            if content is None:
                return None, f"{path} is not in the local DVC cache; run `dvc pull`"
    if content is None:
        return None, f"{NO_METRICS_FILE} at {_label(rev)}"
    try:
        metrics = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None, f"metrics file is not valid JSON at {_label(rev)}"
    if not isinstance(metrics, dict):
        return None, f"metrics file is not a JSON object at {_label(rev)}"
    return metrics, None


def _md5_in_folder(root: Path, dir_md5: str, rel: str) -> str | None:
    """The md5 of `rel` in a DVC-tracked folder, from the folder's `.dir` listing in the cache."""
    listing = _from_cache(root, dir_md5)
    try:
        entries = json.loads(listing) if listing is not None else []
    except ValueError:
        return None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("relpath") == rel and isinstance(entry.get("md5"), str):
            return entry["md5"]
    return None
