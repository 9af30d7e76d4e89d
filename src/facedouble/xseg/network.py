"""The XSeg network: a small U-Net that maps an aligned face to a face mask (what is face, not hand, hair or
microphone), and its files in the model folder.

Input BCHW float32 RGB [0, 1] at `resolution` (128 by default); output B1HW logits at the same size. Four
down-sampling stages of two 3x3 convolutions (channels `base` x 1, 2, 4, 6, 8), batch norm and leaky ReLU,
bilinear up-sampling with skip connections. At 128 px and base 8 it has 0.23 M parameters and costs
~0.1 GMAC per face forward: a step of 8 faces took 1.5 s on one free core here (base 16: 0.92 M parameters,
~4x the time), so a few hundred steps are a few CPU-minutes.

Files (model folder): `xseg.safetensors` (weights, `opt.*` Adam moments), `xseg.json` (options, iteration,
loss history). Loading never unpickles.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError

WEIGHTS = "xseg.safetensors"
STATE = "xseg.json"
PREVIEW = "xseg_preview.jpg"


def _torch():
    import torch
    import torch.nn as nn

    return torch, nn


def build(resolution: int = 128, base: int = 8):
    """A fresh XSeg U-Net (torch.nn.Module)."""
    torch, nn = _torch()
    F = torch.nn.functional
    widths = [base, base * 2, base * 4, base * 6, base * 8]

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))

    class XSegNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.resolution = resolution
            self.base = base
            self.down = nn.ModuleList([block(3 if i == 0 else widths[i - 1], w) for i, w in enumerate(widths)])
            self.up = nn.ModuleList([block(widths[i + 1] + widths[i], widths[i]) for i in range(len(widths) - 1)])
            self.head = nn.Conv2d(widths[0], 1, 1)

        def forward(self, x):
            x = (x - 0.5) * 2.0
            skips = []
            for i, blk in enumerate(self.down):
                if i:
                    x = F.max_pool2d(x, 2)
                x = blk(x)
                skips.append(x)
            for i in range(len(self.up) - 1, -1, -1):
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                x = self.up[i](torch.cat([x, skips[i]], 1))
            return self.head(x)

    return XSegNet()


def prepare(images: Sequence[np.ndarray], resolution: int):
    """RGB uint8 (or float32 [0, 1]) HWC faces of any size -> BCHW float32 tensor at `resolution`."""
    import cv2
    import torch

    batch = np.empty((len(images), resolution, resolution, 3), np.float32)
    for i, img in enumerate(images):
        a = np.asarray(img)
        if a.shape[0] != resolution or a.shape[1] != resolution:
            a = cv2.resize(a, (resolution, resolution),
                           interpolation=cv2.INTER_AREA if a.shape[0] > resolution else cv2.INTER_LINEAR)
        batch[i] = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


class XSegModel:
    """A trained XSeg network ready to predict: `model(faces)` -> (H, W) float32 [0, 1] masks at each face's
    own size. `model_id` names the weights (iteration and hash), so applied masks know their model."""

    def __init__(self, net, model_id: str, batch_size: int = 16) -> None:
        self.net = net.eval()
        self.resolution = int(net.resolution)
        self.model_id = model_id
        self.batch_size = batch_size

    def predict_small(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """(N, res, res) float32 masks at the network's resolution."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(faces), self.batch_size):
                x = prepare(faces[i:i + self.batch_size], self.resolution)
                out.append(torch.sigmoid(self.net(x))[:, 0].numpy())
        return np.concatenate(out, 0) if out else np.zeros((0, self.resolution, self.resolution), np.float32)

    def __call__(self, faces: Sequence[np.ndarray]) -> list[np.ndarray]:
        import cv2

        small = self.predict_small(faces)
        res = []
        for face, m in zip(faces, small):
            h, w = face.shape[:2]
            res.append(m if (h, w) == m.shape else cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR))
        return res


def read_state(folder: Path) -> dict | None:
    path = Path(folder) / STATE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{path} is not readable JSON ({e}); delete it and {WEIGHTS} to train XSeg afresh.") from None
    if not isinstance(state, dict) or not isinstance(state.get("iteration"), int) \
            or not isinstance(state.get("resolution"), int) or not isinstance(state.get("base"), int):
        raise ModelError(f"{path} is not an XSeg state file; delete it and {WEIGHTS} to train XSeg afresh.")
    return state


def model_id(folder: Path) -> str:
    state = read_state(folder) or {}
    digest = hashlib.sha1((Path(folder) / WEIGHTS).read_bytes()).hexdigest()[:12]
    return f"xseg-{state.get('iteration', 0)}-{digest}"


def load_net(folder: Path):
    """(net, state) of the XSeg model in `folder`; ModelError when there is none or it is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    state = read_state(folder)
    weights = folder / WEIGHTS
    if state is None or not weights.is_file():
        raise ModelError(f"No XSeg model in {folder}; label some faces and run `facedouble xseg train` first.")
    if not (16 <= state["resolution"] <= 512 and state["resolution"] % 16 == 0 and 4 <= state["base"] <= 64):
        raise ModelError(f"{folder / STATE} has an XSeg resolution or width out of range; delete it and retrain.")
    net = build(state["resolution"], state["base"])
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{weights} is damaged ({e}); delete it and {STATE} and train XSeg again.") from None
    params = {k: v for k, v in tensors.items() if not k.startswith("opt.")}
    try:
        net.load_state_dict(params)
    except RuntimeError:
        raise ModelError(f"{weights} does not match its options in {STATE}; delete both and train XSeg again.") from None
    for v in net.state_dict().values():
        if v.is_floating_point() and not bool(v.isfinite().all()):
            raise ModelError(f"{weights} holds non-finite weights; delete it and {STATE} and train XSeg again.")
    return net, state, tensors


def load_xseg(folder: str | Path) -> XSegModel:
    """The trained XSeg model of a model folder, ready to predict."""
    net, _, _ = load_net(Path(folder))
    return XSegModel(net, model_id(Path(folder)))
