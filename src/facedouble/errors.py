"""Typed errors. Each message is one sentence that names the file or option and says what to do.

Only the CLI turns these into an exit code; library code raises them and never prints.
"""

from __future__ import annotations

import errno
import os

# A write that fails for want of space: the disk, the user's quota, or the largest file the filesystem allows.
_DISK_FULL = {errno.ENOSPC, errno.EFBIG} | {getattr(errno, "EDQUOT", errno.ENOSPC)}


class FaceDoubleError(Exception):
    """Base class of every error a user can cause. `exit_code` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class InputError(FaceDoubleError):
    """A missing, unreadable, corrupt or unsupported input file or folder."""


class OptionError(FaceDoubleError):
    """An option value out of range or not among its choices."""


class WorkspaceError(FaceDoubleError):
    """A workspace folder that is missing, unwritable or not laid out as expected."""


class NoFaceError(FaceDoubleError):
    """No face was found where one was needed."""


class MetadataError(FaceDoubleError):
    """A face image whose embedded record is missing, corrupt or refused (e.g. a pickle with code)."""


class ModelError(FaceDoubleError):
    """A model folder that is missing, corrupt, or of another architecture."""


class TrainingError(FaceDoubleError):
    """Training cannot go on (NaN or exploding loss, out of memory)."""


class SafetyError(FaceDoubleError):
    """Input refused by the explicit-content screen. There is no option to skip the screen."""

    exit_code = 3


class ProvenanceError(FaceDoubleError):
    """Marking or verifying provenance failed."""


class Cancelled(FaceDoubleError):
    """The user stopped a stage (Ctrl-C or SIGTERM); what was done is kept and a re-run resumes."""

    exit_code = 130


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` says a write ran out of space: an OSError with ENOSPC, EDQUOT or EFBIG, or a library's error
    that wraps one in its text (safetensors: "No space left on device (os error 28)")."""
    if isinstance(e, FaceDoubleError):
        return False
    if isinstance(e, OSError) and e.errno in _DISK_FULL:
        return True
    text = str(e)
    return any(f"os error {n})" in text for n in _DISK_FULL) or any(os.strerror(n) in text for n in _DISK_FULL)


def disk_full(folder: str | os.PathLike | None) -> WorkspaceError:
    """The error for a write into `folder` (None: not known) that ran out of space."""
    where = f"The disk is full at {folder}" if folder is not None else "A disk is full"
    return WorkspaceError(f"{where}; free some space there (or choose a workspace on another disk with -w) and run "
                          "the same command again.")
