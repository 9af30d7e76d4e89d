"""ONNX export of a trained model, for other runtimes (onnxruntime, TensorRT, ...).

The graph takes aligned dst faces as NHWC float32 in [0, 1] (RGB, the model's resolution and face type;
any batch size) and returns the swapped faces (NHWC float32 [0, 1]) and the masks (N x H x W x 1). It is
the float32 network of `Swapper.swap`, so onnxruntime and PyTorch agree to float rounding.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..files import atomic_path
from .swapper import ellipse_mask, load_swapper

OPSET = 17


class _NHWCSwap:
    """Wraps a model's `swap` with NHWC input and outputs (built lazily to keep torch out of imports)."""

    @staticmethod
    def build(model, resolution: int, learn_mask: bool):
        import torch

        class NHWCSwap(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.register_buffer("fallback_mask", torch.from_numpy(ellipse_mask(resolution))[None, :, :, None])

            def forward(self, faces):
                face, mask = self.model.swap(faces.permute(0, 3, 1, 2))
                face = face.permute(0, 2, 3, 1)
                if mask is None:
                    mask = self.fallback_mask.expand(faces.shape[0], -1, -1, -1)
                else:
                    mask = mask.permute(0, 2, 3, 1)
                return face, mask

        return NHWCSwap().eval()


def export_onnx(model_dir: Path, out: Path | None = None, name: str | None = None) -> Path:
    """Write the trained model in `model_dir` as ONNX to `out` (default model/NAME.onnx); returns the path."""
    import torch

    swapper = load_swapper(Path(model_dir), device="cpu", name=name, amp=False)
    out = Path(out) if out else Path(model_dir) / f"{swapper.name}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    module = _NHWCSwap.build(swapper.model.float(), swapper.resolution, swapper.learn_mask)
    example = torch.rand(1, swapper.resolution, swapper.resolution, 3)
    try:
        with atomic_path(out) as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
                torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                                  input_names=["dst_face"], output_names=["swapped_face", "mask"],
                                  dynamic_axes={"dst_face": {0: "batch"}, "swapped_face": {0: "batch"},
                                                "mask": {0: "batch"}})
            import onnx

            onnx.checker.check_model(str(tmp))
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - name the cause in one sentence
        raise ModelError(f"Exporting {swapper.name} to ONNX failed ({type(e).__name__}: {e}).") from None
    return out


def run_onnx(path: Path, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run an exported model with onnxruntime on NHWC float32 faces; returns (faces, masks)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    face, mask = session.run(None, {"dst_face": np.ascontiguousarray(faces, dtype=np.float32)})
    return face, mask


# -- DFM: the live companion app's model file --------------------------------------------------------------
# DFM = ONNX with input `in_face:0` float32 NHWC [N, R, R, 3] in [0, 1], BGR, a face cut like the original
# tool's whole-face type (faces.align.dfl_face_matrix), and outputs in this order: `out_face_mask:0`
# [N, R, R, 1] (dst's face mask), `out_celeb_face:0` [N, R, R, 3] BGR (the swapped face) and
# `out_celeb_face_mask:0` [N, R, R, 1] (its mask). A facedouble model of any face type is converted: the
# graph resamples the whole-face crop to the model's own crop (a fixed similarity, `dfl_to_face_matrix`),
# runs the model, and resamples its face and masks back (the masks are 0 where the model's crop does not
# reach). R is chosen so that one model pixel is about one DFM pixel. An amp model's DFM has a second input,
# `morph_value:0` float32 [1]: 0 gives dst's own face, 1 the full swap (models/amp.py).
DFM_INPUT = "in_face:0"
DFM_MORPH = "morph_value:0"
DFM_OUTPUTS = ("out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0")


def dfm_resolution(face_type: str, resolution: int) -> int:
    """The DFM crop size for a model of `face_type` and `resolution` (a multiple of 16, 64..640)."""
    from ..faces.align import dfl_to_face_matrix, matrix_scale

    per_pixel = matrix_scale(dfl_to_face_matrix(face_type, resolution, resolution))  # model px per DFM px, same size
    return int(min(640, max(64, round(resolution * per_pixel / 16) * 16)))


def _sampling_grid(m: np.ndarray, out_size: int, in_size: int) -> np.ndarray:
    """(1, out, out, 2) grid_sample coordinates (align_corners=False) reading an `in_size` image through the
    2x3 pixel transform `m` (output pixel -> input pixel, pixel centres at integers)."""
    ys, xs = np.mgrid[0:out_size, 0:out_size].astype(np.float64)
    px = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    py = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    grid = np.stack([(2 * px + 1) / in_size - 1, (2 * py + 1) / in_size - 1], axis=-1)
    return grid[None].astype(np.float32)


def swap_parts(model, faces, morph=None):
    """(swapped face, its mask, dst's own mask) for BCHW RGB faces; masks None without a learned mask.
    df/vg: the src decoder's face and mask, the dst decoder's mask; liae: the [ab, ab] decoding and the
    mask of [b, ab]; amp: the decoding of inter_src * morph + inter_dst * (1 - morph) (morph None = 1) and
    the mask of inter_dst; any other model: its `swap` (the product mask for both masks)."""
    import torch

    if getattr(model, "morphable", False):
        return model.morph_parts(faces, 1.0 if morph is None else morph)
    if hasattr(model, "decoder_src") and hasattr(model, "decoder_dst"):
        z = model.inter(model.encoder(faces))
        face, mask, _ = model.decoder_src(z)
        return face, mask, model.decoder_dst.mask_only(z)
    if hasattr(model, "inter_ab") and hasattr(model, "inter_b"):
        e = model.encoder(faces)
        ab, b = model.inter_ab(e), model.inter_b(e)
        face, mask, _ = model.decoder(torch.cat([ab, ab], 1))
        return face, mask, model.decoder.mask_only(torch.cat([b, ab], 1))
    face, mask = model.swap(faces)
    return face, mask, mask


class _DFMGraph:
    """The DFM wrapper around a model (built lazily to keep torch out of imports)."""

    @staticmethod
    def build(model, face_type: str, resolution: int, dfm_size: int):
        import torch
        import torch.nn.functional as F

        from ..faces.align import dfl_to_face_matrix, invert

        to_model = dfl_to_face_matrix(face_type, resolution, dfm_size)      # DFM px -> model px
        grid_in = _sampling_grid(invert(to_model), resolution, dfm_size)   # model px -> DFM px
        grid_out = _sampling_grid(to_model, dfm_size, resolution)          # DFM px -> model px
        fallback = ellipse_mask(resolution)

        class DFMSwap(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.register_buffer("grid_in", torch.from_numpy(grid_in))
                self.register_buffer("grid_out", torch.from_numpy(grid_out))
                self.register_buffer("fallback_mask", torch.from_numpy(fallback)[None, None])

            def forward(self, in_face, morph_value=None):
                n = in_face.shape[0]
                morph = None if morph_value is None else morph_value.reshape(1, 1, 1, 1).clamp(0, 1)
                x = in_face.flip(-1).permute(0, 3, 1, 2)                      # BGR NHWC -> RGB NCHW
                x = F.grid_sample(x, self.grid_in.expand(n, -1, -1, -1), mode="bilinear",
                                  padding_mode="border", align_corners=False)
                face, celeb_mask, dst_mask = swap_parts(self.model, x, morph)
                if celeb_mask is None:
                    celeb_mask = self.fallback_mask.expand(n, -1, -1, -1)
                if dst_mask is None:
                    dst_mask = self.fallback_mask.expand(n, -1, -1, -1)
                grid = self.grid_out.expand(n, -1, -1, -1)
                face = F.grid_sample(face, grid, mode="bilinear", padding_mode="border", align_corners=False)
                masks = F.grid_sample(torch.cat([dst_mask, celeb_mask], 1), grid, mode="bilinear",
                                      padding_mode="zeros", align_corners=False)
                face = face.clamp(0, 1).flip(1).permute(0, 2, 3, 1)           # RGB NCHW -> BGR NHWC
                masks = masks.clamp(0, 1).permute(0, 2, 3, 1)
                return masks[..., 0:1], face, masks[..., 1:2]

        return DFMSwap().eval()


def export_dfm(model_dir: Path, out: Path | None = None, name: str | None = None) -> Path:
    """Write the trained model in `model_dir` as a DFM file (see above) to `out` (default model/NAME.dfm)."""
    import torch

    swapper = load_swapper(Path(model_dir), device="cpu", name=name, amp=False)
    out = Path(out) if out else Path(model_dir) / f"{swapper.name}.dfm"
    if out.suffix.lower() != ".dfm":
        raise ModelError(f"{out} should end in .dfm (the apps that load DFM models look for that suffix); "
                         f"give --out NAME.dfm.")
    size = dfm_resolution(swapper.face_type, swapper.resolution)
    module = _DFMGraph.build(swapper.model.float(), swapper.face_type, swapper.resolution, size)
    example = (torch.rand(1, size, size, 3),)
    inputs = [DFM_INPUT]
    if swapper.morphable:  # amp: the morph factor is the graph's second input, float32 [1], 0 = dst .. 1 = src
        example += (torch.tensor([0.5]),)
        inputs.append(DFM_MORPH)
    _export(module, example, out, swapper.name, inputs, list(DFM_OUTPUTS))
    return out


def _export(module, example, out: Path, name: str, inputs: list[str], outputs: list[str]) -> None:
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out) as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
                torch.onnx.export(module, example if isinstance(example, tuple) else (example,), str(tmp),
                                  dynamo=False, opset_version=OPSET, input_names=inputs, output_names=outputs,
                                  dynamic_axes={n: {0: "batch"} for n in inputs + outputs if n != DFM_MORPH})
            import onnx

            onnx.checker.check_model(str(tmp))
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - name the cause in one sentence
        raise ModelError(f"Exporting {name} to {out.suffix.lstrip('.').upper() or 'ONNX'} failed "
                         f"({type(e).__name__}: {e}).") from None
