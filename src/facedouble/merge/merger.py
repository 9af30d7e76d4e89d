"""The merge stage: put the model's predicted face onto every dst frame.

For each frame of data_dst, its aligned face records (data_dst/aligned, matched by source filename) give
the 68 landmarks; the face is cut out at the model's face type and resolution, the model turns it into
src's face and (optionally) a mask, and the face goes back onto the frame through the chosen mask and
blend mode. Everything between the model and the frame happens in face space (aligned coordinates) and
is warped back only onto the face's own frame rectangle, so a 4K frame costs about what a 360p one does.
The detail options (sharpen/blur, denoise, bicubic degrade, motion blur along the dst face's movement between
neighbouring frames; merge/adjust.py) act on the predicted face after colour matching, before the blend. Unlike
the original tool, whose denoise and bicubic degrade softened the whole dst frame to match a soft face, they act
on the face only: the background stays dst's own pixels (the report's background check), and a face-sized
image costs the same at any frame size.

Per-frame settings: `cfg.ranges` give frame ranges their own options (the original interactive merger's; see
merge/ranges.py); each frame is merged with `cfg.for_frame(number)`, and a range is a cut for the temporal smoothing
below (a face is smoothed only with neighbours merged with the same options).

Temporal stability: with `smooth_frames` = k > 0 each face is smoothed with the same face in frames
t-k..t+k: its landmarks (so the crop does not jitter), its mask, and the colour statistics that colour
transfer and histogram matching aim at (the dst face's colours pooled over the window);
`suppress_seamless_jitter` averages the Poisson blend over three slightly eroded masks and steadies the
low frequencies (8 x 8 cells) of the blended face over the window.

Work is overlapped on all cores: a thread pool decodes frames and cuts faces ahead of the model, the
model runs batches in the calling thread, and the pool builds masks, blends, marks and encodes behind it.

Outputs: data_dst/merged/NAME (every frame; frames without a face are copied), data_dst/merged_mask/
STEM.png (8-bit grey), data_dst/merge_config.json (the options) and data_dst/merge_run.json (run id,
model, counts). Every image written goes through `mark_output` (provenance watermark) and `sign_output` (C2PA
content credentials, signed in memory in the writer threads with `cfg.sign_cert`/`sign_key` or the local
certificate, checked before any work); neither has an off switch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ..files import remove_temporaries
from ..config import MergeConfig, write_json_atomic
from ..errors import InputError, MetadataError, ModelError, NoFaceError, ProvenanceError
from ..faces.align import FACE_TYPE_BOX, face_matrix, transform_points, warp_to_face
from ..faces.meta import FaceRecord, atomic_write_bytes, encode_image, read_record, xseg_mask_array
from ..imagefile import decode_file, encode_png, read_rgb
from ..inference import crop_matrix, load_model
from ..progress import Reporter
from ..workspace import Workspace
from . import adjust as A
from . import blend as B
from . import color as C
from . import mask as K
from ..faces import mesh as mesh_net, regions
from . import temporal as T

RUN_NAME = "merge_run.json"
DEBUG_DIR = "merged_debug"
MASK_MIN = 256           # masks are built at max(face resolution, this) pixels
OFFSET_GRID = 8          # cells per side of the low frequencies of the blended face smoothed over time
SEAMLESS_MODES = ("seamless", "seamless-hist-match")
# how far the 68-point hull is lifted above the brows, per face type (whole-face and head show the forehead)
FOREHEAD = {"half": 0.0, "mid-full": 0.0, "full": 0.0, "whole-face": 0.25, "head": 0.4}


# ----------------------------------------------------------------------------------------------------------
# Provenance: THE one place where merge output is marked. Every image the merge writes passes here.
# ----------------------------------------------------------------------------------------------------------

def new_run_id() -> str:
    """A provenance run id for one merge run (from facedouble.provenance)."""
    try:
        from ..provenance import new_run_id as _new
    except ImportError:
        raise ProvenanceError("The provenance module (facedouble.provenance) is missing, so merged frames cannot be "
                              "marked as AI-generated; reinstall facedouble.") from None
    return _new()


def mark_output(image: np.ndarray, run_id: str) -> np.ndarray:
    """Mark an output image (RGB uint8 HWC) as AI-generated with the invisible provenance watermark.

    The merge writes no image that has not been through this function; there is no option to skip it."""
    try:
        from ..provenance import mark_frame
    except ImportError:
        raise ProvenanceError("The provenance module (facedouble.provenance) is missing, so merged frames cannot be "
                              "marked as AI-generated; reinstall facedouble.") from None
    out = mark_frame(np.ascontiguousarray(image), run_id)
    return np.asarray(out, np.uint8)


def output_signer(run_id: str, cfg: MergeConfig | None = None, training_hash: str | None = None):
    """The C2PA signer of the images a merge run writes: `cfg.sign_cert`/`cfg.sign_key` (an organisation's
    certificate) or the local certificate. Raises ProvenanceError at once when the pair is unusable, so call
    it before any work."""
    from ..provenance import image_signer

    return image_signer(run_id, cert=getattr(cfg, "sign_cert", None), key=getattr(cfg, "sign_key", None),
                        training_hash=training_hash)


def sign_output(data: bytes, name: str, run_id: str, signer=None) -> bytes:
    """An encoded output image (PNG or JPEG file bytes; `name` gives the type and the manifest's title) with
    signed C2PA content credentials embedded (~2 ms a 720p JPEG, ~8 ms a PNG). `signer`: from `output_signer`;
    default: the local certificate's. The merge writes no image that has not been through this function."""
    return (signer or output_signer(run_id)).sign(data, Path(name).suffix.lower(), Path(name).name)


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------

class Swapper(Protocol):
    """What the merge needs of a model (facedouble.train.checkpoint.load_swapper gives one)."""

    resolution: int
    face_type: str
    learn_mask: bool

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """RGB uint8 (res, res, 3) faces -> predicted faces float32 (res, res, 3) [0, 1], masks float32 (res, res)."""


@dataclass
class MergedFrame:
    """A merged frame: image (H, W, 3) RGB uint8 and mask (H, W) uint8 (0 = dst, 255 = face); `fallbacks`:
    what could not be had for this frame's masks and was replaced by the dst landmark hull (empty when none)."""

    image: np.ndarray
    mask: np.ndarray
    fallbacks: tuple[str, ...] = ()


@dataclass(eq=False)
class FaceLayer:
    """One face on its way onto its frame, in face space.

    `prepare_face` fills the geometry, the mask and the inputs of colour matching; `colour_face` (which
    may pool the dst colours of neighbouring frames) fills `face` and the Poisson offsets, once."""

    centre: np.ndarray              # (2,) landmark centre in frame pixels (to match the face across frames)
    size: float                     # face size in frame pixels
    m_face: np.ndarray              # frame -> face matrix of the r x r face images
    m_mask: np.ndarray              # frame -> mask matrix of `mask` (S x S)
    pred: np.ndarray                # (r, r, 3) float32 [0, 1]: the model's face (after super resolution)
    mask: np.ndarray                # (S, S) float32: the mask after erode/blur, before the crop-edge feather
    dst: np.ndarray | None = None   # (r, r, 3) float32: the dst face under it
    sel: np.ndarray | None = None   # (r, r) float32: the mask at r, feathered at the crop edge (statistics)
    face: np.ndarray | None = None  # (r, r, 3) float32: the face as it will be blended (after colour_face)
    seam_low: tuple | None = None   # low frequencies of the Poisson-blended face (cells, weights)
    seam_fade: np.ndarray | None = None  # (r, r) where a Poisson correction may act (fades at its edge)
    motion: np.ndarray | None = None     # (2,) the dst face's movement, frame px per frame (for motion_blur)
    cfg: MergeConfig | None = None       # the options this face is merged with (its frame's, see MergeConfig.for_frame)
    debug: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class MergeState:
    """Caches that make live tuning fast (`merge_frame` with the same state): model predictions and face
    meshes per face, keyed by its landmarks, so changing a blend option does not re-run the model.
    Thread-safe; keeps the most recent `capacity` entries of each kind."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._cache: "OrderedDict[tuple, Any]" = OrderedDict()
        self.warned: set[str] = set()
        self.fallbacks: dict[str, int] = {}  # mask fallback -> faces it happened to (see `fallback`)
        self.xseg = None  # the XSeg model (facedouble.xseg.load_xseg) the xseg-prd mask modes run on predicted faces

    def get(self, key: tuple) -> Any:
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self._cache.move_to_end(key)
            return value

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.capacity * 3:
                self._cache.popitem(last=False)

    def hands(self, frame: np.ndarray) -> list[np.ndarray]:
        """Hands in a single frame (detection, no tracking)."""
        with self._lock:
            if getattr(self, "_hand_tracker", None) is None:
                self._hand_tracker = mesh_net.HandTracker(video=False)
            return self._hand_tracker(frame)

    def fallback(self, what: str, warn=None) -> None:
        """Record that a face's mask fell back to the dst hull because of `what`; warn the first time."""
        with self._lock:
            self.fallbacks[what] = self.fallbacks.get(what, 0) + 1
        if warn is not None and self.warn_once(what):
            warn(f"{what}; using the dst landmark hull instead for such faces.")

    def warn_once(self, key: str) -> bool:
        with self._lock:
            if key in self.warned:
                return False
            self.warned.add(key)
            return True


def _key(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------

def run_model(swapper: Swapper, crops: Sequence[np.ndarray], batch_size: int) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Predicted faces (float32 [0, 1]) and masks (float32, or None without a learned mask) for face crops."""
    preds: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    learned = bool(getattr(swapper, "learn_mask", True))  # a model without one returns a stand-in mask: not used
    for i in range(0, len(crops), max(1, batch_size)):
        chunk = list(crops[i:i + batch_size])
        p, m = swapper.swap_numpy(chunk)
        if len(p) != len(chunk):
            raise ModelError("The model returned a different number of faces than it was given; the model is broken.")
        for j in range(len(chunk)):
            face = np.asarray(p[j], np.float32)
            if face.ndim != 3 or face.shape[2] != 3:
                raise ModelError(f"The model returned a face of shape {face.shape}; expected (res, res, 3).")
            preds.append(np.clip(face, 0.0, 1.0))
            mk = None if not learned or m is None or j >= len(m) or m[j] is None else np.asarray(m[j], np.float32)
            if mk is not None and mk.ndim == 3:
                mk = mk[..., 0]
            masks.append(None if mk is None else np.clip(mk, 0.0, 1.0))
    return preds, masks


# ----------------------------------------------------------------------------------------------------------
# One face: masks, colour, blend (face space)
# ----------------------------------------------------------------------------------------------------------

def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def _mesh(state: MergeState, key: tuple, image: np.ndarray) -> np.ndarray | None:
    cached = state.get(key)
    if cached is not None:
        return None if isinstance(cached, str) else cached
    pts = mesh_net.face_mesh(image)
    state.put(key, "none" if pts is None else pts)
    return pts


MESH_DST_MODES = tuple(m for m, parts in K.MASK_PARTS.items() if "mesh_dst" in parts)  # the modes that need hands tracked
XSEG_PRD_MODES = ("xseg-prd", "xseg-prd-dst", "learned-xseg-prd", "learned-xseg-prd-dst")
XSEG_DST_MODES = ("xseg-dst", "xseg-prd-dst", "learned-xseg-dst", "learned-xseg-prd-dst")


def dst_xseg(record: FaceRecord) -> tuple[np.ndarray, np.ndarray] | None:
    """(mask, frame -> mask matrix) of the XSeg mask applied to a dst face (`facedouble xseg apply dst`), None
    when it has none (or it cannot be decoded)."""
    try:
        m = xseg_mask_array(record)
    except MetadataError:
        return None
    if m is None or record.size <= 0:
        return None
    return m, np.asarray(record.matrix, np.float64) * (m.shape[1] / float(record.size))


def _xseg_prd(state: MergeState, pred: np.ndarray, size: int) -> np.ndarray | None:
    if state.xseg is None:
        return None
    key = ("xseg-prd", _key(pred))
    hit = state.get(key)
    if hit is None:
        hit = state.xseg([pred])[0]
        state.put(key, hit)
    return _resize(hit, size)


def face_masks(frame: np.ndarray, lm: np.ndarray, pred: np.ndarray, learned: np.ndarray | None, m_mask: np.ndarray,
               size: int, face_type: str, cfg: MergeConfig, state: MergeState, warn=None,
               hands: Sequence[np.ndarray] = (), xseg_dst: tuple | None = None) -> tuple[np.ndarray, dict]:
    """The `cfg.mask` mask of one face in face space (size x size), and the parts it was made from.

    The mesh-dst modes follow the visible face: the face oval of the mesh, less any `hands` (21-point
    hands in frame pixels) in front of it. A mask that cannot be had (no learned mask in the model, no
    mesh found on the face) falls back to the dst landmark hull, with a warning once per run."""
    mode = cfg.mask
    parts: dict[str, np.ndarray] = {}
    lm_s = transform_points(lm, m_mask)

    def hull() -> np.ndarray:
        if "dst" not in parts:
            parts["dst"] = regions.hull_mask(lm_s, (size, size), forehead=FOREHEAD.get(face_type, 0.0))
        return parts["dst"]

    def fallback(what: str) -> np.ndarray:
        state.fallback(what, warn)
        return hull()

    if mode in ("learned", "learned-mesh-dst", "learned-dst", "learned-xseg-prd", "learned-xseg-dst",
                "learned-xseg-prd-dst"):
        if learned is None:
            parts["learned"] = fallback("The model has no learned mask (--mask learned)")
        else:
            parts["learned"] = _resize(learned, size)
    if mode in ("dst", "learned-dst"):
        hull()
    dst_crop = None
    if mode in MESH_DST_MODES or cfg.skin_mask:
        dst_crop = warp_to_face(frame, B.resize_matrix(m_mask, size, 256), 256)
    if mode in MESH_DST_MODES:
        pts = _mesh(state, ("mesh-dst", _key(lm, m_mask)), dst_crop)
        parts["mesh_dst"] = fallback("The face mesh found no face in a dst crop") if pts is None else \
            regions.mesh_mask(pts * (size / 256.0), (size, size))
    if mode in ("mesh-prd", "mesh-prd-dst"):
        pts = _mesh(state, ("mesh-prd", _key(pred)), pred)
        parts["mesh_prd"] = fallback("The face mesh found no face in a predicted face") if pts is None else \
            regions.mesh_mask(pts * (size / pred.shape[0]), (size, size))
    if mode in XSEG_DST_MODES:  # `xseg_dst`: (mask, frame -> mask matrix) of the dst face (see dst_xseg)
        parts["xseg_dst"] = fallback("A dst face has no applied XSeg mask (run `facedouble xseg apply dst`)") \
            if xseg_dst is None else regions.remap_mask(xseg_dst[0], xseg_dst[1], m_mask, size)
    if mode in XSEG_PRD_MODES:
        prd = _xseg_prd(state, pred, size)
        parts["xseg_prd"] = fallback("No XSeg model is loaded for --mask xseg-prd") if prd is None else prd
    mask = K.combine(mode, learned=parts.get("learned"), dst=parts.get("dst"), mesh_prd=parts.get("mesh_prd"),
                     mesh_dst=parts.get("mesh_dst"), xseg_prd=parts.get("xseg_prd"), xseg_dst=parts.get("xseg_dst"))
    if mode in MESH_DST_MODES and hands:
        parts["hands"] = regions.hand_mask(list(hands), m_mask, size)
        mask = mask * (1.0 - parts["hands"])
    if cfg.skin_mask:
        import cv2

        sample = regions.points_hull_mask(transform_points(lm, B.resize_matrix(m_mask, size, 256))[_SKIN_POINTS], (256, 256))
        skin = K.skin_mask(dst_crop, sample)
        parts["skin"] = _resize(skin, size)
        mask = mask * cv2.GaussianBlur(parts["skin"], (0, 0), max(1.0, size / 200))
    return mask.astype(np.float32), parts


# cheeks and nose (68-point indices): where the skin-colour model samples dst's skin
_SKIN_POINTS = [2, 3, 4, 31, 33, 35, 12, 13, 14, 29]


def prepare_face(frame: np.ndarray, lm: np.ndarray, pred: np.ndarray, learned: np.ndarray | None, res: int,
                 face_type: str, cfg: MergeConfig, state: MergeState, warn=None,
                 hands: Sequence[np.ndarray] = (), m_in: np.ndarray | None = None,
                 motion: np.ndarray | None = None, xseg_dst: tuple | None = None) -> FaceLayer:
    """Geometry, mask and colour inputs of one face (nothing that needs its neighbours in time).
    `xseg_dst`: the dst face's applied XSeg mask and its frame -> mask matrix (`dst_xseg`), for those modes.

    Args:
        frame: (H, W, 3) uint8 RGB dst frame.
        lm: (68, 2) landmarks in the frame (possibly smoothed over time).
        pred: (r, r, 3) float32 predicted face (r = res, or 2 res after super resolution).
        learned: (res, res) float32 learned mask or None.
        res, face_type: the model's.
        hands: 21-point hands in the frame (kept out of the mesh-dst masks).
        m_in: the frame-to-face transform of the model's crop (`inference.crop_matrix`; default: the face
            type's own at res).
        motion: (2,) the face's movement in frame pixels per frame (`adjust.face_motion`; for motion_blur).
    """
    r = pred.shape[0]
    size = max(r, MASK_MIN)
    m_in = face_matrix(lm, face_type, res) if m_in is None else np.asarray(m_in, np.float64)
    m_out = B.scale_matrix(m_in, res, cfg.face_scale) if cfg.face_scale else m_in
    m_face = B.resize_matrix(m_out, res, r)
    m_mask = B.resize_matrix(m_out, res, size)
    lm64 = np.asarray(lm, np.float64)
    layer = FaceLayer(centre=lm64.mean(0), size=float(np.ptp(lm64[:, 0]) + np.ptp(lm64[:, 1])) / 2,
                      m_face=m_face, m_mask=m_mask, pred=pred, mask=np.ones((size, size), np.float32),
                      motion=None if motion is None else np.asarray(motion, np.float64), cfg=cfg)
    if cfg.debug:
        layer.debug["predicted"] = pred
    if cfg.mode == "raw" and cfg.raw in ("rgb", "predicted"):
        layer.face = pred
        return layer
    mask, parts = face_masks(frame, lm, pred, learned, m_mask, size, face_type, cfg, state, warn, hands,
                             xseg_dst=xseg_dst)
    layer.mask = K.modify_mask(mask, cfg.erode, cfg.blur, size / FACE_TYPE_BOX[face_type][2])
    if cfg.debug:
        layer.debug.update({f"mask_{k}": v for k, v in parts.items()})
    if cfg.mode == "raw":  # the mask layer
        layer.face = pred
        return layer
    layer.dst = B.to_float(warp_to_face(frame, m_face, r))
    layer.sel = _resize(layer.mask, r) * K.edge_feather(r)
    return layer


def _samples(layer: FaceLayer, masked: bool) -> np.ndarray:
    """(N, 1, 3) dst colours of a face: inside its mask, or the whole crop."""
    px = layer.dst.reshape(-1, 3)
    if masked:
        sel = layer.sel.reshape(-1) > 0.5
        if sel.sum() >= 16:
            px = px[sel]
    return px[:, None, :]


def colour_face(layer: FaceLayer, cfg: MergeConfig, near: Sequence[FaceLayer] = ()) -> FaceLayer:
    """Colour transfer, histogram matching and Poisson blending of a prepared face (once; thread-safe).

    The colour target is the dst face under the mask, pooled with the same face in the `near` frames
    (temporal smoothing of the colour statistics); the Poisson boundary is always this frame's own."""
    with layer.lock:
        if layer.face is not None:
            return layer
        pred, dst, sel = layer.pred, layer.dst, layer.sel
        if near:
            def target(masked: bool) -> tuple[np.ndarray, None]:
                return np.concatenate([_samples(x, masked) for x in (layer, *near)], axis=0), None
        else:
            def target(masked: bool) -> tuple[np.ndarray, np.ndarray | None]:
                return dst, (sel if masked else None)
        face = pred
        if cfg.color_transfer != "none":
            t_img, t_mask = target(True)
            face = C.color_transfer(cfg.color_transfer, pred, t_img, sel, t_mask)
        if cfg.mode in ("hist-match", "seamless-hist-match", "hist-match-bw"):
            t_img, t_mask = target(cfg.masked_hist_match)
            s_mask = sel if cfg.masked_hist_match else None
            if cfg.mode == "hist-match-bw":
                face, _ = C.hist_match_bw(face, t_img, s_mask, t_mask, threshold=cfg.hist_threshold)
            else:
                face = C.hist_match(face, t_img, s_mask, t_mask, threshold=cfg.hist_threshold)
        face = adjust_face(layer, face, cfg)
        if cfg.mode in SEAMLESS_MODES:
            face = _poisson(layer, face, cfg)
        layer.face = face.astype(np.float32)
        return layer


def adjust_face(layer: FaceLayer, face: np.ndarray, cfg: MergeConfig) -> np.ndarray:
    """The detail options (sharpen/blur, denoise, bicubic degrade, motion blur; merge/adjust.py) on a face
    in face space; the face itself when all are off."""
    motion = A.to_face_space(layer.motion, layer.m_face) if cfg.motion_blur and layer.motion is not None else None
    return A.adjust_face(face, sharpen=cfg.sharpen, sharpen_mode=cfg.sharpen_mode, denoise_power=cfg.denoise,
                         degrade=cfg.bicubic_degrade, motion_power=cfg.motion_blur, motion=motion)


def face_motions(tracks: Sequence[Sequence[np.ndarray]], i: int) -> list[np.ndarray]:
    """The movement (frame px per frame) of each face of frame `i`, from its landmarks in frames i-1 and i+1
    (`tracks`: per frame, the (68, 2) landmarks of each face; faces matched by their centre)."""
    out = []
    for lm in tracks[i]:
        lm = np.asarray(lm, np.float64)
        size = float(np.ptp(lm[:, 0]) + np.ptp(lm[:, 1])) / 2
        near = []
        for j in (i - 1, i + 1):
            cands = [np.asarray(x, np.float64) for x in tracks[j]] if 0 <= j < len(tracks) and tracks[j] else []
            k = T.match_track(lm.mean(0), size, [c.mean(0) for c in cands]) if cands else None
            near.append(None if k is None else cands[k])
        out.append(A.face_motion(near[0], lm, near[1]))
    return out


def _poisson(layer: FaceLayer, face: np.ndarray, cfg: MergeConfig) -> np.ndarray:
    import cv2

    r = face.shape[0]
    binary = (layer.sel > 0.5).astype(np.uint8) * 255
    src_u8, dst_u8 = B.to_uint8(face), B.to_uint8(layer.dst)
    if cfg.suppress_seamless_jitter:
        runs = [B.seamless(src_u8, dst_u8, binary)]
        for px in (1, 2):
            er = cv2.erode(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1)))
            runs.append(B.seamless(src_u8, dst_u8, er))
        blended = np.mean([x.astype(np.float32) for x in runs], axis=0) / 255.0
    else:
        blended = B.to_float(B.seamless(src_u8, dst_u8, binary))
    inside = (binary > 0).astype(np.float32)
    layer.seam_low = T.low_pass(blended, inside, OFFSET_GRID)
    fade = cv2.erode(inside, np.ones((3, 3), np.uint8), iterations=max(1, r // 48))
    layer.seam_fade = cv2.GaussianBlur(fade, (0, 0), max(1.0, r / 64))
    # the Poisson solution is the face inside the binary mask and ~dst outside it, where a soft mask edge
    # (blur) may still reach
    return blended


def _neighbours(layer: FaceLayer, window: dict[int, Sequence[FaceLayer]], at: int, radius: int
                ) -> list[tuple[FaceLayer, float, int]]:
    """The same face in frames at-radius..at+radius of `window` (offset -> layers), with time weights."""
    out = []
    weights = T.window_weights(radius)
    for d in range(-radius, radius + 1):
        layers = window.get(at + d)
        if d == 0 or not layers:
            continue
        j = T.match_track(layer.centre, layer.size, [x.centre for x in layers])
        if j is not None and layers[j].mask.shape == layer.mask.shape and layers[j].pred.shape == layer.pred.shape \
                and _same_options(layers[j], layer):
            out.append((layers[j], float(weights[radius + d]), at + d))
    return out


def _same_options(a: FaceLayer, b: FaceLayer) -> bool:
    """Whether two faces are merged with the same options (a per-frame range is a cut for the smoothing)."""
    return a.cfg is None or b.cfg is None or a.cfg is b.cfg or a.cfg == b.cfg


def compose_frame(frame: np.ndarray, layers: Sequence[FaceLayer], cfg: MergeConfig,
                  window: dict[int, Sequence[FaceLayer]] | None = None) -> MergedFrame:
    """Blend prepared faces onto a frame (the frame is not modified).

    `window` maps frame offsets -2k..2k (k = cfg.smooth_frames) to the prepared faces of those frames
    (offset 0: `layers`); without it nothing is smoothed over time. Colour statistics pool the dst faces of
    offsets -k..k; masks are averaged over them; with suppress_seamless_jitter the Poisson offsets too
    (which needs the neighbours' own colour, hence offsets up to 2k)."""
    import cv2

    k = int(cfg.smooth_frames) if window else 0
    window = window or {0: layers}
    raw_black = cfg.mode == "raw" and cfg.raw in ("mask", "predicted")
    out = np.zeros_like(frame) if raw_black else frame.copy()
    full = np.zeros(frame.shape[:2], np.float32)
    for layer in layers:
        near = _neighbours(layer, window, 0, k) if k else []
        mask, face = layer.mask, layer.face
        if face is None:
            colour_face(layer, cfg, [n for n, _, _ in near])
            face = layer.face
        if near and not (cfg.mode == "raw" and cfg.raw in ("rgb", "predicted")):
            total = 1.0 + sum(w for _, w, _ in near)
            mask = (mask + sum(n.mask * w for n, w, _ in near)) / total
            if cfg.suppress_seamless_jitter and layer.seam_low is not None:
                others = []
                for n, w, at in near:
                    if n.face is None:
                        colour_face(n, n.cfg or cfg, [m for m, _, _ in _neighbours(n, window, at, k)])
                    if n.seam_low is not None:
                        others.append((n.seam_low[0], n.seam_low[1], w))
                corr = T.smoothed_correction(layer.seam_low, others)
                corr = cv2.resize(corr, face.shape[:2][::-1], interpolation=cv2.INTER_LINEAR) * layer.seam_fade[..., None]
                face = np.clip(face + corr, 0.0, 1.0)
        mask = mask * K.edge_feather(mask.shape[0])
        if cfg.mode == "raw" and cfg.raw == "mask":  # white through the mask onto black: the mask itself
            out, roi, m = B.composite(out, np.ones_like(face), layer.m_face, mask, layer.m_mask)
        else:
            out, roi, m = B.composite(out, face, layer.m_face, mask, layer.m_mask)
        if not roi.empty:
            ys, xs = roi.slices()
            np.maximum(full[ys, xs], m, out=full[ys, xs])
    if cfg.degrade_color > 0 and not raw_black:
        out = C.degrade_color(out, cfg.degrade_color)
    return MergedFrame(out, B.to_uint8(full))


# ----------------------------------------------------------------------------------------------------------
# One frame (the browser UI's live tuning and `merge --frame N --preview`)
# ----------------------------------------------------------------------------------------------------------

def _super_resolve(detail, preds: list[np.ndarray]) -> list[np.ndarray]:
    return detail.upscale(preds) if detail is not None and preds else preds


def merge_frame(frame_rgb: np.ndarray, records: Sequence[FaceRecord], swapper: Swapper, cfg: MergeConfig,
                state: MergeState | None = None, *, detail=None, warn=None,
                neighbours: tuple[Sequence[FaceRecord], Sequence[FaceRecord]] | None = None) -> MergedFrame:
    """Merge one frame, without temporal smoothing.

    Args:
        frame_rgb: (H, W, 3) uint8 RGB dst frame.
        records: the frame's aligned face records (their `source_landmarks` are used).
        swapper: the model (see `Swapper`).
        cfg: merge options.
        state: reuse one `MergeState` across calls to cache model output while options change.
        detail: a trained `superres.FaceDetail` when cfg.super_resolution.
        neighbours: the face records of the previous and the next frame (`neighbour_records`): the faces'
            movement, for cfg.motion_blur (without them the face counts as still).

    Returns:
        MergedFrame(image (H, W, 3) uint8, mask (H, W) uint8). Not marked: write it with `write_marked`.
    """
    state = state or MergeState()
    if cfg.super_resolution and detail is None:
        raise ModelError("--super-resolution needs the face-detail network; load it with load_face_detail().")
    if not records:
        return MergedFrame(frame_rgb.copy(), np.zeros(frame_rgb.shape[:2], np.uint8))
    res, ftype = int(swapper.resolution), str(swapper.face_type)
    morph = getattr(cfg, "morph_factor", None)
    if morph is not None and hasattr(swapper, "morph_factor"):  # morphable models: this frame's factor (the tuner)
        swapper.morph_factor = float(morph)
    todo, preds, masks = [], {}, {}
    for i, rec in enumerate(records):
        lm = np.asarray(rec.source_landmarks, np.float32)
        key = ("pred", _key(lm, frame_rgb[::16, ::16]), res, ftype, bool(cfg.super_resolution),
               getattr(swapper, "morph_factor", None))
        hit = state.get(key)
        if hit is None:
            todo.append((i, key, warp_to_face(frame_rgb, crop_matrix(swapper, lm), res)))
        else:
            preds[i], masks[i] = hit
    if todo:
        p, m = run_model(swapper, [c for _, _, c in todo], cfg.batch_size)
        p = _super_resolve(detail if cfg.super_resolution else None, p)
        for (i, key, _), pi, mi in zip(todo, p, m):
            preds[i], masks[i] = pi, mi
            state.put(key, (pi, mi))
    hands = state.hands(frame_rgb) if cfg.mask in MESH_DST_MODES else []
    before = dict(state.fallbacks)
    motions: list = [None] * len(records)
    if cfg.motion_blur and neighbours is not None:
        tracks = [[np.asarray(r.source_landmarks, np.float32) for r in recs]
                  for recs in (neighbours[0], records, neighbours[1])]
        motions = face_motions(tracks, 1)
    layers = [prepare_face(frame_rgb, np.asarray(rec.source_landmarks, np.float32), preds[i], masks[i], res, ftype, cfg,
                           state, warn, hands, m_in=crop_matrix(swapper, rec.source_landmarks), motion=motions[i],
                           xseg_dst=dst_xseg(rec) if cfg.mask in XSEG_DST_MODES else None)
              for i, rec in enumerate(records)]
    merged = compose_frame(frame_rgb, layers, cfg)
    merged.fallbacks = tuple(k for k, n in state.fallbacks.items() if n > before.get(k, 0))
    return merged


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------

def write_marked(path: Path, image: np.ndarray, run_id: str, *, alpha: np.ndarray | None = None,
                 png_compression: int = 1, jpeg_quality: int = 95, signer=None) -> None:
    """Mark an RGB uint8 image as AI-generated (`mark_output`), sign it (`sign_output`; `signer` from
    `output_signer`) and write it atomically (PNG or JPEG by the suffix; with `alpha` (H, W) uint8 an RGBA PNG)."""
    import cv2

    path = Path(path)
    marked = mark_output(image, run_id)
    if alpha is not None:
        bgra = np.dstack([cv2.cvtColor(marked, cv2.COLOR_RGB2BGR), alpha])
        data = encode_png(bgra, png_compression)
    else:
        data = encode_image(marked, path.suffix, jpeg_quality=jpeg_quality, png_compression=png_compression)
    atomic_write_bytes(path, sign_output(data, path.name, run_id, signer))


def write_mask(path: Path, mask: np.ndarray, run_id: str, signer=None) -> None:
    """An (H, W) uint8 mask as an 8-bit grey PNG, signed (`sign_output`), atomically."""
    path = Path(path)
    atomic_write_bytes(path, sign_output(encode_png(mask, 1), path.name, run_id, signer))


def frame_records(ws: Workspace, reporter: Reporter | None = None) -> dict[str, list[FaceRecord]]:
    """Aligned dst face records grouped by the frame they come from, sorted by face index."""
    out: dict[str, list[FaceRecord]] = {}
    bad = 0
    for path in ws.face_files("dst"):
        try:
            rec = read_record(path)
        except MetadataError:
            rec = None
        if rec is None:
            bad += 1
            continue
        out.setdefault(rec.source_filename, []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda r: r.face_index)
    if bad and reporter is not None:
        reporter.warn(f"{bad} file(s) in {ws.aligned('dst')} have no readable face record and were ignored.")
    return out


def load_swapper(ws: Workspace, cfg: MergeConfig) -> Swapper:
    """The model: `cfg.model_file` (a DFM file) when given, else the trained model in `cfg.model` (default
    workspace/model); see facedouble.inference."""
    model_dir = Path(cfg.model) if cfg.model else ws.model
    return load_model(model_dir, model_file=getattr(cfg, "model_file", None), device=cfg.device, name=cfg.model_name,
                      morph_factor=getattr(cfg, "morph_factor", None))


def detail_pairs(ws: Workspace, swapper: Swapper, size: int, limit: int = 400) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """What the face-detail network learns from: src faces cut like the model's input at `size` px (the
    targets), and the model's own reconstructions of them at its resolution (the inputs). The model is
    soft where it has not yet learned her detail, and its swaps are soft the same way, so the network
    learns to put her detail back.

    Returns:
        (targets (size, size, 3) uint8 RGB, inputs (res, res, 3) float32 [0, 1]).
    """
    from ..faces.meta import read_face

    files = ws.face_files("src")
    step = max(1, len(files) // limit)
    res = int(swapper.resolution)
    targets, crops = [], []
    for path in files[::step]:
        try:
            image, record = read_face(path)
        except (MetadataError, InputError):
            continue
        targets.append(warp_to_face(image, crop_matrix(swapper, record.landmarks, size), size))  # image: RGB
        crops.append(warp_to_face(image, crop_matrix(swapper, record.landmarks, res), res))
    inputs, _ = run_model(swapper, crops, 8)
    return targets, inputs


def load_face_detail(ws: Workspace, cfg: MergeConfig, resolution: int, reporter: Reporter | None = None, *,
                     swapper: Swapper | None = None):
    """The face-detail network for faces of 2 x `resolution`: loaded from model/superres/, or trained on
    data_src/aligned (a few minutes) and saved there. With `swapper` it learns from that model's
    reconstructions of the src faces (`detail_pairs`) and is trained again when the model has trained on
    since; without, from the src faces downscaled."""
    from . import superres

    model_dir = Path(cfg.model) if cfg.model else ws.model
    size = 2 * int(resolution)
    path = superres.detail_path(model_dir, size)
    iteration = getattr(swapper, "iteration", None) if swapper is not None else None
    if path.exists():
        detail = superres.FaceDetail.load(path)
        if iteration is None or detail.metrics.get("model_iteration") == iteration:
            return detail
    rep = reporter or Reporter()
    if swapper is not None:
        faces, inputs = detail_pairs(ws, swapper, size)
    else:
        files = ws.face_files("src")
        step = max(1, len(files) // 400)
        faces, inputs = [read_rgb(p) for p in files[::step]], None
    if len(faces) < 2:
        raise InputError(f"--super-resolution learns the face detail from src faces, but {ws.aligned('src')} has "
                         f"{len(faces)}; extract src faces first or leave super resolution off.")
    rep.info(f"training the face-detail network on {len(faces)} src faces (saved to {path.parent})")
    with rep.task("super resolution: learning src face detail", 100) as advance:
        done = [0]

        def progress(frac: float, loss: float) -> None:
            n = int(frac * 100)
            if n > done[0]:
                advance(n - done[0])
                done[0] = n

        detail = superres.train_face_detail(faces, size, inputs=inputs, progress=progress, check=rep.check)
    detail.metrics["model_iteration"] = iteration
    detail.save(path)
    m = detail.metrics
    rep.info(f"face detail on held-back src faces: PSNR {m['psnr_net']:.2f} dB (bicubic {m['psnr_bicubic']:.2f}), "
             f"sharpness {m['sharpness_net']:.4f} (bicubic {m['sharpness_bicubic']:.4f}, original {m['sharpness_truth']:.4f})")
    return detail


def find_frame(ws: Workspace, number: int) -> Path:
    """The dst frame file with frame number `number` (its name's number; the first frame is 1)."""
    for p in ws.frame_files("dst"):
        if p.stem.isdigit() and int(p.stem) == number:
            return p
    files = ws.frame_files("dst")
    raise InputError(f"There is no dst frame number {number} in {ws.frames('dst')} "
                     f"({len(files)} frames); give a number between 1 and {len(files)}.")


def neighbour_records(ws: Workspace, by_frame: dict[str, list[FaceRecord]], path: Path
                      ) -> tuple[list[FaceRecord], list[FaceRecord]]:
    """The face records of the dst frames before and after `path` (`merge_frame`'s neighbours)."""
    names = [p.name for p in ws.frame_files("dst")]
    try:
        i = names.index(Path(path).name)
    except ValueError:
        return [], []
    return (by_frame.get(names[i - 1], []) if i > 0 else [],
            by_frame.get(names[i + 1], []) if i + 1 < len(names) else [])


def preview(ws: Workspace, cfg: MergeConfig, number: int, out_path: str | Path, *, swapper: Swapper | None = None,
            reporter: Reporter | None = None) -> MergedFrame:
    """`merge --frame N --preview OUT.png`: merge one frame with its options (`cfg.for_frame(N)`) and write it
    (marked and signed), through the same MergeSession as the browser UI's tuner."""
    from .session import MergeSession

    factory = (lambda ws_, cfg_: swapper) if swapper is not None else load_swapper
    return MergeSession(ws, factory, train_detail=True, reporter=reporter).preview_file(number, cfg, out_path)


# ----------------------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------------------

@dataclass
class MergeSummary:
    frames: int = 0          # frames in data_dst
    written: int = 0         # frames merged (or copied) in this run
    skipped: int = 0         # frames already merged (resume)
    copied: int = 0          # frames without a face, copied
    faces: int = 0           # faces through the model (context frames included)
    seconds: float = 0.0
    fallbacks: dict[str, int] = field(default_factory=dict)  # mask fallback -> faces (also in merge_run.json)

    @property
    def fps(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Job:
    index: int
    path: Path
    records: list
    landmarks: list
    image: np.ndarray | None = None
    hands: list = field(default_factory=list)
    crops: list = field(default_factory=list)
    preds: list = field(default_factory=list)
    masks: list = field(default_factory=list)


def frame_number(path: Path, index: int) -> int:
    """The number of a dst frame file: its name's (000123.png -> 123), else its place in the folder (1 = first)."""
    return int(path.stem) if path.stem.isdigit() else index + 1


def frame_configs(cfg: MergeConfig, frames: Sequence[Path]) -> list[MergeConfig]:
    """The effective options of each frame (`MergeConfig.for_frame`); frames of one range share one object."""
    made: dict[Any, MergeConfig] = {}
    out = []
    for i, path in enumerate(frames):
        number = frame_number(path, i)
        r = cfg.frame_range(number)
        key = None if r is None else r.start
        if key not in made:
            made[key] = cfg.for_frame(number)
        out.append(made[key])
    return out


def _outputs(ws: Workspace, path: Path, cfg: MergeConfig) -> tuple[Path, Path]:
    image = ws.merged / (path.stem + ".png" if cfg.export_alpha else path.name)
    return image, ws.merged_mask / (path.stem + ".png")


def merge(ws: Workspace, cfg: MergeConfig, *, reporter: Reporter | None = None, force: bool = False,
          swapper: Swapper | None = None) -> MergeSummary:
    """The merge stage (see the module doc). Resumes: frames already in merged/ are kept unless `force`.

    Args:
        ws: the workspace (data_dst frames, data_dst/aligned records, model/).
        cfg: the options; saved as data_dst/merge_config.json. Frames in its `ranges` get those options
            (`frame_configs`); the options that cannot change per frame are the run's.
        reporter: progress, warnings and cancellation (Ctrl-C, SIGTERM, UI).
        force: merge every frame again.
        swapper: a loaded model; default: load `cfg.model` (workspace/model).
    """
    rep = reporter or Reporter()
    ws.require()
    frames = ws.frame_files("dst")
    if not frames:
        raise InputError(f"No dst frames in {ws.frames('dst')}; run `facedouble video extract` on data_dst first.")
    run_id, previous = _start_run(ws, cfg, force, rep)
    signer = output_signer(run_id, cfg, _training_hash(ws))  # a bad --sign-cert/--sign-key stops here
    remove_temporaries(ws.merged, ws.merged_mask, ws.frames("dst"))  # what a killed merge left
    records = frame_records(ws, rep)
    if not records:
        found = len(ws.face_files("dst"))
        what = (f"None of the {found} image(s) in {ws.aligned('dst')} has a facedouble face record" if found
                else f"No aligned dst faces in {ws.aligned('dst')}")
        raise NoFaceError(f"{what}; run `facedouble extract` on dst first (or import the original tool's faces with "
                          "`facedouble util import-dfl`).")
    swapper = swapper or load_swapper(ws, cfg)
    res, ftype = int(swapper.resolution), str(swapper.face_type)
    detail = load_face_detail(ws, cfg, res, rep, swapper=swapper) if cfg.super_resolution else None
    ws.merged.mkdir(parents=True, exist_ok=True)
    ws.merged_mask.mkdir(parents=True, exist_ok=True)
    debug_dir = ws.frames("dst") / DEBUG_DIR
    cfgs = frame_configs(cfg, frames)  # each frame's options (the ranges applied)
    if any(c.debug for c in cfgs):
        debug_dir.mkdir(exist_ok=True)
    cfg.save(ws.config_file(MergeConfig))

    radius = int(cfg.smooth_frames)
    reach = 2 * radius if cfg.suppress_seamless_jitter else radius  # how far a frame's smoothing looks
    recs = [records.get(p.name, []) for p in frames]
    lms = T.smooth_landmarks([[r.source_landmarks for r in fr] for fr in recs], radius)
    # frames whose per-frame settings changed since the last finished run are merged again (with the neighbours
    # their smoothing reaches); other option changes keep what is merged, as before (--force redoes all)
    redo = set() if force else frames_to_redo(previous.get("options"), cfg, cfgs, frames, reach)
    done = [not force and i not in redo and all(o.exists() for o in _outputs(ws, p, cfg)) for i, p in enumerate(frames)]
    if redo:
        rep.info(f"{len(redo)} frame(s) whose per-frame settings changed (or a neighbour's) are merged again.")
    todo = [i for i, d in enumerate(done) if not d]
    summary = MergeSummary(frames=len(frames), skipped=len(frames) - len(todo))
    if summary.skipped:
        rep.info(f"{summary.skipped} frame(s) already merged are kept (use --force to merge them again).")
    # frames to prepare: those to write, plus their neighbours with faces (temporal context)
    need = set(todo)
    for i in todo:
        if recs[i]:
            need.update(j for j in range(max(0, i - reach), min(len(frames), i + reach + 1)) if recs[j])
    order = sorted(need)
    _write_run(ws, run_id, swapper, cfg, previous, status="running")
    start = time.monotonic()
    state = MergeState(capacity=8)
    masks_used = {c.mask for c in cfgs}
    if masks_used & set(XSEG_PRD_MODES):  # the XSeg network is a model (layer 2), loaded like the swapper
        from ..xseg.network import load_xseg

        state.xseg = load_xseg(ws.model)
    warn = rep.warn
    tracker = mesh_net.HandTracker(video=True) if masks_used & set(MESH_DST_MODES) else None
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="merge")
    prepared: dict[int, tuple[np.ndarray, list[FaceLayer]]] = {}
    writes: deque[Future] = deque()
    finalize_next = 0  # position in `todo` of the next frame to write

    def load(i: int) -> _Job:
        job = _Job(i, frames[i], recs[i], lms[i])
        job.image = read_rgb(frames[i])
        job.crops = [warp_to_face(job.image, crop_matrix(swapper, lm), res) for lm in job.landmarks]
        return job

    def prepare(job: _Job) -> tuple[np.ndarray, list[FaceLayer]]:
        fc = cfgs[job.index]
        motions = face_motions(lms, job.index) if fc.motion_blur else [None] * len(job.landmarks)
        layers = [prepare_face(job.image, lm, p, m, res, ftype, fc, state, warn, job.hands,
                               m_in=crop_matrix(swapper, lm), motion=v,
                               xseg_dst=dst_xseg(rec) if fc.mask in XSEG_DST_MODES else None)
                  for lm, p, m, v, rec in zip(job.landmarks, job.preds, job.masks, motions, job.records)]
        return job.image, layers

    def submit_finalize(i: int) -> None:
        # the frame and its neighbours' layers are taken now: `prepared` may drop them before the task runs
        image, layers = prepared[i]
        window = {d: prepared[i + d][1] for d in range(-reach, reach + 1) if (i + d) in prepared} if radius else None
        writes.append(pool.submit(finalize, i, image, layers, window))

    def finalize(i: int, image: np.ndarray, layers: list[FaceLayer], window: dict | None) -> int:
        path = frames[i]
        out_img, out_mask = _outputs(ws, path, cfg)
        if layers:
            merged = compose_frame(image, layers, cfgs[i], window)
            if cfgs[i].debug:
                _write_debug(debug_dir, path, image, merged, layers, run_id, signer)
        else:
            merged = MergedFrame(image, np.zeros(image.shape[:2], np.uint8))
        write_marked(out_img, merged.image, run_id, alpha=merged.mask if cfg.export_alpha else None, signer=signer)
        write_mask(out_mask, merged.mask, run_id, signer)
        return 0 if layers else 1

    def flush(limit: int) -> None:
        while len(writes) > limit:
            summary.copied += writes.popleft().result()
            summary.written += 1
            advance(1)

    try:
        with rep.task("merge", len(todo)) as advance:
            # frames with no face need no model; put them in the order stream too (they are cheap)
            stream = sorted(set(order) | set(todo))
            chunks: list[list[int]] = []
            cur: list[int] = []
            nfaces = 0
            for i in stream:
                cur.append(i)
                nfaces += len(recs[i])
                if nfaces >= cfg.batch_size or len(cur) >= 2 * cfg.batch_size:
                    chunks.append(cur)
                    cur, nfaces = [], 0
            if cur:
                chunks.append(cur)
            max_prepared = -1
            pending: list[tuple[int, Future]] = []
            loads = [pool.submit(load, i) for i in chunks[0]] if chunks else []
            for c in range(len(chunks)):
                rep.check()
                jobs = [f.result() for f in loads]
                loads = [pool.submit(load, i) for i in chunks[c + 1]] if c + 1 < len(chunks) else []
                if tracker is not None:  # in frame order, in this thread: hands are tracked across frames
                    for job in jobs:
                        job.hands = tracker(job.image)
                crops = [crop for job in jobs for crop in job.crops]
                if crops:
                    p, m = run_model(swapper, crops, cfg.batch_size)
                    p = _super_resolve(detail, p)
                    summary.faces += len(crops)
                    k = 0
                    for job in jobs:
                        n = len(job.crops)
                        job.preds, job.masks = p[k:k + n], m[k:k + n]
                        k += n
                # finish the previous chunk's preparation before queueing this one's
                for i, f in pending:
                    prepared[i] = f.result()
                    max_prepared = max(max_prepared, i)
                pending = [(job.index, pool.submit(prepare, job)) for job in jobs]
                finalize_next = _finalize_ready(todo, finalize_next, max_prepared, reach, len(frames), last=False,
                                                submit=submit_finalize)
                flush(4)
                _evict(prepared, todo, finalize_next, reach)
            for i, f in pending:
                prepared[i] = f.result()
                max_prepared = max(max_prepared, i)
            finalize_next = _finalize_ready(todo, finalize_next, max_prepared, reach, len(frames), last=True,
                                            submit=submit_finalize)
            flush(0)
    finally:
        for f in writes:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        if tracker is not None:
            tracker.close()
        summary.seconds = time.monotonic() - start
        summary.fallbacks = dict(state.fallbacks)
        _write_run(ws, run_id, swapper, cfg, previous, status="done" if summary.written == len(todo) else "stopped",
                   summary=summary)
    rep.info(f"merged {summary.written} frame(s) ({summary.copied} without a face, copied) in {summary.seconds:.1f} s "
             f"({summary.fps:.1f} frames/s) into {ws.merged}")
    return summary


def frames_to_redo(before: dict | None, cfg: MergeConfig, cfgs: Sequence[MergeConfig], frames: Sequence[Path],
                   reach: int) -> set[int]:
    """Indices of the frames to merge again because only the per-frame ranges changed since the options `before`
    (the last finished run's, as JSON): those whose effective options differ, and the frames within `reach` of
    them (their smoothing looks at those). Empty when the run's own options changed too, or nothing is known."""
    try:
        old = MergeConfig.from_dict(before) if isinstance(before, dict) else None
    except Exception:  # noqa: BLE001 - options of an older version: nothing to compare with
        old = None
    if old is None or old.ranges == cfg.ranges or \
            dataclasses.replace(old, ranges=()) != dataclasses.replace(cfg, ranges=()):
        return set()
    olds = frame_configs(old, frames)
    changed = [i for i in range(len(frames)) if olds[i] != cfgs[i]]
    return {j for i in changed for j in range(max(0, i - reach), min(len(frames), i + reach + 1))}


def _finalize_ready(todo: list[int], pos: int, max_prepared: int, radius: int, n: int, *, last: bool, submit) -> int:
    while pos < len(todo):
        i = todo[pos]
        if not last and i + radius > max_prepared:
            break
        submit(i)
        pos += 1
    return pos


def _evict(prepared: dict, todo: list[int], pos: int, radius: int) -> None:
    """Drop prepared frames no later frame can need."""
    if pos >= len(todo):
        return
    low = todo[pos] - radius
    for i in [i for i in prepared if i < low]:
        del prepared[i]


def _start_run(ws: Workspace, cfg: MergeConfig, force: bool, rep: Reporter) -> tuple[str, dict]:
    """The run id: the previous run's when resuming, a new one otherwise. Warns when the options changed."""
    path = ws.frames("dst") / RUN_NAME
    previous: dict = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
    old_cfg = ws.config_file(MergeConfig)
    if not force and old_cfg.exists():
        try:
            before = MergeConfig.load(old_cfg)
        except Exception:  # noqa: BLE001 - an unreadable old config only loses the warning
            before = None
        # (a change of the per-frame ranges alone: frames_to_redo merges the frames it changes again)
        if before is not None and dataclasses.replace(before, ranges=()) != dataclasses.replace(cfg, ranges=()) \
                and any(ws.merged.glob("*")):
            rep.warn("merged/ holds frames made with other options; they are kept (use --force to merge all again).")
    if not force and previous.get("run_id"):
        return str(previous["run_id"]), previous
    return new_run_id(), previous


def _write_run(ws: Workspace, run_id: str, swapper, cfg: MergeConfig, previous: dict, *, status: str,
               summary: MergeSummary | None = None) -> None:
    data = {
        "run_id": run_id,
        "status": status,
        "model": str(getattr(cfg, "model_file", None) or (Path(cfg.model) if cfg.model else ws.model)),
        "model_face_type": getattr(swapper, "face_type", None),
        "model_resolution": getattr(swapper, "resolution", None),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    # the options of the last finished run: what the frames in merged/ were made with (see frames_to_redo)
    options = cfg.to_dict() if status == "done" else previous.get("options")
    if options is not None:
        data["options"] = options
    if summary is not None:
        data["last"] = dataclasses.asdict(summary) | {"fps": round(summary.fps, 2)}
    write_json_atomic(ws.frames("dst") / RUN_NAME, data)


def _training_hash(ws: Workspace) -> str | None:
    """The fingerprint of the training sets recorded in each image's credentials (None without both sets)."""
    from ..provenance import training_hash

    folders = (ws.aligned("src"), ws.aligned("dst"))
    return training_hash(*folders) if all(f.is_dir() for f in folders) else None


def _write_debug(folder: Path, path: Path, before: np.ndarray, merged: MergedFrame, layers: Sequence[FaceLayer],
                 run_id: str, signer=None) -> None:
    """Per frame: predicted face and masks of each face, and before | after side by side (all marked)."""
    for k, layer in enumerate(layers):
        for name, img in layer.debug.items():
            arr = B.to_uint8(img)
            if arr.ndim == 2:
                arr = np.repeat(arr[..., None], 3, axis=2)
            write_marked(folder / f"{path.stem}_{k}_{name}.png", arr, run_id, signer=signer)
        write_marked(folder / f"{path.stem}_{k}_mask_final.png",
                     np.repeat(B.to_uint8(layer.mask * K.edge_feather(layer.mask.shape[0]))[..., None], 3, axis=2), run_id,
                     signer=signer)
    side = np.concatenate([before, merged.image], axis=1)
    write_marked(folder / f"{path.stem}_compare.jpg", side, run_id, signer=signer)
