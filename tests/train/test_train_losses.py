"""train/losses.py: pure loss functions."""

from __future__ import annotations

import pytest
import torch

from facedouble.train import losses as L


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _faces(b=2, res=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth random images: blurred noise, like faces more than white noise is
    x = torch.rand(b, 3, res // 8, res // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)


def test_dssim_is_zero_for_equal_images_and_grows_with_noise():
    a = _faces()
    assert torch.allclose(L.dssim(a, a, 9), torch.zeros(2), atol=1e-6)
    small = L.dssim(a, (a + 0.02 * torch.randn_like(a)).clamp(0, 1), 9)
    large = L.dssim(a, (a + 0.2 * torch.randn_like(a)).clamp(0, 1), 9)
    assert (small > 0).all() and (large > small).all() and (large <= 1).all()
    b = _faces(seed=1)
    assert torch.allclose(L.dssim(a, b, 9), L.dssim(b, a, 9), atol=1e-6)  # symmetric


def test_ssim_window_scales_with_resolution():
    assert L.ssim_window(64) == 5 and L.ssim_window(96) == 9 and L.ssim_window(256) == 23
    assert all(L.ssim_window(r) % 2 == 1 for r in range(64, 513, 16))


def test_face_loss_ignores_everything_outside_the_mask():
    a, b = _faces(seed=0), _faces(seed=1)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    mixed = a * mask + b * (1 - mask)  # equal to a inside the mask, anything outside
    assert torch.allclose(L.face_loss(mixed, a, mask), torch.zeros(2), atol=1e-6)
    assert (L.face_loss(b, a, mask) > 0.1).all()
    assert (L.face_loss(b, a, mask, pixel_loss=True) > 0).all()
    # at 256 px the loss mixes two SSIM windows and still is zero for equal faces
    big = _faces(1, 256)
    assert L.face_loss(big, big, torch.ones(1, 1, 256, 256)).item() == pytest.approx(0, abs=1e-6)


def test_mask_loss_is_ten_times_mse():
    p, t = torch.full((1, 1, 8, 8), 0.25), torch.ones(1, 1, 8, 8)
    assert L.mask_loss(p, t).item() == pytest.approx(10 * 0.75 ** 2)


def test_eyes_mouth_loss_counts_only_inside_the_regions():
    a, b = _faces(seed=0), _faces(seed=1)
    em = torch.zeros(2, 1, 64, 64)
    assert torch.all(L.eyes_mouth_loss(a, b, em) == 0)
    em[..., 20:30, 10:50] = 1
    inside = L.eyes_mouth_loss(a, b, em)
    assert (inside > 0).all()
    c = a.clone()
    c[..., 20:30, 10:50] = b[..., 20:30, 10:50]  # equal inside the regions
    assert torch.allclose(L.eyes_mouth_loss(c, b, em), torch.zeros(2), atol=1e-6)


def test_style_loss_sees_colour_not_shape():
    a = _faces(seed=0)
    mask = torch.ones(2, 1, 64, 64)
    shuffled = a.flatten(2)[..., torch.randperm(64 * 64)].view_as(a)  # same colours, no shape
    assert torch.allclose(L.style_loss(shuffled, a, mask), torch.zeros(2), atol=1e-5)
    tinted = (a + torch.tensor([0.2, 0.0, -0.1]).view(1, 3, 1, 1)).clamp(0, 1)
    assert (L.style_loss(tinted, a, mask) > 1e-3).all()
    assert (L.face_style_loss(tinted, a, mask, 10) > L.face_style_loss(tinted, a, mask, 1)).all()
    assert torch.all(L.face_style_loss(tinted, a, mask, 0) == 0)


def test_background_style_loss_only_outside_the_mask():
    a, b = _faces(seed=0), _faces(seed=1)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 8:56, 8:56] = 1
    same_outside = a * (1 - mask) + b * mask
    assert torch.allclose(L.background_style_loss(same_outside, a, mask, 50), torch.zeros(2), atol=1e-5)
    assert (L.background_style_loss(b, a, mask, 50) > 0).all()


def test_gan_loss_and_dilate():
    logits = torch.tensor([[[[10.0]]], [[[-10.0]]]])
    real, fake = L.gan_loss(logits, True), L.gan_loss(logits, False)
    assert real[0] < 1e-3 and real[1] > 5 and fake[0] > 5 and fake[1] < 1e-3
    m = torch.zeros(1, 1, 9, 9)
    m[..., 4, 4] = 1
    assert L.dilate(m, 2).sum().item() == 25 and L.dilate(m, 0) is m


def test_losses_have_gradients_in_bf16_autocast():
    a = _faces().requires_grad_(True)
    b = _faces(seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = a * 1.0
    loss = L.face_loss(pred, b, torch.ones(2, 1, 64, 64)).sum()
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def _real_faces(media, res=96):
    """Two frames of the woman's clip around her face, BCHW in [0, 1] (real skin, eyes and lips)."""
    import cv2
    import numpy as np

    from support.media import decode

    frames = decode(media / "WolfgangLanger_Pexels.mp4", limit=2)
    h, w = frames[0].shape[:2]
    crops = [cv2.resize(f[: h // 2 + h // 4, w // 4: 3 * w // 4], (res, res), interpolation=cv2.INTER_AREA)
             for f in frames]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0


def test_detail_loss_asks_for_the_fine_detail_that_face_loss_barely_sees(media):
    """A face blurred by 1.5 px keeps nearly its colours, so DSSIM + MSE change little, but it loses most of
    its 1-4 px detail: the detail loss grows with the blur, is zero for the face itself, ignores what lies
    outside the mask, and does not care about a brightness shift (which is not detail)."""
    import cv2

    def blur(x, sigma):
        hwc = x.permute(0, 2, 3, 1).numpy()
        return torch.stack([torch.from_numpy(cv2.GaussianBlur(i, (0, 0), sigma)) for i in hwc]).permute(0, 3, 1, 2)

    face = _real_faces(media)
    mask = torch.ones_like(face[:, :1])
    slight, strong = blur(face, 0.7), blur(face, 1.5)
    assert torch.allclose(L.detail_loss(face, face, mask, 10.0), torch.zeros(2), atol=1e-6)
    d_slight, d_strong = L.detail_loss(slight, face, mask, 10.0), L.detail_loss(strong, face, mask, 10.0)
    assert (d_strong > 1.5 * d_slight).all() and (d_slight > 0).all()
    # relative to the face loss, blur weighs more in the detail loss than in DSSIM + MSE
    f_strong = L.face_loss(strong, face, mask)
    assert (d_strong / f_strong > 0.15).all()
    brighter = (face + 0.1).clamp(0, 1)
    assert (L.detail_loss(brighter, face, mask, 10.0) < 0.2 * d_strong).all()
    # outside the mask nothing counts; the power scales it
    half = torch.zeros_like(mask)
    half[..., :, :48] = 1
    mixed = face * half + strong * (1 - half)
    inner = torch.zeros_like(mask)
    inner[..., :, :40] = 1  # away from the seam (the bands reach 6 px)
    assert torch.allclose(L.detail_loss(mixed, face, inner, 10.0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(L.detail_loss(strong, face, mask, 20.0), 2 * d_strong, rtol=1e-5)


def test_blur_is_the_gaussian_blur_valid_or_with_reflected_edges(media):
    """The matrix-product blur gives what OpenCV's Gaussian blur gives on a real face: same-size with reflected
    edges (OpenCV's default border), and the inner part alone in 'valid' mode; gradients flow through both."""
    import cv2

    face = _real_faces(media, res=80)[:1]
    k = L.gaussian_kernel(9, 2.0)
    hwc = face[0].permute(1, 2, 0).numpy()
    want = torch.from_numpy(cv2.GaussianBlur(hwc, (9, 9), 2.0, borderType=cv2.BORDER_REFLECT_101)).permute(2, 0, 1)
    same = L._blur(face, k, reflect=True)[0]
    assert same.shape == want.shape and torch.allclose(same, want, atol=1e-5)
    valid = L._blur(face, k)[0]
    assert valid.shape == (3, 72, 72) and torch.allclose(valid, want[:, 4:-4, 4:-4], atol=1e-5)
    wide = L._blur(face[..., :60], k)[0]  # not square: each axis its own matrix
    assert wide.shape == (3, 72, 52) and torch.allclose(wide, want[:, 4:-4, 4:56], atol=1e-5)
    x = face.clone().requires_grad_(True)
    L._blur(x, k, reflect=True).sum().backward()
    inner = x.grad[..., 8:-8, 8:-8]  # away from the edges each pixel's weights in the output sum to one
    assert torch.allclose(inner, torch.ones_like(inner), atol=1e-4)


def test_texture_loss_asks_for_detail_where_the_face_has_it_not_at_the_exact_pixel(media):
    """The texture loss is zero for the face itself and grows with blur; the same face moved by 2 px (the detail
    there, a little off) counts for less than a 1.5 px blur, where the detail loss, which asks for each edge at its
    pixel, counts the move for twice the blur.
    Its gradient on a blurred face sharpens it (the face moves towards more 1-4 px detail) and adds nothing
    where the prediction is flat."""
    import cv2

    def blur(x, sigma):
        hwc = x.permute(0, 2, 3, 1).numpy()
        return torch.stack([torch.from_numpy(cv2.GaussianBlur(i, (0, 0), sigma)) for i in hwc]).permute(0, 3, 1, 2)

    face = _real_faces(media, res=192)
    mask = torch.zeros_like(face[:, :1])
    mask[..., 16:176, 16:176] = 1
    assert torch.allclose(L.texture_loss(face, face, mask, 10.0), torch.zeros(2), atol=1e-5)
    slight, strong = L.texture_loss(blur(face, 0.7), face, mask, 10.0), L.texture_loss(blur(face, 1.5), face, mask, 10.0)
    assert (strong > 1.3 * slight).all() and (slight > 0).all()
    moved = torch.roll(face, shifts=(2, 2), dims=(2, 3))
    tex_moved, det_moved = L.texture_loss(moved, face, mask, 10.0), L.detail_loss(moved, face, mask, 10.0)
    det_strong = L.detail_loss(blur(face, 1.5), face, mask, 10.0)
    assert (tex_moved < strong).all() and (det_moved > 1.5 * det_strong).all()
    assert torch.allclose(L.texture_loss(blur(face, 1.5), face, mask, 20.0), 2 * strong, rtol=1e-5)
    # one gradient step on the blurred face raises its fine detail
    soft = blur(face, 1.5).requires_grad_(True)
    L.texture_loss(soft, face, mask, 10.0).sum().backward()
    stepped = (soft - 0.05 * soft.grad / soft.grad.abs().max()).detach()  # at most 0.05 per pixel
    energy = lambda x: float(L.detail_energy(L.luma(x))[0][..., 8:40, 8:40].mean())  # noqa: E731 (inside the mask)
    assert energy(stepped) > 1.1 * energy(soft.detach())
    # a checkerboard of period 2 px (what a decoder drawing 2x2 pixels at a time makes most cheaply) is no detail
    checker = torch.zeros_like(face[:, :1])
    checker[..., ::2, ::2] = checker[..., 1::2, 1::2] = 0.1
    assert torch.allclose(L.texture_loss(face + checker, face, mask, 10.0), torch.zeros(2), atol=1e-4)
    assert (L.detail_loss(face + checker, face, mask, 10.0) > 0.1).all()
    flat = torch.full_like(face, 0.5).requires_grad_(True)
    L.texture_loss(flat, face, mask, 10.0).sum().backward()
    assert flat.grad.abs().max() < 1e-3


def test_texture_loss_weight_scales_each_region_without_moving_the_average(media):
    """A weight map scales the texture loss where it lies and nowhere else: a weight of 1 changes nothing, a
    weight of 0 over the top half leaves only the bottom half's share (averaged over the whole mask, as before,
    not over the bottom half alone), and a weight of 0.3 over the top half takes 0.7 of the top half's share off."""
    import cv2

    face = _real_faces(media, res=96)
    soft = torch.stack([torch.from_numpy(cv2.GaussianBlur(i, (0, 0), 1.5))
                        for i in face.permute(0, 2, 3, 1).numpy()]).permute(0, 3, 1, 2)
    mask = torch.ones_like(face[:, :1])
    whole = L.texture_loss(soft, face, mask, 10.0)
    assert torch.allclose(L.texture_loss(soft, face, mask, 10.0, torch.ones_like(mask)), whole)
    top = torch.ones_like(mask)
    top[..., :48, :] = 0
    bottom_only = L.texture_loss(soft, face, mask, 10.0, top)
    assert (bottom_only > 0).all() and (bottom_only < 0.8 * whole).all()
    top_share = whole - bottom_only
    partial = top.clone()
    partial[..., :48, :] = 0.3
    assert torch.allclose(L.texture_loss(soft, face, mask, 10.0, partial), bottom_only + 0.3 * top_share, rtol=1e-4)


def _soft(face, sigma=1.5):
    import cv2

    hwc = face.permute(0, 2, 3, 1).numpy()
    return torch.stack([torch.from_numpy(cv2.GaussianBlur(i, (0, 0), sigma)) for i in hwc]).permute(0, 3, 1, 2)


def _lines(face, horizontal: bool, amplitude=0.04):
    """Parallel lines of period 4 px over the whole face: rows (horizontal lines) or columns (vertical)."""
    lines = torch.zeros_like(face[:, :1])
    if horizontal:
        lines[..., 0::4, :] = lines[..., 1::4, :] = amplitude
    else:
        lines[..., :, 0::4] = lines[..., :, 1::4] = amplitude
    return face + lines


def test_direction_energy_tells_horizontal_lines_from_vertical_ones(media):
    """Horizontal lines raise the fine detail's change from row to row and barely its change from column to
    column; vertical lines the other way round; the face turned by 90 degrees swaps the two."""
    face = _soft(_real_faces(media, res=96))
    base = [float(e.mean()) for e in L.direction_energy(L.luma(face))]
    across = [float(e.mean()) for e in L.direction_energy(L.luma(_lines(face, True)))]
    down = [float(e.mean()) for e in L.direction_energy(L.luma(_lines(face, False)))]
    for band in (0, 1):
        rows, cols = 2 * band, 2 * band + 1
        assert across[rows] > 1.5 * base[rows] and across[cols] < 1.1 * base[cols], (band, base, across)
        assert down[cols] > 1.5 * base[cols] and down[rows] < 1.1 * base[rows], (band, base, down)
    turned = [float(e.mean()) for e in L.direction_energy(L.luma(torch.rot90(face, 1, (2, 3))))]
    assert turned[0] == pytest.approx(base[1], rel=0.02) and turned[1] == pytest.approx(base[0], rel=0.02)


def test_grain_loss_counts_lines_the_face_lacks_and_asks_for_nothing(media):
    """The grain loss is zero for the face itself and near zero for a blurred one (it asks for no detail: the
    texture loss does that), and it grows with parallel lines drawn over the face, in either direction; its
    gradient on a face with horizontal lines takes the lines away. A weight of 0 silences it where it lies."""
    face = _real_faces(media, res=96)
    mask = torch.zeros_like(face[:, :1])
    mask[..., 8:88, 8:88] = 1
    soft = _soft(face)
    assert torch.allclose(L.grain_loss(face, face, mask, 10.0), torch.zeros(2), atol=1e-5)
    assert (L.grain_loss(soft, face, mask, 10.0) < 0.05 * L.texture_loss(soft, face, mask, 10.0)).all()
    weak, strong = L.grain_loss(_lines(soft, True, 0.02), face, mask, 10.0), L.grain_loss(_lines(soft, True), face, mask, 10.0)
    assert (weak > 0.01).all() and (strong > 1.5 * weak).all(), (weak, strong)
    assert (L.grain_loss(_lines(soft, False), face, mask, 10.0) > 0.01).all()
    assert torch.allclose(L.grain_loss(_lines(soft, True), face, mask, 20.0), 2 * strong, rtol=1e-5)
    lined = _lines(soft, True).requires_grad_(True)
    L.grain_loss(lined, face, mask, 10.0).sum().backward()
    stepped = (lined - 0.02 * lined.grad / lined.grad.abs().max()).detach()
    rows = lambda x: float(L.direction_energy(L.luma(x))[0][..., 4:18, 4:18].mean())  # noqa: E731 (inside the mask)
    assert rows(stepped) < 0.9 * rows(lined.detach())
    nowhere = torch.zeros_like(mask)
    assert torch.allclose(L.grain_loss(_lines(soft, True), face, mask, 10.0, nowhere), torch.zeros(2))


def test_fine_detail_loss_is_the_texture_and_grain_losses_from_one_pass(media):
    """The trainer's and the face-detail network's one call computes what the texture loss and the grain loss
    define, from each image's fine bands computed once: over a mask of the whole face (every cell counted once)
    its value and its gradient are those of the two losses written out from `detail_energy` and
    `direction_energy`, and a power of 0 leaves its loss out."""
    face = _real_faces(media, res=96)
    everywhere = torch.ones_like(face[:, :1])
    pred = _lines(_soft(face), True).requires_grad_(True)

    def written_out(x):
        cells = L.detail_energy(L.luma(face))[0][0].numel()
        texture = sum((p - t).abs().flatten(1).sum(1)
                      for p, t in zip(L.detail_energy(L.luma(x)), L.detail_energy(L.luma(face))))
        grain = sum(torch.relu(p - t).flatten(1).sum(1)
                    for p, t in zip(L.direction_energy(L.luma(x)), L.direction_energy(L.luma(face))))
        return (20.0 * texture + 10.0 * grain) / cells, 20.0 * texture / cells

    both, texture_only = written_out(pred)
    (reference_grad,) = torch.autograd.grad(both.sum(), pred)
    one_pass = L.fine_detail_loss(pred, face, everywhere, 20.0, 10.0)
    (grad,) = torch.autograd.grad(one_pass.sum(), pred)
    assert torch.allclose(one_pass, both, rtol=1e-4) and (both > 1.05 * texture_only).all()
    assert torch.allclose(grad, reference_grad, rtol=1e-3, atol=1e-7)
    assert torch.allclose(L.fine_detail_loss(pred, face, everywhere, 20.0, 0.0), texture_only, rtol=1e-4)
