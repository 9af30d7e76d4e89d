"""What a folder holds, to prove an operation changed (or kept) every file."""

from __future__ import annotations

import hashlib
from pathlib import Path


def tree_digest(*folders: Path) -> dict[str, str]:
    """{'folder/name': sha256} of every file in the folders (hidden bookkeeping files excluded)."""
    out = {}
    for folder in folders:
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    out[f"{folder.name}/{p.name}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
