"""`facedouble verify FILE...`: the provenance marks of images and videos.

Exit status: 0 when every file is marked (watermark found, or a valid C2PA manifest declaring it
AI-generated), 1 when one or more is not, 2 when one or more could not be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

import typer
from rich.console import Console

from ..errors import FaceDoubleError
from .common import cli_errors, err_console


def _lines(report: dict[str, Any]) -> list[str]:
    wm = report["watermark"]
    out = [f"[bold]{report['path']}[/]: " + ("[green]marked as AI-generated[/]" if report["marked"]
                                               else "[red]no facedouble marks[/]")]
    if wm["found"]:
        p = wm["payload"] or {}
        where = (f"{wm['frames_found']}/{wm['frames_checked']} frames alone, all {wm['frames_checked']} summed"
                 if report["kind"] == "video" else "image")
        extra = f", cropped/scaled x{wm['scale']:.3f}" if wm.get("searched") else ""
        if abs(wm.get("gain", 1.0) - 1.0) > 1e-6:
            extra += f", contrast changed x{wm['gain']:.2f}"
        out.append(f"  watermark: [green]found[/] (bit accuracy {wm['bit_accuracy']:.3f}, facedouble "
                   f"{p.get('version')}, run {p.get('run_id')}; {where}{extra})")
    else:
        out.append(f"  watermark: not found ({wm['frames_checked']} frame(s) checked)")
    c = report["c2pa"]
    if c["state"] == "valid":
        claims = c["claims"]
        acts = ", ".join(a.get("action", "?") + (f" ({a['digitalSourceType'].rsplit('/', 1)[-1]})"
                                                 if a.get("digitalSourceType") else "")
                         for a in claims.get("actions", []))
        out.append(f"  C2PA: [green]valid[/] ({claims.get('trust')}); by {', '.join(claims.get('claim_generator', []))}; "
                   f"actions: {acts}")
        signer = claims.get("signer") or {}
        who = ", ".join(v for v in (signer.get("common_name"), signer.get("issuer")) if v)
        if who:
            out.append(f"    signed by: {who}")
        for ing in claims.get("ingredients", []):
            out.append(f"    ingredient: {ing.get('title')} ({ing.get('relationship')})")
        if claims.get("training"):
            t = claims["training"]
            out.append(f"    run {t.get('run_id')}" + (f", training sets sha256 {t['sha256'][:16]}..." if t.get("sha256") else ""))
    elif c["state"] == "invalid":
        out.append("  C2PA: [red]invalid[/] (changed after signing): " + "; ".join(c["errors"][:3]))
    else:
        out.append("  C2PA: absent" + (f" ({c['errors'][0]})" if c["errors"] else ""))
    if report["kind"] == "video":
        tag = report["tag"]
        out.append(f"  container tag: facedouble {tag.get('version')}, run {tag.get('run_id')}, AI-generated"
                   if tag else "  container tag: none")
    return out


def register(app: typer.Typer) -> None:
    @app.command("verify", rich_help_panel="Check")
    def verify_command(
        files: List[Path] = typer.Argument(..., help="Images or videos to check."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one report per file."),
    ) -> None:
        """Report the provenance marks of images and videos (watermark, C2PA, container tag).

        For each file: the invisible watermark (bit accuracy, payload), the C2PA content credentials
        (valid / invalid / absent, with their claims) and, for a video, the container tag. Exit status 0 when
        every file is marked, 1 when one is not, 2 when one cannot be read."""
        from ..provenance.verify import verify_file

        code = 0
        results: list[dict[str, Any]] = []
        console = Console()
        with cli_errors():
            for path in files:
                try:
                    report = verify_file(path).to_dict()
                except FaceDoubleError as e:
                    code = 2
                    results.append({"path": str(path), "error": e.message})
                    err_console.print(f"[bold red]error:[/] {e.message}", highlight=False, soft_wrap=True)
                    continue
                if not report["marked"] and code == 0:
                    code = 1
                results.append(report)
                if not as_json:
                    for line in _lines(report):
                        console.print(line, highlight=False, soft_wrap=True)
            if as_json:
                print(json.dumps(results, indent=2, default=str))
        raise typer.Exit(code)
