"""The DVC remote of `mlp init --remote URL`: where `dvc push` puts data and models and `dvc pull` gets them.

A local or shared folder works with DVC alone; object stores need DVC's plugin for them (dvc-s3 and so on),
which goes into the project's requirements.txt so that CI installs it too.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from .errors import UsageError

# URL scheme -> the DVC plugin (pip package) that talks to it.
PLUGINS = {"s3": "dvc-s3", "gs": "dvc-gs", "azure": "dvc-azure", "ssh": "dvc-ssh", "hdfs": "dvc-hdfs",
           "webhdfs": "dvc-webhdfs", "oss": "dvc-oss", "gdrive": "dvc-gdrive", "http": "dvc-http",
           "https": "dvc-http", "webdav": "dvc-webdav", "webdavs": "dvc-webdav"}


@dataclass(frozen=True)
class RemoteUrl:
    url: str  # as written to .dvc/config: an absolute folder, or the object store's URL
    plugin: str | None = None  # the pip package DVC needs for it, if any
    notes: list[str] = field(default_factory=list)


def remote_url(text: str, project: Path) -> RemoteUrl:
    """Check a remote given to `mlp init --remote`: a folder (made absolute, so everyone's clone finds the same
    one) or a URL of an object store that DVC supports."""
    text = text.strip()
    if not text:
        raise UsageError("--remote needs a folder or a URL, like /mnt/shared/dvc-storage or s3://bucket/path.")
    scheme = urlparse(text).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path (`C:` on Windows reads as a one-letter scheme)
        folder = Path(urlparse(text).path if scheme == "file" else text).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--remote {text}: {folder} is a file; give a folder (it is created on `dvc push`).")
        if folder == project or project in folder.parents:
            raise UsageError(f"--remote {text}: the remote is inside the project; give a folder outside it, like "
                             f"{project.parent / (project.name + '-dvc-storage')}.")
        return RemoteUrl(str(folder))
    if scheme not in PLUGINS:
        raise UsageError(f"--remote {text}: DVC has no remote type '{scheme}'; give a folder or a URL starting with "
                         f"{', '.join(sorted({s + '://' for s in PLUGINS}))}.")
    plugin = PLUGINS[scheme]
    notes = []
    if importlib.util.find_spec(plugin.replace("-", "_")) is None:
        notes.append(f"DVC needs {plugin} to reach {scheme}:// remotes: run `pip install {plugin}` before "
                     "`dvc push` (it is in requirements.txt, so CI installs it)")
    return RemoteUrl(text, plugin, notes)
