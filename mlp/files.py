"""Reading and writing the project's files: atomic writes, and YAML parsed once per distinct content.

Every writer of mlp goes through `atomic_path`, so a crash or a full disk never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; renamed over `path` when the block succeeds, removed if not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _mode(path))  # mkstemp makes it 0600: give it the mode a plain write would
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _mode(path: Path) -> int:
    """The file's own mode if it exists, else what the umask leaves of 0666."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text to `path` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@functools.lru_cache(maxsize=1024)
def parse_yaml(content: bytes) -> Any:
    """YAML parsed once per distinct content, with libyaml where PyYAML has it: `mlp log -n 300` parses params.yaml
    at 600 revisions, most of them alike, and the pure-Python parser alone took seconds. Raises yaml.YAMLError.
    The result is shared between callers: read it, do not change it."""
    return yaml.load(content, Loader=_LOADER)
