"""One frame merged: the model's faces (run in batches), each face's mask, colour and detail in face space, the blend
back into the frame (`compose_frame`), and `merge_frame` for a single frame without temporal smoothing (the UI's
tuner and `merge --frame N --preview`, through merge/session.py). Pure given the model: no files."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from ..config import MergeConfig
from ..errors import MetadataError, ModelError
from ..faces.align import FACE_TYPE_BOX, face_matrix, transform_points, warp_to_face
from ..faces.container import FaceRecord, xseg_mask_array
from ..inference import crop_matrix
from . import adjust as A
from . import blend as B
from . import color as C
from . import mask as K
from ..faces import mesh as mesh_net, regions
from . import temporal as T

MASK_MIN = 256           # masks are built at max(face resolution, this) pixels
OFFSET_GRID = 8          # cells per side of the low frequencies of the blended face smoothed over time
SEAMLESS_MODES = ("seamless", "seamless-hist-match")
# `--mode raw --raw predicted` puts the model's face on this dark grey instead of black: the invisible mark moves
# block means both ways, which black cannot do, and the layer is composited through its mask anyway
PREDICTED_BACKGROUND = 16
# how far the 68-point hull is lifted above the brows, per face type (whole-face and head show the forehead)
FOREHEAD = {"half": 0.0, "mid-full": 0.0, "full": 0.0, "whole-face": 0.25, "head": 0.4}


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------

class Swapper(Protocol):
    """What the merge needs of a model (facedouble.train.swapper.load_swapper gives one)."""

    resolution: int
    face_type: str
    learn_mask: bool

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """RGB uint8 (res, res, 3) faces -> predicted faces float32 (res, res, 3) [0, 1], masks float32 (res, res)."""

    # optional (`has_codes`): the swap in two halves, so the merge can average a face's codes over time
    # has_codes: bool; codes_numpy(faces) -> (B, D) float32; swap_codes_numpy(codes) -> as swap_numpy


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
    blend_size: int = 0             # side at which the Poisson system is solved: the model's resolution (0: r)
    cutouts: bool = False           # the mask leaves out what is in front of this face in this frame (hands, XSeg):
                                    # smoothing over time may shrink it there, never cover it again
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
    for i in range(0, len(crops), max(1, batch_size)):
        chunk = list(crops[i:i + batch_size])
        _checked_output(swapper, *swapper.swap_numpy(chunk), len(chunk), preds, masks)
    return preds, masks


def has_codes(swapper: Swapper) -> bool:
    """Whether the model's swap splits into codes and their decoding (`Swapper.codes_numpy`), so that a face's
    codes can be averaged over neighbouring frames (`run_codes`, `run_from_codes`)."""
    return bool(getattr(swapper, "has_codes", False))


def run_codes(swapper: Swapper, crops: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """The model's codes of face crops (the first half of `run_model`): float32 (D,) each."""
    out: list[np.ndarray] = []
    for i in range(0, len(crops), max(1, batch_size)):
        out.extend(np.asarray(c, np.float32) for c in swapper.codes_numpy(list(crops[i:i + batch_size])))
    return out


def run_from_codes(swapper: Swapper, codes: Sequence[np.ndarray], batch_size: int
                   ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """`run_model`'s faces and masks from codes (`run_codes`, averaged or not)."""
    preds: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    for i in range(0, len(codes), max(1, batch_size)):
        chunk = np.stack(codes[i:i + batch_size])
        _checked_output(swapper, *swapper.swap_codes_numpy(chunk), len(chunk), preds, masks)
    return preds, masks


def _checked_output(swapper: Swapper, p, m, n: int, preds: list, masks: list) -> None:
    """Append a model's `n` faces and masks to `preds` and `masks`, checked and clipped to [0, 1]."""
    learned = bool(getattr(swapper, "learn_mask", True))  # a model without one returns a stand-in mask: not used
    if len(p) != n:
        raise ModelError("The model returned a different number of faces than it was given; the model is broken.")
    for j in range(n):
        face = np.asarray(p[j], np.float32)
        if face.ndim != 3 or face.shape[2] != 3:
            raise ModelError(f"The model returned a face of shape {face.shape}; expected (res, res, 3).")
        preds.append(np.clip(face, 0.0, 1.0))
        mk = None if not learned or m is None or j >= len(m) or m[j] is None else np.asarray(m[j], np.float32)
        if mk is not None and mk.ndim == 3:
            mk = mk[..., 0]
        masks.append(None if mk is None else np.clip(mk, 0.0, 1.0))


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
                      m_face=m_face, m_mask=m_mask, pred=pred, mask=np.ones((size, size), np.float32), blend_size=res,
                      motion=None if motion is None else np.asarray(motion, np.float64), cfg=cfg)
    if cfg.debug:
        layer.debug["predicted"] = pred
    if cfg.mode == "raw" and cfg.raw in ("rgb", "predicted"):
        layer.face = pred
        return layer
    mask, parts = face_masks(frame, lm, pred, learned, m_mask, size, face_type, cfg, state, warn, hands,
                             xseg_dst=xseg_dst)
    layer.mask = K.modify_mask(mask, cfg.erode, cfg.blur, size / FACE_TYPE_BOX[face_type][2])
    layer.cutouts = cfg.mask in XSEG_DST_MODES or "hands" in parts
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
    """Poisson blending of a coloured face into its dst crop (r x r float32 [0, 1] -> the same).

    The system is solved at the model's resolution (`layer.blend_size`). A face that super resolution made
    larger is blended there too and keeps its detail: the Poisson solution's change to the face is smooth, so
    it is computed on the face at the model's size and added, upsampled, to the large face. Solved at the
    large size, the blend's fixed rims (3 px, and the 1-2 px of jitter suppression) would be half as wide
    relative to the face, and the model's dark face edge inside them brightened the face by 15-20 levels
    (measured on liae192 at 384 px)."""
    import cv2

    r = face.shape[0]
    n = int(layer.blend_size or r)
    if 0 < n < r:
        def small(img: np.ndarray) -> np.ndarray:
            return cv2.resize(img, (n, n), interpolation=cv2.INTER_AREA)

        face_low = small(face)
        low = FaceLayer(centre=layer.centre, size=layer.size, m_face=layer.m_face, m_mask=layer.m_mask,
                        pred=face_low, mask=layer.mask, dst=small(layer.dst), sel=small(layer.sel),
                        blend_size=n, cfg=layer.cfg)  # pred is not read by the blend: no second resize for it
        blended_low = _poisson(low, face_low, cfg)
        inside = (layer.sel > 0.5).astype(np.float32)
        inside_low = (low.sel > 0.5).astype(np.float32)[..., None]

        def up(img: np.ndarray) -> np.ndarray:
            return cv2.resize(img, (r, r), interpolation=cv2.INTER_LINEAR)

        # the change inside the mask, spread to r without the (large) dst - face values outside it
        change = up((blended_low - face_low) * inside_low) / np.maximum(up(inside_low[..., 0]), 1e-3)[..., None]
        blended = np.where(inside[..., None] > 0, face + change, layer.dst).astype(np.float32)
        layer.seam_low, layer.seam_fade = T.low_pass(blended, inside, OFFSET_GRID), up(low.seam_fade)
        return np.clip(blended, 0, 1)
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
    if raw_black:
        out = np.full_like(frame, PREDICTED_BACKGROUND if cfg.raw == "predicted" else 0)
    else:
        out = frame.copy()
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
            if layer.cutouts:   # a hand or finger that moved since a neighbouring frame stays in front
                mask = np.minimum(mask, layer.mask)
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

def super_resolve(detail, preds: list[np.ndarray]) -> list[np.ndarray]:
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
        detail: a trained `superres.FaceDetail` to sharpen the predicted face with (`merger.face_detail_for`
            answers the one cfg.super_resolution asks for), or None.
        neighbours: the face records of the previous and the next frame (`neighbour_records`): the faces'
            movement, for cfg.motion_blur (without them the face counts as still).

    Returns:
        MergedFrame(image (H, W, 3) uint8, mask (H, W) uint8). Not marked: write it with `write_marked`.
    """
    state = state or MergeState()
    if cfg.super_resolution == "on" and detail is None:
        raise ModelError("--super-resolution on needs the face-detail network; load it with face_detail_for().")
    if not records:
        return MergedFrame(frame_rgb.copy(), np.zeros(frame_rgb.shape[:2], np.uint8))
    res, ftype = int(swapper.resolution), str(swapper.face_type)
    morph = getattr(cfg, "morph_factor", None)
    if morph is not None and hasattr(swapper, "morph_factor"):  # morphable models: this frame's factor (the tuner)
        swapper.morph_factor = float(morph)
    todo, preds, masks = [], {}, {}
    for i, rec in enumerate(records):
        lm = np.asarray(rec.source_landmarks, np.float32)
        key = ("pred", _key(lm, frame_rgb[::16, ::16]), res, ftype, detail is not None,
               getattr(swapper, "morph_factor", None))
        hit = state.get(key)
        if hit is None:
            todo.append((i, key, warp_to_face(frame_rgb, crop_matrix(swapper, lm), res)))
        else:
            preds[i], masks[i] = hit
    if todo:
        p, m = run_model(swapper, [c for _, _, c in todo], cfg.batch_size)
        p = super_resolve(detail, p)
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


