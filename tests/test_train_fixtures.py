"""Real aligned faces for the training tests (and benchmarks/train.py), made here so the training tests do
not depend on the extraction stage: frames of the sample videos decoded with PyAV, faces found with dlib's
HOG detector and 68-point predictor, aligned whole-face at 256 px and written with their record inside.

src is the woman (WolfgangLanger_Pexels.mp4), dst the man (single_face.mp4). Other test files import the
`train_faces` fixture and the `make_workspace` helper from here.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

FACES_PER_SIDE = 36
ALIGNED_SIZE = 256


def _predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")  # located, never imported (it needs pkg_resources)
    assert spec is not None and spec.submodule_search_locations, "face-recognition-models is not installed"
    return Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"


def make_aligned_faces(video: Path, out_dir: Path, count: int = FACES_PER_SIDE, size: int = ALIGNED_SIZE) -> list[Path]:
    """Write up to `count` aligned faces from frames spread evenly over `video`; returns the files."""
    import av
    import dlib

    from facedouble.faces import align, container

    out_dir.mkdir(parents=True, exist_ok=True)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(_predictor_path()))
    with av.open(str(video)) as reader:
        stream = reader.streams.video[0]
        total = stream.frames or 1
        wanted = set(np.linspace(0, total - 1, min(total, count * 2)).round().astype(int).tolist())
        frames = {i: f.to_ndarray(format="rgb24") for i, f in enumerate(reader.decode(stream)) if i in wanted}
    written: list[Path] = []
    for n in sorted(frames):
        if len(written) >= count:
            break
        frame = frames[n]
        rects = detector(frame, 0)
        if not rects:
            continue
        rect = max(rects, key=lambda r: r.width() * r.height())
        shape = predictor(frame, rect)
        lm = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        m = align.face_matrix(lm, "whole-face", size)
        face = align.warp_to_face(frame, m, size)
        record = container.FaceRecord(
            face_type="whole-face", size=size, landmarks=align.transform_points(lm, m), source_landmarks=lm,
            matrix=m, source_filename=f"{n + 1:06d}.png",
            source_rect=(rect.left(), rect.top(), rect.right(), rect.bottom()),
            source_size=(frame.shape[1], frame.shape[0]), detector="dlib", landmarker="dlib68")
        written.append(container.write_face(out_dir / f"{n + 1:06d}_0.jpg", face, record))
    return written


def make_workspace(root: Path, faces: dict[str, Path]):
    """A workspace whose data_src/aligned and data_dst/aligned hold copies of the cached faces."""
    from facedouble.workspace import Workspace

    ws = Workspace(root).create()
    for side in ("src", "dst"):
        for f in sorted(faces[side].iterdir()):
            shutil.copy2(f, ws.aligned(side) / f.name)
    return ws


def build_faces(cache: Path, media: Path) -> dict[str, Path]:
    out = {}
    for side, video in (("src", "WolfgangLanger_Pexels.mp4"), ("dst", "single_face.mp4")):
        folder = cache / side
        if not folder.is_dir() or len(list(folder.glob("*.jpg"))) < FACES_PER_SIDE // 2:
            made = make_aligned_faces(media / video, folder)
            assert len(made) >= FACES_PER_SIDE // 2, f"dlib found too few faces in {video}"
        out[side] = folder
    return out


@pytest.fixture(scope="session")
def train_faces(tmp_path_factory, media) -> dict[str, Path]:
    """{'src': folder, 'dst': folder} of ~36 real aligned faces each, made once per test session (the folder
    is fixed under the session's base temp, so test modules that import this fixture share it)."""
    return build_faces(tmp_path_factory.getbasetemp() / "train_faces", media)


def test_fixture_faces_are_real_aligned_faces(train_faces):
    from facedouble.faces.container import read_face

    for side in ("src", "dst"):
        files = sorted(train_faces[side].glob("*.jpg"))
        assert len(files) >= FACES_PER_SIDE // 2
        image, record = read_face(files[0])
        assert image.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3) and record.face_type == "whole-face"
        # eyes of an aligned face sit level, in the upper half
        eyes = record.landmarks[36:48]
        assert eyes[:, 1].max() < ALIGNED_SIZE * 0.6 and abs(record.landmarks[36:42, 1].mean() - record.landmarks[42:48, 1].mean()) < 10
