"""`facedouble live`: swap the face of a camera, stream or file as it plays (facedouble.live)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..choices import ColorTransfer, Detector, LiveMask, values
from ..config import LiveConfig
from ..workspace import Workspace
from .common import ConfigOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter


def _help(name: str, choices=None) -> str:
    text = LiveConfig.field_help(name)
    if choices is not None:
        text += " (" + ", ".join(values(choices)) + ")"
    return text + f" [default: {LiveConfig.__dataclass_fields__[name].default}]"


def register(app: typer.Typer) -> None:
    @app.command("live", rich_help_panel="4. Merge")
    def live_command(
        source: Optional[str] = typer.Option(None, "--source", "-s", help=_help("source")),
        out: Optional[str] = typer.Option(None, "--out", "-o", help=_help("out")),
        workspace: Path = WorkspaceArg,
        model: Optional[Path] = typer.Option(None, "--model", help=_help("model")),
        model_name: Optional[str] = typer.Option(None, "--model-name", help=_help("model_name")),
        model_file: Optional[Path] = typer.Option(None, "--model-file", help=_help("model_file")),
        device: Optional[str] = typer.Option(None, "--device", help=_help("device")),
        detector: Optional[str] = typer.Option(None, "--detector", help=_help("detector", Detector), show_default=False),
        redetect_frames: Optional[int] = typer.Option(None, "--redetect-frames", help=_help("redetect_frames")),
        mask: Optional[str] = typer.Option(None, "--mask", help=_help("mask", LiveMask), show_default=False),
        color_transfer: Optional[str] = typer.Option(None, "--color-transfer", help=_help("color_transfer", ColorTransfer),
                                                     show_default=False),
        erode: Optional[int] = typer.Option(None, "--erode", help=_help("erode")),
        blur: Optional[int] = typer.Option(None, "--blur", help=_help("blur")),
        face_scale: Optional[int] = typer.Option(None, "--face-scale", help=_help("face_scale")),
        opacity: Optional[int] = typer.Option(None, "--opacity", help=_help("opacity")),
        morph: Optional[int] = typer.Option(None, "--morph", help=_help("morph")),
        delay_ms: Optional[int] = typer.Option(None, "--delay-ms", help=_help("delay_ms")),
        max_frames: Optional[int] = typer.Option(None, "--max-frames", help=_help("max_frames")),
        config: Optional[Path] = ConfigOpt,
    ) -> None:
        """Swap the face of a camera, a stream or a video file as it plays, into a file (the source's audio and
        timing, content credentials), a stream (MPEG-TS over UDP, RTMP) or a virtual camera (vcam). Every frame
        is marked as AI-generated; the source is screened for explicit content. Ctrl-C stops and closes the
        output properly. In a terminal, keys change it while it runs (listed at start; q stops)."""
        from ..live import live
        from .train_cmd import TerminalKeys

        with cli_errors():
            cfg = build_config(
                LiveConfig, config, False, source=source, out=out, model=str(model) if model else None,
                model_name=model_name, model_file=str(model_file) if model_file else None, device=device,
                detector=detector, redetect_frames=redetect_frames, mask=mask, color_transfer=color_transfer,
                erode=erode, blur=blur, face_scale=face_scale, opacity=opacity, morph=morph, delay_ms=delay_ms,
                max_frames=max_frames)
            ws_model = None if (cfg.model or cfg.model_file) else Workspace(workspace).model
            with reporter() as rep, TerminalKeys() as keys:
                summary = live(cfg, workspace_model=ws_model, reporter=rep, keys=keys if keys.active else None)
            if summary.out.strip().lower() in ("", "none"):
                err_console.print(f"swapped {summary.frames_out} frame(s) (no output: --out none)")
            else:
                err_console.print(f"wrote {summary.out}" if "://" not in summary.out and summary.out != "vcam" else
                                  f"sent {summary.frames_out} frame(s) to {summary.out}")
