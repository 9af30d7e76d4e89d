"""`facedouble video extract|cut|denoise|build`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import DenoiseConfig, VideoBuildConfig, VideoCutConfig, VideoExtractConfig
from ..errors import OptionError
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter


def _side(value: str, allowed: tuple[str, ...] = ("src", "dst")) -> str:
    if value not in allowed:
        raise OptionError(f"SIDE must be {' or '.join(allowed)}, not {value!r}.")
    return value


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Frames out of videos, cut, denoise, and frames back into the result video.",
                        no_args_is_help=True)

    @group.command("extract")
    def extract(
        side: str = typer.Argument(..., metavar="SIDE", help="src (data_src.*) or dst (data_dst.*)."),
        workspace: Path = WorkspaceArg,
        fps: Optional[float] = typer.Option(None, "--fps", help=VideoExtractConfig.field_help("fps")),
        format: Optional[str] = typer.Option(None, "--format", help="png or jpg. " + VideoExtractConfig.field_help("format")),
        jpeg_quality: Optional[int] = typer.Option(None, "--jpeg-quality", help=VideoExtractConfig.field_help("jpeg_quality")),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Write every frame of data_src.* / data_dst.* into data_src/ / data_dst/ (000001.png, ...); a re-run resumes."""
        from ..video import extract_frames

        with cli_errors():
            cfg = build_config(VideoExtractConfig, config, interactive, fps=fps, format=format, jpeg_quality=jpeg_quality)
            with reporter() as rep:
                res = extract_frames(Workspace(workspace), _side(side), cfg, reporter=rep)
            err_console.print(f"{res.total} frames in {res.folder} ({res.written} written, {res.kept} already there).")

    @group.command("cut")
    def cut(
        file: Path = typer.Argument(..., help="Video to cut; the output is FILE_cut.EXT beside it."),
        start: Optional[str] = typer.Option(None, "--from", help=VideoCutConfig.field_help("start")),
        end: Optional[str] = typer.Option(None, "--to", help=VideoCutConfig.field_help("end")),
        audio_track: Optional[int] = typer.Option(None, "--audio-track", help=VideoCutConfig.field_help("audio_track")),
        bitrate: Optional[float] = typer.Option(None, "--bitrate", help=VideoCutConfig.field_help("bitrate")),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Cut a time span out of a video into FILE_cut.EXT (the original is kept; an older _cut is backed up)."""
        from ..video import cut_video

        with cli_errors():
            cfg = build_config(VideoCutConfig, config, interactive, start=start, end=end, audio_track=audio_track,
                               bitrate=bitrate)
            with reporter() as rep:
                res = cut_video(file, cfg, reporter=rep)
            err_console.print(f"wrote {res.path} ({res.frames} frames, {res.duration:.3f} s"
                              f"{', with audio' if res.audio else ''}).")

    @group.command("denoise")
    def denoise(
        side: str = typer.Argument("dst", metavar="SIDE", help="dst (only the dst frames are denoised)."),
        workspace: Path = WorkspaceArg,
        factor: Optional[int] = typer.Option(None, "--factor", help=DenoiseConfig.field_help("factor")),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Edge-preserving denoise of the dst frames in place; originals go to data_dst/denoise_backup/."""
        from ..video import denoise_frames

        with cli_errors():
            _side(side, ("dst",))
            cfg = build_config(DenoiseConfig, config, interactive, factor=factor)
            with reporter() as rep:
                res = denoise_frames(Workspace(workspace), cfg, reporter=rep)
            err_console.print(f"denoised {res.denoised} frames ({res.kept} were already done); originals in {res.backup}.")

    @group.command("build")
    def build(
        workspace: Path = WorkspaceArg,
        format: Optional[str] = typer.Option(None, "--format", help=VideoBuildConfig.field_help("format")),
        bitrate: Optional[float] = typer.Option(None, "--bitrate", help=VideoBuildConfig.field_help("bitrate")),
        input_dir: Optional[str] = typer.Option(None, "--input", help=VideoBuildConfig.field_help("input_dir")),
        sign_cert: Optional[Path] = typer.Option(None, "--sign-cert", help=VideoBuildConfig.field_help("sign_cert")),
        sign_key: Optional[Path] = typer.Option(None, "--sign-key", help=VideoBuildConfig.field_help("sign_key")),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Encode data_dst/merged into result.mp4 (or .avi/.mov) with the fps and audio of data_dst.*."""
        from ..video import build_video

        with cli_errors():
            cfg = build_config(VideoBuildConfig, config, interactive, format=format, bitrate=bitrate, input_dir=input_dir,
                               sign_cert=str(sign_cert) if sign_cert else None,
                               sign_key=str(sign_key) if sign_key else None)
            with reporter() as rep:
                res = build_video(Workspace(workspace), cfg, reporter=rep)
            audio = {"copied": "audio copied", "encoded": "audio re-encoded", "none": "no audio"}[res.audio]
            err_console.print(f"wrote {res.path} ({res.frames} frames, {res.duration:.3f} s, {audio}).")

    app.add_typer(group, name="video", rich_help_panel="1. Prepare")
