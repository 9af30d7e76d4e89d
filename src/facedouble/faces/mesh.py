"""The MediaPipe networks that ship inside its wheel, run on faces and frames: the 478-point face mesh (on an
aligned crop) and the 21-point hand tracker (on frames in order). The masks drawn from their points are
faces/regions.py's."""

from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def _face_oval_order() -> list[int]:
    from mediapipe.python.solutions import face_mesh_connections as conn

    edges = {a: b for a, b in conn.FACEMESH_FACE_OVAL}
    start = 10  # forehead top
    order = [start]
    while True:
        nxt = edges[order[-1]]
        if nxt == start:
            return order
        order.append(nxt)


FACE_OVAL: list[int] | None = None


def face_oval_indices() -> list[int]:
    """The 36 mesh indices of the face oval, in order around the face."""
    global FACE_OVAL
    if FACE_OVAL is None:
        FACE_OVAL = _face_oval_order()
    return FACE_OVAL


def face_mesh(image: np.ndarray, *, work_size: int = 256) -> np.ndarray | None:
    """478 face-mesh landmarks of the (largest) face in an image, or None when the mesh finds no face.

    Args:
        image: (H, W, 3) RGB uint8 or float32 [0, 1]; typically an aligned face crop.
        work_size: the image is resized to this square side before the mesh runs (MediaPipe works at 192).

    Returns:
        (478, 2) float32 pixel coordinates in `image`, or None.
    """
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    small = cv2.resize(img, (work_size, work_size), interpolation=cv2.INTER_AREA if max(h, w) > work_size else cv2.INTER_LINEAR)
    mesh = getattr(_local, "mesh", None)
    if mesh is None:
        import mediapipe as mp

        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                               min_detection_confidence=0.3)
        _local.mesh = mesh
    result = mesh.process(np.ascontiguousarray(small))
    if not result.multi_face_landmarks:
        return None
    lm = result.multi_face_landmarks[0].landmark
    pts = np.array([[p.x * w, p.y * h] for p in lm], np.float32)
    return pts


class HandTracker:
    """21-point hands (MediaPipe Hands, bundled model) in frames, to keep hands out of the face mask.

    With `video=True` frames must come in order: hands found once are tracked from frame to frame, which
    finds a hand held against the face far more often than detection on single frames (on the sample clip
    with a hand over the mouth: 172 of ~170 hand frames tracked, 9 of 34 sampled frames detected singly).
    Not thread-safe: use one tracker per thread."""

    def __init__(self, video: bool = True, max_side: int = 640) -> None:
        import mediapipe as mp

        self.max_side = max_side
        self._hands = mp.solutions.hands.Hands(static_image_mode=not video, max_num_hands=2, model_complexity=1,
                                               min_detection_confidence=0.3, min_tracking_confidence=0.3)

    def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
        """(21, 2) float32 frame-pixel landmarks of each hand in an RGB uint8 frame."""
        import cv2

        h, w = frame.shape[:2]
        k = min(1.0, self.max_side / max(h, w))
        img = frame if k == 1.0 else cv2.resize(frame, (int(round(w * k)), int(round(h * k))), interpolation=cv2.INTER_AREA)
        result = self._hands.process(np.ascontiguousarray(img))
        out = []
        for hand in result.multi_hand_landmarks or []:
            out.append(np.array([[p.x * w, p.y * h] for p in hand.landmark], np.float32))
        return out

    def close(self) -> None:
        self._hands.close()
