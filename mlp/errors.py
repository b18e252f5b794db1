"""The errors the library raises. The CLI turns each into one `Error: ...` line and its exit code.

Exit codes are the same for every command (see DESIGN.md):
0 done or a check passed, 1 a check ran and said no, 2 the command could not do its job.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2


class MlpError(Exception):
    """Something the user can fix. The message says what is wrong and what to do next."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        # Extra lines shown before the one-line error (for example a failed script's last output).
        self.details = details


class UsageError(MlpError):
    """Bad arguments or options: an unknown stage, a malformed `-S key=value`."""


class ProjectError(MlpError):
    """No project here, or the project's files are broken (invalid params.yaml, missing dvc.yaml)."""


class DataError(MlpError):
    """An input file is missing, empty or unreadable."""


class StageFailedError(MlpError):
    """A pipeline stage's command exited non-zero."""

    def __init__(self, stage: str, message: str, details: str = "") -> None:
        super().__init__(message, details)
        self.stage = stage


class DvcError(MlpError):
    """DVC refused or failed; the message carries DVC's own explanation."""


class CheckFailed(MlpError):
    """A check ran and said no (stale pipeline, rejected gate). Exit code 1, not 2."""

    exit_code = EXIT_CHECK_FAILED


class Interrupted(MlpError):
    """Ctrl-C, reported once whatever it interrupted is put back (params.yaml after `mlp repro -S`). Exit 130."""

    exit_code = 130
