"""Training losses (pure functions on BCHW float tensors in [0, 1]). Each returns one value per sample, shape
(B,), so the trainer can weigh, average, or look for the sample that went wrong.

Weights follow the original tool's balance (DSSIM x10 + MSE x10 on the masked face, mask MSE x10,
eyes/mouth x300 on an L1 over those regions); the style weights are facedouble's own scale, documented below.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..merge.color import LUMA  # Rec. 601 weights of R, G, B: the merge's, one definition


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(1)


def ssim_window(resolution: int) -> int:
    """SSIM window for a face of `resolution` px: about 1/11.6 of the face (the original's choice), odd, >= 3."""
    return max(3, int(resolution / 11.6)) | 1


def gaussian_kernel(size: int, sigma: float | None = None) -> torch.Tensor:
    """1-D normalised Gaussian of odd `size` (sigma defaults to size / 6, so the window spans +-3 sigma)."""
    sigma = sigma or size / 6.0
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


@functools.lru_cache(maxsize=64)
def _blur_matrix(n: int, taps: tuple[float, ...], reflect: bool, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """The 1-D filter `taps` (odd length) over n samples as an n x m matrix M on `device`: `v @ M` filters a row
    vector v. 'valid' (m = n - len(taps) + 1) or, with `reflect`, same-size with reflected edges (m = n). Made
    once per size, filter, device and dtype (the losses call it at every step)."""
    r = len(taps) // 2
    if not reflect:
        m = n - 2 * r
        M = torch.zeros(n, m)
        for j in range(m):
            M[j:j + 2 * r + 1, j] = torch.tensor(taps)
        return M.to(device, dtype)
    M = torch.zeros(n, n)
    for j in range(n):
        for o, w in enumerate(taps):
            i = abs(j + o - r)
            M[i if i < n else 2 * (n - 1) - i, j] += w
    return M.to(device, dtype)


def _blur(x: torch.Tensor, k1d: torch.Tensor, reflect: bool = False) -> torch.Tensor:
    """Separable blur of a BCHW tensor by the 1-D kernel `k1d` along both axes, per channel: 'valid' (each side
    shorter by len(k1d) - 1) or, with `reflect`, same-size with reflected edges. Two matrix products with banded
    matrices: on a CPU 1.5-4x faster forward and backward than a depthwise convolution at 192 px."""
    taps = tuple(float(v) for v in k1d.detach().cpu())
    mw = _blur_matrix(x.shape[-1], taps, reflect, x.device, x.dtype)
    mh = _blur_matrix(x.shape[-2], taps, reflect, x.device, x.dtype)
    return mh.T @ (x @ mw)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int, max_val: float = 1.0) -> torch.Tensor:
    """Mean structural similarity per sample (B,), Gaussian window of `window` px (Wang et al. 2004)."""
    a, b = a.float(), b.float()
    k = gaussian_kernel(window)  # on the CPU: `_blur` reads its taps once and caches the matrices per device
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    n = a.shape[1]
    if b.requires_grad:  # one blur over the five maps stacked along channels
        mu_a, mu_b, aa, bb, ab = _blur(torch.cat([a, b, a * a, b * b, a * b], 1), k).split(n, 1)
    else:  # a fixed target (training): its two maps blurred without a backward pass
        mu_a, aa, ab = _blur(torch.cat([a, a * a, a * b], 1), k).split(n, 1)
        with torch.no_grad():
            mu_b, bb = _blur(torch.cat([b, b * b], 1), k).split(n, 1)
    var_a, var_b, cov = aa - mu_a ** 2, bb - mu_b ** 2, ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return _per_sample(s)


def dssim(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """Structural dissimilarity (1 - SSIM) / 2 per sample, in [0, 1]."""
    return (1.0 - ssim(a, b, window)) / 2.0


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _per_sample((a.float() - b.float()) ** 2)


def dssim_windows(resolution: int, multiscale: bool = False) -> tuple[int, ...]:
    """The DSSIM windows of a face of `resolution` px: 1/11.6 of the face (the original's choice), and 1/23.2 as
    well at 256 px and above (detail at two scales); with `multiscale` 1/11.6, 1/23.2 and 1/46.4 at any size
    (a window of the same size counted once)."""
    divisors = (1, 2, 4) if multiscale else ((1, 2) if resolution >= 256 else (1,))
    return tuple(dict.fromkeys(ssim_window(resolution // d) for d in divisors))


def face_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, pixel_loss: bool = False,
              multiscale_dssim: bool = False) -> torch.Tensor:
    """Reconstruction loss on the masked face. Default: 10 x DSSIM + 10 x MSE, the DSSIM's weight split evenly
    over `dssim_windows` (one window below 256 px, two from 256 px, three with `multiscale_dssim`). With
    `pixel_loss`: 50 x MSE alone (sharper small detail and less jitter once the face has formed)."""
    mask = mask.float()
    p, t = pred.float() * mask, target.float() * mask
    if pixel_loss:
        return 50.0 * mse(p, t)
    windows = dssim_windows(pred.shape[-1], multiscale_dssim)
    d = sum(dssim(p, t, w) for w in windows) * (10.0 / len(windows))
    return d + 10.0 * mse(p, t)


def mask_loss(pred_mask: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """10 x MSE between the learned and the target mask."""
    return 10.0 * mse(pred_mask, target_mask)


def eyes_mouth_loss(pred: torch.Tensor, target: torch.Tensor, em_mask: torch.Tensor) -> torch.Tensor:
    """Eyes/mouth priority: 300 x mean L1 inside the eyes and mouth regions (em_mask B1HW in [0, 1])."""
    return 300.0 * _per_sample((pred.float() - target.float()).abs() * em_mask.float())


def detail_bands(x: torch.Tensor, sigmas: tuple[float, ...] = (1.0, 2.0)) -> list[torch.Tensor]:
    """Band-pass layers of a BCHW image (a Laplacian-pyramid-like split without downsampling): x - G1(x),
    G1(x) - G2(x), ... for Gaussians of the given sigmas (px), each same-size (reflect padding)."""
    x = x.float()
    bands, previous = [], x
    for sigma in sigmas:
        size = 2 * int(math.ceil(3 * sigma)) + 1
        low = _blur(x, gaussian_kernel(size, sigma), reflect=True)
        bands.append(previous - low)
        previous = low
    return bands


def detail_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, power: float) -> torch.Tensor:
    """Detail power 0..100: mean L1 between the fine band-pass layers (1-2 px and 2-4 px detail, `detail_bands`)
    of the prediction and the target inside `mask`, x `power`. DSSIM and MSE let a young autoencoder settle on a
    smooth face (the fine bands are a small share of either); this term asks for the edges of eyes, brows, lips
    and nostrils directly. At power 10 a face blurred by 2 px scores about a quarter of its face loss."""
    m = mask.float()
    area = m.flatten(1).sum(1).clamp_min(1.0) * pred.shape[1]
    total = sum(((p - t).abs() * m).flatten(1).sum(1) for p, t in zip(detail_bands(pred), detail_bands(target)))
    return power * total / area


def luma(x: torch.Tensor) -> torch.Tensor:
    """B3HW RGB -> B1HW luma (Rec. 601)."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


NYQUIST_STOP = torch.tensor([0.25, 0.5, 0.25])  # binomial filter: zero response at the 2 px period, 1 at DC
TEXTURE_CELL = 8  # px: the side of the cells over which the texture loss compares detail strength


def detail_energy(x: torch.Tensor, cell: int = TEXTURE_CELL) -> list[torch.Tensor]:
    """Local strength of the fine detail of a BCHW image: for each band of `detail_bands` (1-2 px, 2-4 px), the
    root mean square of the band over `cell` x `cell` px cells overlapping by half (channels pooled): B1 x
    (H/(cell/2) - 1) x (W/(cell/2) - 1) per band. The image is first filtered by `NYQUIST_STOP`, so a pattern of
    period 2 px (the checkerboard a decoder that draws 2x2 pixels at a time makes easily, measured) counts for
    nothing. A sharp edge or a textured patch scores high, a smooth patch near zero; an edge a pixel or two off
    changes it less than a blur does."""
    return [_cell_rms(band, cell) for band in _fine_bands(x)]


def _fine_bands(x: torch.Tensor) -> list[torch.Tensor]:
    """`detail_bands` of a BCHW image filtered by `NYQUIST_STOP` first (a 2 px pattern counts for nothing)."""
    return detail_bands(_blur(x, NYQUIST_STOP, reflect=True))


def _cell_rms(x: torch.Tensor, cell: int) -> torch.Tensor:
    """Root mean square of a BCHW tensor over `cell` x `cell` px cells overlapping by half, channels pooled: B1 x
    (H/(cell/2) - 1) x (W/(cell/2) - 1)."""
    return torch.sqrt(F.avg_pool2d((x ** 2).mean(1, keepdim=True), cell, stride=cell // 2) + 1e-8)


def texture_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, power: float,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """Texture power 0..100: mean L1 between the local detail strengths (`detail_energy` of the luma) of the
    prediction and the target, over the cells inside `mask` (weighted by the mask's share of each cell), x
    `power`, per sample. Unlike `detail_loss` it does not ask for each edge at its exact pixel, which a young
    model cannot yet place and so learns to leave out (the average of edges in several places is no edge); it asks
    for as much 1-4 px detail in each `TEXTURE_CELL` px cell as the real face has there (a 2 px shift of a real face costs it
    less than a 1.5 px blur; the detail loss counts the shift as twice the blur). Its gradient strengthens the detail
    the model already draws where the real face has more, and is zero where the model draws none, so it sharpens
    rather than adds noise. B3HW in [0, 1], mask B1HW; `weight` B1HW (optional) scales the loss pixel by pixel
    (e.g. less power in the eyes) without changing the area it is averaged over, which the mask alone sets."""
    return fine_detail_loss(pred, target, mask, power, 0.0, weight)


def _cell_shares(mask: torch.Tensor, weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each `TEXTURE_CELL` cell's share of `mask` (B1HW), times `weight` where given, and the mask's area in cells
    (B), which the weight leaves as it is."""
    m = F.avg_pool2d(mask.float(), TEXTURE_CELL, stride=TEXTURE_CELL // 2)
    area = m.flatten(1).sum(1).clamp_min(1e-3)
    if weight is not None:
        m = F.avg_pool2d(mask.float() * weight.float(), TEXTURE_CELL, stride=TEXTURE_CELL // 2)
    return m, area


def direction_energy(x: torch.Tensor, cell: int = TEXTURE_CELL) -> list[torch.Tensor]:
    """Local strength of the fine detail of a BCHW image by direction: for each band of `detail_bands` (after
    `NYQUIST_STOP`, as `detail_energy`), the root mean square over the same cells of the band's change from row to
    row (what horizontal lines make) and from column to column (vertical lines), channels pooled:
    [rows of band 1, columns of band 1, rows of band 2, columns of band 2], B1 x cells each."""
    return [e for band in _fine_bands(x) for e in _direction_rms(band, cell)]


def _direction_rms(band: torch.Tensor, cell: int) -> list[torch.Tensor]:
    """[rows, columns]: `_cell_rms` of a band's change from row to row and from column to column."""
    rows = F.pad(band[..., 1:, :] - band[..., :-1, :], (0, 0, 0, 1))
    cols = F.pad(band[..., :, 1:] - band[..., :, :-1], (0, 1, 0, 0))
    return [_cell_rms(rows, cell), _cell_rms(cols, cell)]


def grain_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, power: float,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Grain power 0..100: how far the prediction's fine detail in each cell is stronger *in one direction* than
    the target's there (`direction_energy`: row to row, column to column; one-sided, so nothing is asked of a
    cell with less), x `power`, per sample, cells weighted and averaged as in `texture_loss`. Beside the texture
    loss, which asks each cell for the real face's amount of detail in any direction, it keeps that detail from
    coming as lines the face does not have: parallel horizontal lines over a cheek whose real skin changes about
    as much across as down are stronger row to row than hers. It asks for no detail in either direction, so it
    draws none (matching each direction two-sided instead asked for vertical edges where an uncertain face could
    not place them, and cross-hatched eyes and teeth: docs/quality.md, session 19). B3HW in [0, 1], mask and
    `weight` B1HW."""
    return fine_detail_loss(pred, target, mask, 0.0, power, weight)


def fine_detail_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, texture_power: float,
                     grain_power: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """`texture_loss` at `texture_power` plus `grain_loss` at `grain_power`, per sample (B,), with each image's
    fine bands computed once for both (a loss at power 0 is left out). Shapes as in `texture_loss`."""
    with torch.no_grad():
        want = _fine_bands(luma(target.float()))
        m, area = _cell_shares(mask, weight)
    total = torch.zeros(pred.shape[0], device=pred.device)
    for p, t in zip(_fine_bands(luma(pred.float())), want):  # t came from no_grad: its energies build no graph
        if texture_power:
            total = total + texture_power * ((_cell_rms(p, TEXTURE_CELL) - _cell_rms(t, TEXTURE_CELL)).abs()
                                             * m).flatten(1).sum(1)
        if grain_power:
            total = total + grain_power * sum((F.relu(pd - td) * m).flatten(1).sum(1) for pd, td in
                                              zip(_direction_rms(p, TEXTURE_CELL), _direction_rms(t, TEXTURE_CELL)))
    return total / area


def ramp(iteration: int, length: int) -> float:
    """A loss's weight `iteration` iterations into training when it grows linearly from 0 to 1 over the first
    `length` (0: 1 from the start)."""
    return 1.0 if length <= 0 else min(1.0, max(iteration, 0) / length)


def style_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Colour/lighting style distance inside `mask`: per channel, the squared difference of the masked means
    plus that of the masked standard deviations, averaged over channels. Zero when both faces have the same
    colour statistics, whatever their shapes."""
    m = mask.float()
    area = m.sum((2, 3)).clamp_min(1.0)

    def moments(x):
        x = x.float()
        mean = (x * m).sum((2, 3)) / area
        var = (((x - mean[..., None, None]) ** 2) * m).sum((2, 3)) / area
        return mean, torch.sqrt(var + eps)

    pm, ps = moments(pred)
    tm, ts = moments(target)
    return ((pm - tm) ** 2 + (ps - ts) ** 2).mean(1)


def face_style_loss(swapped: torch.Tensor, dst: torch.Tensor, dst_mask: torch.Tensor, power: float) -> torch.Tensor:
    """Face style power 0..100: pulls the colour and lighting of the swapped face (dst -> src) inside dst's mask
    towards dst's. Weight: power x 10 on `style_loss` (power 10 gives about a third of the face loss early on)."""
    return power * 10.0 * style_loss(swapped, dst, dst_mask)


def background_style_loss(swapped: torch.Tensor, dst: torch.Tensor, dst_mask: torch.Tensor, power: float) -> torch.Tensor:
    """Background style power 0..100: DSSIM + MSE outside dst's mask between the swapped face and dst, which
    teaches the face outline and surroundings of dst. Weight: power / 10."""
    anti = 1.0 - dst_mask.float()
    p, t = swapped.float() * anti, dst.float() * anti
    return power / 10.0 * (dssim(p, t, ssim_window(p.shape[-1])) + mse(p, t))


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Binary cross-entropy of discriminator logits against all-real or all-fake, per sample."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return _per_sample(F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none"))


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grow a B1HW mask by `pixels` (max filter); used by remove-gray-border to train a band around the face."""
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1
    return F.max_pool2d(mask, k, stride=1, padding=pixels)


def is_finite(value: float) -> bool:
    return math.isfinite(value)
