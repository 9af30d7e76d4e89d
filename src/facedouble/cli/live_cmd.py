"""`facedouble live`: swap the face of a camera, stream or file as it plays (facedouble.live)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import LiveConfig
from ..workspace import Workspace
from .common import ConfigOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter
from .options import config_options


def register(app: typer.Typer) -> None:
    @app.command("live", rich_help_panel="4. Merge")
    @config_options(LiveConfig)
    def live_command(
        workspace: Path = WorkspaceArg,
        config: Optional[Path] = ConfigOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Swap the face of a camera, a stream or a video file as it plays, into a file (the timing and sound of
        a file or stream source, or a microphone's with --audio; content credentials), a stream (MPEG-TS over
        UDP, RTMP; with the sound) or a virtual camera (vcam). Every frame is marked as AI-generated; the source
        is screened for explicit content. Ctrl-C stops and closes the output properly. In a terminal, keys
        change it while it runs (listed at start; q stops)."""
        from ..live import live
        from .train_cmd import TerminalKeys

        with cli_errors():
            cfg = build_config(LiveConfig, config, False, **(given or {}))
            ws_model = None if (cfg.model or cfg.model_file) else Workspace(workspace).model
            with reporter() as rep, TerminalKeys() as keys:
                summary = live(cfg, workspace_model=ws_model, reporter=rep, keys=keys if keys.active else None)
            if summary.out.strip().lower() in ("", "none"):
                err_console.print(f"swapped {summary.frames_out} frame(s) (no output: --out none)")
            else:
                err_console.print(f"wrote {summary.out}" if "://" not in summary.out and summary.out != "vcam" else
                                  f"sent {summary.frames_out} frame(s) to {summary.out}")
