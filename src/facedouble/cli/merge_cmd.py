"""`facedouble merge`: put the trained model's face onto every dst frame (data_dst/merged, merged_mask)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..choices import ColorTransfer, MaskMode, MergeMode, RawLayer, SharpenMode, values
from ..config import MergeConfig
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter


def _help(name: str, choices=None) -> str:
    text = MergeConfig.field_help(name)
    if choices is not None:
        text += " (" + ", ".join(values(choices)) + ")"
    default = MergeConfig.__dataclass_fields__[name].default
    return text + f" [default: {default}]"


def register(app: typer.Typer) -> None:
    @app.command("merge", rich_help_panel="4. Merge")
    def merge_command(
        workspace: Path = WorkspaceArg,
        model: Optional[Path] = typer.Option(None, "--model", help=_help("model")),
        model_name: Optional[str] = typer.Option(None, "--model-name", help=_help("model_name")),
        model_file: Optional[Path] = typer.Option(None, "--model-file", help=_help("model_file") +
                                                  " (any DFM, e.g. from `export-onnx --format dfm`)"),
        device: Optional[str] = typer.Option(None, "--device", help=_help("device")),
        mode: Optional[str] = typer.Option(None, "--mode", help=_help("mode", MergeMode), show_default=False),
        raw: Optional[str] = typer.Option(None, "--raw", help=_help("raw", RawLayer), show_default=False),
        mask: Optional[str] = typer.Option(None, "--mask", help=_help("mask", MaskMode), show_default=False),
        suppress_seamless_jitter: Optional[bool] = typer.Option(
            None, "--suppress-seamless-jitter/--no-suppress-seamless-jitter", help=_help("suppress_seamless_jitter"),
            show_default=False),
        masked_hist_match: Optional[bool] = typer.Option(None, "--masked-hist-match/--no-masked-hist-match",
                                                         help=_help("masked_hist_match"), show_default=False),
        hist_threshold: Optional[int] = typer.Option(None, "--hist-threshold", help=_help("hist_threshold")),
        erode: Optional[int] = typer.Option(None, "--erode", help=_help("erode")),
        blur: Optional[int] = typer.Option(None, "--blur", help=_help("blur")),
        face_scale: Optional[int] = typer.Option(None, "--face-scale", help=_help("face_scale")),
        color_transfer: Optional[str] = typer.Option(None, "--color-transfer", help=_help("color_transfer", ColorTransfer),
                                                     show_default=False),
        morph_factor: Optional[float] = typer.Option(None, "--morph-factor", help=_help("morph_factor"),
                                                     show_default=False),
        super_resolution: Optional[bool] = typer.Option(None, "--super-resolution/--no-super-resolution",
                                                        help=_help("super_resolution"), show_default=False),
        degrade_color: Optional[int] = typer.Option(None, "--degrade-color", help=_help("degrade_color")),
        sharpen: Optional[int] = typer.Option(None, "--sharpen", help=_help("sharpen")),
        sharpen_mode: Optional[str] = typer.Option(None, "--sharpen-mode", help=_help("sharpen_mode", SharpenMode),
                                                   show_default=False),
        denoise: Optional[int] = typer.Option(None, "--denoise", help=_help("denoise")),
        bicubic_degrade: Optional[int] = typer.Option(None, "--bicubic-degrade", help=_help("bicubic_degrade")),
        motion_blur: Optional[int] = typer.Option(None, "--motion-blur", help=_help("motion_blur")),
        export_alpha: Optional[bool] = typer.Option(None, "--export-alpha/--no-export-alpha", help=_help("export_alpha"),
                                                    show_default=False),
        debug: Optional[bool] = typer.Option(None, "--debug/--no-debug", help=_help("debug") + " (data_dst/merged_debug)",
                                             show_default=False),
        smooth_frames: Optional[int] = typer.Option(None, "--smooth-frames", help=_help("smooth_frames")),
        skin_mask: Optional[bool] = typer.Option(None, "--skin-mask/--no-skin-mask", help=_help("skin_mask"),
                                                 show_default=False),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help=_help("batch_size")),
        sign_cert: Optional[Path] = typer.Option(None, "--sign-cert", help=_help("sign_cert"), show_default=False),
        sign_key: Optional[Path] = typer.Option(None, "--sign-key", help=_help("sign_key"), show_default=False),
        force: bool = typer.Option(False, "--force", help="Merge every frame again (default: keep frames already merged)."),
        frame: Optional[int] = typer.Option(None, "--frame", help="Merge only this frame number (1 = first) as a preview."),
        preview: Optional[Path] = typer.Option(None, "--preview", help="With --frame: write the preview here "
                                                                      "[default: WORKSPACE/preview_NNNNNN.png]."),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Replace the face in every dst frame with the model's src face: data_dst/merged/ (every frame; frames
        without a face are copied) and data_dst/merged_mask/. Resumes where it stopped. Every image written is marked as
        AI-generated and signed with C2PA content credentials (--sign-cert/--sign-key: an organisation's own)."""
        from ..merge.merger import merge, preview as preview_frame

        with cli_errors():
            cfg = build_config(
                MergeConfig, config, interactive, mode=mode, raw=raw, mask=mask,
                suppress_seamless_jitter=suppress_seamless_jitter, masked_hist_match=masked_hist_match,
                hist_threshold=hist_threshold, erode=erode, blur=blur, face_scale=face_scale,
                color_transfer=color_transfer, morph_factor=morph_factor,
                super_resolution=super_resolution, degrade_color=degrade_color,
                sharpen=sharpen, sharpen_mode=sharpen_mode, denoise=denoise, bicubic_degrade=bicubic_degrade,
                motion_blur=motion_blur,
                export_alpha=export_alpha, debug=debug, device=device, batch_size=batch_size,
                smooth_frames=smooth_frames, skin_mask=skin_mask, model=str(model) if model else None,
                model_name=model_name, model_file=str(model_file) if model_file else None,
                sign_cert=str(sign_cert) if sign_cert else None, sign_key=str(sign_key) if sign_key else None)
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
