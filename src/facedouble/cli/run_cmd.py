"""`facedouble run WORKSPACE`: the whole pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import RunConfig
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, build_config, cli_errors, err_console, reporter


def register(app: typer.Typer) -> None:
    @app.command("run", rich_help_panel="Pipeline")
    def run_command(
        workspace: Path = typer.Argument(..., help="Workspace with data_src.* and data_dst.*"),
        src_fps: Optional[float] = typer.Option(None, help=RunConfig.field_help("src_fps")),
        frame_format: Optional[str] = typer.Option(None, help=RunConfig.field_help("frame_format")),
        detector: Optional[str] = typer.Option(None, help=RunConfig.field_help("detector")),
        model: Optional[str] = typer.Option(None, help=RunConfig.field_help("model")),
        train_iterations: Optional[int] = typer.Option(None, help=RunConfig.field_help("train_iterations")),
        train_minutes: Optional[float] = typer.Option(None, help=RunConfig.field_help("train_minutes")),
        mode: Optional[str] = typer.Option(None, help=RunConfig.field_help("mode")),
        mask: Optional[str] = typer.Option(None, help=RunConfig.field_help("mask")),
        color_transfer: Optional[str] = typer.Option(None, help=RunConfig.field_help("color_transfer")),
        format: Optional[str] = typer.Option(None, "--format", help=RunConfig.field_help("format")),
        device: Optional[str] = typer.Option(None, help=RunConfig.field_help("device")),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Run every stage: frames, faces, training, merge, result video (each resumes; saved configs are reused)."""
        from ..pipeline import run

        with cli_errors():
            cfg = build_config(RunConfig, config, interactive, src_fps=src_fps, frame_format=frame_format,
                               detector=detector, model=model, train_iterations=train_iterations,
                               train_minutes=train_minutes, mode=mode, mask=mask, color_transfer=color_transfer,
                               format=format, device=device)
            with reporter() as rep:
                result = run(Workspace(workspace), cfg, reporter=rep)
            err_console.print(f"done: {result.result} ({result.merged_frames} frames, model at iteration "
                              f"{result.iteration}; {result.src_faces} src and {result.dst_faces} dst faces).")
