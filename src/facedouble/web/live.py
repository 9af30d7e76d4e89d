"""The Live tab of the browser UI: one live swap (facedouble.live.LiveSession) at a time, run as the UI's job.

`POST /api/live/start` builds a LiveConfig from the form (the same fields and checks as `facedouble live`),
starts the session as a job (so the job bar shows it, Cancel stops it, and no stage runs beside it) and
answers once the source is open and the models are warm, or with the one sentence that stopped it. While it
runs, `POST /api/live/settings` changes what `LiveSession.update` accepts, `GET /api/live/frame?after=KEY`
returns the newest output frame as JPEG (waiting up to a second for one newer than KEY), `GET /api/live/mjpeg`
the frames as they come as one `multipart/x-mixed-replace` JPEG stream (what the page's <img> shows; it ends
when no session runs), `GET /api/live/status` the settings and `stats()`, and `POST /api/live/stop` ends it
(the output closed properly).

The frames shown are `LiveSession.latest_frame()`: the very frames the outputs get, watermarked; the
explicit-content screen runs on the source inside the pipeline, as for the CLI. Paths are confined to the
workspace like every other path option of the UI: a source file, an output file, a model folder and a DFM
file (a camera, a stream URL, `vcam` and `none` are not paths).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from .. import config as K
from ..imagefile import encode_jpeg
from ..errors import FaceDoubleError, OptionError
from ..workspace import VIDEO_SUFFIXES, Workspace
from . import security as S
from .http import json_body
from .payload import finite
from .jobs import JobBusy, JobReporter, JobRunner

JOB_NAME = "live"
START_TIMEOUT = 180.0   # seconds the start request waits for the source and the models (then: poll the status)
FRAME_WAIT = 1.0        # seconds a frame request waits for a newer frame before answering 204
JPEG_QUALITY = 85
MJPEG_BOUNDARY = "facedouble-live-frame"


def _is_camera(spec: str) -> bool:
    return spec.isdigit() or spec.startswith("/dev/video")


def _is_url(spec: str) -> bool:
    from ..live.sources import STREAM_SCHEMES

    return "://" in spec and spec.split("://", 1)[0].lower() in STREAM_SCHEMES


def source_option(ws: Workspace, raw: Any) -> str:
    """`--source` from the form: a camera or a stream URL as given, a file confined to the workspace."""
    spec = str(raw if raw is not None else "").strip()
    if not spec:
        raise OptionError("Give a source: a camera (0 or /dev/video0), a video file in the workspace or a stream URL.")
    if _is_camera(spec) or _is_url(spec):
        return spec
    return str(S.confine(ws.root, spec))


def audio_option(ws: Workspace, raw: Any) -> str | None:
    """`--audio` from the form: empty is none; a microphone (a device name without a path in it) or a stream
    URL as given; a file confined to the workspace."""
    from ..live.audio import parse_audio

    spec = str(raw if raw is not None else "").strip()
    if not spec:
        return None
    kind, target, fmt = parse_audio(spec)
    if kind == "file":
        return str(S.confine(ws.root, spec))
    if kind == "device" and ("/" in target or "\\" in target):
        raise OptionError(f"--audio {spec}: give a microphone by its device name ({fmt}:NAME) or an audio file in "
                          f"the workspace.")
    return spec


def out_option(ws: Workspace, raw: Any) -> str:
    """`--out` from the form: none (only this page), vcam or a stream URL as given, a file confined."""
    from ..live.outputs import NO_OUTPUT, VCAM

    spec = str(raw if raw is not None else "").strip()
    if spec.lower() in NO_OUTPUT:
        return "none"
    if spec.lower() in VCAM or "://" in spec:
        return spec
    return str(S.confine(ws.root, spec))


class LiveView:
    """The UI's live session: started as a job, read by the endpoints. `model_factory(cfg)`, when set, gives
    the model instead of loading the workspace's or the DFM file (tests)."""

    def __init__(self, ws: Workspace, runner: JobRunner) -> None:
        self.ws, self.runner = ws, runner
        self.lock = threading.Lock()
        self.session = None
        self.number = 0                 # sessions started: part of each frame's key
        self.model_factory: Callable[[K.LiveConfig], Any] | None = None

    # -- start / stop -------------------------------------------------------------------------------------
    def start(self, cfg: K.LiveConfig, realtime: bool) -> dict[str, Any]:
        from ..live import LiveSession

        ready = threading.Event()
        failed: list[BaseException] = []
        factory = self.model_factory
        ws_model = None if (cfg.model or cfg.model_file) else self.ws.model

        def run(rep: JobReporter) -> str:
            with self.lock:
                self.session = None             # "starting" until this one runs
            try:
                session = LiveSession(cfg, model=factory(cfg) if factory else None, workspace_model=ws_model,
                                      reporter=rep, realtime=realtime)
                session.start()
            except BaseException as e:
                failed.append(e)
                ready.set()
                raise
            with self.lock:
                self.session, self.number = session, self.number + 1
            ready.set()
            src, model = session.source, session.model
            rep.info(f"live: {src.label} ({src.width}x{src.height}, {src.fps:.2f} fps) -> {cfg.out}; model "
                     f"{getattr(model, 'name', '?')} ({model.resolution} px)")
            s = session.wait(rep)
            return (f"live: {s.frames_out} frame(s) ({s.faces} with a face, {s.dropped} dropped) in {s.seconds:.1f} s, "
                    f"{s.fps:.1f} fps, latency median {s.latency_ms_median:.0f} ms")

        self.runner.start(JOB_NAME, run)      # JobBusy (409) while another job runs
        ready.wait(START_TIMEOUT)
        if failed:
            e = failed[0]
            if isinstance(e, FaceDoubleError):
                raise e
            raise HTTPException(500, f"The live swap could not start: internal error {type(e).__name__}: {e}")
        return self.status()

    def stop(self) -> dict[str, Any]:
        with self.lock:
            session = self.session
        job = self.runner.current
        if session is not None:
            session.stop()
        if job is not None and job.name == JOB_NAME and job.state == "running":
            job.reporter.cancel()            # a session still starting stops right after its warm-up
        return self.status()

    # -- while it runs ------------------------------------------------------------------------------------
    def running_session(self):
        with self.lock:
            session = self.session
        if session is None or not session.running:
            raise HTTPException(409, "No live swap is running; start one first.")
        return session

    def update(self, given: dict[str, Any]) -> dict[str, Any]:
        from ..live.pipeline import SETTINGS
        from .forms import build_config

        session = self.running_session()
        unknown = sorted(set(given) - set(SETTINGS))
        if unknown:
            raise OptionError(f"{', '.join(unknown)} cannot change while live runs; stop and start again "
                              f"(changeable: {', '.join(SETTINGS)}).")
        if "morph" in given and not session.morphable:
            raise OptionError(f"The model {getattr(session.model, 'name', '')} has no morph factor; only amp models "
                              f"and morphable DFM files have one.")
        new = build_config(K.LiveConfig, given, self.ws, base=session.settings)
        changes = {k: getattr(new, k) for k in given}
        session.update(**changes)
        return self.status()

    def frame(self, after: str) -> tuple[str, np.ndarray] | None:
        """(key, frame) of the newest output frame when its key differs from `after`, waiting up to FRAME_WAIT."""
        end = time.monotonic() + FRAME_WAIT
        while True:
            with self.lock:
                session, number = self.session, self.number
            latest = session.latest_frame() if session is not None else None
            if latest is not None:
                key = f"{number}:{latest[0]}"
                if key != after:
                    return key, latest[1]
            if time.monotonic() >= end or (session is not None and not session.running):
                return None
            time.sleep(0.01)

    def active(self) -> bool:
        """Whether a session runs or is starting (the MJPEG stream waits for its frames meanwhile)."""
        with self.lock:
            session = self.session
        if session is not None and session.running:
            return True
        job = self.runner.current
        return job is not None and job.name == JOB_NAME and job.state == "running"

    def mjpeg_part(self, after: str) -> tuple[str, bytes] | None:
        """(key, one multipart part: the boundary, headers and JPEG) of the next newer frame, or None when
        none came within FRAME_WAIT."""
        got = self.frame(after)
        if got is None:
            return None
        key, image = got
        data = encode_jpeg(image, JPEG_QUALITY)
        head = (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
                f"X-Live-Frame: {key}\r\n\r\n")
        return key, head.encode("ascii") + data + b"\r\n"

    def status(self) -> dict[str, Any]:
        with self.lock:
            session, number = self.session, self.number
        job = self.runner.current
        live_job = job if job is not None and job.name == JOB_NAME else None
        out: dict[str, Any] = {
            "running": bool(session is not None and session.running),
            "starting": bool(live_job is not None and live_job.state == "running" and session is None),
            "job": None if live_job is None else {"id": live_job.number, "state": live_job.state,
                                                  "message": live_job.message},
            "busy": None if job is None or job.state != "running" or live_job is not None else job.name,
        }
        if session is None:
            return out
        model, src, latest = session.model, session.source, session.latest_frame()
        out.update({
            "session": number, "settings": session.settings.to_dict(), "stats": finite(session.stats()),
            "morphable": session.morphable, "run_id": session.summary.run_id,
            "model": {"name": getattr(model, "name", ""), "resolution": int(getattr(model, "resolution", 0)),
                      "face_type": str(getattr(model, "face_type", ""))},
            "source": None if src is None else {"label": src.label, "kind": src.kind, "width": src.width,
                                                "height": src.height, "fps": round(src.fps, 3), "live": src.live},
            "out": session.cfg.out,
            "frame": None if latest is None else f"{number}:{latest[0]}",
        })
        return out


def _choices(ws: Workspace) -> dict[str, Any]:
    """What the form offers beside free text: the workspace's videos and DFM files, its models, the cameras."""
    from ..train.checkpoint import find_models

    root = ws.root

    def rel(p: Path) -> str:
        return str(p.relative_to(root))

    videos = sorted(rel(p) for p in root.glob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                    and not p.name.startswith("."))
    dfm = sorted(rel(p) for pattern in ("*.dfm", "model/*.dfm") for p in root.glob(pattern) if p.is_file())
    cameras = sorted(str(p) for p in Path("/dev").glob("video*")) if Path("/dev").is_dir() else []
    return {"videos": videos, "dfm": dfm, "models": find_models(ws.model) if ws.model.is_dir() else [],
            "cameras": cameras}


def register(app: FastAPI, ws: Workspace, runner: JobRunner) -> LiveView:
    """Add the Live tab's endpoints to `app`; the view is `app.state.live`."""
    import starlette.concurrency

    from ..live.pipeline import SETTINGS
    from .forms import build_config, option_schema

    view = LiveView(ws, runner)
    app.state.live = view

    @app.get("/api/live/options")
    def live_options():
        """The form (LiveConfig's fields; `settings`: those that change while it runs) and what to offer."""
        return {"fields": option_schema(K.LiveConfig), "settings": list(SETTINGS), **_choices(ws)}

    @app.post("/api/live/start")
    async def live_start(request: Request):
        body = await json_body(request)
        given = dict(body.get("options") or {})
        if not isinstance(given, dict):
            raise HTTPException(400, "Give the options as an object.")
        given["source"] = source_option(ws, given.get("source"))
        given["out"] = out_option(ws, given.get("out", "none"))
        if "audio" in given:
            given["audio"] = audio_option(ws, given["audio"])
        for name in ("model", "model_file"):
            if given.get(name) not in (None, ""):
                given[name] = str(S.confine(ws.root, str(given[name])))
        cfg = build_config(K.LiveConfig, given, ws)
        if runner.running:
            raise JobBusy(f"{runner.current.name} is still running; wait for it or cancel it first.")  # type: ignore[union-attr]
        realtime = bool((body.get("extra") or {}).get("realtime", False))
        return await starlette.concurrency.run_in_threadpool(view.start, cfg, realtime)

    @app.post("/api/live/stop")
    def live_stop():
        return view.stop()

    @app.post("/api/live/settings")
    async def live_settings(request: Request):
        body = await json_body(request)
        given = body.get("settings")
        if not isinstance(given, dict) or not given:
            raise HTTPException(400, "Give the settings to change as an object, e.g. {\"opacity\": 80}.")
        return view.update(given)

    @app.get("/api/live/status")
    def live_status():
        return view.status()

    @app.get("/api/live/frame")
    async def live_frame(after: str = ""):
        got = await starlette.concurrency.run_in_threadpool(view.frame, after)
        if got is None:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        key, image = got
        return Response(encode_jpeg(image, JPEG_QUALITY), media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Live-Frame": key})

    @app.get("/api/live/mjpeg")
    async def live_mjpeg():
        """The output frames as they come, one JPEG part each (the same watermarked frames as /frame), until
        no session runs or starts; the client closing the connection ends it too."""
        async def parts():
            key = ""
            while True:
                got = await starlette.concurrency.run_in_threadpool(view.mjpeg_part, key)
                if got is not None:
                    key, part = got
                    yield part
                elif not view.active():
                    break

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    return view
