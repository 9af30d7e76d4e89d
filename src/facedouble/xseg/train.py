"""`facedouble xseg train`: teach the XSeg network from the labelled faces of both sides.

How it gets a usable mask from 10-20 labelled faces (issue 19): both of the original tool's remedies.
1. Pretraining on pseudo labels. For the first `pretrain_iterations`, part of every batch (3/4 at the start,
   falling linearly to 0) are unlabelled faces of the workspace with the face-mesh oval (faces.regions.mesh_mask)
   as their target. The mesh mask is right on most faces, so the network learns the face's outline, pose and
   skin on hundreds of faces instead of 15; the labels then only have to teach what the mesh gets wrong
   (hands, hair, the label's own hairline/jaw convention), and as the pseudo share falls to 0 the labels win
   where the two disagree.
2. Strong augmentation of every sample: rotation +-25 deg, scale 0.8-1.2, shift +-10 %, flip, colour gain,
   brightness, contrast, grey-scale, blur and noise, the same geometry applied to image and target.
Loss: binary cross-entropy + soft Dice on the logits.
Length: 1200 iterations by default. benchmarks/xseg.py (16 labelled faces of the sample clip, hand over the
face): IoU with the labels on 57 held-back faces 0.893 at 600 iterations, 0.912 at 1200 (mesh-with-hands: 0.839);
labelled faces spread over the occlusion matter more than length (all from its first half: 0.839 at 600).

A step's batch is a pure function of (seed, iteration), and the Adam moments are saved with the weights, so a
stopped run resumes where it was. Ctrl-C / SIGTERM (reporter.check) saves, then raises Cancelled.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from ..config import XSegTrainConfig
from ..errors import Cancelled, ModelError, NoFaceError, OptionError
from ..faces.container import MetadataError, read_face, read_record
from ..files import atomic_path, atomic_write_bytes, atomic_write_json
from ..progress import Reporter
from ..workspace import Workspace
from . import network as N
from ..faces.regions import label_mask
from .labels import has_labels

PSEUDO_SHARE = 0.75     # share of a batch given to pseudo-labelled faces at iteration 0
PREVIEW_FACES = 8


# -- pure -------------------------------------------------------------------------------------------------

def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Strong augmentation of one sample: the same random rotation/scale/shift/flip for the (R, R, 3) uint8
    image and the (R, R) float32 mask, then colour, blur and noise on the image only.
    Returns (image float32 [0, 1], mask float32 [0, 1])."""
    import cv2

    res = image.shape[0]
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    m = cv2.getRotationMatrix2D((res / 2, res / 2), float(rng.uniform(-25, 25)), float(rng.uniform(0.8, 1.2)))
    m[:, 2] += rng.uniform(-0.1, 0.1, 2) * res
    img = cv2.warpAffine(np.ascontiguousarray(image), m, (res, res), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT).astype(np.float32) / 255.0
    msk = cv2.warpAffine(np.ascontiguousarray(mask, dtype=np.float32), m, (res, res), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    img = img * rng.uniform(0.8, 1.2, 3).astype(np.float32)                      # colour gain per channel
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.7, 1.3) + mean + rng.uniform(-0.15, 0.15)   # contrast, brightness
    if rng.random() < 0.15:
        img = np.repeat(img.mean(2, keepdims=True), 3, 2)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.8)))
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(0.01, 0.05), img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32), np.clip(msk, 0, 1).astype(np.float32)


def pseudo_share(iteration: int, pretrain: int) -> float:
    """Share of a batch given to pseudo-labelled faces at `iteration`."""
    return 0.0 if pretrain <= 0 else PSEUDO_SHARE * max(0.0, 1.0 - iteration / pretrain)


def seg_loss(logits, target):
    """Binary cross-entropy + soft Dice per sample: logits and target B1HW -> (B,) tensor."""
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((1, 2, 3))
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    dice = 1.0 - (2 * inter + 1.0) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1.0)
    return bce + dice


# -- data ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Samples:
    names: list[str]
    images: np.ndarray     # (N, R, R, 3) uint8
    masks: np.ndarray      # (N, R, R) float32


def _resize(img: np.ndarray, res: int) -> np.ndarray:
    import cv2

    if img.shape[0] == res and img.shape[1] == res:
        return img
    return cv2.resize(img, (res, res), interpolation=cv2.INTER_AREA if img.shape[0] > res else cv2.INTER_LINEAR)


def load_labelled(ws: Workspace, res: int, reporter: Reporter) -> tuple[Samples, list]:
    """The labelled faces of both sides at `res` with their label masks, and the unlabelled faces' paths."""
    names, images, masks, unlabelled = [], [], [], []
    for side in ("src", "dst"):
        for path in ws.face_files(side):  # type: ignore[arg-type]
            reporter.check()
            try:
                rec = read_record(path)
            except MetadataError:
                continue
            if rec is None:
                continue
            if not has_labels(rec):
                unlabelled.append(path)
                continue
            image, rec = read_face(path)
            names.append(f"{side}/{path.name}")
            images.append(_resize(image, res))
            masks.append(label_mask(rec.mask_polys, rec.exclude_polys, res, scale=res / image.shape[1]))
    if not names:
        raise NoFaceError(f"No labelled faces in {ws.aligned('src')} or {ws.aligned('dst')}; draw include/exclude "
                          "polygons on 10-20 faces (the UI's mask editor, or `facedouble xseg labels import`) first.")
    return Samples(names, np.stack(images), np.stack(masks).astype(np.float32)), unlabelled


def pseudo_labels(paths: list, count: int, res: int, reporter: Reporter) -> Samples:
    """Face-mesh oval masks of up to `count` unlabelled faces (evenly spread); faces without a mesh skipped."""
    from ..faces.mesh import face_mesh
    from ..faces.regions import mesh_mask

    if count <= 0 or not paths:
        return Samples([], np.zeros((0, res, res, 3), np.uint8), np.zeros((0, res, res), np.float32))
    pick = [paths[int(i)] for i in np.unique(np.linspace(0, len(paths) - 1, min(count, len(paths))).round())]
    names, images, masks = [], [], []
    for path in reporter.track(pick, "XSeg: mesh pseudo labels"):
        try:
            image, _ = read_face(path)
        except Exception:  # noqa: BLE001 - an unreadable face is just not used for pretraining
            continue
        pts = face_mesh(image)
        if pts is None:
            continue
        small = _resize(image, res)
        names.append(path.name)
        images.append(small)
        masks.append(mesh_mask(pts * (res / image.shape[1]), (res, res)))
    if not names:
        return Samples([], np.zeros((0, res, res, 3), np.uint8), np.zeros((0, res, res), np.float32))
    return Samples(names, np.stack(images), np.stack(masks).astype(np.float32))


def make_batch(labelled: Samples, pseudo: Samples, batch_size: int, iteration: int, seed: int,
               pretrain: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (B, 3, R, R) float32, masks (B, 1, R, R) float32, is_label (B,) bool) of one step; pure in
    (seed, iteration)."""
    rng = np.random.default_rng([seed, iteration])
    n_pseudo = int(round(batch_size * pseudo_share(iteration, pretrain))) if len(pseudo.names) else 0
    picks = [(labelled, int(rng.integers(len(labelled.names))), True) for _ in range(batch_size - n_pseudo)]
    picks += [(pseudo, int(rng.integers(len(pseudo.names))), False) for _ in range(n_pseudo)]
    imgs, msks = [], []
    for s, i, _ in picks:
        img, msk = augment(s.images[i], s.masks[i], rng)
        imgs.append(img)
        msks.append(msk)
    x = np.stack(imgs).transpose(0, 3, 1, 2)
    y = np.stack(msks)[:, None]
    return np.ascontiguousarray(x), np.ascontiguousarray(y), np.array([p[2] for p in picks])


# -- files --------------------------------------------------------------------------------------------------

def save(folder: Path, net, opt, state: dict) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    steps = {}
    for i, p in enumerate(net.parameters()):
        st = opt.state.get(p)
        if st:
            tensors[f"opt.{i}.exp_avg"] = st["exp_avg"].contiguous()
            tensors[f"opt.{i}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
            steps[i] = float(st["step"]) if torch.is_tensor(st["step"]) else float(st["step"])
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / N.WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    atomic_write_json(folder / N.STATE, {**state, "adam_steps": steps})


def restore_optimizer(net, opt, tensors: dict, state: dict) -> None:
    import torch

    steps = state.get("adam_steps", {})
    for i, p in enumerate(net.parameters()):
        a, b = tensors.get(f"opt.{i}.exp_avg"), tensors.get(f"opt.{i}.exp_avg_sq")
        if a is not None and b is not None and a.shape == p.shape and str(i) in steps:
            opt.state[p] = {"step": torch.tensor(float(steps[str(i)])), "exp_avg": a.clone(), "exp_avg_sq": b.clone()}


def preview(net, faces: np.ndarray, res: int) -> np.ndarray:
    """A grid (RGB uint8) of faces with the predicted mask: face inside, dimmed and tinted red outside."""
    import torch

    with torch.inference_mode():
        was = net.training
        net.eval()
        m = torch.sigmoid(net(N.prepare(list(faces), res)))[:, 0].numpy()
        net.train(was)
    tiles = []
    for face, mk in zip(faces, m):
        f = face.astype(np.float32) / 255.0
        out = f * mk[..., None] + (0.3 * f + np.array([0.35, 0.0, 0.0], np.float32)) * (1 - mk[..., None])
        tiles.append(np.concatenate([face, np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)], 0))
    return np.concatenate(tiles, 1)


def write_preview(path: Path, grid: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if ok:
        atomic_write_bytes(path, buf.tobytes())


# -- the stage ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class XSegTrainResult:
    folder: Path
    iteration: int
    iterations_run: int
    seconds: float
    labelled: int
    pseudo: int
    loss_before: float     # mean loss on the labelled faces (not augmented) before this run
    loss_after: float      # ... and after it
    preview: Path | None

    def summary(self) -> str:
        return (f"XSeg trained to iteration {self.iteration} ({self.iterations_run} this run, {self.seconds:.0f} s) on "
                f"{self.labelled} labelled face(s) and {self.pseudo} mesh pseudo label(s); loss on the labels "
                f"{self.loss_before:.3f} -> {self.loss_after:.3f}; saved in {self.folder}.")


def eval_loss(net, samples: Samples, res: int) -> float:
    import torch

    was = net.training
    net.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(samples.names), 16):
            x = N.prepare(list(samples.images[i:i + 16]), res)
            y = torch.from_numpy(samples.masks[i:i + 16][:, None])
            total += float(seg_loss(net(x), y).sum())
    net.train(was)
    return total / max(1, len(samples.names))


def train_xseg(ws: Workspace, cfg: XSegTrainConfig | None = None, *, reporter: Reporter | None = None,
               max_seconds: float | None = None) -> XSegTrainResult:
    """Train (or continue) the XSeg model in the workspace's model folder up to `cfg.target_iteration` (or for
    at most `max_seconds`)."""
    import torch

    cfg = cfg or XSegTrainConfig()
    rep = reporter or Reporter()
    folder = ws.model
    state = N.read_state(folder)
    if state is not None and (folder / N.WEIGHTS).is_file():
        net, state, tensors = N.load_net(folder)
        if state["resolution"] != cfg.resolution and cfg.resolution != XSegTrainConfig().resolution:
            raise OptionError(f"--resolution {cfg.resolution} differs from the XSeg model's {state['resolution']} in "
                              f"{folder}; delete {N.WEIGHTS} and {N.STATE} there to start afresh.")
        res = state["resolution"]
    else:
        res, tensors = cfg.resolution, {}
        net = build_fresh(res, cfg.seed)
        state = {"iteration": 0, "resolution": res, "base": net.base, "loss": []}
    rep.check()
    labelled, unlabelled = load_labelled(ws, res, rep)
    iteration = int(state["iteration"])
    pseudo = pseudo_labels(unlabelled, cfg.pseudo_faces, res, rep) if iteration < cfg.pretrain_iterations else \
        Samples([], np.zeros((0, res, res, 3), np.uint8), np.zeros((0, res, res), np.float32))
    if iteration < cfg.pretrain_iterations and not pseudo.names and cfg.pseudo_faces > 0:
        rep.warn("No unlabelled face gave a face-mesh mask; XSeg learns from the labels alone.")
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    restore_optimizer(net, opt, tensors, state)
    view_src = pseudo.images if len(pseudo.names) else None
    if view_src is None:
        view_src = pseudo_faces_for_preview(unlabelled, res)
    view = view_src[np.unique(np.linspace(0, len(view_src) - 1, min(PREVIEW_FACES, len(view_src))).round().astype(int))] \
        if len(view_src) else labelled.images[:PREVIEW_FACES]
    loss_before = eval_loss(net, labelled, res)
    history: list = list(state.get("loss", []))
    start_iteration, started = iteration, time.monotonic()
    preview_path = folder / N.PREVIEW

    def checkpoint() -> None:
        state.update(iteration=iteration, resolution=res, base=net.base, loss=history[-10000:],
                     options=cfg.to_dict(), labelled=len(labelled.names))
        save(folder, net, opt, state)
        write_preview(preview_path, preview(net, view, res))

    net.train()
    cancelled = False
    try:
        with rep.task("XSeg training", cfg.target_iteration - iteration if cfg.target_iteration > iteration else 0) as advance:
            while iteration < cfg.target_iteration:
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    break
                rep.check()
                x, y, is_label = make_batch(labelled, pseudo, cfg.batch_size, iteration, cfg.seed, cfg.pretrain_iterations)
                per = seg_loss(net(torch.from_numpy(x)), torch.from_numpy(y))
                loss = per.mean()
                if not bool(torch.isfinite(loss)):
                    raise ModelError(f"XSeg training diverged at iteration {iteration} (non-finite loss); run again "
                                     "with a lower --lr.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                iteration += 1
                lab = per[torch.from_numpy(is_label)]
                history.append(round(float(lab.detach().mean()) if len(lab) else float(loss.detach()), 5))
                advance(1)
                if iteration % cfg.save_every == 0:
                    checkpoint()
    except Cancelled:
        cancelled = True
    checkpoint()
    loss_after = eval_loss(net, labelled, res)
    result = XSegTrainResult(folder, iteration, iteration - start_iteration, time.monotonic() - started,
                             len(labelled.names), len(pseudo.names), loss_before, loss_after, preview_path)
    if cancelled:
        raise Cancelled(f"XSeg training stopped at iteration {iteration}; the model is saved in {folder} and the same "
                        "command continues it.")
    return result


def build_fresh(res: int, seed: int):
    import torch

    torch.manual_seed(seed)
    return N.build(res)


def pseudo_faces_for_preview(paths: list, res: int) -> np.ndarray:
    """Up to PREVIEW_FACES unlabelled faces (evenly spread) at `res`, for the preview grid."""
    if not paths:
        return np.zeros((0, res, res, 3), np.uint8)
    pick = [paths[int(i)] for i in np.unique(np.linspace(0, len(paths) - 1, min(PREVIEW_FACES, len(paths))).round())]
    out = []
    for p in pick:
        try:
            out.append(_resize(read_face(p)[0], res))
        except Exception:  # noqa: BLE001 - a face that cannot be read is left out of the preview
            continue
    return np.stack(out) if out else np.zeros((0, res, res, 3), np.uint8)


def training_state(ws: Workspace) -> dict | None:
    """The saved XSeg state (iteration, loss history, options) of a workspace, None when there is none."""
    return N.read_state(ws.model)
