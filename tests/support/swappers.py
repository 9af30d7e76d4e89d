"""Stand-in models with the swapper interface (`swap_numpy(faces) -> (predictions, masks)`), for tests that
check what the stages do with a model's output rather than the model."""

from __future__ import annotations

import numpy as np


class IdentitySwapper:
    """Stand-in model: returns the input face unchanged; its mask is all ones (no learned mask)."""

    def __init__(self, resolution: int = 128, face_type: str = "whole-face", learn_mask: bool = False):
        self.resolution = resolution
        self.face_type = face_type
        self.learn_mask = learn_mask
        self.calls = 0

    def swap_numpy(self, faces):
        self.calls += 1
        preds = [f.astype(np.float32) / 255.0 for f in faces]
        masks = [np.ones(f.shape[:2], np.float32) for f in faces]
        return preds, masks


class CastSwapper(IdentitySwapper):
    """Stand-in for an imperfect model: the face with a colour cast, a per-call brightness jitter (like a
    model's frame-to-frame colour drift) and a learned mask that is the landmark hull, jittered in size."""

    def __init__(self, resolution: int = 128, face_type: str = "whole-face", jitter: float = 0.04, seed: int = 0):
        super().__init__(resolution, face_type, learn_mask=True)
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)

    def swap_numpy(self, faces):
        import cv2

        preds, masks = [], []
        for f in faces:
            x = f.astype(np.float32) / 255.0
            gain = 1.0 + self.rng.uniform(-self.jitter, self.jitter)
            x = np.clip((x * np.array([1.08, 0.95, 0.85], np.float32) + 0.03) * gain, 0, 1)
            preds.append(x)
            s = f.shape[0]
            m = np.zeros((s, s), np.float32)
            r = s * (0.33 + self.rng.uniform(-0.01, 0.01))
            cv2.ellipse(m, (s // 2, int(s * 0.52)), (int(r * 0.85), int(r)), 0, 0, 360, 1.0, -1)
            masks.append(m)
        return preds, masks


class TintModel:
    """Stand-in model (96 px full face): the input face tinted blue, a learned ellipse mask."""

    resolution, face_type, learn_mask, name = 96, "full", True, "tint"

    def swap_numpy(self, faces):
        from facedouble.train.swapper import ellipse_mask

        preds = [np.clip(f.astype(np.float32) / 255.0 * np.array([0.3, 0.5, 1.0], np.float32) + [0, 0, 0.3], 0, 1)
                 for f in faces]
        return preds, [ellipse_mask(96) for _ in faces]


def identity_factory(ws, cfg):
    """The web app's `swapper_factory` for tests: facedouble's own identity swapper (128 px whole face)."""
    from facedouble.train.swapper import IdentitySwapper

    return IdentitySwapper(128, "whole-face")


class CodeJitterSwapper(IdentitySwapper):
    """Stand-in for a model whose swap splits into codes (`has_codes`, as df and liae do): a face's code is its
    mean colour plus noise drawn per face (a real model's code wobbles from frame to frame the same way), and
    its decoding is a flat face of that colour. Averaging the codes over neighbouring frames steadies it."""

    has_codes = True

    def __init__(self, resolution: int = 128, face_type: str = "whole-face", jitter: float = 0.06, seed: int = 0):
        super().__init__(resolution, face_type)
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)
        self.decoded = 0

    def codes_numpy(self, faces):
        means = np.stack([f.reshape(-1, 3).mean(0) / 255.0 for f in faces]).astype(np.float32)
        return means + self.rng.normal(0, self.jitter, means.shape).astype(np.float32)

    def swap_codes_numpy(self, codes):
        self.decoded += len(codes)
        r = self.resolution
        preds = [np.clip(np.broadcast_to(c, (r, r, 3)), 0, 1).astype(np.float32) for c in codes]
        return preds, [np.ones((r, r), np.float32) for _ in codes]

    def swap_numpy(self, faces):
        return self.swap_codes_numpy(self.codes_numpy(faces))
