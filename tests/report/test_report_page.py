"""The report page's plots: drawn at the size the page shows them (so their text is readable), with axis
labels, and the background plot draws the figure the check judges, labelled apart from the raw one."""

from __future__ import annotations

import cv2
import numpy as np

from facedouble.report import metrics as M
from facedouble.report import page


def _scores(n: int = 12) -> list[M.FrameScore]:
    out = []
    for i in range(n):
        s = M.FrameScore(number=1 + 2 * i)
        s.dst_face, s.swapped = True, True
        s.d_src, s.d_dst = 0.45 + 0.01 * i, 0.7
        s.landmark_error = 0.04
        s.background_psnr, s.background_merge_psnr = 41.0 + 0.05 * i, 52.0 + 0.05 * i
        out.append(s)
    return out


def test_plots_are_drawn_at_their_display_size():
    pngs = page.plots(_scores(), M.Targets())
    assert len(pngs) == len(page.plot_panels(M.Targets())) + 1        # the panels and the coverage strip
    for title, data in pngs.items():
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape[1] == page.PLOT_W_PX * page.PLOT_SCALE, title
    html = page.render(_page_data(), {}, pngs)
    assert html.count(f'width="{page.PLOT_W_PX}"') == len(pngs)      # shown at the size drawn
    assert "DESIGN.md" not in html and "quality targets" in html


def test_background_plot_shows_the_judged_figure_labelled_and_the_raw_one():
    panels = {p[0]: p for p in page.plot_panels(M.Targets())}
    title, ylabel, lines, ref = next(p for t, p in panels.items() if t.startswith("Background PSNR"))
    assert ylabel == "PSNR (dB)" and ref[0] == 45.0
    s = _scores(1)[0]
    (judged, get_judged, _, _), (raw, get_raw, _, _) = lines
    assert judged.startswith("judged") and get_judged(s) == s.background_merge_psnr     # what the check uses
    assert raw.startswith("raw") and get_raw(s) == s.background_psnr
    assert all(p[1] for p in panels.values())                          # every panel names its y axis


def _page_data() -> dict:
    scores = _scores()
    summary = M.summarize(scores, M.Targets())
    return {"created": "now", "coverage_text": "12 frames", "summary": summary, "notes": [], "worst": [],
            "settings": {}, "inputs": {"result": "r"}, "config": {}, "timing": {}}
