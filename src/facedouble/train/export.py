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
from .checkpoint import ellipse_mask, load_swapper

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
