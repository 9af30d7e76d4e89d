"""`facedouble report`: score a result against dst and src and write report.html + report.json."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..config import ReportConfig
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter


def _help(name: str) -> str:
    # the backslash keeps Rich from reading "[default: ...]" as markup
    return ReportConfig.field_help(name) + f" \\[default: {ReportConfig.__dataclass_fields__[name].default}]"


def register(app: typer.Typer) -> None:
    @app.command("report", rich_help_panel="5. Check")
    def report_command(
        workspace: Path = WorkspaceArg,
        result: Optional[Path] = typer.Option(None, "--result", help=ReportConfig.field_help("result")),
        dst: Optional[Path] = typer.Option(None, "--dst", help=ReportConfig.field_help("dst")),
        src: Optional[List[Path]] = typer.Option(None, "--src", help=ReportConfig.field_help("src") + "; repeat for several"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help=ReportConfig.field_help("out")),
        every: Optional[int] = typer.Option(None, "--every", "-n", help=_help("every")),
        samples: Optional[int] = typer.Option(None, "--samples", help=_help("samples")),
        src_faces: Optional[int] = typer.Option(None, "--src-faces", help=_help("src_faces")),
        detector: Optional[str] = typer.Option(None, "--detector", help=_help("detector")),
        device: Optional[str] = typer.Option(None, "--device", help=_help("device")),
        worst: Optional[int] = typer.Option(None, "--worst", help=_help("worst")),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Quality report of a face swap: identity (nearer src than dst?), expression and pose kept from dst
        (68-landmark error, yaw, pitch), flicker and jitter relative to dst, untouched background (PSNR), seam
        colour, face detail and coverage, judged against the targets; writes WORKSPACE/report/report.html (one
        self-contained page) and report.json. Without files it uses the workspace's result.mp4 (or
        data_dst/merged), dst frames and data_src/aligned."""
        from ..report import make_report

        with cli_errors():
            cfg = build_config(
                ReportConfig, config, interactive, every=every, samples=samples, src_faces=src_faces,
                detector=detector, device=device, worst=worst, result=str(result) if result else None,
                dst=str(dst) if dst else None, src=tuple(str(p) for p in src) if src else None,
                out=str(out) if out else None)
            with reporter() as rep:
                res = make_report(Workspace(workspace), cfg, reporter=rep)
            for c in res.summary["checks"]:
                mark = {True: "[green]pass[/]", False: "[red]fail[/]", None: "[dim]n/a[/]"}[c["pass"]]
                value = "-" if c["value"] is None else f"{c['value']:.3f}"
                err_console.print(f"  {mark}  {c['name']}: {value} (target {c['op']} {c['target']:g})", highlight=False)
            verdict = {True: "every target met", False: "some targets missed", None: "nothing could be judged"}
            err_console.print(f"{res.frames_scored} frames scored in {res.seconds:.0f} s: {verdict[res.summary['pass']]}; "
                              f"report in {res.html} (and {res.json.name})", highlight=False)
