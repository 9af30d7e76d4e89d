"""The FastAPI app of `facedouble ui`: JSON endpoints over the stage functions, and the static front end.

Everything here calls the same stage functions as the CLI (no pipeline logic of its own): option forms
come from the config dataclasses (`/api/options`), stages run as background jobs (`jobs.py`), and the
faceset browser, manual extraction editor, training monitor and merge tuner read and write the workspace
through the stage modules. See docs/ui.md. Safety (token, Host, Origin, confinement): `security.py`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
import typing
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from fastapi import FastAPI, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from .. import config as K
from ..errors import FaceDoubleError, InputError, ModelError, OptionError
from ..imagefile import RGBCache, encode_jpeg
from ..merge.session import MergeSession
from ..sort.trash import move_faces
from ..stages import STAGES
from ..stages import stage as stage_by_name
from ..workspace import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Workspace
from . import security as S
from .jobs import JobBusy, JobReporter, JobRunner

STATIC = Path(__file__).resolve().parent / "static"
CACHE_DIR = ".facedouble-cache"
THUMB_SIZE = 128
FOLDERS = ("aligned", "trash")
SIDES = ("src", "dst")
REPORT_DIR = "report"          # where the report stage writes report.html and report.json by default
# report.html is self-contained (inline CSS, data: images): it may use nothing else and run no script
REPORT_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'; sandbox")
IDENTITY_KEYS = ("iteration", "nearer_src", "same_as_src", "mean_src", "mean_dst")
IDENTITY_POINTS = 1000         # the identity curve sent to the page is thinned to about this many points

# The option forms and jobs of the UI: the stage table's UI stages (stages.py); a stage without options gets
# an empty form.
STAGE_CONFIGS: dict[str, type[K.StageConfig]] = {s.name: s.config or K.StageConfig for s in STAGES if s.ui}
SIDED = {s.name for s in STAGES if s.ui and s.sided}
# The options that name a file or folder. A path from the UI must lie inside the workspace (a relative one is
# taken from the workspace root), so a request can neither read nor write elsewhere; only a value the
# workspace's saved config already holds (set with the CLI) may point outside it.
PATH_OPTIONS: dict[type[K.StageConfig], frozenset[str]] = {
    K.ExtractConfig: frozenset({"reference", "rects"}),
    K.SortConfig: frozenset({"reference"}),
    K.TrainConfig: frozenset({"faceset", "from_model"}),
    K.MergeConfig: frozenset({"model", "model_file", "sign_cert", "sign_key"}),
    K.VideoBuildConfig: frozenset({"input_dir", "sign_cert", "sign_key"}),
    K.ReportConfig: frozenset({"result", "dst", "out", "src"}),
}


# -- option schema ------------------------------------------------------------------------------------------

def _field_kind(tp: Any) -> tuple[str, list[str] | None, bool]:
    """(kind, choices, optional) of a config field type."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else tp
        origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "choice", [str(a) for a in typing.get_args(tp)], optional
    if tp is bool:
        return "bool", None, optional
    if tp is int:
        return "int", None, optional
    if tp is float:
        return "float", None, optional
    if tp is str:
        return "str", None, optional
    return "other", None, optional


def option_schema(cls: type[K.StageConfig]) -> list[dict[str, Any]]:
    """The fields of a stage config as form descriptions: name, label, kind, choices, default, help, lo, hi,
    unit and group (the form's section: the field's `group` metadata, else "options", or "advanced" for the
    options the CLI does not ask)."""
    hints = typing.get_type_hints(cls)
    default = cls() if cls is not K.StageConfig else None
    out = []
    for f in dataclasses.fields(cls):
        kind, options, optional = _field_kind(hints[f.name])
        if kind == "other":
            continue
        out.append({"name": f.name, "flag": "--" + f.name.replace("_", "-"), "kind": kind, "choices": options,
                    "optional": optional, "default": K._jsonable(getattr(default, f.name)),
                    "help": f.metadata.get("help", ""), "lo": f.metadata.get("lo"), "hi": f.metadata.get("hi"),
                    "ask": f.metadata.get("ask", True), "fixed": f.metadata.get("fixed", False),
                    "unit": f.metadata.get("unit", ""), "label": f.metadata.get("label") or f.name.replace("_", " "),
                    "group": f.metadata.get("group") or ("options" if f.metadata.get("ask", True) else "advanced")})
    return out


def build_config(cls: type[K.StageConfig], given: dict[str, Any] | None, ws: Workspace,
                 base: K.StageConfig | None = None, saved: K.StageConfig | None = None) -> K.StageConfig:
    """A config from form values (JSON types or strings; "" = empty/None) over `base` (default: the
    defaults); validated by the dataclass. Paths (PATH_OPTIONS) are confined to the workspace (403), except
    a value equal to the one in `saved` (default: `base`), the workspace's saved config."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    paths = PATH_OPTIONS.get(cls, frozenset())
    saved = saved if saved is not None else base
    values: dict[str, Any] = {}
    for name, raw in (given or {}).items():
        if name not in fields:
            raise OptionError(f"Unknown option {name!r} for {cls.__name__}.")
        kind, _choices, optional = _field_kind(hints[name])
        flag = "--" + name.replace("_", "-")
        if kind == "other" and name not in paths:
            raise OptionError(f"{flag} cannot be set from the UI; use the CLI for it.")
        if name in paths and raw not in (None, ""):
            values[name] = _path_option(ws, name, raw, kind, saved)
            continue
        if raw is None or raw == "":
            if not optional and kind != "str":
                continue                      # empty: keep the default
            values[name] = None if optional else ""
            continue
        try:
            if kind == "bool":
                value: Any = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on", "y")
            elif kind == "int":
                value = int(raw) if not isinstance(raw, bool) else int(raw)
                if isinstance(raw, float) and raw != int(raw):
                    raise ValueError
            elif kind == "float":
                value = float(raw)
            else:
                value = str(raw)
        except (TypeError, ValueError):
            raise OptionError(f"{flag} must be a {kind}, not {raw!r}.") from None
        values[name] = value
    base = base if isinstance(base, cls) else cls()
    return cls.from_dict({**{f: getattr(base, f) for f in fields}, **values})


def _path_option(ws: Workspace, name: str, raw: Any, kind: str, saved: K.StageConfig | None) -> Any:
    """A path option (or a list of them for a tuple field) confined to the workspace, as absolute paths."""
    flag = "--" + name.replace("_", "-")
    kept = getattr(saved, name, None) if saved is not None else None
    if kind == "other":
        items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        if not all(isinstance(i, str) and i for i in items):
            raise OptionError(f"{flag} must be a list of paths inside the workspace.")
        if kept is not None and tuple(items) == tuple(kept):
            return tuple(items)
        return tuple(str(S.confine(ws.root, i)) for i in items)
    if not isinstance(raw, str):
        raise OptionError(f"{flag} must be a path inside the workspace, not {raw!r}.")
    if kept is not None and raw == kept:
        return raw
    return str(S.confine(ws.root, raw))


def saved_config(ws: Workspace, stage: str, side: Any) -> K.StageConfig | None:
    """The config a stage saved in the workspace (extract.json, merge_config.json), if any: the base that
    the UI's options change, as a re-run of the CLI with --config would."""
    st = stage_by_name(stage)
    cls = st.config
    if not st.resumes_saved or cls is None or (cls.PLACE == "side" and side not in SIDES):
        return None
    path = ws.config_file(cls, side if cls.PLACE == "side" else None)
    if not path.is_file():
        return None
    try:
        return cls.load(path)
    except FaceDoubleError:
        return None


# -- helpers ----------------------------------------------------------------------------------------------

def _side(side: str) -> str:
    if side not in SIDES:
        raise HTTPException(404, f"Side must be src or dst, not {side!r}.")
    return side


def _images(folder: Path) -> list[str]:
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


# -- the app ----------------------------------------------------------------------------------------------

def create_app(workspace: str | Path, *, token: str | None = None, hosts: tuple[str, ...] = (),
               swapper_factory: Callable[[Workspace, K.MergeConfig], Any] | None = None) -> FastAPI:
    """The UI app for `workspace`. `token` (default: a new random one) must come with every request;
    `hosts` adds host names the Host header may carry besides this machine's (e.g. the --host given);
    `swapper_factory(ws, merge_cfg)` loads the model for the merge tuner (default: the workspace's model)."""
    ws = Workspace(workspace).require()
    token = token or S.new_token()
    guard = S.Guard(token, hosts)
    if swapper_factory is None:
        from ..merge.merger import load_swapper as swapper_factory  # type: ignore[no-redef]
    runner = JobRunner()
    tuner = MergeSession(ws, swapper_factory)
    frames_cache = RGBCache(4)
    app = FastAPI(title="facedouble", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token, app.state.workspace, app.state.jobs, app.state.tuner = token, ws, runner, tuner

    # -- safety ---------------------------------------------------------------------------------------------
    @app.middleware("http")
    async def checks(request: Request, call_next):
        host = request.headers.get("host", "")
        if not guard.host_ok(host):
            return JSONResponse({"detail": "This app answers only requests addressed to this machine."}, 403)
        if not guard.origin_ok(request.method, host, request.headers.get("origin"),
                               request.headers.get("sec-fetch-site")):
            return JSONResponse({"detail": "Cross-site request refused."}, 403)
        query_token = request.query_params.get("token")
        if request.url.path == "/" and query_token is not None and request.method == "GET":
            status = guard.token_status(query_token)
            if status != 200:
                return HTMLResponse("<h1>Wrong token</h1><p>Open the URL printed by <code>facedouble ui</code>.</p>", status)
            resp = RedirectResponse("/", 303)
            resp.set_cookie(S.COOKIE, token, httponly=True, samesite="strict", path="/")
            return resp
        given = request.cookies.get(S.COOKIE) or request.headers.get(S.HEADER) or query_token
        status = guard.token_status(given)
        if status != 200:
            text = "missing" if status == 401 else "wrong"
            if request.url.path.startswith("/api/"):
                return JSONResponse({"detail": f"The access token is {text}; open the URL printed by facedouble ui."}, status)
            return HTMLResponse(f"<h1>Access token {text}</h1><p>Open the URL printed by <code>facedouble ui</code> "
                                "(it carries the token).</p>", status)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' blob: data:; media-src 'self'; "
                                    "style-src 'self'; script-src 'self'; frame-ancestors 'none'")
        return response

    @app.exception_handler(FaceDoubleError)
    async def user_error(_request: Request, exc: FaceDoubleError):
        code = 400 if isinstance(exc, (InputError, OptionError)) else 409
        return JSONResponse({"detail": exc.message if hasattr(exc, "message") else str(exc)}, code)

    @app.exception_handler(JobBusy)
    async def busy(_request: Request, exc: JobBusy):
        return JSONResponse({"detail": str(exc)}, 409)

    # -- pages ------------------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}")
    def static(name: str):
        path = S.confine(STATIC, S.safe_name(name))
        if not path.is_file():
            raise HTTPException(404, "No such file.")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    # -- workspace state, options, jobs ------------------------------------------------------------------
    @app.get("/api/state")
    def state():
        out: dict[str, Any] = {"workspace": str(ws.root), "sides": {}}
        for side in SIDES:
            videos = [p.name for p in ws.root.glob(f"data_{side}.*") if p.suffix.lower() in VIDEO_SUFFIXES]
            fix = ws.frames(side) / "manual_fix.json"
            no_face = None
            if fix.is_file():
                try:
                    no_face = int(json.loads(fix.read_text(encoding="utf-8")).get("count", 0))
                except (OSError, ValueError, AttributeError):
                    no_face = None
            out["sides"][side] = {"video": videos, "frames": len(_images(ws.frames(side))),
                                  "faces": len(_images(ws.aligned(side))), "trash": len(_images(ws.aligned_trash(side))),
                                  "debug": len(_images(ws.aligned_debug(side))), "no_face": no_face}
        out["model"] = _model_info(ws, history=False)
        out["merged"] = len(_images(ws.merged))
        out["results"] = [{"name": p.name, "bytes": p.stat().st_size} for p in sorted(ws.root.glob("result.*"))
                          if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
        out["job"] = runner.current.to_dict(since=10**12) if runner.current else None
        return out

    @app.get("/api/options")
    def options():
        return {name: option_schema(cls) for name, cls in STAGE_CONFIGS.items()}

    @app.get("/api/saved/{stage}")
    def saved(stage: str, side: Optional[str] = None):
        if stage not in STAGE_CONFIGS:
            raise HTTPException(404, f"Unknown stage {stage!r}.")
        cfg = saved_config(ws, stage, side)
        return {"saved": cfg is not None, "options": cfg.to_dict() if cfg is not None else None}

    @app.post("/api/jobs")
    async def start_job(request: Request):
        body = await _json(request)
        stage = body.get("stage")
        if stage not in STAGE_CONFIGS:
            raise HTTPException(400, f"Unknown stage {stage!r}; one of {', '.join(STAGE_CONFIGS)}.")
        side = body.get("side")
        if stage in SIDED:
            _side(str(side))
        cfg = build_config(STAGE_CONFIGS[stage], body.get("options"), ws, saved_config(ws, stage, side)) \
            if stage_by_name(stage).config is not None else None
        extra = body.get("extra") or {}
        fn = _stage_runner(ws, stage, side, cfg, extra)
        job = runner.start(stage + (f" {side}" if stage in SIDED else ""), fn)
        return {"job": job.to_dict()}

    @app.get("/api/job")
    def job_status(since: int = 0):
        return {"job": runner.current.to_dict(since) if runner.current else None}

    @app.post("/api/job/cancel")
    def job_cancel():
        return {"cancelled": runner.cancel()}

    @app.post("/api/job/save")
    def job_save():
        job = runner.current
        if job is None or job.state != "running" or not job.name.startswith("train"):
            raise HTTPException(409, "No training is running.")
        job.reporter.press("s")
        return {"ok": True}

    # -- faceset browser ---------------------------------------------------------------------------------
    def face_dir(side: str, folder: str) -> Path:
        _side(side)
        if folder not in FOLDERS:
            raise HTTPException(404, f"Folder must be aligned or trash, not {folder!r}.")
        return ws.aligned(side) if folder == "aligned" else ws.aligned_trash(side)

    def face_file(side: str, folder: str, name: str) -> Path:
        base = face_dir(side, folder)
        path = S.confine(base, S.safe_name(name))
        if not path.is_file():
            raise HTTPException(404, f"No face {name} in {base.name}.")
        return path

    @app.get("/api/faces/{side}")
    def faces(side: str, folder: str = "aligned"):
        d = face_dir(side, folder)
        names = _images(d)
        version = d.stat().st_mtime_ns if d.is_dir() else 0
        return {"side": side, "folder": folder, "count": len(names), "names": names, "version": str(version)}

    @app.get("/api/faces/{side}/thumb/{name}")
    def thumb(side: str, name: str, folder: str = "aligned"):
        import cv2

        path = face_file(side, folder, name)
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
            from ..faces.meta import atomic_write_bytes

            atomic_write_bytes(out, buf.tobytes())
        return FileResponse(out, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/faces/{side}/image/{name}")
    def face_image(side: str, name: str, folder: str = "aligned", landmarks: bool = False):
        from ..faces.meta import read_face
        from ..sort.faceset import draw_landmarks

        path = face_file(side, folder, name)
        if not landmarks:
            return FileResponse(path, headers={"Cache-Control": "no-cache"})
        image, record = read_face(path)
        return Response(encode_jpeg(draw_landmarks(image, record.landmarks)), media_type="image/jpeg",
                        headers={"Cache-Control": "no-cache"})

    @app.get("/api/faces/{side}/info/{name}")
    def face_info(side: str, name: str, folder: str = "aligned"):
        from ..faces.meta import read_record

        rec = read_record(face_file(side, folder, name))
        if rec is None:
            return {"name": name, "record": None}
        extra = {k: v for k, v in rec.extra.items() if isinstance(v, (int, float, str, bool))}
        return {"name": name, "record": {"source_filename": rec.source_filename, "source_rect": list(rec.source_rect),
                                         "face_type": rec.face_type, "size": rec.size, "detector": rec.detector,
                                         "face_index": rec.face_index, "extra": extra}}

    @app.post("/api/faces/{side}/trash")
    async def trash(side: str, request: Request):
        body = await _json(request)
        names = [S.safe_name(str(n)) for n in body.get("names", [])]
        return move_faces(ws, _side(side), names, to_trash=True)

    @app.post("/api/faces/{side}/restore")
    async def restore(side: str, request: Request):
        body = await _json(request)
        names = [S.safe_name(str(n)) for n in body.get("names", [])]
        return move_faces(ws, _side(side), names, to_trash=False)

    @app.post("/api/faces/{side}/undo")
    def undo(side: str):
        from ..sort import undo_sort

        if runner.running:
            raise JobBusy(f"{runner.current.name} is running; wait for it first.")  # type: ignore[union-attr]
        return {"summary": undo_sort(ws, _side(side)).summary()}  # type: ignore[arg-type]

    # -- frames and the manual extraction editor -----------------------------------------------------------
    def frame_file(side: str, name: str) -> Path:
        _side(side)
        path = S.confine(ws.frames(side), S.safe_name(name))
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            raise HTTPException(404, f"No frame {name} in data_{side}.")
        return path

    @app.get("/api/frames/{side}")
    def frames(side: str):
        from ..extract import debug_path, faces_by_frame

        names = _images(ws.frames(_side(side)))
        have = faces_by_frame(ws, side, names)  # type: ignore[arg-type]
        debug_dir = ws.aligned_debug(side)  # type: ignore[arg-type]
        deleted = []
        if debug_dir.is_dir() and any(debug_dir.glob("*.jpg")):
            deleted = [n for n in names if n in have and not debug_path(ws, side, n).exists()]  # type: ignore[arg-type]
        return {"frames": names, "no_face": [n for n in names if n not in have], "deleted_debug": deleted,
                "faces": {n: len(v) for n, v in have.items()}}

    @app.get("/api/frames/{side}/image/{name}")
    def frame_image(side: str, name: str):
        return FileResponse(frame_file(side, name), headers={"Cache-Control": "no-cache"})

    @app.get("/api/frames/{side}/faces/{name}")
    def frame_faces(side: str, name: str):
        from ..extract import faces_by_frame
        from ..faces.meta import read_record

        frame_file(side, name)
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

        body = await _json(request)
        path = frame_file(side, str(body.get("frame", "")))
        rect = _rect(body.get("rect"))
        lm = landmarks_in_rect(frames_cache.get(path), rect)
        return {"landmarks": np.round(np.asarray(lm, np.float64), 2).tolist()}

    @app.post("/api/manual/{side}/confirm")
    async def manual_confirm(side: str, request: Request):
        from ..extract import extract_with_rect

        body = await _json(request)
        path = frame_file(side, str(body.get("frame", "")))
        rect = _rect(body.get("rect"))
        if runner.running:
            raise JobBusy(f"{runner.current.name} is running; wait for it before extracting by hand.")  # type: ignore[union-attr]
        out = extract_with_rect(ws, side, path.name, rect)  # type: ignore[arg-type]
        return {"face": out.name}

    # -- XSeg mask editor: include/exclude polygons of aligned faces (xseg/labels.py) -----------------------
    # The labels live in each face file's record, in aligned-face pixels; a save goes through the labels
    # module (checked first, the record rewritten atomically with the pixels untouched) under the face
    # folder's lock, so it cannot race a sort renaming the file. See docs/ui.md, "Mask editor".
    mask_flags: dict[tuple, tuple[bool, bool]] = {}      # (side, name, mtime, size) -> (labelled, applied)
    mask_pngs: OrderedDict = OrderedDict()               # (kind, path, mtime, size) -> overlay PNG bytes
    mask_lock = threading.Lock()

    def labelled_face(side: str, name: str):
        from ..faces.meta import read_record

        path = face_file(side, "aligned", name)
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
        from ..faces.meta import read_record
        from ..xseg.labels import has_labels

        folder = ws.aligned(_side(side))  # type: ignore[arg-type]
        out, seen = [], set()
        for name in _images(folder):
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
        from ..faces.meta import read_record
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
        body = await _json(request)
        import starlette.concurrency

        return await starlette.concurrency.run_in_threadpool(save_labels, _side(side), S.safe_name(name), body)

    @app.get("/api/xseg/{side}/overlay/{name}")
    def xseg_overlay(side: str, name: str, kind: str = "mesh"):
        """A mask of the face as a grey PNG at the face's size: `mesh` (the face mesh's oval, as merge's
        mesh masks draw it) or `xseg` (the XSeg mask applied to the face, `facedouble xseg apply`)."""
        import cv2

        from ..faces.meta import read_face, xseg_mask_array

        if kind not in ("mesh", "xseg"):
            raise HTTPException(404, f"The overlay kind must be mesh or xseg, not {kind!r}.")
        path = face_file(side, "aligned", name)
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

    # -- training monitor --------------------------------------------------------------------------------
    @app.get("/api/train/status")
    def train_status():
        info = _model_info(ws, history=True)
        job = runner.current
        status = job.reporter.status_line if job is not None and job.name.startswith("train") else ""
        m = re.search(r"(\d+(?:\.\d+)?)\s*ms/it", status)
        info["rate"] = round(1000.0 / float(m.group(1)), 3) if m and float(m.group(1)) > 0 else None
        info["status"] = status
        info["training"] = bool(job is not None and job.state == "running" and job.name.startswith("train"))
        info["identity"] = _identity_curve(ws, info.get("name"))
        return info

    @app.get("/api/train/options")
    def train_options(model: Optional[str] = None):
        """The values a training run would use now: the existing model's saved options, else the preset's
        (`model`, default: the workspace's model or quick96), so the form shows real values, not "default"."""
        from ..train.checkpoint import find_models, resolve_options

        names = find_models(ws.model) if ws.model.is_dir() else []
        preset = model or (names[0] if names else K.TrainConfig().model)
        cfg = build_config(K.TrainConfig, {"model": preset}, ws)
        resolved, existing = resolve_options(ws.model, cfg)
        values = resolved.to_dict()
        if not existing:
            values["seed"] = None                     # a new model draws its seed when it starts
        return {"model": preset, "existing": existing, "values": values}

    def model_file(kind: str, name: str | None) -> Path:
        from ..train.checkpoint import ModelFiles, find_models

        names = find_models(ws.model)
        if not names:
            raise HTTPException(404, "No trained model yet.")
        model = name or names[0]
        if model not in names:
            raise HTTPException(404, f"No model {model!r}.")
        files = ModelFiles(ws.model, model)
        path = files.preview if kind == "preview" else files.loss_plot
        if not path.is_file():
            raise HTTPException(404, f"No {kind} image yet.")
        return path

    @app.get("/api/train/preview")
    def train_preview(model: Optional[str] = None):
        return FileResponse(model_file("preview", model), headers={"Cache-Control": "no-cache"})

    @app.get("/api/train/loss")
    def train_loss(model: Optional[str] = None):
        return FileResponse(model_file("loss", model), headers={"Cache-Control": "no-cache"})

    @app.get("/api/train/history/{name}")
    def train_history(name: str):
        path = S.confine(ws.model / "history", S.safe_name(name))
        if not path.is_file():
            raise HTTPException(404, f"No preview {name} in model/history.")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})

    # -- merge tuner ---------------------------------------------------------------------------------------
    @app.get("/api/merge/frames")
    def merge_frames():
        names = _images(ws.frames("dst"))
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
        body = await _json(request)
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
        body = await _json(request)
        cfg = build_config(K.MergeConfig, body.get("options"), ws, saved=saved_config(ws, "merge", None))
        try:
            number = int(body.get("frame"))
        except (TypeError, ValueError):
            raise HTTPException(400, "Give the frame number as `frame`.") from None
        import starlette.concurrency

        data, ms = await starlette.concurrency.run_in_threadpool(tuner.preview_jpeg, number, cfg)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Merge-Ms": f"{ms:.0f}"})

    # -- result, uploads, provenance ------------------------------------------------------------------------
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

        body = await _json(request)
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
        return _report_summary(report_file("report.json"))

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
        from ..faces.meta import atomic_write_bytes

        out = ws.root / "references" / f"{stem}{suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, bytes(data))
        return {"path": str(out.relative_to(ws.root))}

    # -- the Live tab: its endpoints are in live.py ----------------------------------------------------------
    from .live import register as register_live

    register_live(app, ws, runner)
    return app


# -- what the endpoints share ---------------------------------------------------------------------------

async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "The request body must be a JSON object.")
    return body


def _rect(value: Any) -> list[float]:
    try:
        r = [float(v) for v in value]
    except (TypeError, ValueError):
        raise HTTPException(400, "Give the rectangle as [x0, y0, x1, y1].") from None
    if len(r) != 4 or not all(np.isfinite(r)):
        raise HTTPException(400, "Give the rectangle as [x0, y0, x1, y1].")
    return r


def _model_info(ws: Workspace, history: bool) -> dict[str, Any]:
    from ..train.checkpoint import ModelFiles, find_models

    names = find_models(ws.model) if ws.model.is_dir() else []
    if not names:
        return {"names": [], "name": None, "iteration": 0}
    files = ModelFiles(ws.model, names[0])
    data: dict[str, Any] = {}
    try:
        data = json.loads(files.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    out: dict[str, Any] = {"names": names, "name": names[0], "iteration": int(data.get("iteration", 0)),
                           "seconds_trained": data.get("seconds_trained"),
                           "preview": files.preview.is_file(), "loss_plot": files.loss_plot.is_file(),
                           "preview_mtime": files.preview.stat().st_mtime_ns if files.preview.is_file() else 0}
    if history:
        loss = np.asarray(data.get("loss_history", []), np.float64).reshape(-1, 2)
        step = max(1, len(loss) // 1000)
        out["loss"] = {"step": step, "iterations": len(loss), "src": np.round(loss[::step, 0], 5).tolist(),
                       "dst": np.round(loss[::step, 1], 5).tolist()}
        out["history"] = sorted(p.name for p in files.history.glob(f"{names[0]}_*.png")) if files.history.is_dir() else []
    return out


def _finite(value: Any) -> Any:
    """`value` with every non-finite float as None, so strict JSON can carry it."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _identity_row(entry: Any) -> dict[str, Any] | None:
    """One entry of the trainer's identity log with plain numbers (None where missing); None when unusable."""
    if not isinstance(entry, dict) or isinstance(entry.get("iteration"), bool):
        return None
    try:
        row: dict[str, Any] = {"iteration": int(entry["iteration"])}
    except (KeyError, TypeError, ValueError):
        return None
    for key in IDENTITY_KEYS[1:]:
        v = entry.get(key)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))
        row[key] = float(v) if ok else None
    return row


def _identity_curve(ws: Workspace, name: str | None) -> list[dict[str, Any]]:
    """The identity of the training previews (model/<name>_identity.json, one entry per preview), oldest
    first and thinned to about IDENTITY_POINTS with the latest kept; [] when there is none or it is unreadable."""
    if not name:
        return []
    try:
        log = json.loads(S.confine(ws.model, f"{name}_identity.json").read_text(encoding="utf-8"))
    except (HTTPException, OSError, ValueError):
        return []
    rows = sorted((r for r in map(_identity_row, log if isinstance(log, list) else []) if r is not None),
                  key=lambda r: r["iteration"])
    step = max(1, -(-len(rows) // IDENTITY_POINTS))
    thinned = rows[::step]
    if rows and thinned[-1] is not rows[-1]:
        thinned.append(rows[-1])
    return thinned


def _report_summary(path: Path) -> dict[str, Any]:
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
            "summary": _finite(summary)}


def _shown(ws: Workspace, path: Path) -> str:
    """`path` relative to the workspace when inside it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(ws.root.resolve()))
    except ValueError:
        return str(path)


def _verdict(summary: dict[str, Any]) -> str:
    """'3 of 5 checks pass' from a report summary."""
    checks = [c for c in summary.get("checks", []) if c.get("pass") is not None]
    return f"{sum(1 for c in checks if c['pass'])} of {len(checks)} checks pass"


def _stage_runner(ws: Workspace, stage: str, side: Any, cfg: Any, extra: dict[str, Any]) -> Callable[[JobReporter], Any]:
    """The background function of a job: the stage table's function with the UI's reporter, and the line the
    job ends with."""
    st = stage_by_name(stage)
    kw: dict[str, Any] = {"force": bool(extra.get("force"))}
    for name, kind in (("max_iterations", int), ("max_seconds", float)):
        if extra.get(name) not in (None, ""):
            kw[name] = kind(extra[name])

    def run(rep: JobReporter) -> Any:
        r = st.call(ws, side=side, cfg=cfg, reporter=rep, keys=rep.read_keys, **kw)
        done = _JOB_LINES.get(stage)
        return done(ws, side, r) if done is not None else r

    return run


# The line a finished job shows, per stage whose result is not already a sentence.
_JOB_LINES: dict[str, Callable[[Workspace, Any, Any], str]] = {
    "video-extract": lambda ws, side, r: f"video extract {side}: {r.written} frames written, {r.kept} kept, "
                                         f"{r.total} in data_{side}",
    "train": lambda ws, side, r: f"trained {r.name} to iteration {r.iteration} ({r.iterations_run} this run, "
                                 f"{r.samples_per_second:.1f} samples/s); stopped: {r.stopped}",
    "merge": lambda ws, side, r: f"merged {r.written} frames ({r.skipped} already done, {r.copied} without a face), "
                                 f"{r.fps:.1f} fps",
    "build": lambda ws, side, r: f"wrote {r.path.name}: {r.frames} frames, {r.duration:.1f} s, audio {r.audio}",
    "report": lambda ws, side, r: f"report written to {_shown(ws, r.html)}: {_verdict(r.summary)}",
}
