"""Where merge output is marked: THE one place. Every image the merge writes (merged frames, masks, alpha PNGs,
previews) passes through `mark_output` (the invisible AI-generated watermark) and `sign_output` / `write_marked`
(C2PA content credentials); neither has an off switch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import MergeConfig
from ..errors import ProvenanceError
from ..faces.container import atomic_write_bytes, encode_image
from ..imagefile import encode_png


def is_matte(cfg: MergeConfig) -> bool:
    """Whether the frames `cfg` makes are mattes (`--mode raw --raw mask`), marked with `matte=True`."""
    return cfg.mode == "raw" and cfg.raw == "mask"


def new_run_id() -> str:
    """A provenance run id for one merge run (from facedouble.provenance)."""
    try:
        from ..provenance import new_run_id as _new
    except ImportError:
        raise ProvenanceError("The provenance module (facedouble.provenance) is missing, so merged frames cannot be "
                              "marked as AI-generated; reinstall facedouble.") from None
    return _new()


def mark_output(image: np.ndarray, run_id: str, *, matte: bool = False) -> np.ndarray:
    """Mark an output image (RGB uint8 HWC) as AI-generated with the invisible provenance watermark. `matte`: the
    image is a mask a compositor reads as opacity (`--mode raw --raw mask`); it is marked in its opaque part only,
    so that what is transparent stays exactly 0.

    The merge writes no image that has not been through this function; there is no option to skip it."""
    try:
        from ..provenance import mark_frame, mark_matte
    except ImportError:
        raise ProvenanceError("The provenance module (facedouble.provenance) is missing, so merged frames cannot be "
                              "marked as AI-generated; reinstall facedouble.") from None
    out = (mark_matte if matte else mark_frame)(np.ascontiguousarray(image), run_id)
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




def write_marked(path: Path, image: np.ndarray, run_id: str, *, alpha: np.ndarray | None = None,
                 png_compression: int = 1, jpeg_quality: int = 95, signer=None, matte: bool = False) -> None:
    """Mark an RGB uint8 image as AI-generated (`mark_output`; `matte` as there), sign it (`sign_output`; `signer`
    from `output_signer`) and write it atomically (PNG or JPEG by the suffix; with `alpha` (H, W) uint8 an RGBA PNG)."""
    import cv2

    path = Path(path)
    marked = mark_output(image, run_id, matte=matte)
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
