"""The faceset browser (thumbnails, record info, trash, restore, undo) and the manual extraction editor's frames,
landmarks and confirmations."""

from __future__ import annotations


import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response

from ..errors import FaceDoubleError
from ..imagefile import RGBCache, encode_jpeg
from ..sort.trash import move_faces
from ..workspace import Workspace
from . import security as S
from .http import face_dir, face_file, frame_file, image_names, json_body, parse_rect, side_name
from .jobs import JobBusy, JobRunner


CACHE_DIR = ".facedouble-cache"
THUMB_SIZE = 128


def register(app: FastAPI, ws: Workspace, runner: JobRunner, frames_cache: RGBCache) -> None:
    @app.get("/api/faces/{side}")
    def faces(side: str, folder: str = "aligned"):
        d = face_dir(ws, side, folder)
        names = image_names(d)
        version = d.stat().st_mtime_ns if d.is_dir() else 0
        return {"side": side, "folder": folder, "count": len(names), "names": names, "version": str(version)}

    @app.get("/api/faces/{side}/thumb/{name}")
    def thumb(side: str, name: str, folder: str = "aligned"):
        import cv2

        path = face_file(ws, side, folder, name)
        st = path.stat()
        cache = ws.root / CACHE_DIR / "thumbs" / side
        out = cache / f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}.jpg"
        if not out.is_file():
            data = np.fromfile(str(path), np.uint8)
            img = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_2) if data.size else None
            if img is None:
                raise HTTPException(415, f"{name} is not a readable image.")
            small = cv2.resize(img, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
            cache.mkdir(parents=True, exist_ok=True)
            from ..faces.container import atomic_write_bytes

            atomic_write_bytes(out, buf.tobytes())
        return FileResponse(out, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/faces/{side}/image/{name}")
    def face_image(side: str, name: str, folder: str = "aligned", landmarks: bool = False):
        from ..faces.container import read_face
        from ..sort.faceset import draw_landmarks

        path = face_file(ws, side, folder, name)
        if not landmarks:
            return FileResponse(path, headers={"Cache-Control": "no-cache"})
        image, record = read_face(path)
        return Response(encode_jpeg(draw_landmarks(image, record.landmarks)), media_type="image/jpeg",
                        headers={"Cache-Control": "no-cache"})

    @app.get("/api/faces/{side}/info/{name}")
    def face_info(side: str, name: str, folder: str = "aligned"):
        from ..faces.container import read_record

        rec = read_record(face_file(ws, side, folder, name))
        if rec is None:
            return {"name": name, "record": None}
        extra = {k: v for k, v in rec.extra.items() if isinstance(v, (int, float, str, bool))}
        return {"name": name, "record": {"source_filename": rec.source_filename, "source_rect": list(rec.source_rect),
                                         "face_type": rec.face_type, "size": rec.size, "detector": rec.detector,
                                         "face_index": rec.face_index, "extra": extra}}

    @app.post("/api/faces/{side}/trash")
    async def trash(side: str, request: Request):
        body = await json_body(request)
        names = [S.safe_name(str(n)) for n in body.get("names", [])]
        return move_faces(ws, side_name(side), names, to_trash=True)

    @app.post("/api/faces/{side}/restore")
    async def restore(side: str, request: Request):
        body = await json_body(request)
        names = [S.safe_name(str(n)) for n in body.get("names", [])]
        return move_faces(ws, side_name(side), names, to_trash=False)

    @app.post("/api/faces/{side}/undo")
    def undo(side: str):
        from ..sort import undo_sort

        if runner.running:
            raise JobBusy(f"{runner.current.name} is running; wait for it first.")  # type: ignore[union-attr]
        return {"summary": undo_sort(ws, side_name(side)).summary()}  # type: ignore[arg-type]

    @app.get("/api/frames/{side}")
    def frames(side: str):
        from ..extract import debug_path, faces_by_frame

        names = image_names(ws.frames(side_name(side)))
        have = faces_by_frame(ws, side, names)  # type: ignore[arg-type]
        debug_dir = ws.aligned_debug(side)  # type: ignore[arg-type]
        deleted = []
        if debug_dir.is_dir() and any(debug_dir.glob("*.jpg")):
            deleted = [n for n in names if n in have and not debug_path(ws, side, n).exists()]  # type: ignore[arg-type]
        return {"frames": names, "no_face": [n for n in names if n not in have], "deleted_debug": deleted,
                "faces": {n: len(v) for n, v in have.items()}}

    @app.get("/api/frames/{side}/image/{name}")
    def frame_image(side: str, name: str):
        return FileResponse(frame_file(ws, side, name), headers={"Cache-Control": "no-cache"})

    @app.get("/api/frames/{side}/faces/{name}")
    def frame_faces(side: str, name: str):
        from ..extract import faces_by_frame
        from ..faces.container import read_record

        frame_file(ws, side, name)
        out = []
        for p in sorted(faces_by_frame(ws, side, [name]).get(name, [])):  # type: ignore[arg-type]
            try:
                rec = read_record(p)
            except FaceDoubleError:
                rec = None
            if rec is not None:
                out.append({"face": p.name, "rect": list(rec.source_rect),
                            "landmarks": np.round(rec.source_landmarks, 2).tolist()})
        return {"frame": name, "faces": out}

    @app.post("/api/manual/{side}/landmarks")
    async def manual_landmarks(side: str, request: Request):
        from ..faces.landmarks import landmarks_in_rect

        body = await json_body(request)
        path = frame_file(ws, side, str(body.get("frame", "")))
        rect = parse_rect(body.get("rect"))
        lm = landmarks_in_rect(frames_cache.get(path), rect)
        return {"landmarks": np.round(np.asarray(lm, np.float64), 2).tolist()}

    @app.post("/api/manual/{side}/confirm")
    async def manual_confirm(side: str, request: Request):
        from ..extract import extract_with_rect

        body = await json_body(request)
        path = frame_file(ws, side, str(body.get("frame", "")))
        rect = parse_rect(body.get("rect"))
        if runner.running:
            raise JobBusy(f"{runner.current.name} is running; wait for it before extracting by hand.")  # type: ignore[union-attr]
        out = extract_with_rect(ws, side, path.name, rect)  # type: ignore[arg-type]
        return {"face": out.name}
