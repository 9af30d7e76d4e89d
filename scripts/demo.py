"""`make demo`: the whole pipeline on the sample media, ending with workspace-demo/result.mp4.

src = the woman's clip (WolfgangLanger_Pexels.mp4), dst = the man's clip (single_face.mp4). The model is
the CPU preset trained for a fixed budget (DEMO_TRAIN_MINUTES, default 10), so the demo stays under about
20 minutes on a 2-core machine; a longer budget gives a better face. Re-running resumes and trains further.
Use the result only to try the software: do not publish swapped results of these people.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from media import media_dir  # noqa: E402


def main() -> int:
    from facedouble.config import RunConfig
    from facedouble.errors import FaceDoubleError
    from facedouble.native_logs import silence
    from facedouble.pipeline import run
    from facedouble.progress import RichReporter, stop_on_signals
    from facedouble.provenance.verify import verify_file
    from facedouble.workspace import Workspace

    silence()  # mediapipe's native log lines stay out of the demo's progress
    media = media_dir()
    ws = Workspace(os.environ.get("DEMO_WORKSPACE", ROOT / "workspace-demo")).create()
    for name, target in (("WolfgangLanger_Pexels.mp4", "data_src.mp4"), ("single_face.mp4", "data_dst.mp4")):
        if not (ws.root / target).exists():
            shutil.copyfile(media / name, ws.root / target)
    minutes = float(os.environ.get("DEMO_TRAIN_MINUTES", "10"))
    cfg = RunConfig(src_fps=8, train_minutes=minutes)   # model: the workspace's, else the default preset
    rep = RichReporter()
    try:
        with stop_on_signals(rep):
            result = run(ws, cfg, reporter=rep)
    except FaceDoubleError as e:
        rep.console.print(f"[bold red]error:[/] {e.message}")
        return e.exit_code
    report = verify_file(result.result)
    rep.console.print(f"result: {result.result}  ({result.merged_frames} frames, model iteration {result.iteration})")
    rep.console.print(f"provenance: watermark found={report.watermark.get('found')}  C2PA={report.c2pa.get('state')}  "
                      f"tag={'yes' if report.tag else 'no'}")
    try:
        from facedouble.report import make_report  # the quality report, when installed
    except ImportError:
        return 0
    try:
        out = make_report(ws, reporter=rep)
        rep.console.print(f"quality report: {out.html}")
    except FaceDoubleError as e:
        rep.console.print(f"[yellow]quality report skipped:[/] {e.message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
