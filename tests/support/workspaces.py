"""Small real workspaces: dst frames with their aligned faces (the merge tests), a workspace of cached training
faces, one made with the real extraction stage (the web UI tests), and a real marked result.mp4."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from support.faces import landmarks
from support.media import decode_picks

N_FRAMES = 12
NO_FACE_RECORD = 4     # frame 4 keeps its face but has no aligned record: it must be copied unchanged
REAL_NO_FACE = 12      # frame 12 is a frame of no_face.mp4 (animated sky, no person)


def write_dst_workspace(ws, frames: list[np.ndarray], *, face_type: str = "whole-face", size: int = 256,
                        drop_faces: tuple[int, ...] = (), suffix: str = ".png") -> dict[str, list[np.ndarray]]:
    """Write frames as data_dst/000001.png... and their aligned faces (with records) as data_dst/aligned.

    Faces of the frame numbers in `drop_faces` are not written (those frames then have no face).
    Returns {frame name: [landmarks of each face]}."""
    import cv2

    from facedouble.faces import align, container

    ws.create()
    found: dict[str, list[np.ndarray]] = {}
    for i, img in enumerate(frames, start=1):
        name = f"{i:06d}{suffix}"
        ok, buf = cv2.imencode(suffix, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        (ws.frames("dst") / name).write_bytes(buf.tobytes())
        if i in drop_faces:
            continue
        faces = landmarks(img)
        found[name] = [lm for lm, _ in faces]
        for k, (lm, box) in enumerate(faces):
            m = align.face_matrix(lm, face_type, size)
            face = align.warp_to_face(img, m, size)
            rec = container.FaceRecord(face_type=face_type, size=size, landmarks=align.transform_points(lm, m),
                                       source_landmarks=lm, matrix=m, source_filename=name, source_rect=box,
                                       source_size=(img.shape[1], img.shape[0]), face_index=k, detector="dlib",
                                       landmarker="dlib68")
            container.write_face(ws.aligned("dst") / f"{i:06d}_{k}.jpg", face, rec)
    return found


def copy_workspace(src_ws, dst_root: Path):
    """A copy of workspace `src_ws` at `dst_root`."""
    from facedouble.workspace import Workspace

    shutil.copytree(src_ws.root, dst_root)
    return Workspace(dst_root)


def make_workspace(root: Path, faces: dict[str, Path]):
    """A workspace whose data_src/aligned and data_dst/aligned hold copies of the cached faces (`train_faces`)."""
    from facedouble.workspace import Workspace

    ws = Workspace(root).create()
    for side in ("src", "dst"):
        for f in sorted(faces[side].iterdir()):
            shutil.copy2(f, ws.aligned(side) / f.name)
    return ws


def make_extracted_workspace(root: Path, media: Path):
    """data_src and data_dst frames (4 with the man's face; dst has a 5th frame with no face), extracted
    with the real extraction stage (dlib, 128 px faces, debug images, manual_fix.json)."""
    import cv2

    from facedouble.config import ExtractConfig
    from facedouble.extract import extract
    from facedouble.workspace import Workspace

    ws = Workspace(root).create()
    faces = decode_picks(media / "single_face.mp4", [0, 20, 40, 60])
    empty = decode_picks(media / "no_face.mp4", [30])
    for side, frames in (("src", faces), ("dst", faces + empty)):
        for i, img in enumerate(frames, start=1):
            cv2.imwrite(str(ws.frames(side) / f"{i:06d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cfg = ExtractConfig(detector="dlib", size=128, debug=True, workers=1, manual_fix=True, device="cpu")
    extract(ws, "src", cfg)
    extract(ws, "dst", cfg)
    return ws


def add_result(ws, media: Path) -> str:
    """A real result.mp4: the dst frames marked with the provenance watermark as merged frames, built with the
    build stage (container tag, C2PA) over single_face.mp4 as data_dst.mp4. Returns the run id."""
    import cv2

    from facedouble.config import VideoBuildConfig
    from facedouble.imagefile import read_rgb as read_image
    from facedouble.merge.marking import mark_output, new_run_id
    from facedouble.video.build import build_video

    run_id = new_run_id()
    for p in ws.frame_files("dst"):
        marked = mark_output(read_image(p), run_id)
        cv2.imwrite(str(ws.merged / p.name), cv2.cvtColor(marked, cv2.COLOR_RGB2BGR))
    shutil.copy(media / "single_face.mp4", ws.root / "data_dst.mp4")
    build_video(ws, VideoBuildConfig(), run_id=run_id)
    return run_id
