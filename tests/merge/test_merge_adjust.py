"""The merger's detail adjustments (merge/adjust.py): blur/sharpen, denoise, bicubic degrade and motion blur
change a real face in the direction they claim, and the merge applies them to the merged frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facedouble.config import MergeConfig
from facedouble.errors import OptionError
from facedouble.faces import align
from facedouble.merge import adjust as A
from facedouble.faces import regions
from facedouble.merge import merger
from facedouble.merge import compose
from support.faces import landmarks
from support.media import decode
from support.swappers import IdentitySwapper
from support.workspaces import write_dst_workspace


@pytest.fixture(scope="module")
def face(media):
    """A man's face (single_face.jpg), whole-face 128 px, float32 [0, 1], with its 68 landmarks in the face."""
    img = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    lm, _ = landmarks(img)[0]
    m = align.face_matrix(lm, "whole-face", 128)
    return align.warp_to_face(img, m, 128).astype(np.float32) / 255.0, align.transform_points(lm, m)


def _grey(x: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(x, np.float32), cv2.COLOR_RGB2GRAY)


def lap_var(x: np.ndarray, where: np.ndarray | None = None) -> float:
    """The detail figure of the quality report: variance of the Laplacian (of the grey image)."""
    lap = cv2.Laplacian(_grey(x), cv2.CV_32F)
    return float(lap[where].var() if where is not None else lap.var())


def grad_energy(x: np.ndarray, where: np.ndarray | None = None) -> tuple[float, float]:
    """Mean squared horizontal and vertical gradients (d/dx, d/dy)."""
    g = _grey(x)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    if where is not None:
        gx, gy = gx[where], gy[where]
    return float(np.mean(gx ** 2)), float(np.mean(gy ** 2))


# -- blur / sharpen ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["box", "gaussian"])
def test_sharpen_raises_and_blur_lowers_detail_monotonically(face, mode):
    f, _ = face
    base = lap_var(f)
    up = [lap_var(A.blur_sharpen(f, n, mode)) for n in (10, 25, 50, 100)]
    down = [lap_var(A.blur_sharpen(f, -n, mode)) for n in (10, 25, 50, 100)]
    assert base < up[0] < up[1] < up[2] < up[3] and up[3] > 4 * base
    assert base > down[0] > down[1] > down[2] > down[3] and down[3] < 0.01 * base
    # the face stays the face: the mean colour moves by about a level at most (clipping of the overshoot)
    assert np.abs(A.blur_sharpen(f, 100, mode).mean((0, 1)) - f.mean((0, 1))).max() < 2 / 255


def test_box_and_gaussian_differ(face):
    f, _ = face
    for n in (60, -60):
        box, gauss = A.blur_sharpen(f, n, "box"), A.blur_sharpen(f, n, "gaussian")
        assert np.abs(box - gauss).mean() > 0.002, n
    # the box kernel's square support is not isotropic: at equal variance it blurs the diagonals more
    assert lap_var(A.blur_sharpen(f, -60, "box")) != pytest.approx(lap_var(A.blur_sharpen(f, -60, "gaussian")), rel=0.02)


# -- denoise ---------------------------------------------------------------------------------------------------

def _flattest_patch(f: np.ndarray, lm: np.ndarray, side: int = 12) -> np.ndarray:
    """The side x side window of the clean face (inside its landmark hull) with the least texture: skin."""
    g = _grey(f)
    g = g - cv2.GaussianBlur(g, (0, 0), 3)  # texture, not shading
    mean = cv2.blur(g, (side, side))
    std = np.sqrt(np.maximum(cv2.blur(g * g, (side, side)) - mean ** 2, 0))
    hull = regions.hull_mask(lm, g.shape, forehead=0.0) > 0.5
    inside = cv2.erode(hull.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
    std[~inside] = np.inf
    y, x = np.unravel_index(np.argmin(std), std.shape)
    out = np.zeros(g.shape, bool)
    out[y - side // 2:y + side // 2, x - side // 2:x + side // 2] = True
    return out


def test_denoise_flattens_skin_and_keeps_edges_better_than_a_blur(face):
    f, lm = face
    rng = np.random.default_rng(0)
    noisy = np.clip(f + rng.normal(0, 0.05, f.shape).astype(np.float32), 0, 1)
    skin = _flattest_patch(f, lm)
    g = _grey(f)
    gm = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    edges = gm > np.quantile(gm, 0.95)   # the clean face's strongest edges: eyes, brows, mouth, outline

    def noise(x):  # what is left of the noise on the skin
        return float((_grey(x) - g)[skin].std())

    def edge_error(x):
        return float(np.abs(_grey(x) - g)[edges].mean())

    levels = [noise(A.denoise(noisy, p)) for p in (0, 50, 100, 200, 400)]
    assert all(a > b for a, b in zip(levels, levels[1:])), levels
    assert levels[3] < 0.7 * levels[0] and levels[4] < 0.5 * levels[0], levels
    denoised = A.denoise(noisy, 200)
    # a gaussian blur of equal strength: the sigma that flattens the skin as much (bisection)
    lo, hi = 0.1, 5.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if noise(cv2.GaussianBlur(noisy, (0, 0), mid)) > noise(denoised) else (lo, mid)
    blurred = cv2.GaussianBlur(noisy, (0, 0), hi)
    assert noise(blurred) <= noise(denoised) * 1.01
    # measured: 0.027 against 0.035 (sigma 0.54 px); the noisy face's own edge error is 0.026
    assert edge_error(denoised) < 0.85 * edge_error(blurred), (edge_error(denoised), edge_error(blurred), hi)
    assert edge_error(denoised) < 1.1 * edge_error(noisy)


# -- bicubic degrade -------------------------------------------------------------------------------------------

def test_bicubic_degrade_lowers_detail_more_with_power(face):
    f, _ = face
    figures = [lap_var(A.bicubic_degrade(f, p)) for p in (0, 10, 25, 50, 75, 100)]
    assert all(a > b for a, b in zip(figures, figures[1:])), figures
    assert figures[-1] < 0.02 * figures[0]
    assert A.degrade_factor(0) == 1.0 and A.degrade_factor(100) == pytest.approx(A.DEGRADE_MAX)
    soft = A.bicubic_degrade(f, 50)
    assert soft.shape == f.shape and soft.dtype == np.float32
    assert np.abs(soft.mean((0, 1)) - f.mean((0, 1))).max() < 2 / 255  # softer, not darker or tinted


# -- motion blur -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("motion,along", [((12.0, 0.0), 0), ((0.0, 12.0), 1), ((-9.0, 0.5), 0)])
def test_motion_blur_blurs_along_the_movement(face, motion, along):
    f, _ = face
    out = A.motion_blur(f, np.array(motion), 100)
    before, after = grad_energy(f), grad_energy(out)
    kept = [after[i] / before[i] for i in (0, 1)]
    # gradients along the movement are smeared away; across it they mostly stay
    assert kept[along] < 0.35 and kept[1 - along] > 2.5 * kept[along], kept
    weaker = grad_energy(A.motion_blur(f, np.array(motion), 40))
    assert after[along] < weaker[along] < before[along]  # a longer streak with more power


def test_motion_blur_leaves_a_still_face_alone(face):
    f, lm = face
    assert A.motion_blur(f, np.zeros(2), 100) is f
    assert A.motion_blur(f, None, 100) is f
    assert A.motion_blur(f, np.array([0.4, 0.3]), 100) is f   # under a pixel
    assert A.motion_blur(f, np.array([12.0, 0.0]), 0) is f
    assert np.all(A.face_motion(lm, lm, lm) == 0)
    assert np.all(A.face_motion(None, lm, None) == 0)


def test_face_motion_and_its_face_space(face):
    _, lm = face
    step = np.array([3.0, -1.0], np.float32)
    assert np.allclose(A.face_motion(lm - step, lm, lm + step), step)
    assert np.allclose(A.face_motion(None, lm, lm + step), step)
    assert np.allclose(A.face_motion(lm - step, lm, None), step)
    # a frame-to-face matrix that halves and rotates by 90 degrees
    m = np.array([[0.0, -0.5, 7.0], [0.5, 0.0, -3.0]])
    assert np.allclose(A.to_face_space([4.0, 0.0], m), [0.0, 2.0])


def test_line_kernel_is_a_normalised_streak():
    k = A.line_kernel(9.0, 0.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    c = k.shape[0] // 2
    assert k[c].sum() > 0.95 and k[:, c].sum() < 0.2  # a horizontal line through the centre
    assert np.count_nonzero(k[c] > 0.01) in (9, 10, 11)


def test_adjust_face_all_off_is_the_face_and_order(face):
    f, _ = face
    assert A.adjust_face(f) is f
    out = A.adjust_face(f, sharpen=40, denoise_power=100, degrade=20, motion_power=50, motion=np.array([6.0, 0.0]))
    assert out.shape == f.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError):
        A.blur_sharpen(f, 10, "median")


def test_options_are_validated():
    assert (MergeConfig().sharpen, MergeConfig().denoise, MergeConfig().bicubic_degrade, MergeConfig().motion_blur) \
        == (0, 0, 0, 0)
    for bad in ({"sharpen": 101}, {"sharpen": -101}, {"denoise": 501}, {"bicubic_degrade": -1}, {"motion_blur": 101},
                {"sharpen_mode": "median"}):
        with pytest.raises(OptionError):
            MergeConfig(**bad)


# -- in the merge ------------------------------------------------------------------------------------------------

class NoisySwapper(IdentitySwapper):
    """Stand-in for a grainy model (e.g. one trained with a GAN): the input face plus fixed Gaussian noise."""

    def swap_numpy(self, faces):
        preds, masks = super().swap_numpy(faces)
        rng = np.random.default_rng(0)
        return [np.clip(p + rng.normal(0, 0.04, p.shape).astype(np.float32), 0, 1) for p in preds], masks


def _face_region(mask: np.ndarray) -> np.ndarray:
    return cv2.erode((mask > 250).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0


def test_merge_frame_applies_each_adjustment(dst_ws):
    from facedouble.imagefile import read_rgb as read_image
    from facedouble.merge.merger import frame_records

    ws = dst_ws
    path = ws.frame_files("dst")[2]
    frame, recs = read_image(path), frame_records(ws)[path.name]
    sw, state = IdentitySwapper(128), compose.MergeState()

    def merged(**kw):
        return compose.merge_frame(frame, recs, sw, MergeConfig(mask="dst", **kw), state)

    base = merged()
    where = _face_region(base.mask)
    assert where.sum() > 2000
    detail = lambda m: lap_var(m.image.astype(np.float32) / 255, where)  # noqa: E731
    d0 = detail(base)
    assert detail(merged(sharpen=60)) > 1.5 * d0
    assert detail(merged(sharpen=-60)) < 0.5 * d0
    assert detail(merged(bicubic_degrade=60)) < 0.5 * d0
    noisy_sw, noisy_state = NoisySwapper(128), compose.MergeState()

    def noisy(**kw):
        return detail(compose.merge_frame(frame, recs, noisy_sw, MergeConfig(mask="dst", **kw), noisy_state))

    assert noisy() > 1.5 * d0  # the stand-in model's grain is there in the merged face ...
    assert noisy(denoise=300) < 0.6 * noisy()  # ... and the denoise takes most of it out
    assert np.array_equal(merged(motion_blur=100).image, base.image)  # no neighbours: a still face
    still = compose.merge_frame(frame, recs, sw, MergeConfig(mask="dst", motion_blur=100), state, neighbours=(recs, recs))
    assert np.array_equal(still.image, base.image)
    outside = base.mask == 0
    assert np.array_equal(merged(sharpen=60).image[outside], base.image[outside])  # only the face changes


def test_merge_stage_motion_blur_follows_a_moving_face(media, tmp_path, monkeypatch, unmarked):
    """Five frames of a real frame panned 16 px per frame to the right: `merge --motion-blur 100` smears the
    face horizontally (not vertically) compared with the same merge without it."""
    from typer.testing import CliRunner

    from facedouble.cli import app
    from facedouble.workspace import Workspace

    still = decode(media / "single_face.mp4", limit=1)[0]
    frames = [cv2.warpAffine(still, np.float32([[1, 0, 16 * i], [0, 1, 0]]), (still.shape[1], still.shape[0]),
                             borderMode=cv2.BORDER_REFLECT) for i in range(5)]
    ws = Workspace(tmp_path / "ws")
    found = write_dst_workspace(ws, frames)
    assert all(len(v) == 1 for v in found.values())
    monkeypatch.setattr(merger, "load_swapper", lambda ws, cfg: IdentitySwapper(128))
    runner = CliRunner()

    def run(*extra):
        r = runner.invoke(app, ["merge", "-w", str(ws.root), "--mode", "overlay", "--mask", "dst", "--force", *extra])
        assert r.exit_code == 0, r.output
        name = "000003.png"
        img = cv2.cvtColor(cv2.imread(str(ws.merged / name)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        return img, cv2.imread(str(ws.merged_mask / name), cv2.IMREAD_GRAYSCALE)

    plain, mask = run()
    blurred, _ = run("--motion-blur", "100")
    assert MergeConfig.load(ws.config_file(MergeConfig)).motion_blur == 100
    where = _face_region(mask)
    before, after = grad_energy(plain, where), grad_energy(blurred, where)
    kept = [after[i] / before[i] for i in (0, 1)]  # measured: 0.55 of d/dx, 0.80 of d/dy
    assert kept[0] < 0.65 and kept[1] > 0.7 and kept[1] > kept[0] + 0.15, kept
    sharpened, _ = run("--sharpen", "-40", "--sharpen-mode", "box")
    assert lap_var(sharpened, where) < 0.5 * lap_var(plain, where)
