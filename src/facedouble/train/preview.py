"""Training previews (pure image assembly) and the loss plot (matplotlib, Agg backend, no global state).

The preview grid has one row per preview face pair and five columns, each a face at the model's resolution:
src, src -> src (reconstruction), dst, dst -> dst (reconstruction), dst -> src (the swap), under a header band
naming the columns. Images are RGB uint8 HWC.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

COLUMNS = ("src", "src>src", "dst", "dst>dst", "dst>src")
KEYS = ("src", "src_src", "dst", "dst_dst", "dst_src")


def header_height(resolution: int) -> int:
    return max(16, resolution // 6)


def preview_layout(resolution: int, rows: int) -> tuple[int, int]:
    """(height, width) of a preview of `rows` rows."""
    return header_height(resolution) + rows * resolution, len(COLUMNS) * resolution


def render_preview(faces: dict[str, np.ndarray]) -> np.ndarray:
    """faces: KEYS -> (rows, res, res, 3) uint8. Returns the grid (see the module docstring)."""
    import cv2

    rows, res = faces["src"].shape[:2]
    h, w = preview_layout(res, rows)
    out = np.zeros((h, w, 3), np.uint8)
    top = header_height(res)
    scale = top / 40.0
    for c, label in enumerate(COLUMNS):
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        org = (c * res + max(0, (res - tw) // 2), (top + th) // 2)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (230, 230, 230), 1, cv2.LINE_AA)
        for r in range(rows):
            out[top + r * res: top + (r + 1) * res, c * res:(c + 1) * res] = faces[KEYS[c]][r]
    return out


def encode_png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running mean over `window` values (shorter at the start)."""
    values = np.asarray(values, np.float64)
    if window <= 1 or len(values) < 2:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def loss_plot_png(history: np.ndarray, title: str = "") -> bytes:
    """PNG of the src and dst loss per iteration (log scale, running mean over ~1% of the run)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = np.asarray(history, np.float64).reshape(-1, 2)
    fig = Figure(figsize=(8, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if len(history):
        it = np.arange(1, len(history) + 1)
        window = max(1, len(history) // 100)
        for col, (name, colour) in enumerate((("src", "tab:orange"), ("dst", "tab:blue"))):
            ax.plot(it, history[:, col], color=colour, alpha=0.25, linewidth=0.5)
            ax.plot(it, smooth(history[:, col], window), color=colour, label=f"{name} {history[-1, col]:.4f}")
        ax.set_yscale("log")
        ax.legend(loc="upper right")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title or "loss history")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_png(path: Path, data: bytes) -> Path:
    from ..faces.container import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path
