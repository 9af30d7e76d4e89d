"""The merge's mask (pure functions): the combination each `MaskMode` names, the `--erode` / `--blur`
modifiers relative to the face size, the feathered edge of an aligned crop, and the skin-colour model that
keeps hair and other non-skin occluders out. The face regions themselves (hull, mesh oval, hands, labels) are
faces/regions.py's; the networks that find them faces/mesh.py's. Masks are float32 HW arrays in [0, 1].
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..faces.regions import blur_mask, erode_mask

@lru_cache(maxsize=16)
def _edge_ramp(size: int, width: float) -> np.ndarray:
    ramp = np.clip((np.arange(size, dtype=np.float32) + 0.5) / max(width, 1e-3), 0, 1)
    ramp = np.minimum(ramp, ramp[::-1])
    out = np.minimum.outer(ramp, ramp).astype(np.float32)
    out.setflags(write=False)
    return out


def edge_feather(size: int, width: float | None = None) -> np.ndarray:
    """(size, size) float32 mask that is 1 inside and falls linearly to 0 over `width` pixels at the edge
    of an aligned crop, so nothing outside the crop can show a seam. Default width: 3% of the size, at least
    2 pixels."""
    if width is None:
        width = max(2.0, 0.03 * size)
    return _edge_ramp(int(size), float(width))


def modify_mask(mask: np.ndarray, erode: float, blur: float, face_size: float) -> np.ndarray:
    """Apply the `--erode` and `--blur` modifiers (-200..200), which are relative to the face size.

    Args:
        mask: (H, W) float32 in [0, 1].
        erode: erode (+) or dilate (-); 100 moves the edge by 10% of `face_size`.
        blur: soften (+) or harden (-) the edge; 100 gives a soft edge 10% of `face_size` wide.
        face_size: side of the eyebrows-to-chin face in the mask's pixels.

    Returns:
        (H, W) float32 in [0, 1].
    """
    out = erode_mask(mask, erode * face_size / 1000.0)
    if blur > 0:
        out = blur_mask(out, blur * face_size / 1000.0)
    elif blur < 0:
        out = blur_mask(out, blur / 10.0)
    return out


def skin_mask(face: np.ndarray, sample: np.ndarray, *, tolerance: float = 3.0) -> np.ndarray:
    """Soft skin-colour mask: pixels whose chroma is close to the chroma of the sampled skin.

    A Gaussian in YCrCb chroma (Cr, Cb) and a loose luma band is fitted to the pixels under `sample`; each
    pixel scores by its Mahalanobis distance (1 within `tolerance`, falling to 0 at 1.6 x `tolerance`).
    Hair, glasses and most backgrounds score 0; a hand scores like skin.

    Args:
        face: (H, W, 3) RGB uint8 or float32 [0, 1].
        sample: (H, W) float32 or bool, where the skin is known to be (e.g. cheeks and nose).
        tolerance: accepted distance in standard deviations.

    Returns:
        (H, W) float32 in [0, 1]; all ones when the sample is too small to fit a model.
    """
    import cv2

    img = np.asarray(face)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    sel = np.asarray(sample) > 0.5
    if sel.sum() < 50:
        return np.ones(img.shape[:2], np.float32)
    chroma = ycc[..., 1:]
    pts = chroma[sel]
    mu = pts.mean(0)
    cov = np.cov(pts.T) + np.eye(2) * 4.0
    inv = np.linalg.inv(cov)
    d = chroma - mu
    md = np.sqrt(np.einsum("hwi,ij,hwj->hw", d, inv, d))
    luma = ycc[..., 0]
    lmu, lsd = float(luma[sel].mean()), float(luma[sel].std()) + 8.0
    ld = np.abs(luma - lmu) / lsd
    score = np.maximum(md / tolerance, ld / (2.5 * tolerance))
    out = np.clip((1.6 - score) / 0.6, 0.0, 1.0).astype(np.float32)
    out = cv2.medianBlur((out * 255).astype(np.uint8), 5).astype(np.float32) / 255.0
    return out


# THE registry of mask modes (`--mask`): each mode is the product of these parts (choices.MaskMode is checked
# against it by tests/test_choices.py; the merger computes only the parts a mode needs).
MASK_PARTS: dict[str, tuple[str, ...]] = {
    "learned": ("learned",), "dst": ("dst",), "mesh-prd": ("mesh_prd",), "mesh-dst": ("mesh_dst",),
    "mesh-prd-dst": ("mesh_prd", "mesh_dst"), "learned-mesh-dst": ("learned", "mesh_dst"),
    "learned-dst": ("learned", "dst"),
    "xseg-prd": ("xseg_prd",), "xseg-dst": ("xseg_dst",), "xseg-prd-dst": ("xseg_prd", "xseg_dst"),
    "learned-xseg-prd": ("learned", "xseg_prd"), "learned-xseg-dst": ("learned", "xseg_dst"),
    "learned-xseg-prd-dst": ("learned", "xseg_prd", "xseg_dst"),
}


def combine(mode: str, *, learned: np.ndarray | None = None, dst: np.ndarray | None = None,
            mesh_prd: np.ndarray | None = None, mesh_dst: np.ndarray | None = None,
            xseg_prd: np.ndarray | None = None, xseg_dst: np.ndarray | None = None) -> np.ndarray:
    """The mask a `MaskMode` names, from the masks it needs (all (H, W) float32, same shape).

    learned, dst, mesh-prd, mesh-dst: that mask; mesh-prd-dst: mesh-prd x mesh-dst; learned-mesh-dst:
    learned x mesh-dst; learned-dst: learned x dst. XSeg (the trained mask network, facedouble.xseg):
    xseg-prd (on the predicted face), xseg-dst (the mask applied to the dst face), xseg-prd-dst (their
    product), learned-xseg-prd, learned-xseg-dst, learned-xseg-prd-dst (each x learned).
    """
    need = MASK_PARTS
    given = {"learned": learned, "dst": dst, "mesh_prd": mesh_prd, "mesh_dst": mesh_dst, "xseg_prd": xseg_prd,
             "xseg_dst": xseg_dst}
    if mode not in need:
        raise ValueError(f"unknown mask mode {mode!r}")
    out = None
    for name in need[mode]:
        m = given[name]
        if m is None:
            raise ValueError(f"mask mode {mode!r} needs the {name} mask")
        out = m.astype(np.float32) if out is None else out * m
    return np.clip(out, 0.0, 1.0).astype(np.float32)

