"""`facedouble extract src|dst`: aligned faces from the frames."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import OptionError
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter
from .options import config_options
from ..stages import stage

DETECTORS_HELP = ("auto (mediapipe, then MTCNN where it finds nothing; the fastest), mt (MTCNN), dlib (HOG, frontal "
                  "faces), dlib-cnn (accurate, seconds per frame), mediapipe (BlazeFace), manual (rectangles from "
                  "--rects)")


def register(app: typer.Typer) -> None:
    @app.command("extract", rich_help_panel="2. Faces")
    @config_options(stage("extract").config, extra_help={
        "detector": ": " + DETECTORS_HELP, "reference": " (distance < 0.6)",
        "rects": ': {"000012.png": \\[\\[x0, y0, x1, y1], ...]}'})
    def extract(
        side: str = typer.Argument(..., metavar="SIDE", help="src or dst: extract faces from data_src/ or data_dst/."),
        workspace: Path = WorkspaceArg,
        manual_fix_deleted: bool = typer.Option(False, "--manual-fix-deleted",
                                                help="Re-extract only the frames whose aligned_debug image you deleted "
                                                     "(their faces go to aligned_trash/; --rects gives boxes for them)."),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Find faces in the frames, fit 68 landmarks, and write aligned faces to data_<side>/aligned/ (a re-run
        resumes). dst keeps one smoothed face per frame for the target person."""
        run_extract = stage("extract").function()
        run_fix_deleted = stage("manual-fix-deleted").function()

        with cli_errors():
            if side not in ("src", "dst"):
                raise OptionError(f"SIDE must be src or dst, not {side!r}.")
            cfg = build_config(stage("extract").config, config, interactive, **(given or {}))
            ws = Workspace(workspace)
            with reporter() as rep:
                if manual_fix_deleted:
                    summary = run_fix_deleted(ws, side, cfg, reporter=rep)  # type: ignore[arg-type]
                else:
                    summary = run_extract(ws, side, cfg, reporter=rep)  # type: ignore[arg-type]
            err_console.print(summary.text(), highlight=False, soft_wrap=True)
            if summary.manual_fix_file is not None or (manual_fix_deleted and summary.no_face):
                if summary.no_face:
                    shown = ", ".join(summary.no_face[:30]) + (" ..." if len(summary.no_face) > 30 else "")
                    err_console.print(f"frames without a face ({len(summary.no_face)}): {shown}", highlight=False,
                                      soft_wrap=True)
                    err_console.print("fix them in the browser UI (`facedouble ui`) or with --detector manual "
                                      "--rects FILE.", highlight=False)
                else:
                    err_console.print("every frame has a face.")
                if summary.manual_fix_file is not None:
                    err_console.print(f"list written to {summary.manual_fix_file}", highlight=False)
