"""68 landmarks in a user rectangle, head pose, identity embeddings, and the landmark smoothing / target
tracking of dst sequences, on real photos and clips."""

from __future__ import annotations

import numpy as np
import pytest

from facedouble.errors import OptionError
from facedouble.faces import align
from facedouble.faces.detect import iou
from facedouble.faces.find import FaceFinder
from facedouble.faces.identity import SAME_PERSON, default_encoder, face_distance, reference_embedding
from facedouble.faces.landmarks import landmarks_in_rect
from facedouble.faces.pose import pose_angles
from facedouble.faces.track import OneEuroFilter, TargetTracker, is_cut, thumbnail

SINGLE_FACE_EYES = np.array([(231, 248), (313, 245)], np.float64)
SINGLE_FACE_MOUTH = np.array([273, 333], np.float64)


def read(path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def video_frames(path, wanted: set[int]) -> dict[int, np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return {i: f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0), 1) if i in wanted}


@pytest.mark.parametrize("rect", [(185, 190, 380, 410), (170, 160, 400, 430), (200, 215, 360, 400)])
def test_landmarks_in_a_hand_drawn_rect(media, rect):
    lm = landmarks_in_rect(read(media / "single_face.jpg"), rect)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    iod = np.linalg.norm(SINGLE_FACE_EYES[1] - SINGLE_FACE_EYES[0])
    eyes = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])
    assert np.linalg.norm(eyes - SINGLE_FACE_EYES, axis=1).max() < 0.2 * iod
    assert np.linalg.norm(lm[48:68].mean(0) - SINGLE_FACE_MOUTH) < 0.3 * iod


def test_bad_rect_is_refused(media):
    with pytest.raises(OptionError):
        landmarks_in_rect(read(media / "single_face.jpg"), (10, 10, 5, 50))


def test_pose_signs(media):
    lm = FaceFinder("auto").find(read(media / "single_face.jpg"))[0].landmarks
    yaw, pitch, roll = pose_angles(lm, (572, 562))
    assert abs(yaw) < 15 and abs(roll) < 10
    # mirrored face: yaw and roll change sign, pitch stays
    flip = [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46,
            39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
    mirrored = lm.copy()
    mirrored[:, 0] = 571 - mirrored[:, 0]
    y2, p2, r2 = pose_angles(mirrored[flip], (572, 562))
    assert abs(y2 + yaw) < 1 and abs(p2 - pitch) < 1 and abs(r2 + roll) < 1
    # turning the image turns the roll by the same angle
    c = np.array([286.0, 281.0])
    a = np.deg2rad(25)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    _, _, r3 = pose_angles((lm - c) @ rot.T + c, (572, 562))
    assert abs((r3 - roll) - 25) < 3


def test_pose_yaw_follows_the_head(media):
    """In WolfgangLanger_Pexels.mp4 the woman looks to the image's left at frame 1 and to the camera at 241."""
    frames = video_frames(media / "WolfgangLanger_Pexels.mp4", {1, 241})
    finder = FaceFinder("auto")
    yaw1 = pose_angles(finder.find(frames[1])[0].landmarks, (640, 360))[0]
    yaw241 = pose_angles(finder.find(frames[241])[0].landmarks, (640, 360))[0]
    assert yaw1 < -12 and abs(yaw241) < 8


def test_identity_same_and_other_person(media, tmp_path):
    import cv2

    finder, enc = FaceFinder("auto"), default_encoder()
    woman = video_frames(media / "WolfgangLanger_Pexels.mp4", {1, 200, 400})
    man = video_frames(media / "single_face.mp4", {10})[10]
    emb = {k: enc(v, finder.find(v)[0].landmarks) for k, v in woman.items()}
    e_man = enc(man, finder.find(man)[0].landmarks)
    assert emb[1].shape == (128,) and emb[1].dtype == np.float32
    assert face_distance(emb[1], emb[200]) < SAME_PERSON and face_distance(emb[200], emb[400]) < SAME_PERSON
    assert face_distance(emb[1], e_man) > SAME_PERSON and face_distance(emb[400], e_man) > SAME_PERSON
    # a reference photo: the largest face in it
    path = tmp_path / "ref.png"
    cv2.imwrite(str(path), cv2.cvtColor(woman[200], cv2.COLOR_RGB2BGR))
    ref = reference_embedding(path)
    assert face_distance(ref, emb[400]) < SAME_PERSON


def test_identity_embedding_of_turned_face_matches(media):
    finder, enc = FaceFinder("auto"), default_encoder()
    image = read(media / "single_face.jpg")
    turned = np.ascontiguousarray(np.rot90(image, 1))
    a = enc(image, finder.find(image)[0].landmarks)
    b = enc(turned, finder.find(turned)[0].landmarks)
    assert face_distance(a, b) < 0.25


# -- smoothing and tracking ---------------------------------------------------------------------------------

def _face(size: float = 200.0) -> np.ndarray:
    lm = np.zeros((68, 2), np.float64)
    rng = np.random.default_rng(3)
    lm[:] = rng.uniform(-0.5, 0.5, (68, 2)) * size + 300
    return lm


def test_one_euro_removes_jitter_without_lag():
    rng = np.random.default_rng(0)
    base, size = _face(), 200.0
    f = OneEuroFilter(min_cutoff=0.5, beta=10.0)
    still_err, raw_err, move_err = [], [], []
    for t in range(90):
        shift = 0.0 if t < 60 else (t - 60) * 0.1 * size      # then 3 face sizes per second
        truth = base + [shift, 0]
        obs = truth + rng.normal(0, 0.01 * size, base.shape)
        out = f(obs, size)
        if 10 <= t < 60:
            still_err.append(np.linalg.norm(out - truth, axis=1).mean() / size)
            raw_err.append(np.linalg.norm(obs - truth, axis=1).mean() / size)
        elif t >= 63:
            move_err.append(np.linalg.norm(out - truth, axis=1).mean() / size)
    assert np.mean(still_err) < 0.6 * np.mean(raw_err)     # jitter reduced
    assert np.mean(move_err) < 0.03                        # follows a fast move closely
    f.reset()
    assert np.allclose(f(base, size), base)                # after a reset the first frame passes through


def test_smoothing_real_landmarks_reduces_jitter(media):
    frames = video_frames(media / "single_face.mp4", set(range(1, 31)))
    finder = FaceFinder("auto")
    raw = np.stack([finder.find(frames[i])[0].landmarks for i in range(1, 31)]).astype(np.float64)
    size = 1 / align.matrix_scale(align.face_matrix(raw[0], "full", 1))
    f = OneEuroFilter(min_cutoff=0.5, beta=10.0)
    smooth = np.stack([f(x, size) for x in raw]).astype(np.float64)

    def jitter(seq):
        return np.linalg.norm(seq[2:] - 2 * seq[1:-1] + seq[:-2], axis=-1).mean()

    assert jitter(smooth) < 0.5 * jitter(raw)
    assert np.linalg.norm(smooth - raw, axis=-1).mean() < 0.02 * size


def test_target_tracker_modes():
    big, small = np.array([0, 0, 200, 200.0]), np.array([400, 0, 500, 100.0])
    t = TargetTracker("track")
    assert t.choose([small], [100]) == 0
    # the tracked face stays chosen when a larger one appears
    assert t.choose([big, small + 3], [200, 100]) == 1
    t.reset()
    assert t.choose([big, small], [200, 100]) == 0
    assert TargetTracker("largest").choose([small, big], [100, 200]) == 1
    r = TargetTracker("reference", max_distance=0.6)
    assert r.choose([big, small], [200, 100], [0.8, 0.4]) == 1
    assert r.choose([big, small], [200, 100], [0.7, 0.9]) is None
    assert TargetTracker("track").choose([], []) is None
    assert iou(big, big) == 1.0


def test_cut_detection(media):
    frames = video_frames(media / "face_noface.mov", {71, 72, 73, 74, 120, 121})
    thumbs = {k: thumbnail(v) for k, v in frames.items()}
    assert not is_cut(thumbs[71], thumbs[72]) and not is_cut(thumbs[120], thumbs[121])
    assert is_cut(thumbs[72], thumbs[73]) or is_cut(thumbs[73], thumbs[74])
