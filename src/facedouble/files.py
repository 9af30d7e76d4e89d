"""Atomic file writes: a temporary file beside the target, then one rename, so a kill at any moment
leaves either the old file or the new one, never half of one. Used by every stage that writes."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import disk_full, is_disk_full


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path` (created empty, with the permissions of any new file);
    on normal exit it is renamed onto `path`, on an exception it is removed (a full disk becomes the
    WorkspaceError that says so)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name lets `remove_temporaries` tell a dead writer's leftover from a live write
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and is_disk_full(e):
            raise disk_full(path.parent) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")



def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on Windows, where signal 0 is not a probe, assume it does)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours
        return True
    return True


def _writer_pid(name: str) -> int | None:
    """The pid in a temporary's name: `.NAME.PID.XXXX.tmp` (atomic_path) or `.NAME.partial-PID.EXT`."""
    parts = name.split(".")
    if name.endswith(".tmp") and len(parts) >= 4 and parts[-3].isdigit():
        return int(parts[-3])
    for part in parts:
        if part.startswith("partial-") and part[8:].isdigit():
            return int(part[8:])
    return None


def remove_temporaries(*folders: str | os.PathLike, max_age: float = 24 * 3600.0) -> int:
    """Delete what a killed writer left in `folders` (not below them): `atomic_path`'s `.NAME.PID.XXXX.tmp`
    and a video build's `.NAME.partial-PID.EXT`, when their process is gone (or, where that cannot be told,
    when older than `max_age` seconds). Such files are never visible as output, only clutter; a stage calls
    this on start. A write in progress by a live process is left alone. Returns how many were removed."""
    import time

    removed = 0
    now = time.time()
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            pid = _writer_pid(entry.name)
            if pid is None or pid == os.getpid():
                continue
            try:
                stale = not pid_alive(pid) if os.name != "nt" else now - entry.stat().st_mtime > max_age
                if stale:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
    return removed
