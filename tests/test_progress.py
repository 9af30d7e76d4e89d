"""Progress output when stderr is not a terminal (CI logs, pipes, nohup): periodic lines with rate and time left."""

from __future__ import annotations

import io
import re
import shutil

from rich.console import Console

from facedouble.progress import RichReporter, progress_line

LINE = re.compile(r"^(?P<what>.+): (?P<done>\d+)/(?P<total>\d+) \(\d+%\), (?P<rate>[\d.]+)/s, "
                  r"(?P<elapsed>\d+:\d\d:\d\d) elapsed(, (?P<left>\d+:\d\d:\d\d) left)?$")


def _log_reporter(**kw) -> tuple[RichReporter, io.StringIO]:
    out = io.StringIO()
    rep = RichReporter(console=Console(file=out, force_terminal=False, width=300), **kw)
    assert not rep.console.is_terminal
    return rep, out


def test_progress_line_has_rate_and_time_left():
    assert progress_line("merge", 4, 10, 12.0) == "merge: 4/10 (40%), 0.3/s, 0:00:12 elapsed, 0:00:18 left"
    assert progress_line("merge", 10, 10, 30.0) == "merge: 10/10 (100%), 0.3/s, 0:00:30 elapsed"
    assert progress_line("reading", 7, None, 2.0) == "reading: 7, 3.5/s, 0:00:02 elapsed"
    assert progress_line("x", 1, 7200, 1.0).endswith("1:59:59 left")


def test_not_a_terminal_prints_a_line_every_few_seconds():
    now = [100.0]
    rep, out = _log_reporter(every=10.0, clock=lambda: now[0])
    with rep.task("merge", 10) as advance:
        for _ in range(10):
            now[0] += 3.0  # one item every 3 s: lines at 12 s and 24 s, then the totals at 30 s
            advance(1)
    lines = out.getvalue().splitlines()
    assert lines == ["merge: 4/10 (40%), 0.3/s, 0:00:12 elapsed, 0:00:18 left",
                     "merge: 8/10 (80%), 0.3/s, 0:00:24 elapsed, 0:00:06 left",
                     "merge: 10/10 (100%), 0.3/s, 0:00:30 elapsed"]
    assert "done" not in out.getvalue()


def test_training_status_line_in_logs_is_periodic():
    now = [0.0]
    rep, out = _log_reporter(status_every=30.0, clock=lambda: now[0])
    for i in range(100):
        now[0] = i * 1.0
        rep.status(f"iter {i}")
    assert out.getvalue().splitlines() == ["iter 0", "iter 30", "iter 60", "iter 90"]


def test_a_real_stage_logs_progress_with_rate_and_eta(media, workspace):
    """Frame extraction of the real 72-frame clip, output not a terminal: several progress lines, each with a
    count, a rate and (until the end) the time left, counting up to the total."""
    from facedouble.config import VideoExtractConfig
    from facedouble.video.frames import extract_frames

    shutil.copyfile(media / "single_face.mp4", workspace.root / "data_dst.mp4")
    rep, out = _log_reporter(every=0.0)  # a line at every frame, so the test does not depend on the speed
    extract_frames(workspace, "dst", VideoExtractConfig(format="jpg"), reporter=rep)
    found = [m for m in map(LINE.match, out.getvalue().splitlines()) if m]
    assert len(found) >= 10, out.getvalue()
    done = [int(m["done"]) for m in found]
    assert done == sorted(done) and done[-1] == int(found[-1]["total"]) == 72
    assert all(float(m["rate"]) > 0 for m in found)
    assert all(m["left"] for m in found[:-2])  # time left on every line but the last ones
