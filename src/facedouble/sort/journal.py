"""Renames and trash moves that can be undone, and survive being killed half-way.

A plan of moves (`from` -> `to`, paths relative to the side's folder, e.g. `aligned/x.jpg` ->
`aligned_trash/x.jpg`) is written to a journal JSON *before* any file moves. Applying goes in two
phases: every file first to a unique temporary name in its own folder, then each temporary name to its
target, so two files can swap names and no file is ever overwritten. The journal records the phase, so
a run killed at any point is finished (`apply`) or rolled back (`undo`) by the next one. Journals stack
in `aligned/.sort_journal/`; `undo` takes the newest that is not undone yet.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from ..config import write_json_atomic
from ..errors import InputError, WorkspaceError

JOURNAL_DIR = ".sort_journal"
LOCK_NAME = ".sort.lock"
VERSION = 1


@dataclasses.dataclass
class Journal:
    """One undoable batch of moves. `moves` are (from, tmp, to) paths relative to `root`."""

    path: Path
    root: Path
    kind: str
    moves: list[tuple[str, str, str]]
    state: str = "applying"      # applying -> applied -> undoing -> undone (file removed)
    phase: int = 1               # 1: from -> tmp, 2: tmp -> to
    info: dict = dataclasses.field(default_factory=dict)
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "kind": self.kind, "created": self.created, "state": self.state,
                "phase": self.phase, "info": self.info, "moves": [list(m) for m in self.moves]}

    def save(self) -> None:
        write_json_atomic(self.path, self.to_json())

    @classmethod
    def load(cls, path: Path, root: Path) -> "Journal":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            moves = [(str(a), str(b), str(c)) for a, b, c in data["moves"]]
            return cls(path=path, root=root, kind=str(data.get("kind", "sort")), moves=moves,
                       state=str(data["state"]), phase=int(data.get("phase", 1)), info=dict(data.get("info", {})),
                       created=str(data.get("created", "")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"The sort journal {path} is unreadable ({e}); move it away to continue.") from None


def journal_dir(folder: Path) -> Path:
    return Path(folder) / JOURNAL_DIR


def journals(folder: Path) -> list[Path]:
    d = journal_dir(folder)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if re.fullmatch(r"\d{6}\.json", p.name))


def create(folder: Path, kind: str, moves: list[tuple[str, str]], info: dict | None = None) -> Journal:
    """Write a journal for `moves` ((from, to) relative to folder's parent) and return it, not applied yet."""
    folder = Path(folder)
    root = folder.parent
    existing = journals(folder)
    number = int(existing[-1].stem) + 1 if existing else 1
    token = secrets.token_hex(4)
    triples = []
    for i, (src, dst) in enumerate(moves):
        src_p = Path(src)
        tmp = str(src_p.parent / f".fdsort-{token}-{i:06d}{src_p.suffix}")
        triples.append((str(src), tmp, str(dst)))
    j = Journal(path=journal_dir(folder) / f"{number:06d}.json", root=root, kind=kind, moves=triples,
                info=dict(info or {}), created=_dt.datetime.now().isoformat(timespec="seconds"))
    j.save()
    return j


def _move(src: Path, dst: Path) -> None:
    """Rename without ever overwriting (the folder lock keeps other sorts out between the check and the
    rename); across file systems, copy then delete."""
    if dst.exists():
        raise WorkspaceError(f"{dst} already exists, so {src.name} cannot move there; move that file away "
                             "and run the same command again (it resumes).")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        shutil.copy2(src, dst)
        os.unlink(src)


def apply(j: Journal, reporter=None) -> list[str]:
    """Carry out (or finish) a journal; returns the `from` paths that were missing."""
    root = j.root
    missing: list[str] = []
    if j.state != "applying":
        return missing
    if j.phase == 1:
        for src, tmp, _dst in j.moves:
            s, t = root / src, root / tmp
            if s.exists() and not t.exists():
                _move(s, t)
        j.phase = 2
        j.save()
    for src, tmp, dst in j.moves:
        t, d = root / tmp, root / dst
        if t.exists():
            _move(t, d)
        elif not d.exists():
            missing.append(src)
    j.state = "applied"
    j.save()
    return missing


def undo(j: Journal) -> list[str]:
    """Put every file of a journal back where it was; resumable. Returns the paths that could not be found.
    The journal file is removed once everything is back."""
    root = j.root
    missing: list[str] = []
    if j.state in ("applying", "applied"):
        # files past phase 1 sit at their targets (applied, or applying in phase 2) or at tmp names
        j.state, j.phase = "undoing", (2 if (j.state == "applied" or j.phase == 2) else 1)
        j.save()
    if j.state != "undoing":
        return missing
    if j.phase == 2:
        for _src, tmp, dst in j.moves:
            d, t = root / dst, root / tmp
            if d.exists() and not t.exists():
                _move(d, t)
        j.phase = 1
        j.save()
    for src, tmp, _dst in j.moves:
        t, s = root / tmp, root / src
        if t.exists():
            _move(t, s)
        elif not s.exists():
            missing.append(src)
    j.state = "undone"
    j.save()
    try:
        j.path.unlink()
    except OSError:
        pass
    return missing


def pending(folder: Path) -> Journal | None:
    """The newest journal that was interrupted (still applying or undoing), if any."""
    found = journals(folder)
    if not found:
        return None
    j = Journal.load(found[-1], Path(folder).parent)
    return j if j.state in ("applying", "undoing") else None


def finish_pending(folder: Path) -> Journal | None:
    """Finish a journal that a killed run left half done (forward if it was applying, back if undoing)."""
    j = pending(folder)
    if j is None:
        return None
    if j.state == "applying":
        apply(j)
    else:
        undo(j)
    return j


def last(folder: Path) -> Journal | None:
    """The newest journal not undone yet."""
    for p in reversed(journals(folder)):
        j = Journal.load(p, Path(folder).parent)
        if j.state != "undone":
            return j
    return None


def produced_names(folder: Path) -> dict[str, str]:
    """{sorted name: name before its order prefix} from the journals not undone, newest winning."""
    out: dict[str, str] = {}
    for p in journals(folder):
        try:
            j = Journal.load(p, Path(folder).parent)
        except InputError:
            continue
        if j.state != "undone":
            bases = j.info.get("bases", {})
            if isinstance(bases, dict):
                out.update({str(k): str(v) for k, v in bases.items()})
    return out


class FolderLock:
    """An exclusive lock on a face folder while files in it move (a file holding the owner's pid).
    A lock left by a process that no longer runs is taken over."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def __enter__(self) -> "FolderLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid):
                    raise WorkspaceError(f"Another sort or face-set command (process {pid}) is working on "
                                         f"{self.path.parent}; wait for it to finish.") from None
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self.held = True
            return self
        raise WorkspaceError(f"Cannot lock {self.path.parent}; delete {self.path} if no other command is running.")

    def __exit__(self, *exc) -> None:
        if self.held:
            try:
                self.path.unlink()
            except OSError:
                pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl-C there; ask the kernel instead
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
