"""`facedouble run WORKSPACE`: the whole pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import RunConfig
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, build_config, cli_errors, err_console, reporter
from .options import config_options


def register(app: typer.Typer) -> None:
    @app.command("run", rich_help_panel="Pipeline")
    @config_options(RunConfig)
    def run_command(
        workspace: Path = typer.Argument(..., help="Workspace with data_src.* and data_dst.*"),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Run every stage: frames, faces, training, merge, result video (each resumes; saved configs are reused)."""
        from ..pipeline import run

        with cli_errors():
            cfg = build_config(RunConfig, config, interactive, **(given or {}))
            with reporter() as rep:
                result = run(Workspace(workspace), cfg, reporter=rep)
            err_console.print(f"done: {result.result} ({result.merged_frames} frames, model at iteration "
                              f"{result.iteration}; {result.src_faces} src and {result.dst_faces} dst faces).")
