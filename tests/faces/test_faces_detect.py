"""Face detection, 68 landmarks and the face verifier on the real sample photos and clips.

Known positions were measured once (by eye, checked against dlib HOG + 68 landmarks and MTCNN's five
points) and are hard-coded here: image pixels (x, y).
"""

from __future__ import annotations

import numpy as np
import pytest

from facedouble.errors import OptionError
from facedouble.faces import align
from facedouble.faces.detect import detector_names, iou, make_detector
from facedouble.faces.find import FaceFinder, rotate, rotation_matrix

# multi_face.jpg, left to right: box of the 68 landmarks, eye centres (image left, image right), mouth centre.
MULTI_FACE = [
    dict(box=(218, 90, 305, 176), eyes=((250, 104), (288, 112)), mouth=(259, 146)),   # sunglasses
    dict(box=(312, 263, 412, 361), eyes=((346, 284), (387, 282)), mouth=(369, 325)),
    dict(box=(436, 234, 518, 310), eyes=((461, 248), (496, 249)), mouth=(478, 284)),
    dict(box=(531, 338, 634, 434), eyes=((557, 354), (600, 358)), mouth=(573, 397)),
    dict(box=(684, 322, 794, 423), eyes=((713, 339), (760, 344)), mouth=(731, 384)),
]
SINGLE_FACE = dict(box=(188, 212, 375, 401), eyes=((231, 248), (313, 245)), mouth=(273, 333))


def read(path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def landmark_box(lm: np.ndarray) -> np.ndarray:
    return np.r_[lm.min(0), lm.max(0)]


def assert_on_face(lm: np.ndarray, known: dict, eye_tol: float = 0.2, mouth_tol: float = 0.3) -> None:
    """Eye centres and mouth centre of 68 landmarks within a fraction of the inter-ocular distance."""
    eyes = np.array(known["eyes"], np.float64)
    iod = np.linalg.norm(eyes[1] - eyes[0])
    got_eyes = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])
    assert np.linalg.norm(got_eyes - eyes, axis=1).max() < eye_tol * iod, (got_eyes, eyes)
    assert np.linalg.norm(lm[48:68].mean(0) - known["mouth"]) < mouth_tol * iod
    assert iou(landmark_box(lm), np.array(known["box"], np.float64)) > 0.6


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder("auto")


def test_auto_finds_all_five_faces_of_multi_face(media, finder):
    image = read(media / "multi_face.jpg")
    faces = finder.find(image)
    assert len(faces) == 5
    for known in MULTI_FACE:
        best = max(faces, key=lambda f: iou(landmark_box(f.landmarks), np.array(known["box"], np.float64)))
        assert_on_face(best.landmarks, known)
        # the detector's own box covers the same face
        assert iou(best.rect, np.array(known["box"], np.float64)) > 0.35
        assert best.verified >= 1.0


@pytest.mark.parametrize("name", ["mediapipe", "mt", "dlib"])
def test_each_detector_finds_the_face_of_single_face(media, name):
    image = read(media / "single_face.jpg")
    faces = FaceFinder(name, rotations=False).find(image)
    assert len(faces) == 1
    assert faces[0].detector == name
    assert iou(faces[0].rect, np.array(SINGLE_FACE["box"], np.float64)) > 0.35
    assert_on_face(faces[0].landmarks, SINGLE_FACE)


def test_dlib_cnn_detector(media):
    image = read(media / "single_face.jpg")
    found = make_detector("dlib-cnn", detect_size=320).detect(image)
    assert len(found) == 1 and iou(found[0].rect, np.array(SINGLE_FACE["box"], np.float64)) > 0.35


def test_mtcnn_five_points_on_eyes(media):
    dets = make_detector("mt").detect(read(media / "multi_face.jpg"))
    assert len(dets) == 5
    for known in MULTI_FACE:
        d = min(dets, key=lambda d: np.linalg.norm(d.points[0] - known["eyes"][0]))
        iod = np.linalg.norm(np.subtract(known["eyes"][1], known["eyes"][0]))
        assert np.linalg.norm(d.points[:2] - np.array(known["eyes"]), axis=1).max() < 0.25 * iod


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_turned_frame_is_found_and_mapped_back(media, finder, angle):
    image = read(media / "single_face.jpg")
    h, w = image.shape[:2]
    turned = np.ascontiguousarray(rotate(image, angle))
    faces = finder.find(turned)
    assert len(faces) == 1
    # landmarks in the turned frame, mapped back to the upright frame, land on the face
    back = align.transform_points(faces[0].landmarks, align.invert(rotation_matrix(angle, w, h)))
    assert_on_face(back, SINGLE_FACE, eye_tol=0.25)


def test_tilted_face_landmarks(media, finder):
    import cv2

    image = read(media / "single_face.jpg")
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 40, 1.0)
    tilted = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    faces = finder.find(tilted)
    assert len(faces) == 1
    back = align.transform_points(faces[0].landmarks, align.invert(m))
    assert_on_face(back, SINGLE_FACE, eye_tol=0.25)


def test_title_frames_give_no_face(media, finder):
    """Frames of the animated title where detectors fire on letters (upright and turned) are rejected."""
    import av

    wanted = {8, 12, 15, 77, 86, 88, 90}
    with av.open(str(media / "no_face.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0), 1) if i in wanted]
    assert len(frames) == len(wanted)
    for frame in frames:
        assert finder.find(frame) == []


def test_grey_and_alpha_photos(media, finder):
    import cv2

    grey = cv2.imread(str(media / "BWPictureHuman.jpg"), cv2.IMREAD_UNCHANGED)
    assert grey.ndim == 2  # really one channel
    from facedouble.imagefile import read_rgb

    assert read_rgb(media / "BWPictureHuman.jpg").shape == (1912, 2560, 3)
    rgba = cv2.imread(str(media / "Image_with_alpha.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4
    image = read_rgb(media / "Image_with_alpha.png")
    faces = finder.find(image)
    assert len(faces) == 1
    # eyes of the laughing man (hand on his forehead)
    assert_on_face(faces[0].landmarks, dict(box=(617, 294, 946, 644), eyes=((673, 398), (802, 338)), mouth=(795, 522)),
                   eye_tol=0.2, mouth_tol=0.35)
    # a grey-scale copy of a colour photo is found the same way
    g = cv2.cvtColor(cv2.cvtColor(read(media / "single_face.jpg"), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert_on_face(finder.find(g)[0].landmarks, SINGLE_FACE)


def test_registry():
    assert {"mediapipe", "mt", "dlib", "dlib-cnn", "auto"} <= set(detector_names())
    with pytest.raises(OptionError):
        make_detector("s3fd")


def test_nms_keeps_best_and_drops_overlaps():
    import torch

    from facedouble.faces.mtcnn import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [2, 2, 8, 8]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [3, 2]
