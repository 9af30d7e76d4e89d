"""The FastAPI app of `facedouble ui`: JSON endpoints over the stage functions, and the static front end.

Everything here calls the same stage functions as the CLI (no pipeline logic of its own): option forms
come from the config dataclasses (`forms.py`, `/api/options`), stages run as background jobs (`jobs.py`) from
the stage table (stages.py), and each tab's endpoints are registered from its own module (faces, mask,
training, tuner, results, live). See docs/ui.md. Safety (token, Host, Origin, confinement): `security.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

from .. import config as K
from ..errors import FaceDoubleError, InputError, OptionError
from ..imagefile import RGBCache
from ..merge.session import MergeSession
from ..stages import stage as stage_by_name
from ..workspace import VIDEO_SUFFIXES, Workspace
from . import security as S
from .faces import register as register_faces
from .forms import SIDED, STAGE_CONFIGS, build_config, option_schema, saved_config
from .http import SIDES, image_names, json_body, shown, side_name
from .jobs import JobBusy, JobReporter, JobRunner
from .mask import register as register_mask
from .results import register as register_results
from .results import verdict
from .training import model_info
from .training import register as register_training
from .tuner import register as register_tuner

STATIC = Path(__file__).resolve().parent / "static"

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
            out["sides"][side] = {"video": videos, "frames": len(image_names(ws.frames(side))),
                                  "faces": len(image_names(ws.aligned(side))), "trash": len(image_names(ws.aligned_trash(side))),
                                  "debug": len(image_names(ws.aligned_debug(side))), "no_face": no_face}
        out["model"] = model_info(ws, history=False)
        out["merged"] = len(image_names(ws.merged))
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
        body = await json_body(request)
        stage = body.get("stage")
        if stage not in STAGE_CONFIGS:
            raise HTTPException(400, f"Unknown stage {stage!r}; one of {', '.join(STAGE_CONFIGS)}.")
        side = body.get("side")
        if stage in SIDED:
            side_name(str(side))
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

    register_faces(app, ws, runner, frames_cache)
    register_mask(app, ws)
    register_training(app, ws, runner)
    register_tuner(app, ws, tuner)
    register_results(app, ws)
    # -- the Live tab: its endpoints are in live.py ----------------------------------------------------------
    from .live import register as register_live

    register_live(app, ws, runner)
    return app


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
    "report": lambda ws, side, r: f"report written to {shown(ws, r.html)}: {verdict(r.summary)}",
}
