"""Provenance marks on everything facedouble makes (DESIGN.md section 6). None of them can be turned off.

What the merger and the video build call:
  * `new_run_id()`: the id of one merge run (8 hex digits = the 32 bits the watermark carries);
  * `mark_frame(image, run_id)`: the invisible watermark, on every frame the merger writes;
  * `mark_matte(image, run_id)`: the same mark on a matte (`merge --mode raw --raw mask`), in its opaque part;
  * `container_metadata(run_id)`: the AI-generated tag for the container of a result video;
  * `sign_result(path, parent, training_hash, run_id)`: C2PA content credentials on a result file;
  * `image_signer(run_id, cert=, key=)`: signs each image the merger writes (encoded bytes, in memory), with
    an organisation's certificate (`--sign-cert/--sign-key`, checked at once) or the local one;
  * `training_hash(src_aligned, dst_aligned)`: the fingerprint of the training sets for `sign_result`.
Reading them back: `facedouble.provenance.verify.verify_file` (the `facedouble verify` command).

Modules: watermark.py (pure functions on arrays), credentials.py (C2PA), tag.py (container metadata),
verify.py (the verify stage).
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from pathlib import Path

import numpy as np

from . import watermark
from .tag import container_metadata, read_tag

__all__ = ["new_run_id", "watermark_run_id", "mark_frame", "mark_matte", "container_metadata", "read_tag", "sign_result",
           "image_signer", "training_hash"]

_HEX8 = re.compile(r"^[0-9a-f]{8}$")


def new_run_id() -> str:
    """A new run id: 8 random lowercase hex digits (32 bits, what the watermark carries)."""
    return secrets.token_hex(4)


def watermark_run_id(run_id: str) -> int:
    """The 32-bit number the watermark carries for `run_id`: the id itself when it is 8 hex digits (as
    `new_run_id` makes), else the first 32 bits of its SHA-256 (shown by verify as 8 hex digits)."""
    text = str(run_id).strip().lower()
    if _HEX8.match(text):
        return int(text, 16)
    return int(hashlib.sha256(str(run_id).encode("utf-8")).hexdigest()[:8], 16)


@functools.lru_cache(maxsize=16)
def _payload(run_id: str) -> np.ndarray:
    bits = watermark.make_payload(watermark_run_id(run_id))
    bits.setflags(write=False)
    return bits


def mark_frame(image: np.ndarray, run_id: str) -> np.ndarray:
    """A copy of the RGB (or RGBA) uint8 HWC `image` carrying the invisible watermark of `run_id`
    (~5-10 ms for a 720p frame)."""
    return watermark.embed(image, _payload(str(run_id)))


def mark_matte(image: np.ndarray, run_id: str) -> np.ndarray:
    """A copy of an RGB uint8 matte (a mask written as an image: 0 outside, 255 inside) carrying the invisible
    watermark of `run_id` in its non-transparent part only, so that its transparent part stays exactly 0
    (`watermark.embed_matte`)."""
    return watermark.embed_matte(image, _payload(str(run_id)))


def image_signer(run_id: str, *, cert: str | Path | None = None, key: str | Path | None = None,
                 training_hash: str | None = None):
    """The `credentials.ImageSigner` for one run's images: `cert`/`key` (PEM chain and private key, both or
    neither) or the local certificate. The pair is checked here (ProvenanceError in one sentence when it is
    unusable), so call it before any work. The same signer comes back for the same arguments."""
    from .credentials import signing_identity

    identity = signing_identity(cert, key)  # checked every call (cached by the files' size and time)
    return _image_signer(str(run_id), None if cert is None else str(cert), None if key is None else str(key),
                         training_hash, identity)


@functools.lru_cache(maxsize=8)
def _image_signer(run_id: str, cert: str | None, key: str | None, training_hash: str | None, identity):
    from .credentials import ImageSigner

    return ImageSigner(identity, run_id, training_hash)


def sign_result(path: str | Path, parent: str | Path | None, training_hash: str | None, run_id: str,
                *, title: str | None = None, cert: str | Path | None = None, key: str | Path | None = None) -> None:
    """Embed signed C2PA content credentials in a result (MP4/MOV/AVI video, PNG/JPEG image), in place and
    atomically. `parent`: the dst video; `training_hash`: from `training_hash(...)`; `title`: the name to
    record (default: the file's name, useful when signing a temporary file before its final rename); `cert`/`key`:
    an organisation's PEM certificate chain and private key (default: the local certificate)."""
    from .credentials import sign_file

    sign_file(Path(path), parent=Path(parent) if parent is not None else None, training_hash=training_hash,
              run_id=str(run_id), title=title, cert=Path(cert) if cert is not None else None,
              key=Path(key) if key is not None else None)


def training_hash(*folders: str | Path) -> str:
    """SHA-256 of the sorted names and sizes of the files in the given folders (src and dst aligned faces)."""
    from .credentials import training_hash as _hash

    return _hash(*folders)
