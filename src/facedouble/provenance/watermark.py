"""Invisible watermark in every frame the merger writes (DESIGN.md section 6). Pure functions on RGB uint8
HWC arrays; nothing here touches disk.

Payload (64 bits): a 16-bit identifier (0xFD0B, "facedouble"), the facedouble version in 8 bits (major in the
top 3, minor in the low 5), a 32-bit run id and a CRC-8 of those 56 bits. It is protected by a BCH(127, 64)
code that corrects any 10 of the 127 code bits (more with the soft-decision Chase decoder used here), and
the 127 code bits plus 17 known "sync" bits fill a 12 x 12 tile of slots that repeats over the frame.

How a frame is marked (format 2; the analysis frame is the luma resized so that its shorter side is 360
pixels, which makes the mark independent of the frame's resolution and, at 360p and 720p, puts the blocks on
the 8 x 8 / 16 x 16 grid of JPEG and H.264):
  * each 8 x 8 block of the analysis frame carries the bit of its slot in its mean luma, by dither
    modulation (quantisation index modulation): the block mean is moved to the nearest point of a lattice
    of step 10 shifted by the slot's pseudo-random dither, and by half a step more for a 1. Block means are what
    JPEG, H.264 and resizing keep best, and the decoder needs no original: it reads each block mean's phase
    on the lattice, e.g. cos(2 pi (mean / step - dither)) is +1 for a 0 and -1 for a 1;
  * the change is a smooth (bilinear) field of one value per block, sharpened a little so that the block
    means measured afterwards hit the lattice, computed at the block grid and upsampled to the frame,
    then added equally to R, G and B (luma only, chroma untouched). This costs a few milliseconds;
  * the strength follows the texture: all the way to the lattice point in textured blocks, 70% in flat
    ones (plain walls, sky), where a low-frequency pattern would otherwise show; and the whole change is
    scaled down when its mean square would pass MAX_MSE, so the PSNR of a marked frame against the unmarked
    one stays at or above 39.6 dB (39.6-39.8 measured on video frames).

Reading it back: the phases of all blocks that hold the same slot are summed (about 25 per slot in a
16:9 frame), giving a soft value per code bit; BCH (with Chase soft decoding) + the 16-bit identifier +
the CRC decide "found", so a frame without the mark reads as unmarked (a false "found" needs a random word to
decode within 10 bits of a codeword whose identifier and CRC both match: about 1e-10 per image and format,
search included). Before deciding, a brightness offset common to the frame is undone: a video's RGB -> YUV
4:2:0 -> RGB round trip moves every block mean by about -1.2 levels, which turned every phase by 43 degrees
and was the largest single loss after H.264 (see `_common_turn`). When the straight reading fails (e.g. the
frame was cropped, which moves the block grid and changes the scale), the decoder searches: scale (a crop of
up to 20% of the shorter side), block-grid offset (by the coherence of the repeated slots, which needs no key)
and the tile's cyclic shift (by the sync bits). Video: `detect_frames` sums the soft values of several frames
first.

A contrast change (a gain g on the luma: ffmpeg's eq=contrast, a colourist's curves, levels) moves each block
mean in proportion to its level, m -> g m + b, so the lattice phases no longer agree and the offset correction
alone cannot help. When the straight reading fails, the decoder searches the gain (0.78-1.28, see `_gain_search`):
dividing the block means by the right g leaves only b / g, a common offset the turn above undoes. The gain is
found without the key by the coherence of the repeated slots (coarse steps of 1.5%, then 0.3% around the best
two), then read there when the slots agree, so the search costs a few milliseconds and at most two more decodes. A gentle tone curve
(gamma 0.9-1.1) is read as the gain of its slope over the frame's levels.

Format 1 (files marked before format 2: the same scheme on a 256-pixel analysis frame with its own key) is read
too: straight, after format 2 fails (a few ms more), but not searched for after a crop.

Measured here (benchmarks/provenance.py --per-frame, docs/provenance.md): each frame read alone, the raw code
bits are all right after H.264 crf 28 (at least 0.99 over 90 random run ids, --run-ids) and after JPEG q50 and a
half-size downscale, at 640x360 and 1280x720, with the payload exact in every frame; after crf 35 the payload is read in every 720p frame and in most
360p ones. After a contrast change (gain 0.8-1.25 with an offset of -20..+20 levels, gamma 0.9/1.1, each also
through JPEG q75; benchmarks/provenance.py --contrast) the payload is read in every frame alone, and none of 584
reads of unmarked frames and photos with the same kinds of edit found a mark.
A matte (a mask written as an image, which a compositor reads as opacity) is marked by `embed_matte` instead: only
its non-transparent blocks move, by one scale factor each, and the reader leaves saturated blocks out.

Limits: a frame of one flat colour (all black, all white) does not take a readable mark at this strength; the
mark is keyless in the sense that anyone with this code can read it (and could try to remove it) - it is a
label, not a secret.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from .. import __version__
from ..errors import InputError

# -- the mark's fixed parameters (changing any of them makes older marks unreadable) -------------------------
IDENTIFIER = 0xFD0B          # 16 bits
ANALYSIS_SIDE = 360          # shorter side of the analysis frame
BLOCK = 8                    # block size in analysis pixels
TILE = 12                    # the slot tile is TILE x TILE blocks
STEP = 10.0                  # lattice step of the block-mean modulation (luma levels)
STRENGTH = 1.0               # fraction of the way to the lattice point in textured blocks
FLAT_STRENGTH = 0.7          # ... in flat blocks
# cap on the change's mean square (levels^2): 39.7 dB; 39.6-39.8 measured after rounding. 5.8 (40.3-40.5 dB) left 2% of
# frames with random run ids below 0.99 of the raw bits after H.264 crf 28 (one bit too many); 6.4 1.5%, 7.0 none of 540
# (benchmarks/provenance.py --run-ids 90)
MAX_MSE = 7.0
TEXTURE_LO, TEXTURE_HI = 1.0, 5.0   # block luma std (levels) where the strength ramps from flat to textured
SHARPEN_ITERS = 3
PAYLOAD_BITS = 64
CODE_BITS = 127
_KEY = b"facedouble-watermark-v2"
FORMAT = 2                   # the mark's format; embed writes this one, detect reads it and the one before
# Format 1 (facedouble before this change): the same scheme on an analysis frame of 256 pixels with its own key.
# Read straight (as written, compressed, rescaled as a whole), not searched for after a crop.
V1_SIDE = 256
_KEY_V1 = b"facedouble-watermark-v1"

# Crop search: the frame's shorter side may have been cut to this fraction of the original (or less).
SEARCH_MIN_SCALE = 0.80
SEARCH_SCALE_STEP = 0.992

# Contrast search: a gain on the luma in [GAIN_MIN, GAIN_MAX] (any brightness offset with it) is undone when the
# straight reading fails. Coarse gains are GAIN_COARSE apart (the coherence peak of a mark is about 2% wide),
# refined in GAIN_FINE steps around the best GAIN_PEAKS of them, and read only where the slots' coherence reaches
# GAIN_MIN_COHERENCE (5-15 for a marked frame; about 1 for a natural one without a mark, at most 1.3 over the gains,
# so those cost no decoding; synthetic frames with large flat areas can reach 13 and are decoded and rejected).
GAIN_MIN, GAIN_MAX = 0.78, 1.28
GAIN_COARSE = 1.015
GAIN_FINE = 1.003
GAIN_PEAKS = 2
GAIN_MIN_COHERENCE = 2.0
MATTE_MIN_FACTOR = 0.9       # a matte's block carries the mark when that dims it by at most 10% (see `embed_matte`)
SATURATED = 0.5             # blocks whose mean luma is within this of 0 or 255 carry no mark (see `_phasors`)
GAIN_CLIP = 3.0              # blocks within this of 0 or 255 (mean luma) are taken as saturated by the edit


# ============================================================================================================
# Payload
# ============================================================================================================

def version_byte(version: str = __version__) -> int:
    """The facedouble version in 8 bits: major (0-7) in the top 3 bits, minor (0-31) in the low 5."""
    parts = (version.split(".") + ["0", "0"])[:2]
    try:
        major, minor = (int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts)
    except ValueError:  # pragma: no cover - defensive
        major, minor = 0, 0
    return (min(major, 7) << 5) | min(minor, 31)


def _crc8(bits: np.ndarray) -> int:
    """CRC-8 (polynomial x^8 + x^2 + x + 1) of a bit array, most significant bit first."""
    crc = 0
    for b in bits:
        top = ((crc >> 7) & 1) ^ int(b)
        crc = (crc << 1) & 0xFF
        if top:
            crc ^= 0x07
    return crc


def _int_bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], np.uint8)


def _bits_int(bits: np.ndarray) -> int:
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value


def make_payload(run_id: int, version: str = __version__) -> np.ndarray:
    """The 64 payload bits (uint8 0/1): identifier(16) | version(8) | run id(32) | CRC-8 of the 56 before."""
    if not 0 <= int(run_id) < 2 ** 32:
        raise ValueError(f"run id {run_id} does not fit in 32 bits")
    head = np.concatenate([_int_bits(IDENTIFIER, 16), _int_bits(version_byte(version), 8),
                           _int_bits(int(run_id), 32)])
    return np.concatenate([head, _int_bits(_crc8(head), 8)])


def parse_payload(bits: np.ndarray) -> dict[str, Any] | None:
    """The fields of 64 payload bits, or None when the identifier or the CRC does not match."""
    bits = np.asarray(bits, np.uint8).ravel()
    if bits.size != PAYLOAD_BITS or _bits_int(bits[:16]) != IDENTIFIER or _crc8(bits[:56]) != _bits_int(bits[56:]):
        return None
    v = _bits_int(bits[16:24])
    run = _bits_int(bits[24:56])
    return {"identifier": f"{IDENTIFIER:04x}", "generator": "facedouble", "version": f"{v >> 5}.{v & 31}",
            "run_id": f"{run:08x}", "run_id_int": run}


# ============================================================================================================
# BCH(127, 64), t = 10, over GF(2^7) with the primitive polynomial x^7 + x^3 + 1
# ============================================================================================================

_M = 7
_N = 127
_T = 10


@functools.lru_cache(maxsize=None)
def _gf() -> tuple[np.ndarray, np.ndarray]:
    exp = np.zeros(2 * _N, np.int64)
    log = np.full(_N + 1, -1, np.int64)
    x = 1
    for i in range(_N):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x80:
            x ^= 0x89
    exp[_N:] = exp[:_N]
    return exp, log


def _gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    exp, log = _gf()
    return int(exp[(log[a] + log[b]) % _N])


@functools.lru_cache(maxsize=None)
def _generator() -> np.ndarray:
    """Generator polynomial (binary coefficients, lowest degree first) = LCM of the minimal polynomials
    of alpha^1 .. alpha^2t."""
    exp, _ = _gf()
    done: set[int] = set()
    g = np.array([1], np.uint8)
    for i in range(1, 2 * _T + 1):
        if i in done:
            continue
        coset, j = [], i
        while j not in coset:
            coset.append(j)
            j = (2 * j) % _N
        done.update(coset)
        poly = [1]  # product of (x - alpha^j) over the coset, coefficients in GF(2^7), lowest first
        for j in coset:
            root = int(exp[j])
            new = [0] * (len(poly) + 1)
            for k, c in enumerate(poly):
                new[k + 1] ^= c
                new[k] ^= _gf_mul(c, root)
            poly = new
        assert all(c in (0, 1) for c in poly)
        g = np.convolve(g, np.array(poly, np.uint8)) % 2
    assert len(g) - 1 == _N - PAYLOAD_BITS
    return g.astype(np.uint8)


def bch_encode(message: np.ndarray) -> np.ndarray:
    """Systematic codeword of 64 message bits: 127 bits, the message first, then the 63 parity bits."""
    msg = np.asarray(message, np.uint8).ravel()
    g = _generator()
    nk = len(g) - 1
    # remainder of m(x) * x^(n-k) divided by g(x); polynomials highest degree first here
    reg = np.concatenate([msg, np.zeros(nk, np.uint8)])
    gh = g[::-1]
    for i in range(len(msg)):
        if reg[i]:
            reg[i:i + nk + 1] ^= gh
    return np.concatenate([msg, reg[len(msg):]])


def bch_decode(word: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Correct up to 10 errors in a 127-bit word; (corrected codeword, errors) or None if it cannot."""
    exp, log = _gf()
    r = np.asarray(word, np.uint8).ravel()
    # word index i holds the coefficient of x^(126 - i)
    powers = _N - 1 - np.flatnonzero(r)
    if powers.size == 0:
        return r.copy(), 0
    syn = np.bitwise_xor.reduce(exp[(powers[:, None] * _SYN_J[None, :]) % _N], axis=0).tolist()
    if not any(syn):
        return r.copy(), 0
    EXP = _EXP_LIST
    LOG = _LOG_LIST

    def mul(a: int, b: int) -> int:
        return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]

    # Berlekamp-Massey
    C, B = [1], [1]
    L, m, b = 0, 1, 1
    for n in range(2 * _T):
        d = syn[n]
        for i in range(1, min(L, len(C) - 1) + 1):
            d ^= mul(C[i], syn[n - i])
        if d == 0:
            m += 1
            continue
        coef = mul(d, EXP[_N - LOG[b]])
        prev = list(C)
        shifted = [0] * m + [mul(coef, x) for x in B]
        if len(shifted) > len(C):
            C = C + [0] * (len(shifted) - len(C))
        for i, x in enumerate(shifted):
            C[i] ^= x
        if 2 * L <= n:
            L, B, b, m = n + 1 - L, prev, d, 1
        else:
            m += 1
    while len(C) > 1 and C[-1] == 0:
        C.pop()
    if L > _T or len(C) - 1 != L:
        return None
    # Chien search: error at power p where C(alpha^-p) == 0
    total = np.full(_N, C[0], np.int64)
    for k in range(1, len(C)):
        if C[k]:
            total ^= exp[(log[C[k]] - k * _P) % _N]
    roots = np.flatnonzero(total == 0)
    if len(roots) != L:
        return None
    out = r.copy()
    out[_N - 1 - roots] ^= 1
    return out, L


_SYN_J = np.arange(1, 2 * _T + 1)
_P = np.arange(_N)
_EXP_LIST = [int(x) for x in _gf()[0]] * 2
_LOG_LIST = [int(x) for x in _gf()[1]]


# ============================================================================================================
# Layout: which slot of the tile holds which code bit, the slots' dither, the sync bits
# ============================================================================================================

@functools.lru_cache(maxsize=None)
def _layout(key: bytes = _KEY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner, dither, slot_sync) as TILE x TILE arrays. owner = code bit index, or -1 for a sync slot.
    Derived from SHAKE-256 of a fixed key, so it never depends on a library's random generator."""
    n = TILE * TILE
    raw = np.frombuffer(hashlib.shake_256(key).digest(12 * n), dtype="<u4").astype(np.float64) / 2.0 ** 32
    order = np.argsort(raw[:n], kind="stable")
    owner = np.full(n, -1, np.int64)
    owner[order[:CODE_BITS]] = np.arange(CODE_BITS)
    dither = raw[n:2 * n]
    sync = (raw[2 * n:3 * n] < 0.5).astype(np.uint8)
    return owner.reshape(TILE, TILE), dither.reshape(TILE, TILE), sync.reshape(TILE, TILE)


def _slot_bits(code: np.ndarray, key: bytes = _KEY) -> np.ndarray:
    owner, _, sync = _layout(key)
    return np.where(owner >= 0, code[np.maximum(owner, 0)], sync).astype(np.float64)


# ============================================================================================================
# Embedding
# ============================================================================================================

def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError("The watermark needs an RGB (or RGBA) uint8 image of shape (H, W, 3); convert it first.")
    if min(image.shape[:2]) < 16:
        raise InputError(f"An image of {image.shape[1]}x{image.shape[0]} pixels is too small to carry the "
                         "watermark; use at least 16 pixels a side.")


def analysis_size(h: int, w: int, scale: float = 1.0, side: int = ANALYSIS_SIDE) -> tuple[int, int]:
    """(width, height) of the analysis frame for an h x w frame."""
    s = side / min(h, w) * scale
    return max(BLOCK, round(w * s)), max(BLOCK, round(h * s))


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


def _to_analysis(gray: np.ndarray, scale: float = 1.0, side: int = ANALYSIS_SIDE) -> np.ndarray:
    h, w = gray.shape
    W, H = analysis_size(h, w, scale, side)
    interp = cv2.INTER_AREA if W < w else cv2.INTER_LINEAR
    return cv2.resize(gray, (W, H), interpolation=interp).astype(np.float32)


def _block_stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nby, nbx = a.shape[0] // BLOCK, a.shape[1] // BLOCK
    v = a[:nby * BLOCK, :nbx * BLOCK].reshape(nby, BLOCK, nbx, BLOCK)
    mean = v.mean(axis=(1, 3))
    sq = (v * v).mean(axis=(1, 3))
    return mean, np.sqrt(np.maximum(sq - mean * mean, 0.0))


def _field(d: np.ndarray, a_shape: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """The full-resolution change (one channel, bilinear between block centres, constant beyond the last
    ones) from the per-block values d. int16 in, int16 out (fast); float32 in, float32 out."""
    nby, nbx = d.shape
    H, W = a_shape
    h, w = full
    # one replicated block more on the right and at the bottom, so the field covers the frame without padding
    # a full-size array; the part beyond the frame is a view that is dropped
    d = np.pad(d, ((0, 1), (0, 1)), mode="edge")
    cw = max(w, round((nbx + 1) * BLOCK * w / W))
    ch = max(h, round((nby + 1) * BLOCK * h / H))
    return cv2.resize(d, (cw, ch), interpolation=cv2.INTER_LINEAR)[:h, :w]


@functools.lru_cache(maxsize=64)
def _kernel(a_shape: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """3x3 response of the measured block means to one block's value (what the field's smoothing spreads
    to the neighbours); measured through the same resize chain the decoder uses."""
    nby, nbx = a_shape[0] // BLOCK, a_shape[1] // BLOCK
    d = np.zeros((nby, nbx), np.float32)
    cy, cx = nby // 2, nbx // 2
    d[cy, cx] = 1.0
    f = np.ascontiguousarray(_field(d, a_shape, full))
    a = cv2.resize(f, (a_shape[1], a_shape[0]), interpolation=cv2.INTER_AREA if a_shape[1] < full[1] else cv2.INTER_LINEAR)
    m, _ = _block_stats(a)
    k = m[cy - 1:cy + 2, cx - 1:cx + 2].astype(np.float32)
    if k.shape != (3, 3) or not np.isfinite(k).all() or k[1, 1] <= 0.2:
        k = np.zeros((3, 3), np.float32)
        k[1, 1] = 1.0
    return k


def _grids(nby: int, nbx: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(nby) % TILE, np.arange(nbx) % TILE


def embed(image: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """A copy of `image` (RGB or RGBA uint8 HWC) carrying the 64 payload `bits` (from `make_payload`).
    Alpha, if any, is kept as it is."""
    return _embed(image, bits)


def _plan(image: np.ndarray, bits: np.ndarray, side: int = ANALYSIS_SIDE,
          key: bytes = _KEY) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What embedding `bits` in `image` starts from: the analysis frame, its block means and standard deviations,
    and each block's lattice offset (its slot's dither plus half a step for a 1), in levels."""
    _check_image(image)
    bits = np.asarray(bits, np.uint8).ravel()
    if bits.size != PAYLOAD_BITS:
        raise ValueError(f"the watermark payload has {PAYLOAD_BITS} bits, not {bits.size}")
    a = _to_analysis(_gray(image), side=side)
    mean, std = _block_stats(a)
    _, dither, _ = _layout(key)
    slots = _slot_bits(bch_encode(bits), key)
    ty, tx = _grids(*mean.shape)
    off = (dither[ty[:, None], tx[None, :]] + 0.5 * slots[ty[:, None], tx[None, :]]) * STEP
    return a, mean, std, off


def _embed(image: np.ndarray, bits: np.ndarray, side: int = ANALYSIS_SIDE, key: bytes = _KEY) -> np.ndarray:
    """`embed` in the layout of `side` and `key` (format 1's: V1_SIDE, _KEY_V1; for tests and benchmarks)."""
    h, w = image.shape[:2]
    a, mean, std, off = _plan(image, bits, side, key)
    target = np.round((mean - off) / STEP) * STEP + off
    target = np.where(target > 253.0, target - STEP, target)
    target = np.where(target < 2.0, target + STEP, target)
    ramp = np.clip((std - TEXTURE_LO) / (TEXTURE_HI - TEXTURE_LO), 0.0, 1.0)
    strength = STRENGTH * (FLAT_STRENGTH + (1.0 - FLAT_STRENGTH) * ramp)
    strength = cv2.GaussianBlur(strength.astype(np.float32), (3, 3), 0.8)
    c = (strength * (target - mean)).astype(np.float32)
    k = _kernel(a.shape, (h, w))
    d = c.copy()
    for _ in range(SHARPEN_ITERS):
        d += c - cv2.filter2D(d, -1, k, borderType=cv2.BORDER_REPLICATE)
    # hold the PSNR: a frame whose blocks all sit far from their lattice points gets a proportionally weaker
    # change (the field is linear in d; its mean square at the analysis size is the frame's to within ~2%)
    mse = float(np.mean(np.square(_field(d, a.shape, a.shape))))
    if mse > MAX_MSE:
        d *= np.float32(np.sqrt(MAX_MSE / mse))
    delta = _field(np.rint(d).astype(np.int16), a.shape, (h, w))
    delta3 = cv2.merge([delta, delta, delta])
    if image.shape[2] == 3:
        return cv2.add(image, delta3, dtype=cv2.CV_8U)
    out = image.copy()
    out[..., :3] = cv2.add(np.ascontiguousarray(image[..., :3]), delta3, dtype=cv2.CV_8U)
    return out


def embed_matte(matte: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """A copy of a matte carrying the 64 payload `bits`: an RGB uint8 (H, W, 3) image of a mask that a
    compositor reads as opacity (0 outside, 255 inside, soft between; R = G = B), as `merge --mode raw --raw
    mask` writes it.

    `embed` would lift the whole transparent part a few levels (a faint ghost of the layer over the frame) and,
    held to its PSNR cap, move no block far enough to be read. Here each block whose mean is at least about 100 is
    scaled by one factor of 0.9-1, so that its mean lands on the lattice point at or below it (at full strength,
    without the cap): the opaque part goes to 243-253 (at least 95% opacity), the blocks of the soft edge next to it
    keep their shape at least 90% as opaque, and the rest (the outer edge; what is 0 stays exactly 0) is left as
    it was. `detect` leaves saturated blocks out, so it reads the marked part
    alone. A face needs to cover about two tiles (some 200 pixels at 360p) for every slot to be read; a matte with
    nothing opaque enough to carry a bit is returned unchanged."""
    h, w = matte.shape[:2]
    a, mean, _, off = _plan(matte, bits)
    nby, nbx = mean.shape
    target = np.floor((np.minimum(mean, 253.0) - off) / STEP) * STEP + off    # the lattice point at or below
    carry = (mean >= SATURATED) & (target >= 2.0) & (target >= MATTE_MIN_FACTOR * mean)
    if not carry.any():
        return matte.copy()
    factor = np.where(carry, target / np.maximum(mean, 1e-3), 1.0).astype(np.float32)
    # one factor per block (nearest, not the bilinear field of `embed`): each block mean lands on its lattice point
    # and nothing spills onto the blocks around
    ch, cw = round(nby * BLOCK * h / a.shape[0]), round(nbx * BLOCK * w / a.shape[1])
    scale = np.ones((h, w), np.float32)
    scale[:min(h, ch), :min(w, cw)] = cv2.resize(factor, (cw, ch), interpolation=cv2.INTER_NEAREST)[:h, :w]
    out = matte.copy()
    rgb = matte[..., :3].astype(np.float32) * scale[..., None]
    out[..., :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out


# ============================================================================================================
# Detection
# ============================================================================================================

@dataclasses.dataclass
class Detection:
    """What `detect` read. `found`: a valid facedouble payload was decoded. `bit_accuracy`: when found, the
    fraction of the 127 raw code bits (before error correction) that agree with the decoded codeword; when
    not found, the fraction of the 16 identifier bits that agree (about 0.5 for an unmarked image).
    `payload`: the decoded fields (identifier, generator, version, run_id) or None."""

    found: bool
    bit_accuracy: float
    payload: dict[str, Any] | None
    raw_bits: np.ndarray = dataclasses.field(repr=False, default_factory=lambda: np.zeros(CODE_BITS, np.uint8))
    corrected: int = 0            # code bits the decoder corrected
    scale: float = 1.0            # analysis scale where it was found (1.0 = the frame as marked)
    searched: bool = False        # the crop search was needed
    gain: float = 1.0             # luma gain (contrast) undone to read it (1.0 = none; see `_gain_search`)
    frames: int = 1               # frames combined
    mark_format: int = FORMAT     # the mark's format it was read in (1: written by facedouble before format 2)

    def to_dict(self) -> dict[str, Any]:
        payload = None
        if self.payload is not None:
            payload = {k: v for k, v in self.payload.items() if k != "run_id_int"}
        return {"found": self.found, "bit_accuracy": round(float(self.bit_accuracy), 4), "payload": payload,
                "corrected_bits": int(self.corrected), "scale": round(float(self.scale), 4),
                "searched": self.searched, "gain": round(float(self.gain), 3), "frames": self.frames,
                "mark_format": self.mark_format}


def _phasors(means: np.ndarray) -> np.ndarray:
    """Each block mean's phase on the lattice, as a unit phasor; 0 for a saturated block (mean within
    SATURATED of 0 or 255), which no mark can have moved (`embed` aims at 2-253) and which would otherwise add the
    same phase to every slot (a matte's transparent part, a black border)."""
    angle = means.astype(np.float32) * np.float32(2 * np.pi / STEP)
    z = np.cos(angle) + 1j * np.sin(angle)
    return np.where((means < SATURATED) | (means > 255.0 - SATURATED), 0.0, z)


def _fold(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of z over the blocks of each tile position, and how many there were."""
    nby, nbx = z.shape
    ty, tx = _grids(nby, nbx)
    idx = (ty[:, None] * TILE + tx[None, :]).ravel()
    n = TILE * TILE
    re = np.bincount(idx, z.real.ravel(), minlength=n)
    im = np.bincount(idx, z.imag.ravel(), minlength=n)
    cnt = np.bincount(idx, minlength=n).astype(np.float64)
    return (re + 1j * im).reshape(TILE, TILE), cnt.reshape(TILE, TILE)


def _soft_from_fold(G: np.ndarray, shift: tuple[int, int] = (0, 0), key: bytes = _KEY) -> tuple[np.ndarray, np.ndarray]:
    """Soft values of the 127 code bits (positive = 0) and of the sync slots from a folded phasor tile.
    `shift`: the tile slot at fold position (0, 0)."""
    owner, dither, sync = _layout(key)
    aligned = np.roll(G, shift, axis=(0, 1)) * np.exp(-2j * np.pi * dither)
    v = (aligned * _common_turn(aligned, key)).real
    soft = np.zeros(CODE_BITS)
    m = owner >= 0
    soft[owner[m]] = v[m]
    sync_soft = np.where(sync[~m] == 0, v[~m], -v[~m])
    return soft, sync_soft


def _common_turn(aligned: np.ndarray, key: bytes = _KEY) -> complex:
    """The phase correction for a brightness offset common to the whole frame. A video's RGB -> YUV 4:2:0 ->
    RGB round trip (and many players and editors) moves every block mean by about the same amount (-1.2 levels
    measured through PyAV/x264), which turns every slot's phasor by the same angle (43 degrees at a step of 10
    levels) and costs a quarter of the signal. The angle is found without knowing the bits (the squared phasors
    all point at twice it), its half-turn ambiguity by the 17 known sync slots."""
    owner, _, sync = _layout(key)
    z = complex((aligned ** 2).sum())
    if z == 0:
        return 1.0
    turn = np.exp(-0.5j * np.angle(z))
    m = owner < 0
    if float((aligned[m] * turn).real @ np.where(sync[m] == 0, 1.0, -1.0)) < 0:
        turn = -turn
    return complex(turn)


def _chase(soft: np.ndarray, depth: int = 5) -> tuple[np.ndarray, dict, int] | None:
    """Soft-decision decoding: BCH on the hard decisions, then on them with each pattern of flips of the
    `depth` least reliable bits; the valid payload (identifier + CRC) nearest in soft distance wins."""
    hard = (soft < 0).astype(np.uint8)
    weak = np.argsort(np.abs(soft))[:depth]
    best = None
    seen: set[bytes] = set()
    for pattern in range(1 << depth):
        trial = hard.copy()
        for i in range(depth):
            if pattern >> i & 1:
                trial[weak[i]] ^= 1
        res = bch_decode(trial)
        if res is None:
            continue
        word, _ = res
        key = word.tobytes()
        if key in seen:
            continue
        seen.add(key)
        payload = parse_payload(word[:PAYLOAD_BITS])
        if payload is None:
            continue
        cost = float(np.abs(soft[word != hard]).sum())
        if best is None or cost < best[0]:
            best = (cost, word, payload)
        if pattern == 0:
            break
    if best is None:
        return None
    return best[1], best[2], int((best[1] != hard).sum())


def _decide(soft: np.ndarray, **info: Any) -> Detection:
    hard = (soft < 0).astype(np.uint8)
    ident = _int_bits(IDENTIFIER, 16)
    # A marked word has few errors among its 16 identifier bits; a random one about 8. Decoding only when at
    # most 6 differ skips most of the work on unmarked images and costs a real mark nothing measurable.
    plausible = np.any(soft) and int((hard[:16] != ident).sum()) <= 6
    res = _chase(soft) if plausible else None
    if res is None:
        acc = float((hard[:16] == ident).mean())
        return Detection(False, acc, None, hard, **info)
    word, payload, corrected = res
    return Detection(True, float((word == hard).mean()), payload, hard, corrected=corrected, **info)


def _block_means(image: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """The 8 x 8 block means of the image's luma at the analysis size of `side`."""
    mean, _ = _block_stats(_to_analysis(_gray(image), side=side))
    return mean


def _identity_fold(image: np.ndarray, side: int = ANALYSIS_SIDE) -> tuple[np.ndarray, np.ndarray]:
    return _fold(_phasors(_block_means(image, side)))


def detect(image: np.ndarray, *, search: bool = True) -> Detection:
    """Read the watermark of one RGB/RGBA uint8 image without the original. A contrast change (gain) is searched
    for whenever the straight reading fails; `search=False` skips only the crop search (faster for a frame
    known to be uncropped)."""
    _check_image(image)
    means = _block_means(image)
    G, _ = _fold(_phasors(means))
    det = _decide(_soft_from_fold(G)[0])
    if det.found:
        return det
    G1, _ = _identity_fold(image, V1_SIDE)
    old = _decide(_soft_from_fold(G1, key=_KEY_V1)[0], mark_format=1)
    if old.found:
        return old
    found = _gain_search([means])
    if found is None and search:
        found = _search(_gray(image))
    return found if found is not None else det


def detect_frames(frames: Iterable[np.ndarray], *, search: bool = True) -> Detection:
    """Read the watermark of several frames of one video: their soft values are summed before decoding, so
    a mark too damaged to read in one frame is still read from several. Falls back to the best single frame
    (with the crop search) when the sum does not decode."""
    frames = list(frames)
    if not frames:
        raise InputError("No frames were given to read the watermark from.")
    total = total1 = None
    means = []
    for f in frames:
        _check_image(f)
        means.append(_block_means(f))
        G, _ = _fold(_phasors(means[-1]))
        total = G if total is None else total + G
    det = _decide(_soft_from_fold(total)[0], frames=len(frames))
    if det.found:
        return det
    for f in frames:
        G, _ = _identity_fold(f, V1_SIDE)
        total1 = G if total1 is None else total1 + G
    old = _decide(_soft_from_fold(total1, key=_KEY_V1)[0], frames=len(frames), mark_format=1)
    if old.found:
        return old
    # a contrast change of the video is the same in every frame (and in the frames' sum)
    graded = _gain_search(means, frames=len(frames))
    if graded is not None or not search:
        return graded if graded is not None else det
    # a crop or rescale is the same in every frame: search a few frames only (spread over the set)
    picks = sorted(set(np.linspace(0, len(frames) - 1, min(3, len(frames))).round().astype(int).tolist()))
    for i in picks:
        d = detect(frames[i])
        if d.found:
            return dataclasses.replace(d, frames=1)
    return det


@functools.lru_cache(maxsize=None)
def _coarse_gains() -> np.ndarray:
    n = int(np.floor(np.log(GAIN_MAX / GAIN_MIN) / np.log(GAIN_COARSE))) + 1
    return GAIN_MIN * GAIN_COARSE ** np.arange(n)


def _gain_folds(means: Sequence[np.ndarray], gains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The folded phasor tiles of the block means divided by each gain, summed over the frames' means:
    ((len(gains), TILE * TILE) complex, blocks per slot summed over the frames). One bincount per frame for
    all gains. Blocks at the ends of the range (mean below GAIN_CLIP or above 255 - GAIN_CLIP) are left out: a
    gain with an offset saturates them (a white wall at 1.25 + 20) and their equal phases only add noise."""
    n, m = len(gains), TILE * TILE
    inv = (np.float32(2 * np.pi / STEP) / np.asarray(gains, np.float32))[:, None]
    G = np.zeros((n, m), np.complex128)
    cnt = np.zeros(m)
    for mean in means:
        nby, nbx = mean.shape
        ty, tx = _grids(nby, nbx)
        keep = ((mean >= GAIN_CLIP) & (mean <= 255.0 - GAIN_CLIP)).ravel()
        slot = (ty[:, None] * TILE + tx[None, :]).ravel()[keep]
        angle = mean.astype(np.float32).ravel()[keep][None, :] * inv                  # (n, kept blocks)
        idx = (np.arange(n)[:, None] * m + slot[None, :]).ravel()
        G += (np.bincount(idx, np.cos(angle).ravel(), minlength=n * m)
              + 1j * np.bincount(idx, np.sin(angle).ravel(), minlength=n * m)).reshape(n, m)
        cnt += np.bincount(slot, minlength=m)
    return G, cnt


def _gain_coherence(G: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """How alike the phases of the blocks of each slot are, per gain (rows of `_gain_folds`): about 1 when they
    are random, 5-15 at the gain of a mark. The mean phasor is removed so flat areas do not count."""
    total = max(float(cnt.sum()), 1.0)
    mean = G.sum(axis=1, keepdims=True) / total
    return (np.abs(G - cnt[None, :] * mean) ** 2).sum(axis=1) / total


def _gain_search(means: Sequence[np.ndarray], **info: Any) -> Detection | None:
    """Read a mark whose luma went through a gain g (contrast, curves) and an offset b: each block mean m became
    g m + b, so dividing the means by g leaves a common offset b / g, which `_common_turn` undoes. g is found
    without the key by the coherence of the repeated slots over GAIN_MIN..GAIN_MAX in GAIN_COARSE steps, then
    in GAIN_FINE steps around the best GAIN_PEAKS local maxima; each refined gain whose coherence reaches
    GAIN_MIN_COHERENCE is read once (BCH + identifier + CRC decide, as for the straight reading), so an image
    without a mark costs no decoding at all. `means`: the block means of one frame, or of the frames of one
    video (their tiles are summed). None when nothing valid is read."""
    coarse = _coarse_gains()
    G, cnt = _gain_folds(means, coarse)
    coh = _gain_coherence(G, cnt)
    left = np.concatenate([[-np.inf], coh[:-1]])
    right = np.concatenate([coh[1:], [-np.inf]])
    peaks = [int(i) for i in np.argsort(coh)[::-1] if coh[i] >= left[i] and coh[i] >= right[i]][:GAIN_PEAKS]
    half = int(np.ceil(np.log(GAIN_COARSE) / np.log(GAIN_FINE)))
    for i in peaks:
        fine = coarse[i] * GAIN_FINE ** np.arange(-half, half + 1)
        Gf, cf = _gain_folds(means, fine)
        coh_f = _gain_coherence(Gf, cf)
        j = int(np.argmax(coh_f))
        if coh_f[j] < GAIN_MIN_COHERENCE:
            continue
        det = _decide(_soft_from_fold(Gf[j].reshape(TILE, TILE))[0], gain=float(fine[j]), **info)
        if det.found:
            return det
    return None


@functools.lru_cache(maxsize=None)
def _shift_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    owner, dither, sync = _layout()
    q = np.arange(TILE)
    s_ = np.arange(TILE)
    iy = (q[None, None, :, None] - s_[:, None, None, None]) % TILE
    ix = (q[None, None, None, :] - s_[None, :, None, None]) % TILE
    iy, ix = np.broadcast_arrays(iy, ix)
    sign = np.where(owner < 0, np.where(sync == 0, 1.0, -1.0), 0.0)
    return iy, ix, np.exp(-2j * np.pi * dither), sign


def _shift_scores(G: np.ndarray) -> np.ndarray:
    """For each tile shift (sy, sx): the sync slots' agreement plus a quarter of the code slots' strength."""
    iy, ix, rot, sign = _shift_tables()
    v = (G[iy, ix] * rot).real                      # (sy, sx, qy, qx)
    code = (sign == 0)
    return (v * sign).sum(axis=(2, 3)) + 0.25 * (np.abs(v) * code).sum(axis=(2, 3))


def _grid_means(box: np.ndarray, oy: int, ox: int) -> np.ndarray:
    nby, nbx = (box.shape[0] - oy) // BLOCK, (box.shape[1] - ox) // BLOCK
    return box[oy:oy + nby * BLOCK:BLOCK, ox:ox + nbx * BLOCK:BLOCK]


def _box(work: np.ndarray, scale: float) -> np.ndarray:
    a = _to_analysis(work, scale)
    return cv2.boxFilter(a, -1, (BLOCK, BLOCK), normalize=True, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)


def _coherences(box: np.ndarray, offsets: Sequence[tuple[int, int]]) -> np.ndarray | None:
    """How alike the phases of the blocks folding onto the same tile position are, for the block grid at each
    (oy, ox) offset of a box-filtered analysis image: about 1 when they are random, ~10 for a well-aligned
    mark. The mean phasor is removed so flat areas do not count. All offsets are computed together (one
    gather, one bincount) on the block rows and columns they share."""
    oy = np.array([o[0] for o in offsets])
    ox = np.array([o[1] for o in offsets])
    nby, nbx = (box.shape[0] - oy.max()) // BLOCK, (box.shape[1] - ox.max()) // BLOCK
    if nby < 2 or nbx < 2:
        return None
    rows = oy[:, None] + np.arange(nby)[None, :] * BLOCK
    cols = ox[:, None] + np.arange(nbx)[None, :] * BLOCK
    angle = box[rows[:, :, None], cols[:, None, :]] * np.float32(2 * np.pi / STEP)     # (n, nby, nbx)
    ty, tx = _grids(nby, nbx)
    slot = (ty[:, None] * TILE + tx[None, :]).ravel()
    n, m = len(offsets), TILE * TILE
    idx = (np.arange(n)[:, None] * m + slot[None, :]).ravel()
    G = (np.bincount(idx, np.cos(angle).ravel(), minlength=n * m)
         + 1j * np.bincount(idx, np.sin(angle).ravel(), minlength=n * m)).reshape(n, m)
    cnt = np.bincount(slot, minlength=m).astype(np.float64)
    total = cnt.sum()
    mean = G.sum(axis=1, keepdims=True) / total
    return (np.abs(G - cnt[None, :] * mean) ** 2).sum(axis=1) / total


_COARSE_OFFSETS = [(oy, ox) for oy in range(0, BLOCK, 2) for ox in range(0, BLOCK, 2)]


def _search(gray: np.ndarray) -> Detection | None:
    """Find the scale, block-grid offset and tile shift of a cropped mark, and decode there.

    Scale and offset are found by the coherence of the repeated slots (no key needed): coarse (scale steps of
    0.8%, offsets of 2 pixels) on a copy shrunk near the analysis size, then refined (0.2%, 1 pixel) around
    the best few. The tile shift is then found from the 17 sync slots."""
    h, w = gray.shape
    k = 1.25 * ANALYSIS_SIDE / min(h, w)
    work = cv2.resize(gray, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA) if k < 1 else gray
    scales = []
    s = 1.0
    while s >= SEARCH_MIN_SCALE - 1e-9:
        scales.append(s)
        s *= SEARCH_SCALE_STEP
    coarse: list[tuple[float, float, int, int]] = []
    for scale in scales:
        coh = _coherences(_box(work, scale), _COARSE_OFFSETS)
        if coh is not None:
            coarse.extend((float(c), scale, oy, ox) for c, (oy, ox) in zip(coh, _COARSE_OFFSETS))
    if not coarse:
        return None
    coarse.sort(key=lambda c: -c[0])
    seen: set[tuple[float, int, int]] = set()
    for _, scale0, oy0, ox0 in coarse[:3]:
        best = None
        near = [(oy, ox) for oy in range(max(0, oy0 - 1), oy0 + 2) for ox in range(max(0, ox0 - 1), ox0 + 2)]
        for scale in scale0 * np.array([0.996, 0.998, 1.0, 1.002, 1.004]):
            coh = _coherences(_box(work, float(scale)), near)
            if coh is None:
                continue
            i = int(np.argmax(coh))
            if best is None or coh[i] > best[0]:
                best = (float(coh[i]), float(scale), near[i][0], near[i][1])
        if best is None:
            continue
        _, scale, oy, ox = best
        key = (round(scale, 4), oy, ox)
        if key in seen:
            continue
        seen.add(key)
        # final read on the full-resolution frame at this scale and offset (offset in analysis pixels of the
        # working copy; the same analysis size, so it carries over)
        box = _box(gray, scale) if work is not gray else _box(work, scale)
        G, _ = _fold(_phasors(_grid_means(box, oy, ox)))
        scores = _shift_scores(G)
        for flat in np.argsort(scores.ravel())[::-1][:2]:
            sy, sx = divmod(int(flat), TILE)
            det = _decide(_soft_from_fold(G, (sy, sx))[0], scale=scale, searched=True)
            if det.found:
                return det
    return None


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of `image` against `reference` (both uint8, same shape)."""
    mse = float(np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)
