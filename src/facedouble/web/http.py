"""What the UI's endpoints share: the request body, names of sides, faces and frames (confined to the workspace),
rectangles, image listings, ranged files (video seeking) and paths shown to the user."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, Response

from ..workspace import IMAGE_SUFFIXES, Workspace
from . import security as S

SIDES = ("src", "dst")
FOLDERS = ("aligned", "trash")


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "The request body must be a JSON object.")
    return body


def side_name(side: str) -> str:
    if side not in SIDES:
        raise HTTPException(404, f"Side must be src or dst, not {side!r}.")
    return side


def face_dir(ws: Workspace, side: str, folder: str) -> Path:
    side_name(side)
    if folder not in FOLDERS:
        raise HTTPException(404, f"Folder must be aligned or trash, not {folder!r}.")
    return ws.aligned(side) if folder == "aligned" else ws.aligned_trash(side)  # type: ignore[arg-type]


def face_file(ws: Workspace, side: str, folder: str, name: str) -> Path:
    base = face_dir(ws, side, folder)
    path = S.confine(base, S.safe_name(name))
    if not path.is_file():
        raise HTTPException(404, f"No face {name} in {base.name}.")
    return path


def frame_file(ws: Workspace, side: str, name: str) -> Path:
    side_name(side)
    path = S.confine(ws.frames(side), S.safe_name(name))  # type: ignore[arg-type]
    if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
        raise HTTPException(404, f"No frame {name} in data_{side}.")
    return path


def parse_rect(value: Any) -> list[float]:
    try:
        r = [float(v) for v in value]
    except (TypeError, ValueError):
        raise HTTPException(400, "Give the rectangle as [x0, y0, x1, y1].") from None
    if len(r) != 4 or not all(np.isfinite(r)):
        raise HTTPException(400, "Give the rectangle as [x0, y0, x1, y1].")
    return r


def image_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_file()
                      and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def ranged_file(request: Request, path: Path, media_type: str, chunk: int = 8 * 1024 * 1024) -> Response:
    """A file with HTTP range requests (video seeking in the browser)."""
    size = path.stat().st_size
    header = request.headers.get("range")
    base = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    if not header:
        return FileResponse(path, media_type=media_type, headers=base)
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
    else:
        start, end = max(0, size - int(m.group(2))), size - 1
    end = min(end, size - 1, start + chunk - 1)
    if start >= size or start > end:
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start + 1)
    return Response(data, status_code=206, media_type=media_type,
                    headers={**base, "Content-Range": f"bytes {start}-{end}/{size}"})


def shown(ws: Workspace, path: Path) -> str:
    """`path` relative to the workspace when inside it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(ws.root.resolve()))
    except ValueError:
        return str(path)
