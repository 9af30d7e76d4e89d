"""Folders of real aligned faces made from the sample media with dlib, written the way extraction writes them
(`<frame>_<index>.jpg`, a whole-face crop with its record inside).

For training (`build_faces`): src is the woman (WolfgangLanger_Pexels.mp4), dst the man (single_face.mp4),
~36 faces each at 256 px. For sorting (`make_sort_faces`): the woman turns her head from about 20 degrees left
to 20 degrees right and tilts it back while laughing; the man looks straight at the camera. The man's frames
are numbered from 100000 so both people fit in one folder; only half of the woman's records carry an identity
embedding (the sort must compute the others), the man's all do; plus the faces of multi_face.jpg.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from support.faces import dlib_models, face_from_frame, predictor_path
from support.media import frames

FACES_PER_SIDE = 36
ALIGNED_SIZE = 256

WOMAN = "WolfgangLanger_Pexels.mp4"
MAN = "single_face.mp4"
MAN_OFFSET = 100000


def make_aligned_faces(video: Path, out_dir: Path, count: int = FACES_PER_SIDE, size: int = ALIGNED_SIZE) -> list[Path]:
    """Write up to `count` aligned faces from frames spread evenly over `video`; returns the files."""
    import av
    import dlib

    from facedouble.faces import align, container

    out_dir.mkdir(parents=True, exist_ok=True)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path()))
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


def build_faces(cache: Path, media: Path) -> dict[str, Path]:
    """{'src': folder, 'dst': folder} of the training faces under `cache`, made unless already there."""
    out = {}
    for side, video in (("src", WOMAN), ("dst", MAN)):
        folder = cache / side
        if not folder.is_dir() or len(list(folder.glob("*.jpg"))) < FACES_PER_SIDE // 2:
            made = make_aligned_faces(media / video, folder)
            assert len(made) >= FACES_PER_SIDE // 2, f"dlib found too few faces in {video}"
        out[side] = folder
    return out


def make_sort_faces(media: Path, dest: Path, woman_every: int = 16, man_every: int = 9) -> dict[str, list[str]]:
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


def copy_faces(src: Path, dest: Path, names) -> None:
    """Copy the faces `names` of folder `src` into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy2(src / n, dest / n)
