"""The merge tuner: a frame merged with the form's options (merge/session.py), and the per-frame settings saved."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response

from .. import config as K
from ..merge.session import MergeSession
from ..workspace import Workspace
from .forms import build_config, saved_config
from .http import image_names, json_body


def register(app: FastAPI, ws: Workspace, tuner: MergeSession) -> None:
    @app.get("/api/merge/frames")
    def merge_frames():
        names = image_names(ws.frames("dst"))
        numbers = [int(Path(n).stem) for n in names if Path(n).stem.isdigit()]
        records = tuner.records()
        # the first face's rectangle in each frame: the tuner's "zoom on the face" crops both pictures to it
        rects = {int(Path(n).stem): [round(float(v), 1) for v in recs[0].source_rect]
                 for n, recs in records.items() if Path(n).stem.isdigit() and recs}
        return {"numbers": numbers, "with_face": sorted(rects), "rects": {str(k): v for k, v in rects.items()}}

    @app.get("/api/merge/original/{number}")
    def merge_original(number: int):
        from ..merge.merger import find_frame

        return FileResponse(find_frame(ws, number), headers={"Cache-Control": "no-cache"})

    @app.get("/api/merge/config")
    def merge_config():
        path = ws.config_file(K.MergeConfig)
        cfg = K.MergeConfig.load(path) if path.is_file() else K.MergeConfig()
        # options.ranges: the per-frame settings; frame_options: the options a range may change
        return {"saved": path.is_file(), "options": cfg.to_dict(), "frame_options": list(K.MERGE_FRAME_OPTIONS)}

    @app.post("/api/merge/config")
    async def merge_config_save(request: Request):
        """Save the tuner's options. With `frame` and `scope` ("frame", "following" or "all"): the options of
        that frame, applied as the original interactive merger did (merge/ranges.py); without: the run's own
        options, the per-frame ranges kept."""
        from ..merge import ranges as R
        body = await json_body(request)
        path = ws.config_file(K.MergeConfig)
        current = K.MergeConfig.load(path) if path.is_file() else K.MergeConfig()  # a bad file: refused, kept
        wanted = build_config(K.MergeConfig, body.get("options"), ws, saved=current)
        scope, changed = body.get("scope"), []
        if scope is None:
            cfg = dataclasses.replace(wanted, ranges=current.ranges)
        else:
            try:
                number = int(body.get("frame"))
            except (TypeError, ValueError):
                raise HTTPException(400, "Give the frame number as `frame` with a `scope`.") from None
            cfg = R.apply_options(current, number, wanted, str(scope))
            changed = R.run_changes(current, wanted) if scope != "all" else []
        path = cfg.save(path)
        return {"saved": str(path.relative_to(ws.root)), "options": cfg.to_dict(), "run_changes": changed}

    @app.post("/api/merge/preview")
    async def merge_preview(request: Request):
        body = await json_body(request)
        cfg = build_config(K.MergeConfig, body.get("options"), ws, saved=saved_config(ws, "merge", None))
        try:
            number = int(body.get("frame"))
        except (TypeError, ValueError):
            raise HTTPException(400, "Give the frame number as `frame`.") from None
        import starlette.concurrency

        data, ms = await starlette.concurrency.run_in_threadpool(tuner.preview_jpeg, number, cfg)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Merge-Ms": f"{ms:.0f}"})
