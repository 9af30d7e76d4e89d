"""The Mask tab: XSeg include/exclude polygons of aligned faces (xseg/labels.py) and the mesh / XSeg overlays."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

from ..errors import FaceDoubleError, InputError
from ..workspace import Workspace
from . import security as S
from .http import face_file, image_names, json_body, side_name


def register(app: FastAPI, ws: Workspace) -> None:
    # The labels live in each face file's record, in aligned-face pixels; a save goes through the labels
    # module (checked first, the record rewritten atomically with the pixels untouched) under the face
    # folder's lock, so it cannot race a sort renaming the file. See docs/ui.md, "Mask editor".
    mask_flags: dict[tuple, tuple[bool, bool]] = {}      # (side, name, mtime, size) -> (labelled, applied)
    mask_pngs: OrderedDict = OrderedDict()               # (kind, path, mtime, size) -> overlay PNG bytes
    mask_lock = threading.Lock()

    def labelled_face(side: str, name: str):
        from ..faces.container import read_record

        path = face_file(ws, side, "aligned", name)
        rec = read_record(path)
        if rec is None:
            raise InputError(f"{path.name} has no face record; extract it again before labelling it.")
        return path, rec

    def labels_reply(side: str, name: str, rec) -> dict[str, Any]:
        from ..xseg.labels import has_labels

        return {"side": side, "name": name, "size": rec.size, "include": rec.mask_polys,
                "exclude": rec.exclude_polys, "labelled": has_labels(rec), "xseg": rec.xseg_mask is not None}

    @app.get("/api/xseg/{side}/faces")
    def xseg_faces(side: str):
        """The aligned faces of a side, each with whether it carries labels and an applied XSeg mask."""
        from ..faces.container import read_record
        from ..xseg.labels import has_labels

        folder = ws.aligned(side_name(side))  # type: ignore[arg-type]
        out, seen = [], set()
        for name in image_names(folder):
            try:
                st = (folder / name).stat()
            except OSError:
                continue
            key = (side, name, st.st_mtime_ns, st.st_size)
            with mask_lock:
                flags = mask_flags.get(key)
            if flags is None:
                try:
                    rec = read_record(folder / name)
                except (FaceDoubleError, OSError):
                    rec = None
                flags = (rec is not None and has_labels(rec), rec is not None and rec.xseg_mask is not None)
                with mask_lock:
                    mask_flags[key] = flags
            seen.add(key)
            out.append({"name": name, "labelled": flags[0], "xseg": flags[1]})
        with mask_lock:
            for key in [k for k in mask_flags if k[0] == side and k not in seen]:
                del mask_flags[key]
        return {"side": side, "count": len(out), "labelled": sum(f["labelled"] for f in out), "faces": out}

    @app.get("/api/xseg/{side}/labels/{name}")
    def xseg_labels(side: str, name: str):
        _path, rec = labelled_face(side, name)
        return labels_reply(side, name, rec)

    def save_labels(side: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from ..faces.container import read_record
        from ..sort import journal
        from ..xseg.labels import check_polygons, import_labels

        if set(body) != {"include", "exclude"}:
            raise InputError('Give the labels as {"include": [[[x, y], ...], ...], "exclude": [...]} '
                             "in aligned-face pixels.")
        path, rec = labelled_face(side, name)
        entry = {kind: check_polygons(body[kind], rec.size, f"The {kind} polygons of {name}")
                 for kind in ("include", "exclude")}
        with journal.FolderLock(path.parent):
            if not path.is_file():
                raise HTTPException(409, f"{name} was moved or renamed while it was being labelled (by a sort?); "
                                         "reload the face list.")
            import_labels(ws, side, {name: entry}, source="The Mask editor's labels")
        saved = read_record(path)
        return labels_reply(side, name, saved)

    @app.put("/api/xseg/{side}/labels/{name}")
    async def xseg_labels_save(side: str, name: str, request: Request):
        """Replace the labels of a face ({"include": [...], "exclude": [...]}; two empty lists remove them)."""
        body = await json_body(request)
        import starlette.concurrency

        return await starlette.concurrency.run_in_threadpool(save_labels, side_name(side), S.safe_name(name), body)

    @app.get("/api/xseg/{side}/overlay/{name}")
    def xseg_overlay(side: str, name: str, kind: str = "mesh"):
        """A mask of the face as a grey PNG at the face's size: `mesh` (the face mesh's oval, as merge's
        mesh masks draw it) or `xseg` (the XSeg mask applied to the face, `facedouble xseg apply`)."""
        import cv2

        from ..faces.container import read_face, xseg_mask_array

        if kind not in ("mesh", "xseg"):
            raise HTTPException(404, f"The overlay kind must be mesh or xseg, not {kind!r}.")
        path = face_file(ws, side, "aligned", name)
        st = path.stat()
        key = (kind, str(path), st.st_mtime_ns, st.st_size)
        with mask_lock:
            png = mask_pngs.get(key)
        if png is None:
            image, rec = read_face(path)
            h, w = image.shape[:2]
            if kind == "xseg":
                m = xseg_mask_array(rec)
                if m is None:
                    raise HTTPException(404, f"{name} has no applied XSeg mask: train XSeg on labelled faces and run "
                                             f"`facedouble xseg apply {side}` first.")
                m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
            else:
                from ..faces.mesh import face_mesh
                from ..faces.regions import mesh_mask

                pts = face_mesh(image)
                if pts is None:
                    raise HTTPException(404, f"The face mesh finds no face in {name}, so it has no mesh mask to show.")
                m = mesh_mask(pts, (h, w))
            ok, buf = cv2.imencode(".png", np.clip(m * 255.0 + 0.5, 0, 255).astype(np.uint8))
            if not ok:
                raise HTTPException(500, "Could not encode the mask.")
            png = buf.tobytes()
            with mask_lock:
                mask_pngs[key] = png
                while len(mask_pngs) > 64:
                    mask_pngs.popitem(last=False)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})
