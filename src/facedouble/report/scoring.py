"""Measuring faces for the report with the face models: detection (faces/find.py), dlib's 68 landmarks
(faces/landmarks.py) and dlib's 128-d identity embedding (faces/identity.py).

Two uses:
  * the report stage scores sampled frames of a result against dst (`score_sample`, `SrcFaces`);
  * training scores its dst->src previews for identity (`identity_score`, `centroid_from_records`), so
    the loss log can say whether the swap starts to look like src.

Cost on one loaded CPU core (2 shared cores): detection + verification ~200 ms per frame, 68 landmarks
~10 ms, one embedding ~100-250 ms. Landmarks of every face are re-fitted once more (`Landmarker.refine`)
with the same procedure on dst and result, so both sides are measured alike.
"""

from __future__ import annotations

import dataclasses
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MetadataError
from ..faces import align
from ..faces.identity import SAME_PERSON, face_distance
from . import metrics as M

SRC_CROP = 256           # side of the aligned "full" src face crops kept for the detail comparison
THUMB_HEIGHT = 220       # height of the worst-frame pictures in the page
HULL_FOREHEAD = 0.25     # hull of dst's landmarks lifted above the brows like a whole-face merge
HULL_MARGIN = 0.10       # the hull is grown by this x the face size before "outside the face" starts
MASK_MARGIN = 0.02       # ... and a merged_mask (which already holds the soft edge) by this
RING_WIDTH = 0.03        # width of the seam rings, x the face size (at least 2 px)
SWAP_LEVEL = 3.0         # without merged_mask: the face counts as swapped when its mean change exceeds this and
SWAP_FACTOR = 3.0        # ... this many times the background's (a mark or re-encoding changes both alike)


# -- the models --------------------------------------------------------------------------------------------------

class FaceModels:
    """The detector (built on first use), the 68-point landmarker and the identity encoder, shared by a run."""

    def __init__(self, detector: str = "auto", device: str = "auto") -> None:
        from ..faces.identity import default_encoder
        from ..faces.landmarks import default_landmarker

        self.detector, self.device = detector, device
        self.landmarker = default_landmarker()
        self.encoder = default_encoder()
        self._finder = None
        self._lock = threading.Lock()

    @property
    def finder(self):
        with self._lock:
            if self._finder is None:
                from ..device import parse_device
                from ..faces.find import FaceFinder

                dev = self.device
                if dev == "auto":
                    dev = str(parse_device("auto"))
                self._finder = FaceFinder(self.detector, device=dev)
            return self._finder

    def find(self, frame: np.ndarray) -> list:
        """FoundFace list (faces/find.py), largest first."""
        return self.finder.find(frame)

    def refine(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.landmarker.refine(np.ascontiguousarray(frame), landmarks)

    def fit_in_box(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 landmarks of the face in a HOG-like box (two passes)."""
        return self.landmarker(np.ascontiguousarray(frame), np.asarray(box, np.float32), "dlib")

    def embed(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.encoder(np.ascontiguousarray(frame), landmarks)


@lru_cache(maxsize=4)
def face_models(detector: str = "auto", device: str = "auto") -> FaceModels:
    """One FaceModels per detector and device per process (the detector takes seconds to build)."""
    return FaceModels(detector, device)


def face_size(landmarks: np.ndarray) -> float:
    """Side of the "full" aligned square of a face in pixels (brows to chin)."""
    return 1.0 / align.matrix_scale(align.face_matrix(landmarks, "full", 1))


def full_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The face cut out upright at the "full" face type, `size` pixels, and its landmarks in the crop."""
    m = align.face_matrix(landmarks, "full", size)
    return align.warp_to_face(image, m, size), align.transform_points(landmarks, m)


def crop_detail(crop: np.ndarray, landmarks: np.ndarray) -> float:
    """Laplacian variance in the inner-face box of an aligned crop."""
    return M.laplacian_variance(crop, M.face_box(landmarks, crop.shape))


# -- identity of training previews: faces/likeness.py (the trainer uses it too) --------------------------------

from ..faces.likeness import (_face_files, _spread, _template_box, aligned_face_landmarks,  # noqa: E402,F401
                              centroid_from_records, identity_score, record_embeddings)


# -- src faces -------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SrcFaces:
    """What the report needs of src: identity embeddings and upright face crops (for the detail ratio)."""

    embeddings: list[np.ndarray]
    crops: list[tuple[np.ndarray, np.ndarray]]      # (full crop SRC_CROP px, its landmarks)
    origin: str
    faces_seen: int = 0
    _detail: dict = dataclasses.field(default_factory=dict)

    @property
    def centroid(self) -> np.ndarray:
        return M.robust_centroid(self.embeddings)

    def detail_at(self, size: int) -> float:
        """Median Laplacian variance of the src crops scaled to `size` pixels (nan without crops)."""
        import cv2

        if size not in self._detail:
            vals = []
            for crop, lm in self.crops:
                k = size / crop.shape[0]
                small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
                vals.append(crop_detail(small, lm * k))
            v = np.asarray([x for x in vals if np.isfinite(x)])
            self._detail[size] = float(np.median(v)) if len(v) else float("nan")
        return self._detail[size]


def src_from_records(folder: Path, limit: int, check=lambda: None) -> SrcFaces:
    """src from aligned faces: every stored embedding, and crops of up to `limit` faces."""
    from ..faces.container import read_face

    emb, recorded = record_embeddings(folder, compute_limit=limit)
    crops = []
    for p in _spread(_face_files(folder), limit):
        check()
        try:
            image, rec = read_face(p)
        except (MetadataError, OSError):
            continue
        crops.append(full_crop(image, rec.landmarks, SRC_CROP))
    return SrcFaces(emb, crops, f"{folder} ({recorded} aligned faces)", recorded)


def src_from_frames(sources: Sequence, models: FaceModels, limit: int, check=lambda: None) -> SrcFaces:
    """src from videos, images or frame folders: the largest face of up to `limit` frames spread over them."""
    total = sum(s.count for s in sources)
    if total == 0:
        return SrcFaces([], [], "no frames")
    picks = _spread([(k, i) for k, s in enumerate(sources) for i in range(s.count)], limit)
    emb, crops = [], []
    for k, source in enumerate(sources):
        wanted = [i for kk, i in picks if kk == k]
        for _, frame in source.read(wanted):
            check()
            faces = models.find(frame)
            if not faces:
                continue
            lm = models.refine(frame, faces[0].landmarks)
            emb.append(models.embed(frame, lm))
            crops.append(full_crop(frame, lm, SRC_CROP))
    names = ", ".join(str(s.path) for s in sources)
    return SrcFaces(emb, crops, f"{names} ({len(emb)} faces in {len(picks)} sampled frames)", len(emb))


# -- one sampled frame -----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Sample:
    """The input of `score_sample`: a dst frame, the result frame that replaces it, and up to two frames
    after each (for flicker and jitter)."""

    number: int
    dst: list[np.ndarray]                         # frames t, t+1, t+2 (consecutive; 1 to 3 of them)
    result: list[np.ndarray]                      # same length, same size as dst
    merged_mask: np.ndarray | None = None         # (H, W) uint8 of frame t, when the merge wrote one
    dst_landmarks: np.ndarray | None = None       # (68, 2) from data_dst/aligned (skips detection)
    known_dst: bool = False                       # dst_landmarks given: no landmarks means no dst face
    embed_dst: bool = False                       # compute the dst embedding (for the dst centroid)
    marked_dst: list[np.ndarray] | None = None    # dst frames t, t+1, t+2 with the result's provenance mark, when known


@dataclasses.dataclass
class SampleOutput:
    score: M.FrameScore
    result_embedding: np.ndarray | None
    dst_embedding: np.ndarray | None
    thumbs: dict                                   # name -> JPEG bytes: dst, result, mask


def _nearest(faces: list, centre: np.ndarray | None):
    if not faces:
        return None
    if centre is None:
        return faces[0]
    return min(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(0) - centre)))


def _track(models: FaceModels, frames: list[np.ndarray], lm: np.ndarray) -> list[np.ndarray]:
    """Landmarks through consecutive frames, each fitted from the previous frame's."""
    out = [lm]
    for frame in frames[1:]:
        out.append(models.refine(frame, out[-1]))
    return out


def score_sample(models: FaceModels, s: Sample, *, src: SrcFaces | None = None) -> SampleOutput:
    """Measure one sampled frame (everything of metrics.FrameScore except the identity distances, which
    need the centroids: the embeddings are returned instead)."""
    from ..faces.landmarks import box_from_landmarks
    from ..faces.regions import hull_mask

    dst, res = s.dst[0], s.result[0]
    h, w = dst.shape[:2]
    score = M.FrameScore(number=s.number)

    # dst face
    lm_d = None
    if s.known_dst:
        if s.dst_landmarks is not None:
            lm_d = models.refine(dst, s.dst_landmarks)
    else:
        faces = models.find(dst)
        if faces:
            lm_d = models.refine(dst, faces[0].landmarks)
    score.dst_face = lm_d is not None
    size = face_size(lm_d) if lm_d is not None else None
    score.face_size = size

    # the face mask and what lies outside it
    face_mask = None
    if s.merged_mask is not None:
        face_mask = s.merged_mask.astype(np.float32) / 255.0
        score.mask_source = "merged_mask"
        margin = max(2.0, MASK_MARGIN * (size or 0.0))
    elif lm_d is not None:
        face_mask = hull_mask(lm_d, (h, w), forehead=HULL_FOREHEAD)
        score.mask_source = "hull"
        margin = HULL_MARGIN * size
    if face_mask is not None and (face_mask >= 0.5).any():
        bg = M.background_mask(face_mask, margin)
    else:
        bg = np.ones((h, w), bool)
        face_mask = None
    sse, n = M.squared_error(res, dst, bg)
    score.background_sse, score.background_n = sse, n
    score.background_psnr = min(M.PSNR_CAP, M.psnr_from_mse(sse / n)) if n else None
    score.background_changed = M.changed_share(res, dst, bg) if n else None
    if n and s.marked_dst is not None:
        sse_m, _ = M.squared_error(res, s.marked_dst[0], bg)
        score.background_merge_sse = sse_m
        score.background_merge_psnr = min(M.PSNR_CAP, M.psnr_from_mse(sse_m / n))

    if s.merged_mask is not None:
        score.swapped = bool(np.count_nonzero(s.merged_mask >= 128) >= 16)
    elif face_mask is not None:
        inside = M.mean_abs_difference(res, dst, face_mask)
        outside = M.mean_abs_difference(res, dst, bg) if n else 0.0
        score.swapped = bool(inside > max(SWAP_LEVEL, SWAP_FACTOR * (outside if np.isfinite(outside) else 0.0)))

    # the result's face: the detected face nearest dst's, else landmarks fitted where dst's face is
    lm_r = None
    found = models.find(res)
    face = _nearest(found, None if lm_d is None else lm_d.mean(0))
    if face is not None:
        lm_r = models.refine(res, face.landmarks)
        score.result_face = "detected"
    elif lm_d is not None:
        lm_r = models.refine(res, models.fit_in_box(res, box_from_landmarks(lm_d)))
        score.result_face = "fitted"
    result_embedding = models.embed(res, lm_r) if lm_r is not None else None
    dst_embedding = models.embed(dst, lm_d) if (lm_d is not None and s.embed_dst) else None

    if lm_d is not None and lm_r is not None:
        score.landmark_error = M.landmark_error(lm_r, lm_d)
        score.yaw_diff, score.pitch_diff = M.pose_difference(lm_r, lm_d, (w, h))
        score.eyes_result, score.eyes_dst = M.eye_opening(lm_r), M.eye_opening(lm_d)
        box = M.face_box(lm_d, dst.shape)
        score.detail_result = M.laplacian_variance(res, box)
        score.detail_dst = M.laplacian_variance(dst, box)
        if src is not None and src.crops:
            side = int(np.clip(round(face_size(lm_r)), 48, SRC_CROP))
            crop, clm = full_crop(res, lm_r, side)
            score.detail_src = M.ratio(crop_detail(crop, clm), src.detail_at(side))

    if face_mask is not None and lm_d is not None:
        width = max(2.0, RING_WIDTH * size)
        score.seam_result = M.ring_delta_e(res, face_mask, width)
        score.seam_dst = M.ring_delta_e(dst, face_mask, width)
        if len(s.dst) >= 2:
            fr, wr = M.clip_flicker(s.result, face_mask)
            fd, _ = M.clip_flicker(s.dst, face_mask)
            # against dst with the same mark (as the background): the mark moves with the picture and is on every
            # output, a perfect swap included
            marked = s.marked_dst is not None and len(s.marked_dst) == len(s.dst)
            fm = M.clip_flicker(s.marked_dst, face_mask)[0] if marked else fd
            score.flicker_result, score.flicker_dst, score.flicker_dst_unmarked, score.flicker_weight = fr, fm, fd, wr
        if len(s.dst) >= 3 and lm_r is not None:
            score.jitter_dst = M.landmark_jitter(_track(models, s.dst, lm_d))
            score.jitter_result = M.landmark_jitter(_track(models, s.result, lm_r))

    thumbs = thumbnails(dst, res, face_mask, bg, lm_d, lm_r)
    return SampleOutput(score, result_embedding, dst_embedding, thumbs)


def thumbnails(dst: np.ndarray, res: np.ndarray, face_mask: np.ndarray | None, bg: np.ndarray,
               lm_d: np.ndarray | None, lm_r: np.ndarray | None) -> dict[str, bytes]:
    """JPEG pictures of the face region: dst, result, and the mask (white: face mask; grey: the margin left
    out of the background; green dots: dst's landmarks; red: the result's)."""
    import cv2

    h, w = dst.shape[:2]
    if lm_d is not None or lm_r is not None:
        pts = np.concatenate([p for p in (lm_d, lm_r) if p is not None])
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.6
        x0, x1 = int(max(0, cx - side / 2)), int(min(w, cx + side / 2))
        y0, y1 = int(max(0, cy - side / 2)), int(min(h, cy + side / 2))
    else:
        x0, y0, x1, y1 = 0, 0, w, h
    if x1 - x0 < 8 or y1 - y0 < 8:
        x0, y0, x1, y1 = 0, 0, w, h
    vis = np.where(bg, 0, 110).astype(np.uint8)
    if face_mask is not None:
        vis = np.maximum(vis, (np.clip(face_mask, 0, 1) * 255).astype(np.uint8))
    vis = cv2.cvtColor(vis, cv2.COLOR_GRAY2RGB)
    k = THUMB_HEIGHT / (y1 - y0)
    size = (max(1, round((x1 - x0) * k)), THUMB_HEIGHT)
    out = {}
    for name, img in (("dst", dst), ("result", res), ("mask", vis)):
        crop = cv2.resize(np.ascontiguousarray(img[y0:y1, x0:x1]), size, interpolation=cv2.INTER_AREA)
        if name == "mask":
            for lm, colour in ((lm_d, (0, 200, 0)), (lm_r, (230, 0, 0))):
                if lm is None:
                    continue
                for x, y in (lm - [x0, y0]) * k:
                    cv2.circle(crop, (int(round(x)), int(round(y))), 2, colour, -1, lineType=cv2.LINE_AA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        out[name] = buf.tobytes() if ok else b""
    return out


def distances(embedding: np.ndarray | None, src_centroid: np.ndarray, dst_centroid: np.ndarray | None
              ) -> tuple[float | None, float | None]:
    """(distance to src, distance to dst) of one embedding; None where missing."""
    if embedding is None:
        return None, None
    d_dst = face_distance(embedding, dst_centroid) if dst_centroid is not None else None
    return face_distance(embedding, src_centroid), d_dst


__all__ = ["FaceModels", "face_models", "identity_score", "centroid_from_records", "record_embeddings", "SrcFaces",
           "src_from_records", "src_from_frames", "Sample", "SampleOutput", "score_sample", "SAME_PERSON"]
