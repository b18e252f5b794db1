"""The pinned environment: requirements.lock, the exact versions of the packages whose versions change results.

`mlp init` writes the lock from the running environment (importlib.metadata), `mlp lock` refreshes it after a
deliberate upgrade, CI installs with it as pip constraints (`pip install -r requirements.txt -c requirements.lock`),
and `mlp check` warns, naming package and versions, when the running environment differs from the lock or from
the versions the model bundle records (models/meta.json "versions", written by stages/features.py's save_bundle).

The lock is plain pip constraints, `NAME==VERSION` a line, so pip reads it as it is. A line a user adds for a
package of their own (`lightgbm==4.5.0`) is compared and refreshed like the others.

Names: a package is known by its key, the name meta.json records it under; the lock writes the distribution that is
installed (xgboost's key covers both the CPU-only build mlp depends on, xgboost-cpu, and the full xgboost).
Pure parts (parse_lock, compare_lock, compare_bundle) take text and dicts; the integration reads the files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import DISTRIBUTION
from .errors import UsageError
from .files import write_text_atomic
from .project import PARAMS_FILE

ENV_LOCK_FILE = "requirements.lock"
BUNDLE_META = "models/meta.json"
# key -> the distributions that provide it, the first installed one counts. The same list (and names) as
# stages/features.py's RESULT_PACKAGES, which records them in the bundle (tests/test_environment.py keeps them equal).
PACKAGES: dict[str, tuple[str, ...]] = {
    DISTRIBUTION: (DISTRIBUTION,), "numpy": ("numpy",), "pandas": ("pandas",), "pyarrow": ("pyarrow",),
    "scikit-learn": ("scikit-learn",), "xgboost": ("xgboost-cpu", "xgboost"), "dvc": ("dvc",),
}
DASK_PACKAGES: dict[str, tuple[str, ...]] = {"dask": ("dask",), "distributed": ("distributed",)}  # engine: dask
LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")

HEADER = f"""\
# {ENV_LOCK_FILE}: the exact versions this pipeline runs with, for the packages whose versions change its results
# (written by `mlp init` or `mlp lock` from the environment they ran in). pip constraints: CI installs
#   pip install -r requirements.txt -c {ENV_LOCK_FILE}
# and `mlp check` warns when the running environment, or the model bundle ({BUNDLE_META}), differs from it.
# After a deliberate upgrade, refresh it with `mlp lock` and commit it. Lines you add (NAME==VERSION) are kept.
"""


def key(name: str) -> str:
    """A distribution's key: its normalized name (PEP 503), with the xgboost builds under one key."""
    normal = re.sub(r"[-_.]+", "-", name).lower()
    return next((k for k, dists in {**PACKAGES, **DASK_PACKAGES}.items() if normal in dists), normal)


def required(engine: str = "pandas") -> list[str]:
    """The keys a project with this engine must pin."""
    return list(PACKAGES) + (list(DASK_PACKAGES) if engine == "dask" else [])


@dataclass(frozen=True)
class Pin:
    name: str  # the distribution as the lock writes it
    version: str


@dataclass
class Lock:
    pins: dict[str, Pin] = field(default_factory=dict)  # key -> pin, in the file's order
    problems: list[str] = field(default_factory=list)  # lines that are not NAME==VERSION, each a message


def parse_lock(text: str) -> Lock:
    """The pins of a lock's text; comments and blank lines are skipped, anything else is a problem."""
    lock = Lock()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        if match is None:
            lock.problems.append(f"{ENV_LOCK_FILE} line {number}: {line!r} is not NAME==VERSION; fix that line, "
                                 f"or delete it and run `mlp lock`.")
            continue
        name, version = match.groups()
        if key(name) in lock.pins:
            lock.problems.append(f"{ENV_LOCK_FILE} line {number}: {name} is pinned twice; delete one of the lines.")
            continue
        lock.pins[key(name)] = Pin(name, version)
    return lock


def lock_text(pins: Iterable[Pin]) -> str:
    return HEADER + "".join(f"{p.name}=={p.version}\n" for p in pins)


def same_version(a: str, b: str) -> bool:
    """PEP 440 equality (2.1 == 2.1.0), or the same text for a version packaging cannot read."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


# --- comparing (pure) -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionDiff:
    """A package whose running version is not the one the lock or the bundle says."""

    package: str  # the distribution: installed, else as the lock names it
    running: str | None  # None: not installed here
    expected: str | None  # None: the lock does not pin it
    source: str  # ENV_LOCK_FILE or BUNDLE_META

    @property
    def message(self) -> str:
        name, want = self.package, self.expected
        if self.source == BUNDLE_META:
            have = f"this environment has {self.running}" if self.running else "it is not installed here"
            return (f"{name}: the model in {BUNDLE_META} was trained with {want}, {have}; install {name}=={want} "
                    "to reproduce it, or retrain with `mlp repro -f` and commit dvc.lock.")
        if want is None:
            return (f"{name} {self.running} is installed and this project uses it, but {ENV_LOCK_FILE} does not "
                    f"pin it; run `mlp lock` and commit {ENV_LOCK_FILE}.")
        have = f"{self.running} is installed" if self.running else "is not installed"
        return (f"{name} {have}, but {ENV_LOCK_FILE} pins {want}; install the locked version (pip install "
                f"{name}=={want}) or, after a deliberate upgrade, refresh the lock with `mlp lock` and commit it.")


def compare_lock(lock: Lock, running: dict[str, Pin], needed: Iterable[str] = ()) -> list[VersionDiff]:
    """Every pin the running environment (key -> installed Pin) does not match, and every needed key the lock lacks."""
    diffs = []
    for k, pin in lock.pins.items():
        have = running.get(k)
        if have is None or not same_version(have.version, pin.version):
            diffs.append(VersionDiff(have.name if have else pin.name, have and have.version, pin.version,
                                     ENV_LOCK_FILE))
    diffs += [VersionDiff(running[k].name, running[k].version, None, ENV_LOCK_FILE)
              for k in needed if k not in lock.pins and k in running]
    return diffs


def compare_bundle(versions: dict[str, str], running: dict[str, Pin]) -> list[VersionDiff]:
    """Every package the bundle's meta.json "versions" records (of the known ones) that runs at another version."""
    diffs = []
    for k, trained in versions.items():
        if k not in PACKAGES and k not in DASK_PACKAGES:  # python, and names this mlp does not know
            continue
        have = running.get(k)
        if have is None or not same_version(have.version, str(trained)):
            name = have.name if have else {**PACKAGES, **DASK_PACKAGES}[k][0]
            diffs.append(VersionDiff(name, have and have.version, str(trained), BUNDLE_META))
    return diffs


# --- the running environment and the project's files --------------------------------------------------------------

def installed(keys: Iterable[str]) -> dict[str, Pin]:
    """key -> the installed distribution and its version, for each key that is installed."""
    from importlib import metadata

    found = {}
    for k in keys:
        for dist in {**PACKAGES, **DASK_PACKAGES}.get(k, (k,)):
            try:
                found[k] = Pin(dist, metadata.version(dist))
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def running_pins(engine: str = "pandas", extra: Iterable[str] = ()) -> list[Pin]:
    """What a lock written now pins: the required packages that are installed, then `extra` keys (a user's own)."""
    keys = list(dict.fromkeys([*required(engine), *extra]))
    found = installed(keys)
    return [found[k] for k in keys if k in found]


def _read_lock(root: Path) -> Lock | None:
    path = root / ENV_LOCK_FILE
    try:
        return parse_lock(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return Lock(problems=[f"{ENV_LOCK_FILE} cannot be read ({exc}); delete it and run `mlp lock`."])


def _bundle_versions(root: Path) -> tuple[dict[str, str], list[str]]:
    """meta.json's "versions" of the project's bundle ({} before the first run), and a problem reading it."""
    try:
        meta = json.loads((root / BUNDLE_META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError) as exc:
        return {}, [f"{BUNDLE_META} cannot be read ({exc}), so its versions were not compared; rebuild it with "
                    "`mlp repro -f`."]
    versions = meta.get("versions") if isinstance(meta, dict) else None
    return ({str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}), []


def engine_of(root: Path) -> str:
    """params.yaml's top-level `engine:` (pandas when absent); a broken params.yaml is a one-line ProjectError."""
    from .params import load_params

    params = load_params(root / PARAMS_FILE)
    return str(params.get("engine") or "pandas") if isinstance(params, dict) else "pandas"


def current_text(engine: str = "pandas") -> str:
    """The lock `mlp init` writes: the running versions of what a project with this engine pins."""
    return lock_text(running_pins(engine))


def warnings(root: Path) -> list[str]:
    """`mlp check`'s environment warnings, one message each: the running versions against the lock and the bundle."""
    engine = engine_of(root)
    lock = _read_lock(root)
    trained, problems = _bundle_versions(root)
    needed = required(engine)
    if lock is None:  # one warning says it all
        problems.insert(0, f"{ENV_LOCK_FILE} is missing, so the versions this pipeline runs with are not pinned; "
                           f"write it with `mlp lock` and commit it.")
        lock, needed = Lock(), []
    else:
        problems = lock.problems + problems
    running = installed(dict.fromkeys([*lock.pins, *needed, *trained]))
    diffs = compare_lock(lock, running, needed) + compare_bundle(trained, running)
    return problems + [d.message for d in diffs]


@dataclass
class LockResult:
    path: Path
    changes: list[tuple[str, str | None, str | None]]  # (package, locked before or None, now or None)
    pins: int  # how many packages the lock pins
    missing: list[str] = field(default_factory=list)  # required packages that are not installed, so not pinned

    @property
    def written(self) -> bool:
        return bool(self.changes)


def refresh(root: Path) -> LockResult:
    """`mlp lock`: write requirements.lock from the running environment, keeping the packages a user added.
    A malformed lock is refused (UsageError) and left as it is: its lines may be the user's."""
    engine = engine_of(root)
    old = _read_lock(root)
    if old is not None and old.problems:
        raise UsageError(old.problems[0])
    before = old.pins if old else {}
    extra = [k for k in before if k not in required(engine)]
    pins = running_pins(engine, extra)
    now = {key(p.name): p for p in pins}
    changes = [(p.name, before[k].version if k in before else None, p.version) for k, p in now.items()
               if k not in before or before[k] != p]
    changes += [(p.name, p.version, None) for k, p in before.items() if k not in now]
    path = root / ENV_LOCK_FILE
    if changes or old is None:
        write_text_atomic(path, lock_text(pins))
    return LockResult(path, changes, len(pins), [k for k in required(engine) if k not in now])
