"""Training samples: the aligned faces of each side decoded once into memory at the model's face type and
resolution (plus a margin for augmentation), and batches made from them.

A batch is a pure function of (seed, iteration): the order of faces (a fresh shuffle every pass over a side)
and every random choice of the augmentation come from generators seeded with both. So a resumed training
sees exactly the batches an uninterrupted one would, and background workers may make batches ahead in any
order. Batches hold uint8 NHWC arrays (images), float32 NHW (masks); the trainer turns them into tensors.
"""

from __future__ import annotations

import collections
import concurrent.futures as futures
import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import NoFaceError
from ..faces.align import face_matrix, transform_points, warp_to_face
from ..faces.container import MetadataError, read_face, xseg_mask_array
from ..merge.color import color_transfer
from ..faces.record import hands_of
from ..faces.regions import eyes_mouth_mask, hand_mask, hull_mask, label_mask, remap_mask
from .warp import AugmentRanges, augment, centre_affine, crop_margin, warp_sample

# Face types from the narrowest to the widest cut, to warn when faces are re-cut wider than they were saved.
FACE_TYPE_ORDER = ("half", "mid-full", "full", "whole-face", "head")
SIDE_ID = {"src": 1, "dst": 2}


# -- pure helpers ---------------------------------------------------------------------------------

def estimate_yaw(landmarks68: np.ndarray) -> float:
    """Head yaw in degrees from 68 landmarks (positive: the face turns towards the image's right), from where
    the nose tip sits between the two jaw ends. Good enough to rank faces by pose."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    left, right = np.linalg.norm(lm[30] - lm[0]), np.linalg.norm(lm[30] - lm[16])
    ratio = (left - right) / max(left + right, 1e-6)
    return float(np.degrees(np.arcsin(np.clip(ratio * 1.6, -1.0, 1.0))))


def face_mask(landmarks: np.ndarray, size: int, face_type: str, polys: Iterable[np.ndarray] = ()) -> np.ndarray:
    """Training target mask (float32 HW in [0, 1]): the face's own mask polygons when it has them, else the
    landmark hull (raised over the forehead for whole-face and head cuts)."""
    import cv2

    polys = [np.asarray(p, np.float64) for p in polys if len(p) >= 3]
    if polys:
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [np.round(p * 16).astype(np.int32) for p in polys], 255, lineType=cv2.LINE_AA, shift=4)
        return mask.astype(np.float32) / 255.0
    forehead = 0.35 if face_type in ("whole-face", "head") else 0.0
    return hull_mask(landmarks, (size, size), forehead=forehead)


def blur_out(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The original tool's blur-out-mask: the (R, R, 3) uint8 image blurred outside its (R, R) float32 mask
    (grown by 1/16 of the side, soft edge), so the background near the face carries no detail to learn."""
    import cv2

    res = image.shape[0]
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (res // 8 + 1, res // 8 + 1)))
    keep = cv2.GaussianBlur(grown, (0, 0), max(1.0, res / 32))[..., None]
    blurred = cv2.GaussianBlur(image, (0, 0), max(1.0, res / 16)).astype(np.float32)
    return np.clip(image * keep + blurred * (1.0 - keep) + 0.5, 0, 255).astype(np.uint8)


def random_hsv_shift(image: np.ndarray, rng: np.random.Generator, power: float) -> np.ndarray:
    """Colour augmentation of an RGB uint8 image: hue turned by up to `power` of a full turn, saturation
    shifted by up to +-`power` and value by up to +-`power`/2 (0..1 scales), all drawn uniformly from `rng`.
    power 0 returns the image unchanged."""
    import cv2

    if power <= 0:
        return image
    h, s, v = rng.uniform(-1.0, 1.0, 3) * np.array([power, power, power / 2])
    hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)  # H in degrees, S and V in 0..1
    hsv[..., 0] = (hsv[..., 0] + h * 360.0) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] + s, 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + v, 0.0, 1.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0 + 0.5, 0, 255).astype(np.uint8)




# -- decoded face sets ------------------------------------------------------------------------------

@dataclasses.dataclass
class FaceSet:
    """The faces of one side, re-cut for the model: crops of side resolution + 2 x margin, face centred."""

    names: list[str]
    crops: np.ndarray            # (N, C, C, 3) uint8
    landmarks: np.ndarray        # (N, 68, 2) float32, crop pixels
    polys: list[list[np.ndarray]]  # mask polygons per face, crop pixels (often empty)
    yaws: np.ndarray             # (N,) degrees
    resolution: int
    margin: int
    face_type: str
    xmasks: list | None = None   # per face: (C, C) uint8 target mask from its XSeg labels or applied XSeg mask, or None
    hand_faces: np.ndarray | None = None  # (N,) bool: faces whose xmask is the hull less the hands tracked over
    #                                        them (mask_hands); None when there are none

    def __len__(self) -> int:
        return len(self.names)

    @property
    def hands_left_out(self) -> int:
        """How many faces' training mask leaves out a hand tracked over them."""
        return 0 if self.hand_faces is None else int(self.hand_faces.sum())

    @property
    def nbytes(self) -> int:
        return int(self.crops.nbytes)


def _recut(path: Path, face_type: str, resolution: int, margin: int, mask_hands: bool = False):
    image, record = read_face(path)
    m = face_matrix(record.landmarks, face_type, resolution)  # aligned-image px -> model face px
    m[:, 2] += margin
    side = resolution + 2 * margin
    crop = warp_to_face(image, m, side)
    lm = transform_points(record.landmarks, m)
    polys = [transform_points(np.asarray(p, np.float32).reshape(-1, 2), m) for p in record.mask_polys if len(p) >= 3]
    yaw = record.extra.get("yaw")
    yaw = float(yaw) if isinstance(yaw, (int, float)) and np.isfinite(yaw) else estimate_yaw(record.landmarks)
    target = _xseg_target(record, m, side)  # XSeg labels or an applied XSeg mask win over the tracked hands
    hands = target is None and mask_hands
    if hands:
        target = _hands_target(record, lm, m, side, face_type)
    return crop, lm, polys, yaw, record, target, hands and target is not None


def _xseg_target(record, m: np.ndarray, side: int) -> np.ndarray | None:
    """The face's XSeg target mask in crop pixels (uint8): its labels (include minus exclude) when it has
    any, else the mask `facedouble xseg apply` stored, else None (the landmark hull is used)."""
    size = max(int(record.size), 1)
    if any(len(p) >= 3 for p in record.mask_polys) or any(len(p) >= 3 for p in record.exclude_polys):
        full = label_mask(record.mask_polys, record.exclude_polys, size)
        return (remap_mask(full, np.eye(2, 3), m, side) * 255 + 0.5).astype(np.uint8)
    try:
        applied = xseg_mask_array(record)
    except MetadataError:
        applied = None
    if applied is None:
        return None
    k = applied.shape[1] / float(size)
    return (remap_mask(applied, np.eye(2, 3) * k, m, side) * 255 + 0.5).astype(np.uint8)


def _hands_target(record, lm: np.ndarray, m: np.ndarray, side: int, face_type: str) -> np.ndarray | None:
    """The landmark-hull training mask less the hands tracked over the face at extraction (extract/hands.py),
    (C, C) uint8 in crop pixels; None when no hand covers the face. `m` maps aligned-image px to crop px."""
    hands = hands_of(record)
    if not hands:
        return None
    to_crop = np.asarray(m, np.float64) @ np.vstack([np.asarray(record.matrix, np.float64), [0.0, 0.0, 1.0]])
    mask = face_mask(lm, side, face_type) * (1.0 - hand_mask(hands, to_crop, side))
    return (mask * 255 + 0.5).astype(np.uint8)


def load_faceset(files: list[Path], side: str, face_type: str, resolution: int, *, scale_mod: float = 0.0,
                 mask_hands: bool = False,
                 workers: int = 2, progress: Callable[[Iterable], Iterable] | None = None,
                 warn: Callable[[str], None] | None = None) -> FaceSet:
    """Decode every aligned face once and re-cut it to the model's face type and resolution, with a margin.
    With `mask_hands`, the hands tracked over a face at extraction are left out of its training mask (unless
    it has XSeg labels or an applied XSeg mask, which win)."""
    if not files:
        raise NoFaceError(f"No aligned {side} faces to train on; run `facedouble extract` for data_{side} first.")
    margin = crop_margin(resolution, scale_mod)
    n = len(files)
    side_px = resolution + 2 * margin
    crops = np.empty((n, side_px, side_px, 3), np.uint8)
    landmarks = np.empty((n, 68, 2), np.float32)
    polys: list[list[np.ndarray]] = [[] for _ in range(n)]
    xmasks: list = [None] * n
    yaws = np.empty(n, np.float32)
    wider = small = 0
    hand_faces = np.zeros(n, bool)
    with futures.ThreadPoolExecutor(max(1, workers)) as pool:  # JPEG decoding and warping release the GIL
        results = pool.map(lambda p: _recut(p, face_type, resolution, margin, mask_hands), files)
        for i, res in enumerate(progress(results) if progress else results):
            crops[i], landmarks[i], polys[i], yaws[i], record, xmasks[i], hand_faces[i] = res
            if record.face_type in FACE_TYPE_ORDER and FACE_TYPE_ORDER.index(record.face_type) < FACE_TYPE_ORDER.index(face_type):
                wider += 1
            if record.size < resolution:
                small += 1
    if warn and wider:
        warn(f"{wider} {side} face(s) were extracted with a narrower face type than the model's {face_type}; "
             f"their borders are filled by repetition. Extract with --face-type whole-face or wider.")
    if warn and small:
        warn(f"{small} {side} face(s) are smaller than the model's {resolution} px and are upscaled; "
             f"extract with a larger --size.")
    return FaceSet([p.name for p in files], crops, landmarks, polys, yaws, resolution, margin, face_type,
                   xmasks if any(x is not None for x in xmasks) else None, hand_faces if hand_faces.any() else None)


# -- batches ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SampleOptions:
    random_warp: bool = True
    warp_from: int = 0                    # the first iteration with random warp (before it: none)
    random_flip: bool = True
    src_scale_mod: float = 0.0            # fraction, -0.3 .. 0.3
    uniform_yaw: bool = False
    color_transfer: str = "none"          # a merge colour transfer name (choices.ColorTransfer)
    random_hsv_power: float = 0.0         # 0 .. 0.3: random hue/saturation/value shift of src faces
    eyes_mouth: bool = False              # also make eyes/mouth masks (within the training mask)
    blur_out_mask: bool = False           # blur input and target outside the (XSeg) mask


class BatchMaker:
    """Makes batch `iteration` of size `batch_size` from two face sets; pure in (seed, iteration)."""

    def __init__(self, src: FaceSet, dst: FaceSet, batch_size: int, seed: int, options: SampleOptions,
                 rank: int = 0):
        self.src, self.dst, self.batch_size, self.seed, self.opts = src, dst, batch_size, seed, options
        self.rank = rank
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}
        self._yaw_order = np.argsort(src.yaws, kind="stable")

    def _color_transfer(self, src_i: int, dst_i: int) -> np.ndarray:
        """src crop `src_i` with the colours of dst crop `dst_i`, by the merge's colour transfer of the same
        name (merge/color.py works on float RGB in [0, 1]: converted here, and back to uint8)."""
        out = color_transfer(self.opts.color_transfer, self.src.crops[src_i].astype(np.float32) / 255.0,
                             self.dst.crops[dst_i].astype(np.float32) / 255.0)
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def _order(self, side: str, n: int, iteration: int) -> np.ndarray:
        """Indices of the batch: the next `batch_size` faces of a fresh permutation every pass over the side."""
        start = iteration * self.batch_size
        out = np.empty(self.batch_size, np.int64)
        for j in range(self.batch_size):
            k = start + j
            epoch, pos = divmod(k, n)
            key = (SIDE_ID[side], epoch)
            perm = self._perm_cache.get(key)
            if perm is None:
                if len(self._perm_cache) > 8:
                    self._perm_cache.clear()
                perm = np.random.default_rng([self.seed, self.rank, SIDE_ID[side], epoch]).permutation(n)
                self._perm_cache[key] = perm
            out[j] = perm[pos]
        return out

    def _yaw_matched(self, want: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each wanted yaw, a src face of about that yaw: a random one among the ~n/16 src faces nearest
        in yaw, so src is fed in the pose order dst asks for, not as it happens to be distributed."""
        ys = self.src.yaws[self._yaw_order]
        k = max(1, len(ys) // 16)
        out = np.empty(len(want), np.int64)
        for j, yaw in enumerate(want):
            centre = int(np.searchsorted(ys, yaw))
            lo = int(np.clip(centre - k // 2, 0, max(0, len(ys) - k)))
            out[j] = self._yaw_order[lo + rng.integers(0, min(k, len(ys) - lo))]
        return out

    def make(self, iteration: int) -> dict[str, np.ndarray]:
        res, opts = self.src.resolution, self.opts
        rng = np.random.default_rng([self.seed, self.rank, 99, iteration])
        dst_idx = self._order("dst", len(self.dst), iteration)
        src_flip: list[bool | None] = [None] * self.batch_size
        if opts.uniform_yaw:
            # A flip mirrors the yaw, so the flip is chosen first and the src face is matched to the yaw
            # it must have before flipping: -yaw for a flipped sample.
            flips = (rng.random(self.batch_size) < 0.5) if opts.random_flip else np.zeros(self.batch_size, bool)
            src_flip = [bool(f) for f in flips]
            src_idx = self._yaw_matched(np.where(flips, -1.0, 1.0) * self.dst.yaws[dst_idx], rng)
        else:
            src_idx = self._order("src", len(self.src), iteration)
        ranges = AugmentRanges(warp=opts.random_warp and iteration >= opts.warp_from, flip=opts.random_flip)
        no_flip: list[bool | None] = [None] * self.batch_size
        batch: dict[str, np.ndarray] = {}
        for side, fs, idx, flip in (("src", self.src, src_idx, src_flip), ("dst", self.dst, dst_idx, no_flip)):
            n = len(idx)
            inp = np.empty((n, res, res, 3), np.uint8)
            tgt = np.empty((n, res, res, 3), np.uint8)
            mask = np.empty((n, res, res), np.float32)
            em = np.empty((n, res, res), np.float32) if opts.eyes_mouth else None
            hole_free = np.empty_like(mask) if side == "src" and fs.hand_faces is not None else None
            for j, i in enumerate(idx):
                crop = fs.crops[i]
                if side == "src" and opts.color_transfer != "none":
                    crop = self._color_transfer(int(i), int(rng.integers(0, len(self.dst))))
                if side == "src" and opts.random_hsv_power > 0:
                    # its own stream: turning the option on leaves every other draw of the batch as it was
                    hsv_rng = np.random.default_rng([self.seed, self.rank, 98, iteration, j])
                    crop = random_hsv_shift(crop, hsv_rng, opts.random_hsv_power)
                scale_mod = opts.src_scale_mod if side == "src" else 0.0
                inp[j], tgt[j], lm, m = augment(crop, fs.landmarks[i], rng, res, ranges, scale_mod, flip[j])
                if fs.xmasks is not None and fs.xmasks[i] is not None:
                    mask[j] = remap_mask(fs.xmasks[i].astype(np.float32) / 255.0, np.eye(2, 3), m, res)
                else:
                    polys = [transform_points(p, m) for p in fs.polys[i]]
                    mask[j] = face_mask(lm, res, fs.face_type, polys)
                if hole_free is not None:
                    hole_free[j] = self._src_mask_target(int(i), m, mask[j])
                if opts.blur_out_mask:
                    inp[j], tgt[j] = blur_out(inp[j], mask[j]), blur_out(tgt[j], mask[j])
                if em is not None:  # only where the face is learned: a hand or an XSeg-excluded object over the
                    em[j] = eyes_mouth_mask(lm, res) * mask[j]  # mouth is not asked for at 300x weight
            batch[f"{side}_in"], batch[f"{side}_target"], batch[f"{side}_mask"] = inp, tgt, mask
            if hole_free is not None:
                batch["src_mask_target"] = hole_free
            if em is not None:
                batch[f"{side}_em"] = em
        return batch

    def _src_mask_target(self, i: int, m: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """What the learned mask of src face `i` is taught (R, R) float32, given its crop-to-sample matrix `m` and
        the face loss's `mask`: that mask, but on a face with a hand tracked over it the landmark hull without
        the hand's hole, cut the same way. The hand stays out of the face loss (the model does not learn her
        hand as her face), but her hand is not where dst's frame holds one: taught as a hole, the swap's mask
        (decoded as src's) let dst's own mouth show through it in young models (docs/quality.md, session 29).
        dst's hands stay out of dst's mask target, which keeps them out of the merge's mask."""
        if not self.src.hand_faces[i]:
            return mask
        hull = face_mask(self.src.landmarks[i], self.src.crops.shape[1], self.src.face_type)
        return remap_mask(hull, np.eye(2, 3), m, self.src.resolution)


def preview_batch(src: FaceSet, dst: FaceSet, count: int) -> dict[str, np.ndarray]:
    """Un-augmented faces for the preview: `count` faces spread evenly over each side."""
    res = src.resolution
    out = {}
    for side, fs in (("src", src), ("dst", dst)):
        idx = np.linspace(0, len(fs) - 1, min(count, len(fs))).round().astype(int)
        m = centre_affine(fs.crops.shape[1], res)
        out[f"{side}_target"] = np.stack([warp_sample(fs.crops[i], m, res, None)[1] for i in idx])
    n = min(len(out["src_target"]), len(out["dst_target"]))
    return {k: v[:n] for k, v in out.items()}


class Prefetcher:
    """Makes batches ahead of the training loop.

    workers = 0: in the calling thread, when asked (nothing competes with the model's threads).
    workers = N > 0: N background threads keep up to N + 1 batches ready. OpenCV and numpy release the GIL
    for the heavy parts, so a thread overlaps augmentation with the model's own (GIL-free) kernels.
    processes = True: the same with worker processes (fork); measured slower on 2 cores (see benchmarks)."""

    def __init__(self, maker: BatchMaker, start: int, workers: int = 1, processes: bool = False):
        self.maker, self.next_iteration, self.workers = maker, start, workers
        self._pending: collections.deque = collections.deque()
        self._pool: futures.Executor | None = None
        if workers > 0:
            if processes:
                import multiprocessing as mp

                ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
                global _WORKER_MAKER
                _WORKER_MAKER = maker
                self._pool = futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
                self._submit = lambda i: self._pool.submit(_make_in_worker, i)  # type: ignore[union-attr]
            else:
                self._pool = futures.ThreadPoolExecutor(workers, thread_name_prefix="facedouble-samples")
                self._submit = lambda i: self._pool.submit(maker.make, i)  # type: ignore[union-attr]
            for _ in range(workers + 1):
                self._enqueue()

    def _enqueue(self) -> None:
        i = self.next_iteration + len(self._pending)
        self._pending.append((i, self._submit(i)))

    def get(self) -> dict[str, np.ndarray]:
        """The batch of the next iteration."""
        i = self.next_iteration
        self.next_iteration += 1
        if self._pool is None:
            return self.maker.make(i)
        j, fut = self._pending.popleft()
        assert j == i
        self._enqueue()
        return fut.result()

    def close(self) -> None:
        if self._pool is not None:
            for _, fut in self._pending:
                fut.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_WORKER_MAKER: BatchMaker | None = None


def _init_worker() -> None:  # pragma: no cover - runs in the worker process
    import cv2

    cv2.setNumThreads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def _make_in_worker(i: int) -> dict[str, np.ndarray]:  # pragma: no cover - runs in the worker process
    assert _WORKER_MAKER is not None
    return _WORKER_MAKER.make(i)

