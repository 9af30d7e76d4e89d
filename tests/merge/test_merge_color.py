"""Colour transfer, histogram matching and colour degradation move the statistics they claim to move."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facedouble.choices import ColorTransfer, values
from facedouble.faces import align
from facedouble.merge import color as C
from facedouble.faces import regions
from support.faces import landmarks
from support.media import decode


def _face(img: np.ndarray, size: int = 128):
    lm, _ = landmarks(img)[0]
    m = align.face_matrix(lm, "whole-face", size)
    face = align.warp_to_face(img, m, size).astype(np.float32) / 255.0
    return face, regions.hull_mask(align.transform_points(lm, m), (size, size), forehead=0.25)


@pytest.fixture(scope="module")
def faces(media):
    """A man's face (single_face.jpg) to recolour and a woman's (dark, warm clip) as the target."""
    man = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    woman = decode(media / "WolfgangLanger_Pexels.mp4", limit=1)[0]
    return _face(man), _face(woman)


def _lab_stats(img, mask):
    lab = C.rgb_to_lab(img)[mask > 0.5].astype(np.float64)
    return lab.mean(0), lab.std(0)


def test_rct_matches_lab_mean_and_std_within_1_percent(faces):
    # the woman's face recoloured as the man's: in the RGB gamut (the other way round, 4% of the pixels fall
    # below black and are clipped, so no method can match there)
    (dst, dm), (src, sm) = faces
    out = C.rct(src, dst, sm, dm)
    mean, std = _lab_stats(out, sm)
    t_mean, t_std = _lab_stats(dst, dm)
    s_mean, s_std = _lab_stats(src, sm)
    assert np.abs(s_mean - t_mean).max() > 5  # the faces really differ before
    # within 1% of the target's values (L*a*b* units; the only loss is clipping to the RGB gamut)
    assert np.all(np.abs(mean - t_mean) <= 0.01 * np.abs(t_mean) + 1e-3), (mean, t_mean)
    assert np.all(np.abs(std - t_std) <= 0.01 * t_std), (std, t_std)


@pytest.mark.parametrize("kind", ["lct", "mkl"])
def test_linear_transfers_match_rgb_mean_and_covariance(faces, kind):
    (src, sm), (dst, dm) = faces
    out = C.color_transfer(kind, src, dst, sm, dm)
    px, tx = out[sm > 0.5].astype(np.float64), dst[dm > 0.5].astype(np.float64)
    assert np.abs(px.mean(0) - tx.mean(0)).max() < 0.01
    cov, t_cov = np.cov(px.T), np.cov(tx.T)
    assert np.abs(cov - t_cov).max() < 0.05 * np.abs(t_cov).max()


def test_mkl_moves_colours_less_than_lct(faces):
    (src, sm), (dst, dm) = faces
    move = {k: float(np.mean((C.color_transfer(k, src, dst, sm, dm) - src)[sm > 0.5] ** 2)) for k in ("lct", "mkl")}
    assert move["mkl"] <= move["lct"] + 1e-9


def _sliced_w1(a, b, n=32, seed=1):
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    q = np.linspace(0, 1, 101)
    return float(np.mean([np.abs(np.quantile(a @ d, q) - np.quantile(b @ d, q)).mean() for d in dirs]))


@pytest.mark.parametrize("kind", ["idt", "sot"])
def test_distribution_transfers_match_the_whole_distribution(faces, kind):
    (src, sm), (dst, dm) = faces
    out = C.color_transfer(kind, src, dst, sm, dm)
    tx = dst[dm > 0.5].astype(np.float64)
    before = _sliced_w1(src[sm > 0.5], tx)
    after = _sliced_w1(out[sm > 0.5], tx)
    linear = _sliced_w1(C.lct(src, dst, sm, dm)[sm > 0.5], tx)
    assert after < 0.15 * before
    assert after < linear  # beyond mean and covariance
    assert np.array_equal(out, C.color_transfer(kind, src, dst, sm, dm))  # deterministic


def test_none_returns_the_face(faces):
    (src, sm), (dst, dm) = faces
    assert np.array_equal(C.color_transfer("none", src, dst, sm, dm), src)


def test_hist_match_matches_channel_histograms_and_threshold_darkens(faces):
    (src, sm), (dst, dm) = faces
    out = C.hist_match(src, dst, sm, dm)
    q = np.linspace(0.02, 0.95, 25)
    for c in range(3):
        assert np.abs(np.quantile(out[..., c][sm > 0.5], q) - np.quantile(dst[..., c][dm > 0.5], q)).max() < 0.02
    low = C.hist_match(src, dst, sm, dm, threshold=200)
    assert low[sm > 0.5].mean() < out[sm > 0.5].mean() - 0.01
    unmasked = C.hist_match(src, dst)
    assert not np.allclose(unmasked, out)


def test_luma_is_opencvs_grey_of_the_face(faces):
    """The one luma of the merge (to_gray3, the detail figure): OpenCV's RGB->grey on the real face, and green
    weighs most (a pure green face is brighter than a pure blue one of the same level)."""
    (face, _), _ = faces
    assert np.abs(C.luma(face) - cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)).max() < 1e-5
    assert np.allclose(C.to_gray3(face)[..., 1], C.luma(face))
    green, blue = np.zeros((2, 4, 4, 3), np.float32)
    green[..., 1] = blue[..., 2] = 1.0
    assert C.luma(green).mean() > 5 * C.luma(blue).mean()


def test_hist_match_bw_gives_grey_matched_to_grey(faces):
    (src, sm), (dst, dm) = faces
    out, grey_dst = C.hist_match_bw(src, dst, sm, dm)
    assert np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 1], out[..., 2])
    q = np.linspace(0.05, 0.95, 10)
    assert np.abs(np.quantile(out[..., 0][sm > 0.5], q) - np.quantile(grey_dst[..., 0][dm > 0.5], q)).max() < 0.02


def test_degrade_color_reduces_the_palette_by_power(media):
    img = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    assert C.degrade_color(img, 0) is img
    full = C.degrade_color(img, 100)
    half = C.degrade_color(img, 50)
    n = lambda a: len(np.unique(a.reshape(-1, 3), axis=0))  # noqa: E731
    assert n(full) <= 256 < n(img)
    d_full, d_half = np.abs(full.astype(int) - img).mean(), np.abs(half.astype(int) - img).mean()
    assert 0 < d_half < d_full


# -- through the merger: each --color-transfer mode moves the merged face's colours towards dst's ----------------

class _OtherFaceSwapper:
    """Stand-in model that answers every crop with another real person's face (the woman's, aligned the same
    way): colours and lighting unlike dst's, as a freshly trained model's src face often is."""

    def __init__(self, face: np.ndarray):
        self.resolution, self.face_type, self.learn_mask = face.shape[0], "whole-face", False
        self.face = face

    def swap_numpy(self, faces):
        return [self.face.copy() for _ in faces], [np.ones(self.face.shape[:2], np.float32) for _ in faces]


@pytest.fixture(scope="module")
def merge_case(media, faces):
    """A dst frame of the man's clip, its face record, and a model that puts the woman's face on it."""
    from types import SimpleNamespace

    frame = decode(media / "single_face.mp4", limit=1)[0]
    (lm, _), = landmarks(frame)
    (woman, _) = faces[1]
    return frame, [SimpleNamespace(source_landmarks=lm)], _OtherFaceSwapper(woman)


def _merged_gap(frame, merged):
    """Distance of the merged face's Lab statistics (mean and std inside the full-strength mask) from those of
    dst's face under the same pixels: sum over L, a, b of |mean difference| + |std difference|."""
    sel = merged.mask > 250
    assert sel.sum() > 2000
    lab_out = C.rgb_to_lab(merged.image.astype(np.float32) / 255.0)[sel].astype(np.float64)
    lab_dst = C.rgb_to_lab(frame.astype(np.float32) / 255.0)[sel].astype(np.float64)
    return float(np.abs(lab_out.mean(0) - lab_dst.mean(0)).sum() + np.abs(lab_out.std(0) - lab_dst.std(0)).sum())


@pytest.mark.parametrize("kind", [k for k in values(ColorTransfer) if k != "none"])
def test_merge_color_transfer_moves_the_face_towards_dst(merge_case, kind):
    from facedouble.config import MergeConfig
    from facedouble.merge import compose

    frame, records, swapper = merge_case
    none = compose.merge_frame(frame, records, swapper, MergeConfig(mode="overlay", mask="dst", color_transfer="none"))
    out = compose.merge_frame(frame, records, swapper, MergeConfig(mode="overlay", mask="dst", color_transfer=kind))
    assert np.array_equal(out.mask, none.mask)  # the same pixels compared
    before, after = _merged_gap(frame, none), _merged_gap(frame, out)
    assert before > 10.0  # the woman's face really is coloured unlike the man's (Lab units)
    assert after < 0.5 * before, (kind, before, after)
