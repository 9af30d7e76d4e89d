"""Cache of sort metrics: `aligned/.sort_index.json`, rebuilt from the face files whenever it is missing,
stale or unreadable.

Face files are never rewritten to hold metrics (a sort only renames and moves them, so `sort undo` gives
back byte-identical files). An entry is keyed by the file's size and modification time in nanoseconds,
which renames and moves keep and any edit changes, and it names the face it belongs to
(`source_filename#face_index`), which is checked against the record before the entry is used.
Arrays are stored as base64 (histograms float16, identity embeddings float32).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import write_json_atomic

INDEX_NAME = ".sort_index.json"
# Bump when a metric's definition changes: every cached value is then measured again.
METRICS_VERSION = 1

_ARRAY_DTYPES = {"hist": np.float16, "identity": np.float32}


def file_key(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_size}-{st.st_mtime_ns}"


def face_key(source_filename: str, face_index: int) -> str:
    return f"{source_filename}#{face_index}"


def encode(name: str, value: Any) -> Any:
    if name in _ARRAY_DTYPES:
        arr = np.asarray(value, dtype=_ARRAY_DTYPES[name])
        return base64.b64encode(arr.tobytes()).decode("ascii")
    if isinstance(value, (tuple, list)):
        return [float(v) for v in value]
    return float(value)


def decode(name: str, value: Any) -> Any:
    if name in _ARRAY_DTYPES:
        return np.frombuffer(base64.b64decode(value), dtype=_ARRAY_DTYPES[name]).astype(np.float32)
    if isinstance(value, list):
        return tuple(float(v) for v in value)
    return float(value)


class MetricIndex:
    """The cache of one face folder. `lookup` gives the cached metrics of a file (encoded), `store` adds
    newly measured ones; `save` writes the file atomically (kept entries: files seen in this run and,
    so faces moved back from the trash are not measured again, older ones up to `keep_old`)."""

    def __init__(self, folder: Path, keep_old: int = 50_000):
        self.path = Path(folder) / INDEX_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self.seen: set[str] = set()
        self.keep_old = keep_old
        self.dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("metrics_version") == METRICS_VERSION:
                entries = data.get("faces", {})
                if isinstance(entries, dict):
                    self.entries = {k: v for k, v in entries.items() if isinstance(v, dict)}
        except (OSError, ValueError):
            self.entries = {}  # missing or damaged: rebuilt as faces are measured

    def lookup(self, key: str) -> dict[str, Any] | None:
        self.seen.add(key)
        return self.entries.get(key)

    def store(self, key: str, face: str, metrics: dict[str, Any]) -> None:
        entry = self.entries.get(key)
        if entry is None or entry.get("face") != face:
            entry = {"face": face}
        for name, value in metrics.items():
            entry[name] = encode(name, value)
        self.entries[key] = entry
        self.seen.add(key)
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        old = [k for k in self.entries if k not in self.seen][-self.keep_old:] if self.keep_old else []
        keep = {k: self.entries[k] for k in old}
        keep.update({k: self.entries[k] for k in self.entries if k in self.seen})
        write_json_atomic(self.path, {"metrics_version": METRICS_VERSION, "faces": keep})
        self.dirty = False
