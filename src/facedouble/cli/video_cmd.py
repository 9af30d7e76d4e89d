"""`facedouble video extract|cut|denoise|build`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import VideoCutConfig
from ..errors import OptionError
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter
from .options import config_options
from ..stages import stage


def _side(value: str, allowed: tuple[str, ...] = ("src", "dst")) -> str:
    if value not in allowed:
        raise OptionError(f"SIDE must be {' or '.join(allowed)}, not {value!r}.")
    return value


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Frames out of videos, cut, denoise, and frames back into the result video.",
                        no_args_is_help=True)

    @group.command("extract")
    @config_options(stage("video-extract").config)
    def extract(
        side: str = typer.Argument(..., metavar="SIDE", help="src (data_src.*) or dst (data_dst.*)."),
        workspace: Path = WorkspaceArg,
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Write every frame of data_src.* / data_dst.* into data_src/ / data_dst/ (000001.png, ...); a re-run resumes."""
        extract_frames = stage("video-extract").function()

        with cli_errors():
            cfg = build_config(stage("video-extract").config, config, interactive, **(given or {}))
            with reporter() as rep:
                res = extract_frames(Workspace(workspace), _side(side), cfg, reporter=rep)
            err_console.print(f"{res.total} frames in {res.folder} ({res.written} written, {res.kept} already there).")

    @group.command("cut")
    @config_options(VideoCutConfig)
    def cut(
        file: Path = typer.Argument(..., help="Video to cut; the output is FILE_cut.EXT beside it."),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Cut a time span out of a video into FILE_cut.EXT (the original is kept; an older _cut is backed up)."""
        from ..video import cut_video

        with cli_errors():
            cfg = build_config(VideoCutConfig, config, interactive, **(given or {}))
            with reporter() as rep:
                res = cut_video(file, cfg, reporter=rep)
            err_console.print(f"wrote {res.path} ({res.frames} frames, {res.duration:.3f} s"
                              f"{', with audio' if res.audio else ''}).")

    @group.command("denoise")
    @config_options(stage("denoise").config)
    def denoise(
        side: str = typer.Argument("dst", metavar="SIDE", help="dst (only the dst frames are denoised)."),
        workspace: Path = WorkspaceArg,
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Edge-preserving denoise of the dst frames in place; originals go to data_dst/denoise_backup/."""
        denoise_frames = stage("denoise").function()

        with cli_errors():
            _side(side, ("dst",))
            cfg = build_config(stage("denoise").config, config, interactive, **(given or {}))
            with reporter() as rep:
                res = denoise_frames(Workspace(workspace), cfg, reporter=rep)
            err_console.print(f"denoised {res.denoised} frames ({res.kept} were already done); originals in {res.backup}.")

    @group.command("build")
    @config_options(stage("build").config)
    def build(
        workspace: Path = WorkspaceArg,
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Encode data_dst/merged into result.mp4 (or .avi/.mov) with the fps and audio of data_dst.*."""
        build_video = stage("build").function()

        with cli_errors():
            cfg = build_config(stage("build").config, config, interactive, **(given or {}))
            with reporter() as rep:
                res = build_video(Workspace(workspace), cfg, reporter=rep)
            audio = {"copied": "audio copied", "encoded": "audio re-encoded", "none": "no audio"}[res.audio]
            err_console.print(f"wrote {res.path} ({res.frames} frames, {res.duration:.3f} s, {audio}).")

    app.add_typer(group, name="video", rich_help_panel="1. Prepare")
