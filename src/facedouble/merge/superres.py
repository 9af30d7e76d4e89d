"""Super resolution of the predicted face: a small face-detail network trained on the src faceset itself.

No pretrained super-resolution network can be downloaded here, so `--super-resolution` learns one: pairs
of (the swap model's reconstruction of a src face, or without a model the face downscaled 2x; that src face)
teach a small convolutional net (ESPCN-style: it works at the low resolution and ends in a pixel shuffle) the
residual between a bicubic upscale and the real face's detail, by an L1 loss and a texture loss (as much fine
detail in each small cell as the real face has there). Since the face put in is src's, the net learns exactly the
detail that face has (eyelashes, the edges of lids, lips and nostrils, skin texture). Three to seven minutes on a
CPU; saved in model/superres/ beside the swap model.

Images are float32 RGB HWC [0, 1] at the boundary; BCHW tensors inside.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ModelError
from .color import luma

SCALE = 2


def _torch():
    import torch

    return torch


# The network's shape: `channels` wide, `layers` 3x3 convolutions after a 5x5 one, at the low resolution.
# 64 x 6 sees 19 px of the input around each pixel (an eye at 96 px is ~15 px wide), enough to redraw an eye's
# edges and lashes; the first network (32 x 3, 13 px) only sharpened edges. Saved nets record their shape.
CHANNELS, LAYERS = 64, 6


def _autocast():
    """bf16 autocast on CPUs with native bf16 (about twice as fast there), else nothing."""
    import contextlib

    torch = _torch()
    from ..device import cpu_has_bf16

    if cpu_has_bf16():
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext


def build_net(channels: int = CHANNELS, layers: int = LAYERS):
    """The face-detail network (x2): LR (B, 3, h, w) -> HR (B, 3, 2h, 2w), a bicubic upscale plus a learned
    residual (ESPCN-style: convolutions at the low resolution, a pixel shuffle at the end)."""
    torch = _torch()
    nn = torch.nn

    class FaceDetailNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            body = [nn.Conv2d(3, channels, 5, padding=2), nn.ReLU(inplace=True)]
            for _ in range(layers):
                body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
            body += [nn.Conv2d(channels, 3 * SCALE * SCALE, 3, padding=1), nn.PixelShuffle(SCALE)]
            self.body = nn.Sequential(*body)

        def forward(self, lr):  # noqa: D401 - torch convention
            up = torch.nn.functional.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)
            return up + self.body(lr - 0.5)

    return FaceDetailNet()


def bicubic_up(face: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """(h, w, 3) float32 -> (scale h, scale w, 3) float32 by bicubic interpolation (the baseline)."""
    import cv2

    h, w = face.shape[:2]
    return np.clip(cv2.resize(face, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC), 0, 1)


def downscale(face: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """(H, W, 3) float32 -> (H / scale, W / scale, 3) float32 by area averaging (how LR inputs are made)."""
    import cv2

    h, w = face.shape[:2]
    return cv2.resize(face, (w // scale, h // scale), interpolation=cv2.INTER_AREA)


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (float32 [0, 1] HWC): a standard focus measure."""
    import cv2

    return float(cv2.Laplacian(luma(image), cv2.CV_32F).var())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two float32 [0, 1] images."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


@dataclass
class FaceDetail:
    """A trained face-detail network for faces of `size` pixels (output side) and its held-out figures."""

    net: object
    size: int
    metrics: dict
    channels: int = CHANNELS
    layers: int = LAYERS

    def upscale(self, faces: Sequence[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """Upscale faces x2.

        Args:
            faces: (h, w, 3) float32 [0, 1] each (h = w = size / 2 normally; any size works).
        Returns:
            (2h, 2w, 3) float32 [0, 1] each.
        """
        torch = _torch()
        out: list[np.ndarray] = []
        self.net.eval()  # type: ignore[attr-defined]
        with torch.inference_mode():
            for i in range(0, len(faces), batch_size):
                chunk = [np.ascontiguousarray(f, np.float32) for f in faces[i:i + batch_size]]
                x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2)
                with _autocast()():
                    y = self.net(x).float().clamp_(0, 1).permute(0, 2, 3, 1).numpy()  # type: ignore[operator]
                out.extend(np.ascontiguousarray(y[j]) for j in range(len(chunk)))
        return out

    # -- files -----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        from ..config import write_json_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(tmp))  # type: ignore[attr-defined]
        tmp.replace(path)
        write_json_atomic(path.with_suffix(".json"), {"size": self.size, "scale": SCALE, "metrics": self.metrics,
                                                      "channels": self.channels, "layers": self.layers})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FaceDetail":
        from safetensors.torch import load_file

        path = Path(path)
        try:
            info = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            shape = int(info.get("channels", 32)), int(info.get("layers", 3))  # the first nets were 32 x 3
            net = build_net(*shape)
            net.load_state_dict(load_file(str(path)))
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise ModelError(f"Face-detail network {path} is unreadable ({e}); delete it so merge trains a new one.") from None
        return cls(net=net, size=int(info["size"]), metrics=dict(info.get("metrics", {})), channels=shape[0],
                   layers=shape[1])


def _as_float(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f)
    return f.astype(np.float32) / 255.0 if f.dtype == np.uint8 else f.astype(np.float32)


def degrade(face: np.ndarray, rng: np.random.Generator, max_sigma: float = 1.2) -> np.ndarray:
    """A low-resolution input made softer still: Gaussian blur of a random sigma in [0, max_sigma] px, so the
    network also restores faces blurrier than its training inputs (a young model's swaps are).

    Args:
        face: (h, w, 3) float32 [0, 1].
    Returns:
        (h, w, 3) float32 [0, 1].
    """
    import cv2

    sigma = float(rng.uniform(0.0, max_sigma))
    return face if sigma < 0.2 else cv2.GaussianBlur(face, (0, 0), sigma)


# Optimiser steps of the network (batches of 16 patches; about 200 s on two idle cores with bf16). Measured on
# liae192's CPU-hours (docs/quality.md, sessions 15-16): the merged face's detail without the network / after
# 1,200 / 4,000 / 8,000 steps: 0.466 / 0.450 / 0.640 / 0.807 (session 13's hour), 0.527 / 0.576 / 0.621 / 0.684
# (the second clip's hour), with landmarks, identity and eyes kept.
STEPS = 8000
# The time cap (s): a busy or slower CPU stops early, its learning rate annealed all the same (`learning_rate`);
# two cores at half this machine's speed still finish.
SECONDS = 420.0

# `--super-resolution auto` turns the network on from this many training iterations of the swap model (its
# `iteration`; batch 8). Measured on liae192 (docs/quality.md, sessions 15-16), the merged face's detail without /
# with a network learned by L1 alone: 0.384 / 0.362 at 1,300 iterations and 0.255 / 0.219 at 1,544 (it smooths: the
# model's faces are still too far from hers for the detail it learned to fit), 0.308 / 0.331 at 2,800, 0.360 / 0.462
# at 3,846, 0.45-0.53 / 0.62-0.87 at 8,343-9,550; so it waited for 3,000 iterations. With the texture loss
# (`TEXTURE_POWER`, session 19) it sharpens younger faces too, and at the young power (`texture_power_for`, session 20)
# without drawing contours where they have blobs: on five models of 554-681 iterations (a CPU's ten minutes without
# bf16) detail 0.20-0.35 -> 0.35-0.64, nearer src kept or raised (0.75-1.00 -> 0.81-1.00), landmarks and flicker
# kept. Below 500 a model has barely a face to sharpen.
AUTO_MIN_ITERATIONS = 500

# The weight of the texture loss (train/losses.py `texture_loss`: as much 1-4 px detail in each 8 px cell as her real
# face has there, wherever its edges lie) beside the L1 loss. With L1 alone the network learns the mean of the
# detail that a soft input may hide, which is no detail: on a CPU-hour model without bf16 (2,975 iterations) it made
# held-back faces smoother than bicubic (Laplacian variance 1.2e-4 against 2.0e-4; hers 26e-4). Measured on that
# model (docs/quality.md, session 19), the merged face's detail / distance to src / flicker with power 0, 0.5, 1:
# 0.422 / 0.503 / 0.85, 1.11 / 0.506 / 0.90, 1.81 / 0.488 / 1.00 (1: her lids, lashes, irises and lip line drawn,
# every hour target passed; a faint horizontal grain on the skin). A patch discriminator instead (GAN, 0.02) drew
# a grainy skin and glints (detail 2.63, flicker 1.13); the texture matched per direction, cross-hatching. Patches
# also turned by 90 degrees drew a checkered eye (its pixel shuffle's 2x2 phases no longer fit one layout), and
# inputs without the extra blur (`degrade`) kept the striated eyes of the second clip's hour model (session 20).
TEXTURE_POWER = 1.0

# A younger model's network learns with less of it: a young model's eyes are dark blobs, and at power 1 the network
# draws them as stacks of parallel contours (554 and 1,500 iterations, session 19); at 0.3 it firms the lids, brows
# and lips with at most two or three faint lines in an eye (session 20; 0.6 drew the contours again at 1,500). The
# full power from FULL_TEXTURE_ITERATIONS, where it was measured clean.
YOUNG_TEXTURE_POWER = 0.3
FULL_TEXTURE_ITERATIONS = 3000


# The texture power inside her eyes (`eye_weights`: the lids, lashes and the skin just around them) at any age. At
# the full power an hour model's network drew each eye of the second clip as a stack of parallel contours (its
# swaps' eyes are softer and less certain than the reconstructions it learns from: her clip has her eyes shut,
# downcast and open, his are narrow). Measured on that clip's two hour models (docs/quality.md, session 22), the
# eyes at 0.3 and the rest at 1: one lid line, a dark iris and a glint where the stripes were, less grain on the
# skin; detail 2.50 -> 1.33 and 2.24 -> 1.39 of dst's (target 0.70), distance to src 0.496 -> 0.504 and
# 0.486 -> 0.490, flicker 1.06 -> 0.96 and 1.03 -> 1.01, landmarks and eye opening kept. A young model's network
# has 0.3 all over.
EYE_TEXTURE_POWER = YOUNG_TEXTURE_POWER

# The grain loss (train/losses.py `grain_loss`: no cell's fine detail stronger in one direction than her real
# face's there) beside the texture loss at full power, as a share of the texture power (so 0.3 of it in the eyes).
# At full power the network drew horizontal scanlines over cheeks and forehead: the merged cheeks' fine detail
# changed 1.77x (sample pair) and 1.65x (second clip) as much row to row as column to column, dst's 1.00. Measured
# on the two clips' hour models on a CPU without bf16 (docs/quality.md, session 23), grain power 0 / 0.5 / 1:
# cheeks 1.77 / 1.53 / 1.58 and 1.65 / 1.40 / 1.32; detail 1.34 / 0.81 / 0.72 and 1.19 / 0.93 / 0.79 of dst's;
# distance to src 0.497 / 0.497 / 0.494 and 0.509 / 0.499 / 0.509; flicker 1.03 / 0.97 / 0.99 and 0.97 / 0.96 /
# 0.92; the eyes kept their lid line and iris. 0.5: the skin without most of the lines, every hour target passed
# on both clips with room in detail. A young model's network (`grain_power_for`) learns without it: on a ten-minute
# model it took detail 0.39 -> 0.30 and nearer src 0.92 -> 0.86, where the young power draws little grain.
GRAIN_POWER = 0.5


def texture_power_for(iteration: int | None) -> float:
    """The texture power of the face-detail network of a swap model trained `iteration` iterations: `TEXTURE_POWER`
    from `FULL_TEXTURE_ITERATIONS` on (and for a model of unknown age), `YOUNG_TEXTURE_POWER` before."""
    if iteration is None or int(iteration) >= FULL_TEXTURE_ITERATIONS:
        return TEXTURE_POWER
    return YOUNG_TEXTURE_POWER


def grain_power_for(iteration: int | None) -> float:
    """The grain loss's share (of the texture power) for a swap model trained `iteration` iterations: `GRAIN_POWER`
    where the network has the full texture power (`texture_power_for`), none for a young model's."""
    return GRAIN_POWER if texture_power_for(iteration) == TEXTURE_POWER else 0.0


def eye_power_for(iteration: int | None) -> float:
    """The texture power inside the eyes for a swap model trained `iteration` iterations: `EYE_TEXTURE_POWER`, or
    less where `texture_power_for` gives less."""
    return min(EYE_TEXTURE_POWER, texture_power_for(iteration))


def eye_weights(landmarks: np.ndarray, size: int, ratio: float) -> np.ndarray:
    """The texture loss's weight over a face of `size` px: 1, and `ratio` inside the eyes (`regions.eyes_mask` of
    its 68 `landmarks` in that face's pixels), the edge softened by a Gaussian of size / 64 px.

    Returns:
        (size, size) float32 in [min(ratio, 1), 1].
    """
    import cv2

    from ..faces.regions import eyes_mask

    eyes = cv2.GaussianBlur(eyes_mask(landmarks, size), (0, 0), size / 64)
    return (1.0 - eyes * (1.0 - ratio)).astype(np.float32)


def auto_wanted(iteration: int | None) -> bool:
    """Whether `--super-resolution auto` uses the network for a swap model trained `iteration` iterations (None:
    unknown, e.g. a DFM file: off, since the measurements above are of models whose age is known)."""
    return iteration is not None and int(iteration) >= AUTO_MIN_ITERATIONS


# px at the high resolution: the Gaussian that splits a face into its colour and shading (below) and its detail
# (above: the 1-4 px edges of lashes, lids, nostrils and lips that the detail figure measures).
COLOUR_SIGMA = 3.0


def detail_target(face: np.ndarray, low: np.ndarray, sigma: float = COLOUR_SIGMA) -> np.ndarray:
    """What the network learns to make of `low`: the real face's detail over the input's own colour and shading,
    i.e. `face - G(face) + G(bicubic_up(low))` for a Gaussian G of `sigma` px. A model's reconstruction of a src
    face differs from the real one in colour and brightness too (background most), and a network taught the
    whole difference repaints the swapped face (paler, measured): this way it only adds detail, and the merge's
    colour transfer keeps the colour.

    Args:
        face: (H, W, 3) float32 [0, 1], the real face at the high resolution.
        low: (H / SCALE, W / SCALE, 3) float32 [0, 1], the paired input.
    Returns:
        (H, W, 3) float32 [0, 1].
    """
    import cv2

    out = face - cv2.GaussianBlur(face, (0, 0), sigma) + cv2.GaussianBlur(bicubic_up(low), (0, 0), sigma)
    return np.clip(out, 0, 1).astype(np.float32)


PEAK_LR, FINAL_LR = 1e-3, 1e-4


def learning_rate(frac: float) -> float:
    """The network's learning rate `frac` of the way through its training: a cosine from PEAK_LR to FINAL_LR."""
    frac = min(max(frac, 0.0), 1.0)
    return FINAL_LR + 0.5 * (PEAK_LR - FINAL_LR) * (1 + math.cos(math.pi * frac))


def train_face_detail(faces: Sequence[np.ndarray], size: int, *, inputs: Sequence[np.ndarray] | None = None,
                      steps: int = STEPS, seconds: float = SECONDS,
                      holdout: float = 0.1,
                      patch: int = 64, batch_size: int = 16, seed: int = 0,
                      channels: int = CHANNELS, layers: int = LAYERS, texture_power: float | None = None,
                      landmarks: Sequence[np.ndarray] | None = None, eye_power: float | None = None,
                      grain_power: float | None = None,
                      progress: Callable[[float, float], None] | None = None,
                      check: Callable[[], None] | None = None) -> FaceDetail:
    """Train the x2 face-detail network on src faces and measure it on held-back faces.

    Args:
        faces: src face images, (H, W, 3) uint8 RGB or float32 [0, 1], any size; each is resized to
            `size` (the HR side, i.e. twice the swap model's resolution).
        size: HR face side in pixels (even).
        inputs: the low-resolution inputs paired with `faces`, (size/2, size/2, 3) each: the swap model's own
            reconstructions of those src faces, so the network learns to turn the model's soft faces into
            the sharp ones (its swaps are soft the same way); the targets then keep the inputs' colour and
            shading (`detail_target`). None: `faces` downscaled 2x. Either way each input is also blurred a
            little at random (`degrade`).
        steps: optimiser steps (batches of `batch_size` patches); the learning rate follows a cosine to 0.1x
            (`learning_rate`) over the steps or the time cap, whichever runs out first.
        seconds: time cap; training stops early when it is reached (a busy CPU then gives fewer steps).
        holdout: fraction of faces kept out of training for the figures (at least one).
        progress: called as progress(fraction done, current loss).
        check: called between steps (raise to stop).
        texture_power: weight of the texture loss beside L1 (None: `TEXTURE_POWER`; 0: L1 alone).
        landmarks: the 68 landmarks of each face in its pixels at `size` (optional): the texture loss then has
            `eye_power` (None: `EYE_TEXTURE_POWER`; never more than `texture_power`) inside the eyes (`eye_weights`).
        grain_power: weight of the grain loss as a share of the texture loss's, wherever that applies (None:
            `GRAIN_POWER`; 0: none).

    Returns:
        FaceDetail whose `metrics` hold psnr_bicubic, psnr_net (dB), sharpness_bicubic, sharpness_net,
        sharpness_truth (Laplacian variance) over the held-back faces, steps and faces used.
    """
    import cv2

    torch = _torch()
    from ..train.losses import fine_detail_loss  # a library like the models (inference.py loads those from train/)

    texture_power = TEXTURE_POWER if texture_power is None else float(texture_power)
    grain_power = GRAIN_POWER if grain_power is None else float(grain_power)
    if len(faces) < 2:
        raise ModelError("Super resolution needs at least 2 src faces to learn from; extract faces into data_src/aligned.")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if inputs is not None and len(inputs) != len(faces):
        raise ModelError(f"Super resolution got {len(inputs)} inputs for {len(faces)} faces; give one per face.")
    if landmarks is not None and len(landmarks) != len(faces):
        raise ModelError(f"Super resolution got {len(landmarks)} landmark sets for {len(faces)} faces; give one per face.")
    eye_power = min(EYE_TEXTURE_POWER if eye_power is None else float(eye_power), texture_power)
    weights = None  # per face, uint8 (x 1/255) to keep 400 faces' maps small
    if landmarks is not None and 0 < texture_power and eye_power < texture_power:
        weights = [np.round(eye_weights(lm, size, eye_power / texture_power) * 255).astype(np.uint8) for lm in landmarks]
    else:
        eye_power = texture_power
    hr = []
    for f in faces:
        f = _as_float(f)
        hr.append(cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA if f.shape[0] > size else cv2.INTER_CUBIC))
    lows = [downscale(f) for f in hr] if inputs is None else [
        cv2.resize(_as_float(x), (size // SCALE, size // SCALE), interpolation=cv2.INTER_AREA) for x in inputs]
    if inputs is not None:  # a model's faces: learn her detail, not the colour they differ in (a downscale has hers)
        hr = [detail_target(f, lo) for f, lo in zip(hr, lows)]
    order = rng.permutation(len(hr))
    n_test = max(1, int(round(len(hr) * holdout)))
    test = [hr[i] for i in order[:n_test]]
    test_lows = [lows[i] for i in order[:n_test]]
    train = [hr[i] for i in order[n_test:]]
    lr_train = [lows[i] for i in order[n_test:]]
    weights_train = None if weights is None else [weights[i] for i in order[n_test:]]
    net = build_net(channels, layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    autocast = _autocast()
    half = patch // SCALE
    everywhere = torch.ones(batch_size, 1, patch, patch)  # the texture loss's mask: whole patches
    step = 0
    start = time.monotonic()
    loss_value, lr = float("nan"), PEAK_LR
    net.train()
    while step < steps:
        if time.monotonic() - start >= seconds:
            break
        if check is not None:
            check()
        # the schedule follows steps or time, whichever is further on: a busy CPU that meets the time cap first
        # still ends at the low learning rate (it met the cap after 1,290 of 4,000 steps beside a test run)
        frac = max(step / steps, (time.monotonic() - start) / seconds)
        lr = learning_rate(frac)
        for g in opt.param_groups:
            g["lr"] = lr
        xs, ys, ws = [], [], []
        for _ in range(batch_size):
            k = int(rng.integers(len(train)))
            lo = lr_train[k]
            y0 = int(rng.integers(0, lo.shape[0] - half + 1))
            x0 = int(rng.integers(0, lo.shape[1] - half + 1))
            a = degrade(lo[max(0, y0 - 4):y0 + half + 4, max(0, x0 - 4):x0 + half + 4], rng)
            a = a[y0 - max(0, y0 - 4):, x0 - max(0, x0 - 4):][:half, :half]  # blurred with context, then cut
            hr_cut = (slice(y0 * SCALE, (y0 + half) * SCALE), slice(x0 * SCALE, (x0 + half) * SCALE))
            b = train[k][hr_cut]
            w = None if weights_train is None else weights_train[k][hr_cut]
            if rng.random() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
                w = None if w is None else w[:, ::-1]
            xs.append(a)
            ys.append(b)
            ws.append(w)
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xs))).permute(0, 3, 1, 2)
        y = torch.from_numpy(np.ascontiguousarray(np.stack(ys))).permute(0, 3, 1, 2)
        with autocast():
            pred = net(x)
        loss = torch.nn.functional.l1_loss(pred.float(), y)
        if texture_power > 0:
            weight = None if weights_train is None else \
                torch.from_numpy(np.stack(ws).astype(np.float32) / 255.0)[:, None]
            loss = loss + fine_detail_loss(pred.float(), y, everywhere, texture_power,
                                           max(grain_power, 0.0) * texture_power, weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        loss_value = float(loss.detach())
        if progress is not None and step % 10 == 0:
            progress(step / steps, loss_value)
    detail = FaceDetail(net=net, size=size, metrics={}, channels=channels, layers=layers)
    detail.metrics = evaluate(detail, test, test_lows)
    detail.metrics.update(steps=step, planned_steps=steps, train_faces=len(train), test_faces=len(test),
                          seconds=round(time.monotonic() - start, 1), final_loss=loss_value, final_lr=lr,
                          texture_power=texture_power, eye_texture_power=eye_power, grain_power=grain_power)
    return detail


def inner(image: np.ndarray) -> np.ndarray:
    """The middle half of a face crop, (H, W, ...) -> (H / 2, W / 2, ...): eyes, nose and mouth, without the
    background and hair that a crop's rim holds (a model's background pattern there would count as detail)."""
    h, w = image.shape[:2]
    return image[h // 4:h - h // 4, w // 4:w - w // 4]


def evaluate(detail: FaceDetail, faces_hr: Sequence[np.ndarray], lows: Sequence[np.ndarray] | None = None) -> dict:
    """PSNR (whole crop) and sharpness (`inner`: the face's features) of bicubic vs the network on HR faces
    (float32 [0, 1], side `detail.size`), from `lows` (the paired inputs; default: the faces downscaled 2x)."""
    lows = [downscale(f) for f in faces_hr] if lows is None else list(lows)
    ups = detail.upscale(lows)
    bic = [bicubic_up(lo) for lo in lows]
    return {
        "psnr_bicubic": float(np.mean([psnr(b, t) for b, t in zip(bic, faces_hr)])),
        "psnr_net": float(np.mean([psnr(u, t) for u, t in zip(ups, faces_hr)])),
        "sharpness_bicubic": float(np.mean([sharpness(inner(b)) for b in bic])),
        "sharpness_net": float(np.mean([sharpness(inner(u)) for u in ups])),
        "sharpness_truth": float(np.mean([sharpness(inner(t)) for t in faces_hr])),
    }


def detail_path(model_dir: str | Path, size: int) -> Path:
    """Where the face-detail network for HR side `size` is kept."""
    return Path(model_dir) / "superres" / f"face_detail_{size}.safetensors"
