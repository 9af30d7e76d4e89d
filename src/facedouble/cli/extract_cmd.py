"""`facedouble extract src|dst`: aligned faces from the frames."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..choices import Detector, FaceType, TargetPick, values
from ..config import ExtractConfig
from ..errors import OptionError
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter

DETECTORS_HELP = ("auto (mediapipe, then MTCNN where it finds nothing; the fastest), mt (MTCNN), dlib (HOG, frontal "
                  "faces), dlib-cnn (accurate, seconds per frame), mediapipe (BlazeFace), manual (rectangles from "
                  "--rects). [default: auto]")


def _choice(flag: str, value: Optional[str], literal) -> Optional[str]:
    if value is not None and value not in values(literal):
        raise OptionError(f"{flag} must be one of {', '.join(values(literal))}, not {value!r}.")
    return value


def register(app: typer.Typer) -> None:
    @app.command("extract", rich_help_panel="2. Faces")
    def extract(
        side: str = typer.Argument(..., metavar="SIDE", help="src or dst: extract faces from data_src/ or data_dst/."),
        workspace: Path = WorkspaceArg,
        detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Face detector: " + DETECTORS_HELP,
                                               show_default=False),
        face_type: Optional[str] = typer.Option(None, "--face-type", help="half, mid-full, full, whole-face or head. "
                                                + ExtractConfig.field_help("face_type") + " [default: whole-face]"),
        size: Optional[int] = typer.Option(None, "--size", help=ExtractConfig.field_help("size") + " [default: 512]"),
        jpeg_quality: Optional[int] = typer.Option(None, "--jpeg-quality",
                                                   help=ExtractConfig.field_help("jpeg_quality") + " [default: 95]"),
        max_faces: Optional[int] = typer.Option(None, "--max-faces", help=ExtractConfig.field_help("max_faces")),
        debug: Optional[bool] = typer.Option(None, "--debug/--no-debug", help=ExtractConfig.field_help("debug"),
                                             show_default=False),
        reference: Optional[Path] = typer.Option(None, "--reference", help=ExtractConfig.field_help("reference")
                                                 + " (distance < 0.6)"),
        target: Optional[str] = typer.Option(None, "--target", help=ExtractConfig.field_help("target")),
        rects: Optional[Path] = typer.Option(None, "--rects", help=ExtractConfig.field_help("rects")
                                             + ': {"000012.png": \\[\\[x0, y0, x1, y1], ...]}'),
        manual_fix: Optional[bool] = typer.Option(None, "--manual-fix/--no-manual-fix",
                                                  help=ExtractConfig.field_help("manual_fix"), show_default=False),
        manual_fix_deleted: bool = typer.Option(False, "--manual-fix-deleted",
                                                help="Re-extract only the frames whose aligned_debug image you deleted "
                                                     "(their faces go to aligned_trash/; --rects gives boxes for them)."),
        smooth: Optional[bool] = typer.Option(None, "--smooth/--no-smooth", help=ExtractConfig.field_help("smooth"),
                                              show_default=False),
        identity_every: Optional[int] = typer.Option(None, "--identity-every",
                                                     help=ExtractConfig.field_help("identity_every") + " [default: 5]"),
        detect_size: Optional[int] = typer.Option(None, "--detect-size",
                                                  help=ExtractConfig.field_help("detect_size") + " [default: 640]"),
        device: Optional[str] = typer.Option(None, "--device", help=ExtractConfig.field_help("device")),
        workers: Optional[int] = typer.Option(None, "--workers", help=ExtractConfig.field_help("workers")),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Find faces in the frames, fit 68 landmarks, and write aligned faces to data_<side>/aligned/ (a re-run
        resumes). dst keeps one smoothed face per frame for the target person."""
        from ..extract import extract as run_extract
        from ..extract import manual_fix_deleted as run_fix_deleted

        with cli_errors():
            if side not in ("src", "dst"):
                raise OptionError(f"SIDE must be src or dst, not {side!r}.")
            cfg = build_config(
                ExtractConfig, config, interactive,
                detector=_choice("--detector", detector, Detector), face_type=_choice("--face-type", face_type, FaceType),
                size=size, jpeg_quality=jpeg_quality, max_faces=max_faces, debug=debug,
                reference=str(reference) if reference else None, target=_choice("--target", target, TargetPick),
                rects=str(rects) if rects else None, manual_fix=manual_fix, smooth=smooth,
                identity_every=identity_every, detect_size=detect_size, device=device, workers=workers)
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
