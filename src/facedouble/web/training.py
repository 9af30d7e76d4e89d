"""The training monitor: the model's status, options, preview, loss and identity curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

from .. import config as K
from ..workspace import Workspace
from . import security as S
from .forms import build_config
from .jobs import JobRunner


IDENTITY_KEYS = ("iteration", "nearer_src", "same_as_src", "mean_src", "mean_dst")
IDENTITY_POINTS = 1000         # the identity curve sent to the page is thinned to about this many points


def register(app: FastAPI, ws: Workspace, runner: JobRunner) -> None:
    @app.get("/api/train/status")
    def train_status():
        info = model_info(ws, history=True)
        job = runner.current
        training_job = job is not None and job.name.startswith("train")
        status = job.reporter.status_line if training_job else ""
        ms = job.reporter.status_figures.get("ms_per_it") if training_job else None
        info["rate"] = round(1000.0 / ms, 3) if ms else None           # iterations per second
        info["status"] = status
        info["training"] = bool(job is not None and job.state == "running" and job.name.startswith("train"))
        info["identity"] = identity_curve(ws, info.get("name"))
        return info

    @app.get("/api/train/options")
    def train_options(model: Optional[str] = None):
        """The values a training run would use now: the existing model's saved options, else the preset's
        (`model`, default: the workspace's newest model, else the default preset), so the form shows real values,
        not "default"."""
        from ..train.checkpoint import model_to_train
        from ..train.options import resolve_options

        preset = model_to_train(ws.model, model)
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


def model_info(ws: Workspace, history: bool) -> dict[str, Any]:
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


def identity_row(entry: Any) -> dict[str, Any] | None:
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


def identity_curve(ws: Workspace, name: str | None) -> list[dict[str, Any]]:
    """The identity of the training previews (model/<name>_identity.json, one entry per preview), oldest
    first and thinned to about IDENTITY_POINTS with the latest kept; [] when there is none or it is unreadable."""
    if not name:
        return []
    try:
        log = json.loads(S.confine(ws.model, f"{name}_identity.json").read_text(encoding="utf-8"))
    except (HTTPException, OSError, ValueError):
        return []
    rows = sorted((r for r in map(identity_row, log if isinstance(log, list) else []) if r is not None),
                  key=lambda r: r["iteration"])
    step = max(1, -(-len(rows) // IDENTITY_POINTS))
    thinned = rows[::step]
    if rows and thinned[-1] is not rows[-1]:
        thinned.append(rows[-1])
    return thinned
