"""Writing the report: report.json (everything measured) and report.html, one self-contained page (inline
CSS, plots as base64 PNG from matplotlib's Agg backend, pictures as base64 JPEG; it opens offline)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import write_json_atomic
from ..files import atomic_write_text
from . import metrics as M

PLOT_W_PX = 560      # the width a plot is shown at on the page (CSS px); it is drawn for exactly that
PLOT_SCALE = 2       # pixels per CSS px in the PNG, so text stays sharp on high-density screens

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;
color:#222;background:#fafafa}
h1{margin-bottom:.1em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;border-bottom:1px solid #e3e3e3;text-align:left;
vertical-align:top}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{background:#d7f5dc;color:#0a5d1a;font-weight:600;padding:.1em .5em;border-radius:.3em}
.fail{background:#fbd9d9;color:#8a0b0b;font-weight:600;padding:.1em .5em;border-radius:.3em}
.na{background:#eee;color:#555;padding:.1em .5em;border-radius:.3em}
.verdict{font-size:1.3em;padding:.5em 1em;border-radius:.4em;display:inline-block;margin:.5em 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:1em}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:.4em;padding:.5em 1em}
.card h3{margin:.3em 0}
.grid.plots{grid-template-columns:repeat(auto-fit,minmax(520px,1fr))}
.plots img{width:100%;max-width:560px;height:auto;background:#fff;border:1px solid #e0e0e0;border-radius:.3em}
.frame img{height:180px;margin-right:4px;border:1px solid #ccc}
.frame td{border-bottom:1px solid #ddd}
.note{background:#fff8dc;border-left:4px solid #e0b000;padding:.4em .8em;margin:.5em 0}
pre{background:#f4f4f4;padding:.6em;overflow:auto;max-height:26em;font-size:.85em}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
"""


OPS = {">=": "&ge;", "<=": "&le;"}


# -- formatting ----------------------------------------------------------------------------------------------

def fmt(value: Any, digits: int = 3, unit: str = "") -> str:
    """A number for the page: rounded, '-' when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}{(' ' + unit) if unit else ''}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        text = f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
        return text + ((" " + unit) if unit else "")
    return html.escape(str(value))


def badge(ok: bool | None) -> str:
    if ok is None:
        return '<span class="na">n/a</span>'
    return '<span class="pass">pass</span>' if ok else '<span class="fail">fail</span>'


def _img(data: bytes, mime: str, alt: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{size} src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}">'


# -- plots ---------------------------------------------------------------------------------------------------

def _series(scores: Sequence[M.FrameScore], get) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for s in scores:
        v = get(s)
        if v is not None and np.isfinite(v):
            xs.append(s.number)
            ys.append(float(v))
    return np.asarray(xs), np.asarray(ys)


def plot_panels(t: M.Targets) -> list[tuple[str, str, list[tuple[str, Any, str, str]], tuple[float, str] | None]]:
    """The plots over time: (title, y-axis label with its unit, [(legend, value of a FrameScore, colour, line
    style)], (target, its legend) or None)."""
    def div(a, b):
        return None if a is None or b is None or not b else a / b

    return [
        ("Identity: distance to the src and dst centroids", "dlib distance (lower = more alike)",
         [("to src", lambda s: s.d_src, "tab:red", "-"), ("to dst", lambda s: s.d_dst, "tab:blue", "-")],
         (M.SAME_PERSON, f"same person below {M.SAME_PERSON:g}")),
        ("68-landmark error of the result against dst", "error / eye distance",
         [("result vs dst", lambda s: s.landmark_error, "tab:purple", "-")], (t.landmarks, f"target {t.landmarks:g}")),
        ("Pose difference to dst", "degrees",
         [("yaw", lambda s: s.yaw_diff, "tab:orange", "-"), ("pitch", lambda s: s.pitch_diff, "tab:green", "-")], None),
        ("Flicker and landmark jitter, result / dst (next 2 frames)", "ratio to dst",
         [("flicker", lambda s: div(s.flicker_result, s.flicker_dst), "tab:red", "-"),
          ("jitter", lambda s: div(s.jitter_result, s.jitter_dst), "tab:gray", "-")], (t.flicker, f"target {t.flicker:g}")),
        # the check judges the background against dst carrying the result's own provenance mark when that was
        # measured; the raw figure (mark included) is drawn beside it, lighter, so the two are never confused
        ("Background PSNR outside the face (100 dB = identical)", "PSNR (dB)",
         [("judged: vs dst with the same provenance mark", lambda s: s.background_merge_psnr, "tab:blue", "-"),
          ("raw: vs dst (the mark counts as a change)", lambda s: s.background_psnr, "tab:gray", ":")],
         (t.background_db, f"target {t.background_db:g} dB")),
        ("Colour step across the mask edge", "Lab Delta E",
         [("result", lambda s: s.seam_result, "tab:red", "-"), ("dst, same ring", lambda s: s.seam_dst, "tab:blue", "-")],
         None),
        ("Face detail (Laplacian variance), result / dst and / src", "ratio",
         [("/ dst", lambda s: s.detail_ratio, "tab:green", "-"), ("/ src", lambda s: s.detail_src, "tab:olive", "-")],
         (t.detail, f"target {t.detail:g}")),
    ]


def plots(scores: Sequence[M.FrameScore], t: M.Targets) -> dict[str, bytes]:
    """PNG plots over time (frame number on x), by title: each drawn at the size the page shows it
    (PLOT_W_PX wide, PLOT_SCALE pixels per CSS px), with axis labels and units, a legend and the target line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    size = (PLOT_W_PX / 100, 2.9)                    # inches at 100 dpi = CSS px / 100
    out: dict[str, bytes] = {}
    with plt.rc_context({"font.size": 9.5, "axes.titlesize": 10.5, "axes.labelsize": 9.5, "xtick.labelsize": 9,
                         "ytick.labelsize": 9, "legend.fontsize": 8.5}):
        for title, ylabel, lines, ref in plot_panels(t):
            fig, ax = plt.subplots(figsize=size, dpi=100)
            drawn = False
            for label, get, colour, style in lines:
                x, y = _series(scores, get)
                if len(x):
                    ax.plot(x, y, marker="o", ls=style, ms=3, lw=1.2, color=colour, label=label)
                    drawn = True
            if ref is not None and drawn:
                ax.axhline(ref[0], color="k", ls="--", lw=0.9, label=ref[1])
            if not drawn:
                ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="#888")
            ax.set_title(title)
            ax.set_xlabel("frame number")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if drawn:
                ax.legend(loc="best", framealpha=0.85)
            fig.tight_layout()
            out[title] = _png(fig, plt)
        # coverage strip
        fig, ax = plt.subplots(figsize=(PLOT_W_PX / 100, 1.6), dpi=100)
        cats = [("swapped", lambda s: s.dst_face and s.swapped, "tab:green"),
                ("dst face, not swapped", lambda s: s.dst_face and s.swapped is False, "tab:red"),
                ("swap unknown", lambda s: s.dst_face and s.swapped is None, "tab:gray"),
                ("no dst face", lambda s: not s.dst_face, "#bbbbbb")]
        for label, pick, colour in cats:
            x = [s.number for s in scores if pick(s)]
            if x:
                ax.scatter(x, np.ones(len(x)), marker="|", s=300, color=colour, label=label)
        ax.set_yticks([])
        ax.set_title("Sampled frames", loc="left")
        ax.set_xlabel("frame number")
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4, frameon=False, markerscale=0.5,
                  borderaxespad=0.1, handletextpad=0.3)
        fig.tight_layout()
        out["Coverage"] = _png(fig, plt)
    return out


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100 * PLOT_SCALE)
    plt.close(fig)
    return buf.getvalue()


# -- page ----------------------------------------------------------------------------------------------------

def _kv_table(rows: Sequence[tuple[str, str]], numbers: bool = True) -> str:
    cls = " class='num'" if numbers else ""
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td{cls}>{v}</td></tr>" for k, v in rows) + "</table>"


def _json_block(data: Any) -> str:
    return f"<pre>{html.escape(json.dumps(data, indent=2, sort_keys=False, allow_nan=False))}</pre>"


def _settings_html(settings: dict[str, Any]) -> str:
    if not settings:
        return "<p>No stage settings were found (the result was not made in a workspace the report could see).</p>"
    groups = {"Training (model/)": [], "Merge (data_dst/merge_*.json)": [], "Other stages": []}
    for name, data in settings.items():
        if name.startswith("model/"):
            groups["Training (model/)"].append((name, data))
        elif name.startswith("data_dst/merge"):
            groups["Merge (data_dst/merge_*.json)"].append((name, data))
        else:
            groups["Other stages"].append((name, data))
    parts = []
    for title, items in groups.items():
        if not items:
            continue
        parts.append(f"<h3>{html.escape(title)}</h3>")
        for name, data in items:
            opened = " open" if title != "Other stages" else ""
            parts.append(f"<details{opened}><summary>{html.escape(name)}</summary>{_json_block(data)}</details>")
    return "".join(parts)


def render(data: dict[str, Any], worst_thumbs: dict[int, dict[str, bytes]], plot_pngs: dict[str, bytes]) -> str:
    """The report page as one HTML string."""
    s = data["summary"]
    verdict = s.get("pass")
    vtext = {True: "PASS: every target met", False: "FAIL: some targets missed",
             None: "INCOMPLETE: nothing could be judged"}[verdict]
    vclass = {True: "pass", False: "fail", None: "na"}[verdict]
    h: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        "<title>facedouble quality report</title><style>", CSS, "</style></head><body>",
        "<h1>facedouble quality report</h1>",
        f"<p class='sub'>{html.escape(data['created'])} &middot; {data['coverage_text']}</p>",
        f"<div class='verdict {vclass}'>{vtext}</div>",
        "<h2>Summary against the quality targets</h2><table><tr><th>check</th><th>value</th><th>target</th>"
        "<th></th></tr>",
    ]
    for c in s["checks"]:
        h.append(f"<tr><td>{html.escape(c['name'])}</td><td class='num'>{fmt(c['value'], 3, c['unit'])}</td>"
                 f"<td class='num'>{OPS[c['op']]} {fmt(c['target'], 3, c['unit'])}</td><td>{badge(c['pass'])}</td></tr>")
    h.append("</table>")
    for note in data.get("notes", []):
        h.append(f"<div class='note'>{html.escape(note)}</div>")

    ident, ep, tp, bl, de, cov = (s["identity"], s["expression_pose"], s["temporal"], s["blending"], s["detail"],
                                  s["coverage"])
    cards = [
        ("Identity", [("faces measured", fmt(ident["n"])), ("nearer src than dst (retrieval)", fmt(ident["nearer_src"])),
                      ("within 0.6 of src (same person)", fmt(ident["same_as_src"])),
                      ("mean distance to src", fmt(ident["mean_src"])), ("mean distance to dst", fmt(ident["mean_dst"]))]),
        ("Expression and pose", [("landmark error, mean", fmt(ep["landmark_error_mean"])),
                                 ("median", fmt(ep["landmark_error_median"])), ("max", fmt(ep["landmark_error_max"])),
                                 ("yaw difference, mean", fmt(ep["yaw_diff_mean"], 2, "deg")),
                                 ("pitch difference, mean", fmt(ep["pitch_diff_mean"], 2, "deg")),
                                 ("eye opening, result / dst (median)", fmt(ep.get("eyes_open_ratio_median")))]),
        ("Temporal stability", [("flicker, result / dst (the provenance mark aside)", fmt(tp["flicker_ratio"])),
                                ("... against dst as it is", fmt(tp.get("flicker_ratio_unmarked_dst"))),
                                ("landmark jitter, result / dst", fmt(tp["jitter_ratio"])),
                                ("runs of 2-3 frames", fmt(tp["runs"]))]),
        ("Blending", [("background PSNR (pooled)", fmt(bl["background_psnr_db"], 2, "dB")),
                      ("... against dst with the same provenance mark", fmt(bl.get("background_merge_psnr_db"), 2, "dB")),
                      ("worst frame", fmt(bl["background_psnr_min_db"], 2, "dB")),
                      (f"background pixels changed by > {bl['changed_level']}", fmt(bl["background_changed_share"], 4)),
                      ("seam Delta E, result", fmt(bl["seam_delta_e_result"], 2)),
                      ("seam Delta E, dst (same ring)", fmt(bl["seam_delta_e_dst"], 2)),
                      ("seam excess", fmt(bl["seam_delta_e_excess"], 2))]),
        ("Face detail", [("result / dst (median)", fmt(de["ratio_to_dst_median"])),
                         ("result / dst (mean)", fmt(de["ratio_to_dst_mean"])),
                         ("result / src faces (median)", fmt(de["ratio_to_src_median"]))]),
        ("Coverage", [("frames scored", fmt(cov["frames_scored"])), ("with a dst face", fmt(cov["with_dst_face"])),
                      ("swapped", fmt(cov["swapped"])), ("dst face not swapped", fmt(cov["not_swapped"])),
                      ("result face measured", fmt(cov["result_face_measured"])),
                      ("without a dst face", fmt(cov["without_dst_face"]))]),
    ]
    h.append("<h2>Figures</h2><div class='grid'>")
    for title, rows in cards:
        h.append(f"<div class='card'><h3>{html.escape(title)}</h3>{_kv_table(rows)}</div>")
    h.append("</div>")

    h.append("<h2>Over time</h2><div class='grid plots'>")
    for title, png in plot_pngs.items():
        h.append(f"<div>{_img(png, 'image/png', title, PLOT_W_PX)}</div>")
    h.append("</div>")

    h.append(f"<h2>The {len(data['worst'])} worst frames</h2>")
    if not data["worst"]:
        h.append("<p>No sampled frame misses a target.</p>")
    else:
        h.append("<p>Ranked by how far each misses the targets (see <code>metrics.frame_badness</code>). Pictures: "
                 "dst, result, and the mask (white: face mask; grey: margin left out of the background; green dots: "
                 "dst's landmarks; red: the result's).</p><table class='frame'>")
        for w in data["worst"]:
            pics = worst_thumbs.get(w["number"], {})
            imgs = "".join(_img(pics[k], "image/jpeg", f"{k} of frame {w['number']}") for k in ("dst", "result", "mask")
                           if pics.get(k))
            why = "<br>".join(html.escape(p) for p in w["problems"]) or "-"
            h.append(f"<tr><td>frame {w['number']}<br>badness {fmt(w['badness'], 2)}<br><small>{why}</small></td>"
                     f"<td>{imgs}</td></tr>")
        h.append("</table>")

    h.append("<h2>Settings that produced the result</h2>")
    h.append(_settings_html(data.get("settings", {})))
    h.append("<h2>Inputs and report options</h2>")
    h.append(_kv_table([(k, html.escape(str(v))) for k, v in data["inputs"].items()], numbers=False))
    h.append(f"<details><summary>report options</summary>{_json_block(data['config'])}</details>")
    h.append(f"<details><summary>timing</summary>{_json_block(data['timing'])}</details>")
    h.append("<p class='sub'>Every number of this page, per frame, is in report.json beside it.</p></body></html>")
    return "".join(h)


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def write_report(out_dir: Path, data: dict[str, Any], worst_thumbs: dict[int, dict[str, bytes]],
                 plot_pngs: dict[str, bytes], *, html_name: str = "report.html",
                 json_name: str = "report.json") -> tuple[Path, Path]:
    """Write report.json (strict JSON: missing values are null) and report.html into `out_dir`."""
    data = M.clean(data)
    json.dumps(data, allow_nan=False)  # fails loudly rather than write JavaScript-unreadable JSON
    json_path, html_path = out_dir / json_name, out_dir / html_name
    write_json_atomic(json_path, data)
    write_text_atomic(html_path, render(data, worst_thumbs, plot_pngs))
    return html_path, json_path
