"""MTCNN face detector (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks"): a proposal net (P-Net) slid over an image pyramid, then a refine net (R-Net) and
an output net (O-Net) on crops, with non-maximum suppression between stages.

The three small networks are written here; their weights are the state dicts bundled with facenet-pytorch
(MIT), loaded with `torch.load(weights_only=True)` (no code is unpickled). Layer shapes follow the key
names of those state dicts. Input images are RGB uint8 HWC; boxes come back in image pixels.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, NamedTuple

import numpy as np
import torch
from torch import nn

from .models import mtcnn_weights


class PNet(nn.Module):
    """12x12 proposal net, fully convolutional: face probability and box offsets per 2-pixel cell."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


def _flatten_transposed(x: torch.Tensor) -> torch.Tensor:
    # The weights come from a model trained on transposed images: the dense layers expect the feature map
    # flattened in (width, height, channel) order.
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """24x24 refine net: face probability and box offsets per candidate."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_transposed(x)))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """48x48 output net: face probability, box offsets and five landmarks per candidate."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_transposed(x)))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the small MTCNN networks on one thread: torch's thread pool spinning beside mediapipe's threads
    made each 24x24 R-Net call ~100 ms instead of ~1 ms, and MTCNN ~1.1 s per 640x360 frame instead of ~80 ms,
    on a 2-core machine."""
    old = torch.get_num_threads()
    if old == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _load(net: nn.Module, name: str) -> nn.Module:
    state = torch.load(mtcnn_weights(name), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression. boxes (N, 4) x0, y0, x1, y1; returns kept indices, best first.

    mode "union": overlap = intersection / union; "min": intersection / the smaller area (drops boxes
    nested inside a better one)."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    x0, y0, x1, y1 = boxes.unbind(1)
    area = (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0)
    order = torch.argsort(scores, descending=True)
    ix0, iy0 = torch.maximum(x0[:, None], x0[None]), torch.maximum(y0[:, None], y0[None])
    ix1, iy1 = torch.minimum(x1[:, None], x1[None]), torch.minimum(y1[:, None], y1[None])
    inter = (ix1 - ix0).clamp(min=0) * (iy1 - iy0).clamp(min=0)
    if mode == "min":
        overlap = inter / torch.minimum(area[:, None], area[None]).clamp(min=1e-9)
    else:
        overlap = inter / (area[:, None] + area[None] - inter).clamp(min=1e-9)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i] > threshold
    return torch.tensor(keep, dtype=torch.long)


def _squared(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes grown to squares around their centres (side = the longer side)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + offsets * torch.stack([w, h, w, h], 1)


class MTCNNResult(NamedTuple):
    boxes: np.ndarray    # (N, 4) float32 x0, y0, x1, y1
    scores: np.ndarray   # (N,) float32
    points: np.ndarray   # (N, 5, 2) float32: left eye, right eye, nose, left and right mouth corner (image left/right)


class MTCNN:
    """The three-stage cascade. `min_face` is the smallest face side searched for, in pixels."""

    def __init__(self, *, min_face: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.pnet = _load(PNet(), "pnet").to(self.device)
        self.rnet = _load(RNet(), "rnet").to(self.device)
        self.onet = _load(ONet(), "onet").to(self.device)
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float()
        return (t - 127.5) * 0.0078125

    def _crops(self, image: np.ndarray, boxes: torch.Tensor, size: int) -> torch.Tensor:
        """Square crops of `boxes` resized to size x size; parts outside the image are black."""
        import cv2

        h, w = image.shape[:2]
        out = np.zeros((len(boxes), size, size, 3), np.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes.round().int().tolist()):
            bw, bh = x1 - x0, y1 - y0
            if bw < 1 or bh < 1:
                continue
            patch = np.zeros((bh, bw, 3), np.uint8)
            sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if sx1 <= sx0 or sy1 <= sy0:
                continue
            patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
            out[i] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if bw > size else cv2.INTER_LINEAR)
        t = torch.from_numpy(out).to(self.device).permute(0, 3, 1, 2).float()
        return (t - 127.5) * 0.0078125

    def detect(self, image: np.ndarray) -> MTCNNResult:
        if self.device.type == "cpu":
            with one_thread():
                return self._detect(image)
        return self._detect(image)

    @torch.inference_mode()
    def _detect(self, image: np.ndarray) -> MTCNNResult:
        import cv2

        empty = MTCNNResult(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        h, w = image.shape[:2]
        # -- stage 1: P-Net over a pyramid where the smallest face becomes 12 px -------------------------
        m = 12.0 / self.min_face
        scales, side = [], min(h, w) * m
        while side >= 12:
            scales.append(m * self.factor ** len(scales))
            side *= self.factor
        cands = []
        for s in scales:
            sw, sh = int(math.ceil(w * s)), int(math.ceil(h * s))
            small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
            prob, reg = self.pnet(self._tensor(small))
            prob, reg = prob[0], reg[0]
            ys, xs = torch.nonzero(prob >= self.thresholds[0], as_tuple=True)
            if len(ys) == 0:
                continue
            cell = torch.stack([xs, ys, xs, ys], 1).float()
            boxes = torch.cat([(2 * cell[:, :2] + 1) / s, (2 * cell[:, 2:] + 12) / s], 1)
            scores = prob[ys, xs]
            offsets = reg[:, ys, xs].T
            keep = nms(boxes, scores, 0.5)
            cands.append(torch.cat([boxes[keep], scores[keep, None], offsets[keep]], 1))
        if not cands:
            return empty
        c = torch.cat(cands)
        c = c[nms(c[:, :4], c[:, 4], 0.7)]
        boxes = _squared(_regress(c[:, :4], c[:, 5:9]))
        # -- stage 2: R-Net on 24x24 crops ---------------------------------------------------------------
        prob, reg = self.rnet(self._crops(image, boxes, 24))
        ok = prob >= self.thresholds[1]
        boxes, prob, reg = boxes[ok], prob[ok], reg[ok]
        if len(boxes) == 0:
            return empty
        keep = nms(boxes, prob, 0.7)
        boxes = _squared(_regress(boxes[keep], reg[keep]))
        # -- stage 3: O-Net on 48x48 crops, with five landmarks -------------------------------------------
        prob, reg, pts = self.onet(self._crops(image, boxes, 48))
        ok = prob >= self.thresholds[2]
        boxes, prob, reg, pts = boxes[ok], prob[ok], reg[ok], pts[ok]
        if len(boxes) == 0:
            return empty
        bw, bh = (boxes[:, 2] - boxes[:, 0])[:, None], (boxes[:, 3] - boxes[:, 1])[:, None]
        px = boxes[:, 0:1] + pts[:, :5] * bw
        py = boxes[:, 1:2] + pts[:, 5:] * bh
        boxes = _regress(boxes, reg)
        keep = nms(boxes, prob, 0.7, mode="min")
        points = torch.stack([px, py], 2)[keep]
        return MTCNNResult(boxes[keep].cpu().numpy().astype(np.float32), prob[keep].cpu().numpy().astype(np.float32),
                           points.cpu().numpy().astype(np.float32))


class FaceVerifier:
    """Is this a face? Two checks on crops placed upright by the 68 landmarks: MTCNN's R-Net on the 24x24
    'full' crop, then mediapipe's short-range BlazeFace on the 128x128 'head' crop.

    Detectors fire on faces in titles, clouds and patterns, mostly when a frame is tried turned; fitted
    landmarks then sit on something that is not a face. BlazeFace counts only when its eye keypoints lie where
    the landmarks put the eyes, so a face fitted upside down does not pass either. Measured with
    `benchmarks/extract.py --verify`: all 182 real faces (WolfgangLanger_Pexels.mp4, single_face.mp4) have
    R-Net >= 0.98 and BlazeFace >= 0.80; of 268 false detections on the title frames of no_face.mp4 and
    face_noface.mov (upright and turned), 4 pass R-Net >= 0.8 and those have BlazeFace <= 0.55; none passes both.
    """

    RNET_MIN = 0.8
    BLAZEFACE_MIN = 0.65

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.rnet = _load(RNet(), "rnet").to(self.device)
        self._blaze = None

    @torch.inference_mode()
    def rnet_score(self, image: np.ndarray, landmarks: np.ndarray) -> float:
        from .align import face_matrix, warp_to_face

        crop = warp_to_face(image, face_matrix(landmarks, "full", 24), 24)
        t = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device).permute(2, 0, 1)[None].float()
        with one_thread():
            prob, _ = self.rnet((t - 127.5) * 0.0078125)
        return float(prob[0])

    def blazeface_score(self, image: np.ndarray, landmarks: np.ndarray) -> float:
        """BlazeFace's score on the upright 'head' crop, counting only a detection whose eye keypoints lie
        where the landmarks put the eyes (so a face fitted upside down or mirrored does not pass)."""
        from .align import face_matrix, transform_points, warp_to_face

        if self._blaze is None:
            from mediapipe.python.solutions import face_detection

            self._blaze = face_detection.FaceDetection(min_detection_confidence=0.05, model_selection=0)
        m = face_matrix(landmarks, "head", 128)
        crop = warp_to_face(image, m, 128)
        lm = transform_points(landmarks, m)
        eyes = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])
        tol = 0.35 * float(np.linalg.norm(eyes[1] - eyes[0]))
        result = self._blaze.process(np.ascontiguousarray(crop))
        best = 0.0
        for d in result.detections or []:
            kps = d.location_data.relative_keypoints
            if not d.score or len(kps) < 2:
                continue
            got = np.array([[kps[0].x * 128, kps[0].y * 128], [kps[1].x * 128, kps[1].y * 128]])
            if np.linalg.norm(got - eyes, axis=1).max() <= tol:
                best = max(best, float(d.score[0]))
        return best

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> float:
        """Margin of the weaker check over its threshold: >= 1 means a face (min(R-Net / RNET_MIN,
        BlazeFace / BLAZEFACE_MIN); BlazeFace runs only when R-Net passes)."""
        r = self.rnet_score(image, landmarks) / self.RNET_MIN
        if r < 1.0:
            return r
        return min(r, self.blazeface_score(image, landmarks) / self.BLAZEFACE_MIN)
