"""The result video, workspace files, provenance checks, the quality report and uploaded reference photos."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse

from ..workspace import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Workspace
from . import security as S
from .http import json_body, ranged_file
from .payload import finite


REPORT_DIR = "report"          # where the report stage writes report.html and report.json by default
# report.html is self-contained (inline CSS, data: images): it may use nothing else and run no script
REPORT_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'; sandbox")


def register(app: FastAPI, ws: Workspace) -> None:
    @app.get("/api/result/{name}")
    def result(name: str, request: Request):
        path = S.confine(ws.root, S.safe_name(name))
        if not (path.parent == ws.root and path.stem == "result" and path.suffix.lower() in VIDEO_SUFFIXES
                and path.is_file()):
            raise HTTPException(404, f"No result video {name}.")
        media = {".mp4": "video/mp4", ".mov": "video/quicktime", ".avi": "video/x-msvideo",
                 ".webm": "video/webm", ".mkv": "video/x-matroska"}.get(path.suffix.lower(), "application/octet-stream")
        return ranged_file(request, path, media)

    @app.get("/api/file")
    def workspace_file(path: str):
        """Any image or video inside the workspace, by relative path (confined)."""
        target = S.confine(ws.root, path)
        if not target.is_file() or target.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            raise HTTPException(404, "No such image or video in the workspace.")
        return FileResponse(target, headers={"Cache-Control": "no-cache"})

    @app.post("/api/verify")
    async def verify(request: Request):
        from ..provenance.verify import verify_file

        body = await json_body(request)
        target = S.confine(ws.root, str(body.get("path", "")))
        if not target.is_file():
            raise HTTPException(404, "No such file in the workspace.")
        import starlette.concurrency

        rep = await starlette.concurrency.run_in_threadpool(verify_file, target)
        return {"path": str(target.relative_to(ws.root)), "report": json.loads(json.dumps(rep.to_dict(), default=str))}

    # -- quality report -----------------------------------------------------------------------------------
    def report_file(name: str) -> Path:
        path = S.confine(ws.root, REPORT_DIR, name)
        if not path.is_file():
            raise HTTPException(404, f"No quality report yet ({REPORT_DIR}/{name} is missing); run the report "
                                     "stage first.")
        return path

    @app.get("/api/report")
    def report_page():
        """report.html as a page of its own: inline styles and data: images only, never a script."""
        return FileResponse(report_file("report.html"), media_type="text/html",
                            headers={"Cache-Control": "no-cache", "Content-Security-Policy": REPORT_CSP})

    @app.get("/api/report/summary")
    def report_summary():
        return read_report_summary(report_file("report.json"))

    @app.post("/api/upload/reference")
    async def upload_reference(request: Request, file: UploadFile):
        import cv2

        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > S.MAX_UPLOAD_BYTES + 64 * 1024:
            raise HTTPException(413, "The reference image must be at most 20 MB.")
        data = bytearray()
        while chunk := await file.read(1024 * 1024):
            data += chunk
            if len(data) > S.MAX_UPLOAD_BYTES:
                raise HTTPException(413, "The reference image must be at most 20 MB.")
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(file.filename or "reference").stem)[:60] or "reference"
        suffix = Path(file.filename or "").suffix.lower()
        if suffix not in IMAGE_SUFFIXES or cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is None:
            raise HTTPException(415, "The reference must be a PNG or JPEG image.")
        from ..faces.container import atomic_write_bytes

        out = ws.root / "references" / f"{stem}{suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, bytes(data))
        return {"path": str(out.relative_to(ws.root))}


def read_report_summary(path: Path) -> dict[str, Any]:
    """What the page shows of report.json: its summary (checks with pass/fail, identity, detail,
    expression_pose, temporal, blending, coverage), when it was made, what was scored and its notes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HTTPException(409, f"{REPORT_DIR}/{path.name} cannot be read ({e}); run the report stage again.") from None
    summary = data.get("summary") if isinstance(data, dict) else None
    if not isinstance(summary, dict) or not isinstance(summary.get("checks"), list):
        raise HTTPException(409, f"{REPORT_DIR}/{path.name} holds no summary; run the report stage again.")
    return {"created": data.get("created"), "coverage": data.get("coverage_text"), "notes": data.get("notes") or [],
            "version": str(path.stat().st_mtime_ns), "html": path.with_name("report.html").is_file(),
            "summary": finite(summary)}


def verdict(summary: dict[str, Any]) -> str:
    """'3 of 5 checks pass' from a report summary."""
    checks = [c for c in summary.get("checks", []) if c.get("pass") is not None]
    return f"{sum(1 for c in checks if c['pass'])} of {len(checks)} checks pass"
