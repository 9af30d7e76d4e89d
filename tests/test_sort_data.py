"""Real aligned faces for the sort tests and benchmark, made from the sample media with dlib.

The woman (WolfgangLanger_Pexels.mp4) turns her head from about 20 degrees left to 20 degrees right and
tilts it back while laughing; the man (single_face.mp4) looks straight at the camera. Faces are written the
way extraction writes them: `<frame>_<index>.jpg`, a 256 px whole-face crop with its record inside. The
man's frames are numbered from 100000 so both people fit in one folder. Only half of the woman's records
carry an identity embedding (the sort must compute the others); the man's all do.

This module holds no tests; `faces_cache` is the session fixture the sort test modules import.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

SIZE = 256
WOMAN = "WolfgangLanger_Pexels.mp4"
MAN = "single_face.mp4"
MAN_OFFSET = 100000

# 68-point index of each point's mirror image (jaw, brows, nose, eyes, outer and inner mouth).
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)


@dataclass
class Dlib:
    detector: object
    predictor: object
    recognizer: object


def dlib_models() -> Dlib:
    import dlib

    from facedouble.faces.models import DLIB_68, DLIB_RESNET, dlib_model

    return Dlib(dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dlib_model(DLIB_68))),
                dlib.face_recognition_model_v1(str(dlib_model(DLIB_RESNET))))


def frames(video: Path, every: int, limit: int | None = None):
    """(frame number from 1, RGB frame) of every `every`-th frame."""
    import av

    with av.open(str(video)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if limit is not None and i >= limit:
                break
            if i % every == 0:
                yield i + 1, f.to_ndarray(format="rgb24")


def face_from_frame(frame: np.ndarray, rect, m: Dlib, source_filename: str, face_index: int = 0,
                    with_identity: bool = True):
    """(aligned RGB image, FaceRecord) of the face in `rect` (a dlib rectangle) of `frame`."""
    from facedouble.faces import align
    from facedouble.faces.container import FaceRecord

    shape = m.predictor(frame, rect)
    lm = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
    mat = align.face_matrix(lm, "whole-face", SIZE)
    image = align.warp_to_face(frame, mat, SIZE)
    identity = np.asarray(m.recognizer.compute_face_descriptor(frame, shape), np.float32) if with_identity else None
    rec = FaceRecord(face_type="whole-face", size=SIZE, landmarks=align.transform_points(lm, mat), source_landmarks=lm,
                     matrix=mat, source_filename=source_filename,
                     source_rect=(rect.left(), rect.top(), rect.right(), rect.bottom()),
                     source_size=(frame.shape[1], frame.shape[0]), face_index=face_index, detector="dlib",
                     landmarker="dlib68", identity=identity)
    return image, rec


def make_faces(media: Path, dest: Path, woman_every: int = 16, man_every: int = 9) -> dict[str, list[str]]:
    """Write the woman's and the man's aligned faces into `dest`; returns {'woman': names, 'man': names,
    'multi': names} where 'multi' are the faces of multi_face.jpg (several faces of one frame)."""
    from facedouble.faces import container

    m = dlib_models()
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[str]] = {"woman": [], "man": [], "multi": []}
    for who, video, every, offset in (("woman", WOMAN, woman_every, 0), ("man", MAN, man_every, MAN_OFFSET)):
        for k, (number, frame) in enumerate(frames(media / video, every)):
            rects = m.detector(frame, 0)
            if len(rects) != 1:
                continue
            stem = f"{number + offset:06d}"
            image, rec = face_from_frame(frame, rects[0], m, stem + ".png",
                                         with_identity=(who == "man" or k % 2 == 0))
            container.write_face(dest / f"{stem}_0.jpg", image, rec)
            out[who].append(f"{stem}_0.jpg")
    photo = container.decode_image((media / "multi_face.jpg").read_bytes())
    rects = sorted(m.detector(photo, 0), key=lambda r: r.left())
    for i, r in enumerate(rects):
        image, rec = face_from_frame(photo, r, m, "200001.png", face_index=i)
        container.write_face(dest / f"200001_{i}.jpg", image, rec)
        out["multi"].append(f"200001_{i}.jpg")
    return out


def mirrored(image: np.ndarray, record, tag: str = "f"):
    """The face flipped left-right, with landmarks (and their point order) and matrix mirrored too, as a
    face of a virtual frame named `<tag><frame>`."""
    w = image.shape[1]
    flip = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]])
    lm = record.landmarks[MIRROR_68].copy()
    lm[:, 0] = (w - 1) - lm[:, 0]
    mat = flip @ np.vstack([record.matrix, [0.0, 0.0, 1.0]])
    return np.ascontiguousarray(image[:, ::-1]), replace(record, landmarks=lm.astype(np.float32), matrix=mat,
                                                           source_filename=tag + record.source_filename)


def tree_digest(*folders: Path) -> dict[str, str]:
    """{'folder/name': sha256} of every file in the folders (hidden bookkeeping files excluded)."""
    out = {}
    for folder in folders:
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    out[f"{folder.name}/{p.name}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def copy_faces(src: Path, dest: Path, names) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy2(src / n, dest / n)


_MADE: dict = {}


@pytest.fixture(scope="session")
def faces_cache(tmp_path_factory, media):
    """(folder of real aligned faces, names by person), made once per test session (~5 s) even though each
    test module imports this fixture (which gives each module its own copy of the fixture)."""
    if "faces" not in _MADE:
        folder = tmp_path_factory.mktemp("sort_faces")
        names = make_faces(media, folder)
        assert len(names["woman"]) >= 20 and len(names["man"]) >= 6 and len(names["multi"]) >= 3, names
        _MADE["faces"] = (folder, names)
    return _MADE["faces"]
