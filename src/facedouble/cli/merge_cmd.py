"""`facedouble merge`: put the trained model's face onto every dst frame (data_dst/merged, merged_mask)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter
from .options import config_options
from ..stages import stage


def register(app: typer.Typer) -> None:
    @app.command("merge", rich_help_panel="4. Merge")
    @config_options(stage("merge").config, extra_help={"model_file": " (any DFM, e.g. from `export-onnx --format dfm`)",
                                             "debug": " (data_dst/merged_debug)"})
    def merge_command(
        workspace: Path = WorkspaceArg,
        force: bool = typer.Option(False, "--force", help="Merge every frame again (default: keep frames already merged)."),
        frame: Optional[int] = typer.Option(None, "--frame", help="Merge only this frame number (1 = first) as a preview."),
        preview: Optional[Path] = typer.Option(None, "--preview", help="With --frame: write the preview here "
                                                                      "\\[default: WORKSPACE/preview_NNNNNN.png]."),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Replace the face in every dst frame with the model's src face: data_dst/merged/ (every frame; frames
        without a face are copied) and data_dst/merged_mask/. Resumes where it stopped. Every image written is marked as
        AI-generated and signed with C2PA content credentials (--sign-cert/--sign-key: an organisation's own)."""
        from ..merge.merger import preview as preview_frame
        merge = stage("merge").function()

        with cli_errors():
            cfg = build_config(stage("merge").config, config, interactive, **(given or {}))
            ws = Workspace(workspace).require()
            with reporter() as rep:
                if frame is not None or preview is not None:
                    if frame is None:
                        from ..errors import OptionError

                        raise OptionError("--preview needs --frame N (the frame number to merge).")
                    out = preview or ws.root / f"preview_{frame:06d}.png"
                    preview_frame(ws, cfg, frame, out, reporter=rep)
                    err_console.print(f"preview of frame {frame} written to {out}", highlight=False)
                    return
                summary = merge(ws, cfg, reporter=rep, force=force)
            err_console.print(
                f"merged {summary.written} frame(s) into {ws.merged} ({summary.skipped} kept from before, "
                f"{summary.copied} without a face copied); next: facedouble video build -w {ws.root}", highlight=False)
