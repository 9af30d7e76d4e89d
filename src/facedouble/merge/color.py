"""Colour transfer of the predicted face towards the dst face, histogram matching, colour degradation.

Pure functions on float32 RGB HWC images in [0, 1]. Where a function takes masks ((H, W) float32, or None
for the whole image), the statistics come from the pixels with mask > 0.5 and the transfer is applied to
every pixel of the source. Random steps (idt, sot) use a fixed seed, so a frame always gives the same result.

- rct: Reinhard et al. 2001: mean and standard deviation per channel in CIE L*a*b*.
- lct: linear transfer by principal axes: x -> Sd^1/2 Ss^-1/2 (x - ms) + md (RGB mean and covariance).
- mkl: the Monge-Kantorovich linear map (Pitie & Kokaram 2007): the linear map with the least
  displacement that takes the source Gaussian to the target's.
- idt: iterative distribution transfer (Pitie et al. 2005): 1-D histogram matching along the axes of
  random rotations, repeated; matches the whole 3-D colour distribution, not only its moments.
- sot: sliced optimal transport (Bonneel et al. 2015): gradient steps on the sliced Wasserstein distance.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..choices import ColorTransfer

_EPS = 1e-6


def _selected(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    pixels = img.reshape(-1, img.shape[-1])
    if mask is None:
        return pixels
    sel = np.asarray(mask).reshape(-1) > 0.5
    if sel.sum() < 16:  # too few pixels for statistics: use them all
        return pixels
    return pixels[sel]


def _f32(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return img.astype(np.float32, copy=False)


# -- Reinhard (rct) ------------------------------------------------------------------------------------

# sRGB (D65) <-> CIE L*a*b*, exact inverses of each other (OpenCV's float conversion is off by up to several
# L* units for dark colours, too much for statistics matched to 1%).
_RGB2XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                     [0.2126729, 0.7151522, 0.0721750],
                     [0.0193339, 0.1191920, 0.9503041]])
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)
_WHITE = _RGB2XYZ.sum(axis=1)  # D65 white of sRGB
_DELTA = 6.0 / 29.0
# the same transforms in float32 with the white point folded in (rows: x @ M), for the fast path below
_RGB2XYZ_W = (_RGB2XYZ / _WHITE[:, None]).T.astype(np.float32)
_XYZ2RGB_W = (_XYZ2RGB * _WHITE[None, :]).T.astype(np.float32)


def rgb_to_lab(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB (float32 [0, 1] or uint8) -> CIE L*a*b* float32 (L 0..100, a and b about -128..127).

    Computed in float32, each branch of the piecewise curves only where it applies: ~4x faster than in float64
    (1 ms for a 192 px face; it runs per frame live), within 1e-4 of it in L*a*b* units."""
    c = _f32(img)
    shape = c.shape
    c = c.reshape(-1, 3)
    lin = np.empty_like(c)
    low = c <= 0.04045
    np.divide(c, np.float32(12.92), out=lin, where=low)
    np.power((c + np.float32(0.055)) / np.float32(1.055), np.float32(2.4), out=lin, where=~low)
    xyz = lin @ _RGB2XYZ_W
    f = np.cbrt(xyz)
    small = xyz <= _DELTA ** 3
    if small.any():
        f[small] = xyz[small] / np.float32(3 * _DELTA ** 2) + np.float32(4.0 / 29.0)
    lab = np.empty_like(f)
    lab[:, 0] = 116.0 * f[:, 1] - 16.0
    lab[:, 1] = 500.0 * (f[:, 0] - f[:, 1])
    lab[:, 2] = 200.0 * (f[:, 1] - f[:, 2])
    return lab.reshape(shape)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_lab`; out-of-gamut colours are clipped to [0, 1]. float32 (computed so, like
    `rgb_to_lab`)."""
    lab = np.asarray(lab, np.float32)
    shape = lab.shape
    lab = lab.reshape(-1, 3)
    f = np.empty_like(lab)
    f[:, 1] = (lab[:, 0] + np.float32(16.0)) / np.float32(116.0)
    f[:, 0] = f[:, 1] + lab[:, 1] / np.float32(500.0)
    f[:, 2] = f[:, 1] - lab[:, 2] / np.float32(200.0)
    small = f <= _DELTA
    xyz = f * f * f
    if small.any():
        xyz[small] = np.float32(3 * _DELTA ** 2) * (f[small] - np.float32(4.0 / 29.0))
    lin = xyz @ _XYZ2RGB_W
    np.maximum(lin, 0.0, out=lin)
    c = np.empty_like(lin)
    low = lin <= 0.0031308
    np.multiply(lin, np.float32(12.92), out=c, where=low)
    np.power(lin, np.float32(1 / 2.4), out=c, where=~low)
    np.subtract(np.float32(1.055) * c, np.float32(0.055), out=c, where=~low)
    np.clip(c, 0.0, 1.0, out=c)
    return c.reshape(shape)


def _lab_stats(lab: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    px = _selected(lab, mask).astype(np.float64)
    return np.stack([px.mean(0), px.std(0)])


def rct_stats(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(2, 3) float64: mean and standard deviation of L*, a*, b* over the mask."""
    return _lab_stats(rgb_to_lab(img), mask)


def rct(src: np.ndarray, dst: np.ndarray, src_mask: np.ndarray | None = None, dst_mask: np.ndarray | None = None) -> np.ndarray:
    """Reinhard colour transfer: give `src` the per-channel L*a*b* mean and standard deviation of `dst`.

    Args:
        src: (H, W, 3) float32 RGB [0, 1], the image to recolour (the predicted face).
        dst: (H', W', 3) float32 RGB [0, 1], the colour reference (the dst face).
        src_mask, dst_mask: (H, W) / (H', W') float32 or None.

    Returns:
        (H, W, 3) float32 RGB [0, 1].
    """
    lab = rgb_to_lab(src)
    s = _lab_stats(lab, src_mask)
    d = rct_stats(dst, dst_mask)
    out = (lab - s[0]) * (d[1] / np.maximum(s[1], _EPS)) + d[0]
    return lab_to_rgb(out.astype(np.float32))


# -- linear transfers (lct, mkl) -----------------------------------------------------------------------

def _mean_cov(img: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    px = _selected(_f32(img), mask).astype(np.float64)
    mu = px.mean(0)
    cov = np.cov(px.T) + np.eye(3) * 1e-5
    return mu, cov


def _sqrtm(c: np.ndarray, inverse: bool = False) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    w = np.maximum(w, 1e-10)
    return (v * (w ** (-0.5 if inverse else 0.5))) @ v.T


def linear_map(kind: str, src_mean: np.ndarray, src_cov: np.ndarray, dst_mean: np.ndarray, dst_cov: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """(A (3, 3), b (3,)) with x -> A x + b taking N(src_mean, src_cov) to N(dst_mean, dst_cov).

    kind "lct": A = Sd^1/2 Ss^-1/2 (principal axes); "mkl": the Monge-Kantorovich solution."""
    if kind == "lct":
        a = _sqrtm(dst_cov) @ _sqrtm(src_cov, inverse=True)
    elif kind == "mkl":
        s_half = _sqrtm(src_cov)
        s_ihalf = _sqrtm(src_cov, inverse=True)
        a = s_ihalf @ _sqrtm(s_half @ dst_cov @ s_half) @ s_ihalf
    else:
        raise ValueError(f"unknown linear transfer {kind!r}")
    return a, dst_mean - a @ src_mean


def _linear(kind: str, src, dst, src_mask, dst_mask) -> np.ndarray:
    src = _f32(src)
    ms, cs = _mean_cov(src, src_mask)
    md, cd = _mean_cov(dst, dst_mask)
    a, b = linear_map(kind, ms, cs, md, cd)
    out = src.reshape(-1, 3) @ a.T.astype(np.float32) + b.astype(np.float32)
    return np.clip(out.reshape(src.shape), 0.0, 1.0).astype(np.float32)


def lct(src: np.ndarray, dst: np.ndarray, src_mask: np.ndarray | None = None, dst_mask: np.ndarray | None = None) -> np.ndarray:
    """Linear colour transfer by principal axes: matches the RGB mean and covariance of `dst`.

    Args and returns as `rct`."""
    return _linear("lct", src, dst, src_mask, dst_mask)


def mkl(src: np.ndarray, dst: np.ndarray, src_mask: np.ndarray | None = None, dst_mask: np.ndarray | None = None) -> np.ndarray:
    """Monge-Kantorovich linear colour transfer: matches the RGB mean and covariance of `dst` with the
    least colour displacement. Args and returns as `rct`."""
    return _linear("mkl", src, dst, src_mask, dst_mask)


# -- distribution transfers (idt, sot) ----------------------------------------------------------------------

_QUANTS = np.linspace(0.0, 1.0, 257)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _sliced_inputs(src, dst, src_mask, dst_mask):
    """Shared set-up of the sliced transfers (idt, sot): src as float32 HWC, its pixels as (N, 3) float64,
    the boolean selection of src pixels inside `src_mask` (None: all, also when fewer than 16), and the
    target pixels (inside `dst_mask`) as float64."""
    src = _f32(src)
    flat = src.reshape(-1, 3).astype(np.float64)
    sel = None if src_mask is None else (np.asarray(src_mask).reshape(-1) > 0.5)
    if sel is not None and sel.sum() < 16:
        sel = None
    return src, flat, sel, _selected(_f32(dst), dst_mask).astype(np.float64)


def idt(src: np.ndarray, dst: np.ndarray, src_mask: np.ndarray | None = None, dst_mask: np.ndarray | None = None,
        *, iterations: int = 12, seed: int = 0) -> np.ndarray:
    """Iterative distribution transfer: repeatedly rotate the colour space at random and match the 1-D
    histogram of each rotated axis to the target's. Args and returns as `rct`."""
    src, flat, sel, target = _sliced_inputs(src, dst, src_mask, dst_mask)
    rng = np.random.default_rng(seed)
    for i in range(iterations):
        rot = np.eye(3) if i == 0 else _random_rotation(rng)
        ps = flat @ rot  # (N, 3) projections
        pt = target @ rot
        sample = ps if sel is None else ps[sel]
        qs = np.quantile(sample, _QUANTS, axis=0)
        qt = np.quantile(pt, _QUANTS, axis=0)
        moved = np.empty_like(ps)
        for c in range(3):
            xs, idx = np.unique(qs[:, c], return_index=True)
            moved[:, c] = np.interp(ps[:, c], xs, qt[idx, c]) if len(xs) > 1 else ps[:, c] - qs[0, c] + qt[0, c]
        flat = moved @ rot.T
    return np.clip(flat.reshape(src.shape), 0.0, 1.0).astype(np.float32)


def sot(src: np.ndarray, dst: np.ndarray, src_mask: np.ndarray | None = None, dst_mask: np.ndarray | None = None,
        *, iterations: int = 20, directions: int = 6, step: float = 1.0, seed: int = 0) -> np.ndarray:
    """Sliced optimal transport: each iteration projects the colours on random directions, moves each
    pixel by the mean 1-D optimal-transport displacement along them. Args and returns as `rct`."""
    src, flat, sel, target = _sliced_inputs(src, dst, src_mask, dst_mask)
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        dirs = rng.normal(size=(directions, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        ps = flat @ dirs.T
        pt = target @ dirs.T
        sample = ps if sel is None else ps[sel]
        qs = np.quantile(sample, _QUANTS, axis=0)
        qt = np.quantile(pt, _QUANTS, axis=0)
        shift = np.zeros_like(flat)
        for k in range(directions):
            xs, idx = np.unique(qs[:, k], return_index=True)
            moved = np.interp(ps[:, k], xs, qt[idx, k]) if len(xs) > 1 else ps[:, k] - qs[0, k] + qt[0, k]
            shift += np.outer(moved - ps[:, k], dirs[k])
        flat = flat + step * shift * (3.0 / directions)
    return np.clip(flat.reshape(src.shape), 0.0, 1.0).astype(np.float32)


# THE registry of colour transfers (`--color-transfer` of merge, training and live; "none" aside): a new mode
# is a function above and a line here (choices.ColorTransfer is checked against it by tests/test_choices.py).
TRANSFERS: dict[str, Callable[..., np.ndarray]] = {"rct": rct, "lct": lct, "mkl": mkl, "idt": idt, "sot": sot}


def color_transfer(kind: ColorTransfer, src: np.ndarray, dst: np.ndarray, src_mask: np.ndarray | None = None,
                   dst_mask: np.ndarray | None = None) -> np.ndarray:
    """Dispatch on the `--color-transfer` name; "none" returns `src` (as float32)."""
    if kind == "none":
        return _f32(src).copy()
    fn = TRANSFERS.get(kind)
    if fn is None:
        raise ValueError(f"unknown colour transfer {kind!r}")
    return fn(src, dst, src_mask, dst_mask)


# -- histogram matching ------------------------------------------------------------------------------------

def _channel_hist_match(s: np.ndarray, t: np.ndarray, s_sel: np.ndarray | None, t_sel: np.ndarray | None,
                        threshold: int) -> np.ndarray:
    bins = np.arange(257) / 256.0
    hs = np.histogram(s if s_sel is None else s[s_sel], bins=bins)[0].astype(np.float64)
    ht = np.histogram(t if t_sel is None else t[t_sel], bins=bins)[0].astype(np.float64)
    if hs.sum() == 0 or ht.sum() == 0:
        return s
    cs = np.cumsum(hs) / hs.sum() * (threshold / 255.0)
    ct = np.cumsum(ht) / ht.sum()
    centres = (np.arange(256) + 0.5) / 256.0
    # the target value below which a fraction q of the target lies
    keep = np.concatenate([[True], np.diff(ct) > 0])
    lut = np.interp(cs, ct[keep], centres[keep])
    return np.interp(s, centres, lut).astype(np.float32)


def hist_match(src: np.ndarray, dst: np.ndarray, src_mask: np.ndarray | None = None, dst_mask: np.ndarray | None = None,
               *, threshold: int = 255) -> np.ndarray:
    """Match the histogram of each RGB channel of `src` to `dst`'s (256 bins).

    `threshold` (0..255, the original's "hist match threshold") maps the source's cumulative histogram onto
    the lowest threshold/255 of the target's, which removes bright outliers; 255 is a plain match.

    Args:
        src: (H, W, 3) float32 [0, 1]. dst: (H', W', 3) float32 [0, 1]. masks: (H, W) / (H', W') or None.

    Returns:
        (H, W, 3) float32 [0, 1].
    """
    src, dst = _f32(src), _f32(dst)
    s_sel = None if src_mask is None else np.asarray(src_mask) > 0.5
    t_sel = None if dst_mask is None else np.asarray(dst_mask) > 0.5
    if s_sel is not None and s_sel.sum() < 16:
        s_sel = None
    if t_sel is not None and t_sel.sum() < 16:
        t_sel = None
    out = np.empty_like(src)
    for c in range(src.shape[2]):
        out[..., c] = _channel_hist_match(src[..., c], dst[..., c], s_sel, t_sel, int(threshold))
    return np.clip(out, 0.0, 1.0)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 weights of R, G, B


def luma(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W) float32 Rec. 601 luma, in the input's scale."""
    return np.asarray(img, np.float32) @ LUMA


def to_gray3(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB -> (H, W, 3) float32 grey (Rec. 601 luma in all three channels)."""
    return np.repeat(luma(_f32(img))[..., None], 3, axis=2)


def hist_match_bw(src: np.ndarray, dst: np.ndarray, src_mask: np.ndarray | None = None, dst_mask: np.ndarray | None = None,
                  *, threshold: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """The original's "hist match bw": both faces turned grey, the source's grey histogram matched to the
    target's. Returns (matched grey source, grey target), each (H, W, 3) float32."""
    gs, gd = to_gray3(src), to_gray3(dst)
    one = hist_match(gs[..., :1], gd[..., :1], src_mask, dst_mask, threshold=threshold)
    return np.repeat(one, 3, axis=2), gd


# -- colour degradation ------------------------------------------------------------------------------------

def degrade_color(image: np.ndarray, power: float) -> np.ndarray:
    """The original's "degrade color power of final image" (0..100): blend the image with a 256-colour
    version of itself (octree palette) by power/100, which hides small blending imperfections.

    Args:
        image: (H, W, 3) RGB uint8.
    Returns:
        (H, W, 3) RGB uint8.
    """
    if power <= 0:
        return image
    from PIL import Image

    pal = Image.fromarray(np.ascontiguousarray(image)).quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                                                 dither=Image.Dither.NONE)
    reduced = np.asarray(pal.convert("RGB"), np.float32)
    p = min(float(power), 100.0) / 100.0
    out = image.astype(np.float32) * (1 - p) + reduced * p
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
