"""`facedouble report`: score a result against dst and src and write report.html + report.json."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter
from .options import config_options
from ..stages import stage


def register(app: typer.Typer) -> None:
    @app.command("report", rich_help_panel="5. Check")
    @config_options(stage("report").config)
    def report_command(
        workspace: Path = WorkspaceArg,
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Quality report of a face swap: identity (nearer src than dst?), expression and pose kept from dst
        (68-landmark error, yaw, pitch), flicker and jitter relative to dst, untouched background (PSNR), seam
        colour, face detail and coverage, judged against the targets; writes WORKSPACE/report/report.html (one
        self-contained page) and report.json. Without files it uses the workspace's result.mp4 (or
        data_dst/merged), dst frames and data_src/aligned."""
        make_report = stage("report").function()

        with cli_errors():
            cfg = build_config(stage("report").config, config, interactive, **(given or {}))
            with reporter() as rep:
                res = make_report(Workspace(workspace), cfg, reporter=rep)
            for c in res.summary["checks"]:
                mark = {True: "[green]pass[/]", False: "[red]fail[/]", None: "[dim]n/a[/]"}[c["pass"]]
                value = "-" if c["value"] is None else f"{c['value']:.3f}"
                err_console.print(f"  {mark}  {c['name']}: {value} (target {c['op']} {c['target']:g})", highlight=False)
            verdict = {True: "every target met", False: "some targets missed", None: "nothing could be judged"}
            err_console.print(f"{res.frames_scored} frames scored in {res.seconds:.0f} s: {verdict[res.summary['pass']]}; "
                              f"report in {res.html} (and {res.json.name})", highlight=False)
