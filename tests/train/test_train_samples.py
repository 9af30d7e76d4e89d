"""train/warp.py and train/samples.py: augmentation of image, mask and landmarks together; the face cache;
deterministic batches; colour transfer; the prefetching loader."""

from __future__ import annotations

import time

import numpy as np
import pytest

from facedouble.train import warp as W
from facedouble.choices import ColorTransfer, values
from facedouble.train.samples import (BatchMaker, Prefetcher, SampleOptions, estimate_yaw, face_mask, load_faceset,
                                      preview_batch)


def _dot_image(size: int, points: np.ndarray) -> np.ndarray:
    import cv2

    img = np.zeros((size, size, 3), np.uint8)
    for x, y in points:
        cv2.circle(img, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1, cv2.LINE_AA)
    return img


@pytest.mark.parametrize("flip", [False, True])
def test_augment_moves_image_and_landmarks_together(flip):
    rng = np.random.default_rng(5)
    crop_size, out = 140, 96
    pts = np.array([[50, 60], [90, 60], [70, 95]], np.float32)
    img = _dot_image(crop_size, pts)
    ranges = W.AugmentRanges(warp=False, flip=flip)
    for _ in range(5):
        inp, target, lm, m = W.augment(img, pts, rng, out, ranges)
        assert np.array_equal(inp, target)  # no warp: the input is the target
        for x, y in lm:  # each moved landmark sits on its moved dot
            assert target[int(round(y)), int(round(x))].max() > 100


def test_flip_mirrors_the_face():
    rng = np.random.default_rng(0)
    img = np.zeros((140, 140, 3), np.uint8)
    img[:, :70] = 255  # left half white
    flips = 0
    for _ in range(20):
        _, t, _, m = W.augment(img, np.zeros((68, 2), np.float32), rng, 96, W.AugmentRanges(warp=False, rotation=0, shift=0))
        flipped = m[0, 0] < 0
        flips += flipped
        assert (t[48, 10].mean() > 128) != flipped
    assert 3 < flips < 17


def test_random_warp_is_smooth_bounded_and_pinned_at_the_edges():
    rng = np.random.default_rng(1)
    field = W.random_warp_field(rng, 96)
    assert field.shape == (96, 96, 2) and field.dtype == np.float32
    assert np.abs(field).max() < 0.2 * 96
    assert np.abs(field[0]).max() < 1.5 and np.abs(field[:, -1]).max() < 1.5  # pinned (to interpolation error)
    assert np.abs(np.diff(field, axis=0)).max() < 2.0  # smooth: neighbouring pixels move alike
    crop = np.random.default_rng(2).integers(0, 255, (140, 140, 3), dtype=np.uint8)
    inp, target = W.warp_sample(crop, W.centre_affine(140, 96), 96, field)
    assert inp.shape == target.shape == (96, 96, 3) and not np.array_equal(inp, target)
    inp0, target0 = W.warp_sample(crop, W.centre_affine(140, 96), 96, np.zeros_like(field))
    assert np.abs(inp0.astype(int) - target0).max() <= 1  # a zero field is the plain cut


def test_crop_margin_keeps_the_sample_inside_the_cache():
    rng = np.random.default_rng(3)
    for res, mod in ((96, 0.0), (96, -0.3), (128, 0.3), (512, 0.0)):
        margin = W.crop_margin(res, mod)
        crop = res + 2 * margin
        ranges = W.AugmentRanges()
        for _ in range(200):
            m = W.random_affine(rng, crop, res, ranges, mod)
            inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
            corners = np.array([[0, 0, 1], [res, 0, 1], [0, res, 1], [res, res, 1]], float) @ inv.T
            assert corners.min() >= -1 and corners.max() <= crop + 1, (res, mod)


def test_face_cache_recuts_to_the_model_face_type(train_faces):
    files = sorted(train_faces["src"].glob("*.jpg"))[:6]
    full = load_faceset(files, "src", "full", 96)
    head = load_faceset(files, "src", "head", 96)
    assert full.crops.shape == (6, 96 + 2 * full.margin, 96 + 2 * full.margin, 3)
    # a wider face type shows the face smaller: the eye distance shrinks in proportion to the cut
    eye = lambda fs: np.linalg.norm(fs.landmarks[:, 36:42].mean(1) - fs.landmarks[:, 42:48].mean(1), axis=1)
    assert np.allclose(eye(head) / eye(full), 1.0 / 1.75, rtol=0.02)
    # the face sits in the middle of the crop
    centre = full.landmarks.mean(1).mean(0)
    assert np.abs(centre - full.crops.shape[1] / 2).max() < 12


def test_batches_are_a_pure_function_of_seed_and_iteration(train_faces):
    src = load_faceset(sorted(train_faces["src"].glob("*.jpg")), "src", "full", 64)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg")), "dst", "full", 64)
    opts = SampleOptions(eyes_mouth=True, color_transfer="rct")
    a, b = BatchMaker(src, dst, 4, 7, opts), BatchMaker(src, dst, 4, 7, opts)
    b.make(0), b.make(9)  # a different history does not matter
    for k, v in a.make(3).items():
        assert np.array_equal(v, b.make(3)[k]), k
    other = BatchMaker(src, dst, 4, 8, opts).make(3)
    assert not np.array_equal(other["src_target"], a.make(3)["src_target"])
    batch = a.make(0)
    assert batch["src_in"].shape == (4, 64, 64, 3) and batch["src_in"].dtype == np.uint8
    assert batch["dst_mask"].shape == (4, 64, 64) and 0.15 < batch["dst_mask"].mean() < 0.85
    assert batch["src_em"].sum() < batch["src_mask"].sum()  # eyes and mouth lie inside the face
    assert ((batch["src_em"] > 0) <= (batch["src_mask"] > 0.01) | (batch["src_em"] < 0.5)).mean() > 0.99


def test_warp_from_leaves_the_first_batches_unwarped(train_faces):
    """--warp-from N: the batches before iteration N feed the faces as they are (input = target); from N on, the
    inputs are warped, batch for batch as with random warp from the start."""
    src = load_faceset(sorted(train_faces["src"].glob("*.jpg")), "src", "full", 64)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg")), "dst", "full", 64)
    late, always = BatchMaker(src, dst, 4, 7, SampleOptions(warp_from=5)), BatchMaker(src, dst, 4, 7, SampleOptions())
    young, warped = late.make(4), always.make(4)
    for side in ("src", "dst"):
        assert np.array_equal(young[f"{side}_in"], young[f"{side}_target"])
        assert not np.array_equal(warped[f"{side}_in"], warped[f"{side}_target"])
    later = late.make(5)
    for k, v in always.make(5).items():  # from iteration 5 the same batch as warp from the start
        assert np.array_equal(v, later[k]), k


def test_every_face_is_seen_once_per_pass(train_faces):
    src = load_faceset(sorted(train_faces["src"].glob("*.jpg")), "src", "full", 64)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg")), "dst", "full", 64)
    maker = BatchMaker(src, dst, 4, 1, SampleOptions())
    n = len(src)
    seen = np.concatenate([maker._order("src", n, i) for i in range(n)])  # noqa: SLF001  four passes
    for p in range(4):  # each pass over the faces is a permutation of all of them
        assert sorted(seen[p * n:(p + 1) * n].tolist()) == list(range(n))
    assert not np.array_equal(seen[:n], seen[n:2 * n])  # reshuffled every pass


def test_uniform_yaw_feeds_src_of_the_dst_pose(train_faces):
    src = load_faceset(sorted(train_faces["src"].glob("*.jpg")), "src", "full", 64)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg")), "dst", "full", 64)
    src.yaws[:] = np.linspace(-40, 40, len(src))
    dst.yaws[:] = 30.0
    maker = BatchMaker(src, dst, 8, 0, SampleOptions(uniform_yaw=True))
    idx = maker._yaw_matched(dst.yaws[np.arange(8) % len(dst)], np.random.default_rng(0))  # noqa: SLF001
    assert np.all(np.abs(src.yaws[idx] - 30.0) < 10.0)


def test_uniform_yaw_with_flip_matches_the_yaw_after_the_flip(train_faces, monkeypatch):
    """A flipped src face has its yaw mirrored, so it must be chosen for -yaw of the dst face it stands for."""
    import facedouble.train.samples as S

    src = load_faceset(sorted(train_faces["src"].glob("*.jpg")), "src", "full", 64)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg")), "dst", "full", 64)
    src.yaws[:] = np.linspace(-40, 40, len(src))
    dst.yaws[:] = 30.0
    seen: list[tuple[int, bool]] = []
    real = S.augment

    def spy(crop, landmarks, rng, res, ranges, scale_mod=0.0, flip=None):
        for i in range(len(src)):
            if src.landmarks[i].ctypes.data == landmarks.ctypes.data:  # the same row of the cache
                seen.append((i, bool(flip)))
        return real(crop, landmarks, rng, res, ranges, scale_mod, flip)

    monkeypatch.setattr(S, "augment", spy)
    maker = BatchMaker(src, dst, 8, 0, SampleOptions(uniform_yaw=True, random_flip=True))
    for it in range(4):
        maker.make(it)
    assert len(seen) == 32 and {f for _, f in seen} == {True, False}  # both kinds were drawn
    for i, flipped in seen:  # the yaw the model sees, after the flip, is dst's
        assert abs(src.yaws[i] * (-1 if flipped else 1) - 30.0) < 10.0


def test_yaw_estimate_has_the_right_sign():
    lm = np.zeros((68, 2), np.float32)
    lm[0], lm[16] = (0, 50), (100, 50)
    lm[30] = (50, 50)
    assert abs(estimate_yaw(lm)) < 1e-6
    lm[30] = (70, 50)  # nose towards the image's right: the face turns right
    assert estimate_yaw(lm) > 15


@pytest.mark.parametrize("kind", [k for k in values(ColorTransfer) if k != "none"])
def test_colour_transfer_moves_src_colours_to_dst(train_faces, kind):
    """Every merge colour transfer (merge/color.py, the one module) recolours src batches towards dst."""
    src = load_faceset(sorted(train_faces["src"].glob("*.jpg"))[:6], "src", "full", 64)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg"))[:6], "dst", "full", 64)
    base = dict(random_warp=False, random_flip=False)
    plain = BatchMaker(src, dst, 6, 0, SampleOptions(**base)).make(0)
    moved = BatchMaker(src, dst, 6, 0, SampleOptions(**base, color_transfer=kind)).make(0)
    mean = lambda a: a.reshape(-1, 3).astype(np.float64).mean(0)  # noqa: E731
    target = mean(dst.crops)
    before, after = np.abs(mean(plain["src_in"]) - target).sum(), np.abs(mean(moved["src_in"]) - target).sum()
    assert after < 0.8 * before, (kind, before, after)  # each src face takes a random dst face's colours
    assert np.array_equal(moved["src_in"], moved["src_target"])  # input and target recoloured alike


def test_unknown_colour_transfer_is_refused_not_replaced(train_faces):
    from facedouble.config import TrainConfig
    from facedouble.errors import OptionError
    from facedouble.train import samples

    assert not hasattr(samples, "rct") and not hasattr(samples, "lct")  # one implementation: merge/color.py
    with pytest.raises(OptionError, match="--color-transfer"):
        TrainConfig(color_transfer="fancy")
    src = load_faceset(sorted(train_faces["src"].glob("*.jpg"))[:2], "src", "full", 64)
    with pytest.raises(ValueError, match="fancy"):
        BatchMaker(src, src, 2, 0, SampleOptions(color_transfer="fancy")).make(0)


def test_mask_polygons_win_over_the_hull():
    lm = np.random.default_rng(0).uniform(20, 44, (68, 2)).astype(np.float32)
    poly = [np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)]
    assert face_mask(lm, 64, "full", poly)[2:8, 2:8].min() > 0.9
    assert face_mask(lm, 64, "full")[2:8, 2:8].max() == 0


def test_augmentation_cost_per_sample(train_faces):
    """DESIGN target: ~0.5 ms of CPU per 96 px sample (warp + flip + masks); measured as process time so that
    other load on the machine does not count."""
    import cv2

    src = load_faceset(sorted(train_faces["src"].glob("*.jpg")), "src", "full", 96)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg")), "dst", "full", 96)
    maker = BatchMaker(src, dst, 16, 0, SampleOptions())
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        maker.make(0)
        t = time.process_time()
        for i in range(10):
            maker.make(i)
        per_face = (time.process_time() - t) / (10 * 32)
    finally:
        cv2.setNumThreads(before)
    assert per_face < 1.0e-3, f"{per_face * 1e3:.2f} ms per face"


@pytest.mark.parametrize("workers", [0, 2])
def test_prefetcher_gives_batches_in_iteration_order(train_faces, workers):
    src = load_faceset(sorted(train_faces["src"].glob("*.jpg"))[:8], "src", "full", 64)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg"))[:8], "dst", "full", 64)
    maker = BatchMaker(src, dst, 2, 3, SampleOptions())
    with Prefetcher(maker, 5, workers=workers) as loader:
        got = [loader.get() for _ in range(4)]
    for i, batch in enumerate(got):
        assert np.array_equal(batch["dst_in"], maker.make(5 + i)["dst_in"])
    prev = preview_batch(src, dst, 4)
    assert prev["src_target"].shape == (4, 64, 64, 3)
