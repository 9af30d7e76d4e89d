"""The training stage: one readable loop (DESIGN.md section 4).

    train(ws, cfg) -> TrainResult

1. Resolve the options (preset, saved options, --override) and load the aligned faces of both sides once.
2. Build the model (and discriminators), or resume it from model/NAME.safetensors exactly where it stopped.
3. Loop: batch (made ahead by a loader thread) -> forward under autocast -> losses -> backward -> Adam.
   A progress line shows iteration, src and dst loss and ms per iteration; previews and the loss plot are
   written every `preview_every` iterations, the model every `autosave_minutes`, a backup every `backup_hours`.
4. Stop on the target iteration, max_iterations / max_seconds, Enter, Ctrl-C or SIGTERM; save on the way out.

A non-finite, exploding or collapsed loss (`loss_fault`) stops training: the model in memory is rolled back to
the last save (which never holds a bad state, since every save follows a good step; a collapse is seen
about COLLAPSE_WINDOW / 2 iterations late, so a save in between may hold it) and TrainingError says what to change. It
does not go on by itself, because the same options would most likely diverge again.

Mixed precision: bf16 autocast on CPUs with native bf16 (AVX512-BF16 / AMX; measured ~2x faster here, and the
loss falls as in float32), float32 on other CPUs; bf16 on GPUs that have it, else fp16 with loss scaling;
channels-last memory layout for the convolutions. Model threads: see ThreadTuner.
Multi-GPU: run under torchrun (`torchrun --nproc-per-node N -m facedouble train --device all`); with
WORLD_SIZE > 1 every process trains on its own batches, gradients are averaged by DistributedDataParallel and
rank 0 alone writes files; lr dropout draws the same mask on every process. Before each save the processes
compare a weight checksum; when they differ (lost sync), rank 0's weights are saved and training stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import TrainConfig, write_json_atomic
from ..device import amp_dtype_for
from ..files import remove_temporaries
from ..errors import Cancelled, OptionError, TrainingError
from ..progress import Reporter, stop_on_signals
from ..workspace import Workspace
from . import checkpoint as ckpt
from . import losses as L
from .models.layers import CodeDiscriminator, PatchDiscriminator
from .models.registry import ModelSpec, build_model, count_parameters
from .optim import LossScale, Optimizer
from .options import changeable_options, resolve_options
from .preview import loss_plot_png, render_preview, encode_png, write_png
from .samples import BatchMaker, Prefetcher, SampleOptions, load_faceset, preview_batch

PREVIEW_ROWS = 4
EXPLODE_FACTOR = 10.0   # a loss this many times the recent median counts as exploding
EXPLODE_WARMUP = 100    # ... once this many iterations are in the history
# A collapse: the loss jumps to a few times its level and stays there (the network's output went to one colour;
# AdaBelief at 3e-4 did this at liae192's iteration 1,600: the summed loss from about 3.7 to 25-30, never 10x the
# median of the moment, so the check above let it train on). Caught when the median of this run's last
# COLLAPSE_WINDOW losses is COLLAPSE_FACTOR times the median of (up to 500 of) this run's losses before them:
# about COLLAPSE_WINDOW / 2 iterations after the jump.
COLLAPSE_FACTOR = 3.0
COLLAPSE_WINDOW = 50


def loss_fault(totals: list[float], total: float, own: int) -> str | None:
    """Why training must stop at the summed loss `total`, given the summed losses `totals` before it (oldest
    first; the last `own` of them from this run), in words that follow "The loss": "became nan", "exploded to
    ..." (against the median of the last 500) or "rose to ..." (a collapse: see COLLAPSE_FACTOR); None when
    it is fine. Only this run's losses judge a collapse, so an option changed on resume that raises the loss
    (a new loss term, another faceset) is not taken for one."""
    if not math.isfinite(total):
        return f"became {total}"
    if len(totals) >= EXPLODE_WARMUP:
        median = float(np.median(totals[-500:]))
        if total > EXPLODE_FACTOR * max(median, 1e-6):
            return f"exploded to {total:.4g}"
    mine = totals[len(totals) - own:] + [total]
    recent, before = mine[-COLLAPSE_WINDOW:], mine[:-COLLAPSE_WINDOW][-500:]
    if len(before) >= EXPLODE_WARMUP:
        now, then = float(np.median(recent)), float(np.median(before))
        if now > COLLAPSE_FACTOR * max(then, 1e-6):
            return (f"rose to {now:.4g} and stayed there (the median of the last {COLLAPSE_WINDOW} iterations, "
                    f"{now / then:.1f}x its median of {then:.4g} before)")
    return None


@dataclasses.dataclass
class TrainResult:
    """What a call of `train` did."""

    model_dir: Path
    name: str
    iteration: int              # the model's iteration count now
    iterations_run: int         # iterations done by this call
    seconds: float              # wall time of the training loop in this call
    src_loss: float             # mean of the last (up to) 100 iterations
    dst_loss: float
    samples_per_second: float   # batch size x iterations per second (a sample = one src and one dst face)
    stopped: str                # "target", "max_iterations", "max_seconds", "user", "cancelled"
    checkpoint: Path
    preview: Path | None
    options: TrainConfig


# -- distributed ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_spec: str) -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device_spec in ("all", "auto", "cuda") else "gloo"
        dist.init_process_group(backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


class _Muted(Reporter):
    """The reporter of ranks other than 0: shares the cancel flag, prints nothing."""

    def __init__(self, inner: Reporter):
        super().__init__()
        self._cancel = inner._cancel  # noqa: SLF001 - the same event, so a signal stops every rank


def _device_for(cfg: TrainConfig, d: Dist):
    import torch

    from ..device import parse_device

    if d.world > 1 and cfg.device in ("all", "auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(d.local_rank)
        return torch.device(f"cuda:{d.local_rank}")
    return parse_device(cfg.device)


def _agree(d: Dist, flags: list[int]) -> list[int]:
    """Element-wise maximum of small integer flags over all processes (stop, save, preview, bad loss)."""
    if d.world <= 1:
        return flags
    import torch
    import torch.distributed as dist

    t = torch.tensor(flags, dtype=torch.int64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [int(v) for v in t.tolist()]


def _in_sync(d: Dist, model) -> bool:
    """Under DDP every process must hold the same weights: compare a float64 checksum across processes (every
    process must call this at the same point)."""
    if d.world <= 1:
        return True
    import torch
    import torch.distributed as dist

    total = sum(p.detach().double().sum() for p in model.parameters()).reshape(1).cpu()
    low, high = total.clone(), total.clone()
    if dist.get_backend() == "nccl":
        low, high = low.cuda(), high.cuda()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return torch.equal(low.cpu(), high.cpu())


# -- the model, its optimizers and one training step ----------------------------------------------------------

class TrainSession:
    """The networks, optimizers and options of one training run on one device. `step` is one iteration."""

    def __init__(self, opts: TrainConfig, device, dist: Dist = Dist()):
        import torch

        self.opts, self.device, self.dist = opts, device, dist
        self.spec = ModelSpec.from_options(opts)
        torch.manual_seed(opts.seed)  # the same initial weights for the same seed
        model = build_model(self.spec)
        self.memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
        checkpointed = opts.optimizer_mode in ("2", "3")
        for m in model.modules():
            if hasattr(m, "checkpointed"):
                m.checkpointed = checkpointed
        self.model = model.to(device, memory_format=self.memory_format)
        self.net = self.model
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.amp = amp_dtype_for(device, opts.amp)
        self.loss_scale = LossScale(self.amp == torch.float16)
        offload = opts.optimizer_mode == "3"
        self.opt = Optimizer(self.model.parameters(), opts.lr, lr_dropout=opts.lr_dropout, clip_grad=opts.clip_grad,
                             offload=offload, adabelief=bool(opts.adabelief))
        self.gan = self.gan_opt = self.code_d = self.code_opt = None
        self.average = None  # the weights' moving average (--ema-decay), made from the model at the first step
        self.updating = False  # True while `step` changes the weights
        if opts.gan_power > 0:
            self.gan = PatchDiscriminator(opts.resolution, ch=opts.gan_dims or 32, patch=opts.gan_patch_size or 0
                                          ).to(device, memory_format=self.memory_format)
            self.gan_opt = Optimizer(self.gan.parameters(), opts.lr)
        if opts.true_face_power > 0:
            self.code_d = CodeDiscriminator(opts.ae_dims).to(device)
            self.code_opt = Optimizer(self.code_d.parameters(), opts.lr)
        self.with_swap = opts.face_style_power > 0 or opts.bg_style_power > 0
        self.border = max(1, opts.resolution // 16) if opts.remove_gray_border else 0

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)

    def autocast(self):
        import torch

        return torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None)

    def tensors(self, batch: dict[str, np.ndarray]) -> dict:
        """numpy batch -> tensors on the device: images B3HW float in [0, 1] (channels-last when asked),
        masks B1HW."""
        import torch

        out = {}
        for k, v in batch.items():
            t = torch.from_numpy(v).to(self.device, non_blocking=True)
            if t.ndim == 4:  # NHWC uint8 -> NCHW float; the permuted view is already channels-last in memory
                t = t.permute(0, 3, 1, 2).float().div_(255.0)
                if self.memory_format != torch.channels_last:
                    t = t.contiguous()
            else:
                t = t.unsqueeze(1)
            out[k] = t
        return out

    def _side_loss(self, pred, pred_mask, lows, target, mask, em, texture_weight: float,
                   mask_target=None) -> "torch.Tensor":
        """One side's per-sample loss; `mask` weighs the face loss, `mask_target` (default: `mask`) is what the
        learned mask is taught (src faces with a hand over them: the face without the hole, samples.py)."""
        o = self.opts
        loss_mask = L.dilate(mask, self.border) if self.border else mask
        loss = L.face_loss(pred, target, loss_mask, pixel_loss=o.pixel_loss, multiscale_dssim=o.multiscale_dssim)
        if pred_mask is not None:
            loss = loss + L.mask_loss(pred_mask, mask if mask_target is None else mask_target)
        if em is not None and o.eyes_mouth_priority:  # the option decides, not whether the batch has the masks
            loss = loss + L.eyes_mouth_loss(pred, target, em)
        if o.detail_power:
            loss = loss + L.detail_loss(pred, target, loss_mask, o.detail_power)
        if (o.texture_power or o.grain_power) and texture_weight:  # both from one pass over the fine bands
            loss = loss + L.fine_detail_loss(pred, target, loss_mask, o.texture_power * texture_weight,
                                             o.grain_power * texture_weight)
        for low in lows:  # multiscale decoder: the same loss at 1/4 and 1/2 resolution
            import torch.nn.functional as F

            size = low.shape[-2:]
            loss = loss + L.face_loss(low, F.interpolate(target, size, mode="area"),
                                      F.interpolate(loss_mask, size, mode="area"), pixel_loss=o.pixel_loss,
                                      multiscale_dssim=o.multiscale_dssim)
        return loss

    def losses(self, out: dict, b: dict, texture_weight: float = 1.0):
        """Per-sample (src loss, dst loss) of a forward pass, before adversarial terms; `texture_weight`: the share
        of the texture power (and of the grain power) that applies (`losses.ramp` of the iteration, in `step`)."""
        o = self.opts
        src = self._side_loss(out["src_src"], out["src_src_mask"], out["src_src_lows"], b["src_target"],
                              b["src_mask"], b.get("src_em"), texture_weight, b.get("src_mask_target"))
        dst = self._side_loss(out["dst_dst"], out["dst_dst_mask"], out["dst_dst_lows"], b["dst_target"],
                              b["dst_mask"], b.get("dst_em"), texture_weight)
        if o.face_style_power > 0:
            src = src + L.face_style_loss(out["dst_src"], b["dst_target"], b["dst_mask"], o.face_style_power)
        if o.bg_style_power > 0:
            src = src + L.background_style_loss(out["dst_src"], b["dst_target"], b["dst_mask"], o.bg_style_power)
        return src, dst

    def step(self, batch: dict[str, np.ndarray], iteration: int) -> tuple[float, float]:
        """One training iteration; returns the mean src and dst losses."""
        import torch

        o = self.opts
        b = self.tensors(batch)
        self.model.train()
        for d in (self.gan, self.code_d):
            if d is not None:
                d.requires_grad_(False)
        with self.autocast():
            out = self.net(b["src_in"], b["dst_in"], with_swap=self.with_swap)
        src_l, dst_l = self.losses(out, b, L.ramp(iteration, o.texture_ramp or 0))
        total = src_l.mean() + dst_l.mean()
        if self.code_d is not None:  # true face: make src codes look like dst codes to the critic
            with self.autocast():
                total = total + o.true_face_power * L.gan_loss(self.code_d(out["src_code"]), real=True).mean()
        if self.gan is not None:
            with self.autocast():
                fake = self.gan(out["src_src"] * b["src_mask"])
            total = total + o.gan_power * L.gan_loss(fake, real=True).mean()
        self.opt.zero_grad()
        (total * self.loss_scale.scale).backward()
        stepped = self.opt.prepare(self.loss_scale.scale)
        self.updating = True  # from here on the weights change: an error leaves them between two iterations
        if stepped:
            self.opt.step(self.step_seed(iteration))
            if o.ema_decay:
                self._update_average(iteration)
        self.loss_scale.update(stepped)
        # the critics learn after the generator step, on detached inputs
        if self.code_d is not None:
            self._critic_step(self.code_d, self.code_opt, out["dst_code"].detach(), out["src_code"].detach())
        if self.gan is not None:
            real = b["src_target"] * b["src_mask"]
            self._critic_step(self.gan, self.gan_opt, real, out["src_src"].detach() * b["src_mask"])
        losses_out = src_l.detach().mean().item(), dst_l.detach().mean().item()
        self.updating = False
        return losses_out

    def _update_average(self, iteration: int) -> None:
        """Move the averaged weights towards the model's: decay min(ema_decay, (1 + n) / (10 + n)) at iteration n,
        so the average spans about the last tenth of the iterations until it reaches 1 / (1 - ema_decay)."""
        import torch

        if self.average is None:
            self.average = self._copy_of_model()
            return
        decay = min(float(self.opts.ema_decay), (1.0 + iteration) / (10.0 + iteration))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.average.parameters()), list(self.model.parameters()), 1.0 - decay)
            for mine, theirs in zip(self.average.buffers(), self.model.buffers()):
                mine.copy_(theirs)

    def _copy_of_model(self):
        """A frozen copy of the model (eval mode, no gradients) to hold the averaged weights."""
        import copy

        return copy.deepcopy(self.model).eval().requires_grad_(False)

    @property
    def inference_model(self):
        """The network the preview, the merge and exports use: the averaged weights when kept, else the model."""
        return self.average if self.average is not None else self.model

    def _critic_step(self, critic, opt, real, fake) -> None:
        critic.requires_grad_(True)
        with self.autocast():
            loss = 0.5 * (L.gan_loss(critic(real), real=True) + L.gan_loss(critic(fake), real=False)).mean()
        opt.zero_grad()
        loss.backward()
        if self.dist.world > 1:  # critics are small and not wrapped in DDP: average their gradients by hand
            import torch.distributed as dist

            for p in critic.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.div_(self.dist.world)
        if opt.prepare():
            opt.step(0)

    def step_seed(self, iteration: int) -> int:
        """The seed of this iteration's lr-dropout draw: the same on every process (a per-rank draw would make
        the DDP copies drift apart), and the same when a run resumes."""
        return (self.opts.seed * 1_000_003 + iteration * 7919) % (2**62)

    def predict(self, preview: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Preview faces (uint8 NHWC) for KEYS of preview.py: inputs, both reconstructions and the swap."""
        import torch

        b = self.tensors({"src": preview["src_target"], "dst": preview["dst_target"]})
        net = self.inference_model
        net.eval()
        with torch.no_grad(), self.autocast():
            out = net(b["src"], b["dst"], with_swap=True)
        self.model.train()

        def u8(t):
            return (t.float().clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()

        return {"src": preview["src_target"], "src_src": u8(out["src_src"]), "dst": preview["dst_target"],
                "dst_dst": u8(out["dst_dst"]), "dst_src": u8(out["dst_src"])}

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state_tensors(self) -> tuple[dict, dict]:
        """All tensors to save, and the JSON-able optimizer groups."""
        tensors = {f"{ckpt.MODEL_PREFIX}{k}": v for k, v in self.model.state_dict().items()}
        if self.average is not None:  # only kept while --ema-decay is on (see load_state_tensors)
            tensors.update({f"{ckpt.AVERAGE_PREFIX}{k}": v for k, v in self.average.state_dict().items()})
        groups = {}
        for which, opt, net in (("g", self.opt, None), ("gan", self.gan_opt, self.gan), ("code", self.code_opt, self.code_d)):
            if opt is None:
                continue
            t, groups[which] = ckpt.flatten_optimizer(which, opt.state_dict())
            tensors.update(t)
            if net is not None:
                tensors.update({f"disc.{which}.{k}": v for k, v in net.state_dict().items()})
        return tensors, groups

    def load_state_tensors(self, tensors: dict, groups: dict) -> None:
        import torch

        try:
            self.model.load_state_dict(ckpt.state_dict_of(tensors, ckpt.MODEL_PREFIX), strict=True)
        except RuntimeError as e:
            from ..errors import ModelError

            raise ModelError(f"The saved weights do not fit this architecture ({str(e).splitlines()[0]}); "
                             "restore the model's options file from model/backups/.") from None
        average_sd = ckpt.state_dict_of(tensors, ckpt.AVERAGE_PREFIX)
        self.average = None  # switched off now, or none saved: made afresh from the model at the next step
        if average_sd and self.opts.ema_decay:
            self.average = self._copy_of_model()
            self.average.load_state_dict(average_sd, strict=True)
        for which, opt, net in (("g", self.opt, None), ("gan", self.gan_opt, self.gan), ("code", self.code_opt, self.code_d)):
            if opt is None or which not in groups:
                continue  # a critic switched on only now starts fresh
            if net is not None:
                prefix = f"disc.{which}."
                try:
                    net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
                except RuntimeError:
                    continue  # its shape changed (--gan-dims, --gan-patch-size): this critic starts fresh
            state = ckpt.unflatten_optimizer(which, tensors, groups[which])
            opt.load_state_dict(state, lr=self.opts.lr)  # the learning rate may have been changed since
        if self.device.type != "cpu":
            torch.cuda.synchronize() if self.device.type == "cuda" else None


# -- the stage ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _State:
    iteration: int = 0
    seconds: float = 0.0          # training time over all runs
    history: list = dataclasses.field(default_factory=list)  # [src, dst] per iteration

    def meta(self, opts: TrainConfig, spec: ModelSpec, groups: dict) -> dict:
        return {"format": ckpt.FORMAT, "version": ckpt.FORMAT_VERSION, "name": opts.model,
                "iteration": self.iteration, "seed": opts.seed, "seconds_trained": round(self.seconds, 3),
                "batch_size": opts.batch_size, "spec": dataclasses.asdict(spec), "optimizers": groups,
                "sample_order": "permutation per pass, seeded with (seed, rank, side, pass); augmentation seeded "
                                "with (seed, rank, iteration)"}


def is_out_of_memory(e: BaseException) -> bool:
    """A CUDA, MPS or CPU allocation failure of PyTorch."""
    import torch

    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def _free_memory(session: "TrainSession") -> None:
    import torch

    for opt in (session.opt, session.gan_opt, session.code_opt):
        if opt is not None:
            opt.zero_grad()  # drops the gradients (set to None)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Diverged(Exception):
    def __init__(self, reason: str, iteration: int):
        super().__init__(reason, iteration)
        self.reason, self.iteration = reason, iteration


class _OutOfMemory(Exception):
    def __init__(self, iteration: int, during_update: bool):
        super().__init__(iteration, during_update)
        self.iteration, self.during_update = iteration, during_update


def _status(reporter: Reporter, text: str, last: list[float], every: float = 60.0, **figures: float) -> None:
    """The progress line: `reporter.status(text, **figures)` when the reporter has one (the CLI's does, in place
    on the terminal; the UI's keeps the figures), else an info message every `every` seconds."""
    status = getattr(reporter, "status", None)
    if callable(status):
        status(text, **figures)
        return
    now = time.monotonic()
    if now - last[0] >= every:
        last[0] = now
        reporter.info(text)


@contextlib.contextmanager
def _cv2_threads(n: int):
    """OpenCV's own thread pool would compete with the model's threads for the same cores."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


class ThreadTuner:
    """How many threads the model uses on a CPU. A fixed --threads is used as given. Automatic (0): all cores,
    re-checked every `period` iterations by timing a few iterations with all cores and with half of them and
    keeping the faster. When another program competes for the cores, every parallel region waits for its
    slowest thread: measured here, 2 threads on 2 busy cores ran a training step at half the speed of 1.
    Fewer threads are chosen only when at least `margin` (20%) faster, so probe noise does not cost speed."""

    def __init__(self, threads: int, device, period: int = 200, probe: int = 4, first: int = 10, margin: float = 0.2):
        import torch

        self.before_threads = torch.get_num_threads()
        cores = os.cpu_count() or 1
        if device.type != "cpu" or threads > 0:
            self.candidates = [threads or self.before_threads]
        else:
            self.candidates = sorted({cores, max(1, cores // 2)}, reverse=True)
        self.current, self.period, self.probe = self.candidates[0], period, probe
        self.plan: list[int] = []
        self.times: dict[int, list[float]] = {}
        self.next_probe, self.margin = first, margin
        torch.set_num_threads(self.current)

    def before_step(self, run_iteration: int) -> None:
        import torch

        if len(self.candidates) < 2:
            return
        if not self.plan and run_iteration >= self.next_probe:
            self.plan = [c for c in self.candidates for _ in range(self.probe + 1)]  # +1: a warm-up per block
            self.times = {c: [] for c in self.candidates}
        if self.plan and torch.get_num_threads() != self.plan[0]:
            torch.set_num_threads(self.plan[0])

    def after_step(self, run_iteration: int, seconds: float) -> str | None:
        """Record a step's time; returns a message when the thread count changed."""
        import torch

        if not self.plan:
            return None
        self.times[self.plan.pop(0)].append(seconds)
        if self.plan:
            return None
        speed = {c: float(np.median(t[1:])) for c, t in self.times.items()}
        most, fewer = max(self.candidates), min(self.candidates)
        # fewer threads only when clearly faster (a probe is a handful of noisy steps); all cores when as fast
        best = fewer if speed[fewer] < (1 - self.margin) * speed[most] else most
        changed, self.current = best != self.current, best
        torch.set_num_threads(best)
        self.next_probe = run_iteration + self.period
        if changed:
            timing = ", ".join(f"{c}: {speed[c] * 1000:.0f} ms" for c in sorted(speed))
            return f"using {best} model thread(s) (step time by threads {timing}; other programs share the CPU)" \
                if best < max(self.candidates) else f"using {best} model threads again ({timing})"
        return None

    def restore(self) -> None:
        import torch

        torch.set_num_threads(self.before_threads)


def pretrain_faces(opts: TrainConfig) -> list[Path]:
    """The aligned faces of `--faceset` for `--pretrain` (JPEG/PNG files with face records, any people)."""
    from ..workspace import IMAGE_SUFFIXES

    if not opts.faceset:
        raise OptionError("--pretrain learns from a folder of aligned faces: give it with --faceset DIR (for example "
                          "another workspace's data_src/aligned).")
    folder = Path(opts.faceset)
    if not folder.is_dir():
        raise OptionError(f"--faceset {folder} is not a folder; give a folder of aligned faces.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise OptionError(f"--faceset {folder} holds {len(files)} face image(s); pretraining needs many (hundreds "
                          f"or more) aligned faces of any people.")
    return files


def start_from(session: "TrainSession", folder: Path, spec: ModelSpec) -> str:
    """Load the network weights of the newest model in `folder` (a pretrained or earlier model) into a new
    model's session. Everything the network holds carries over: the encoder and inter (what a face is made
    of) and both decoders (a generic face to refine into src and dst); the optimizer state, iteration count,
    loss history and seed start afresh. The architecture must be the same. Returns a line for the user."""
    from ..errors import ModelError

    names = ckpt.find_models(folder)
    if not names:
        raise OptionError(f"--from {folder} holds no trained facedouble model; give a model folder (WORKSPACE/model).")
    files = ckpt.ModelFiles(folder, names[0])
    theirs = ckpt.load_options(files)
    their_spec = ModelSpec.from_options(theirs)
    if their_spec != spec:
        diff = [f"--{k.replace('_', '-')} {getattr(their_spec, k)!r}" for k in ModelSpec.fields()
                if getattr(their_spec, k) != getattr(spec, k)]
        raise OptionError(f"--from {folder}: its model {names[0]} has another architecture ({', '.join(diff)}); "
                          f"start with --model {theirs.model} and the same architecture options, or another model.")
    tensors, meta = ckpt.read_checkpoint(files.weights, prefix=ckpt.MODEL_PREFIX)
    try:
        session.model.load_state_dict(ckpt.state_dict_of(tensors, ckpt.MODEL_PREFIX), strict=True)
    except RuntimeError as e:
        raise ModelError(f"--from {files.weights} cannot be loaded ({str(e).splitlines()[0]}).") from None
    return (f"started from {files.weights} (iteration {int(meta.get('iteration', 0))}): encoder, inter and both "
            f"decoders carried over; optimizer, counters and history start afresh")


def sample_options(opts: TrainConfig) -> SampleOptions:
    return SampleOptions(random_warp=opts.random_warp, warp_from=int(opts.warp_from or 0), random_flip=opts.random_flip,
                         src_scale_mod=opts.src_scale_mod / 100.0, uniform_yaw=opts.uniform_yaw,
                         color_transfer=opts.color_transfer, eyes_mouth=opts.eyes_mouth_priority,
                         random_hsv_power=float(opts.random_hsv_power or 0.0),
                         blur_out_mask=bool(opts.blur_out_mask))


def train(ws: Workspace, cfg: TrainConfig, *, reporter: Reporter | None = None, max_iterations: int | None = None,
          max_seconds: float | None = None, keys: Callable[[], str] | None = None) -> TrainResult:
    """Train (or resume) the model `cfg.model` in `ws/model` on ws's aligned src and dst faces.

    Stops at the target iteration, after `max_iterations` iterations or `max_seconds` seconds of this call,
    when `keys()` returns Enter, or on Ctrl-C / SIGTERM / reporter.cancel() (then it saves and raises
    Cancelled). `keys` (the CLI passes a terminal reader) returns the keys pressed since its last call:
    Enter saves and stops, "s" saves, "p" writes the preview now."""
    import torch

    reporter = reporter or Reporter()
    ws.require()
    dist = _setup_distributed(cfg.device)
    device = _device_for(cfg, dist)
    if not dist.main:
        reporter = _Muted(reporter)
    if cfg.device == "all" and dist.world <= 1 and torch.cuda.device_count() > 1:
        reporter.warn(f"--device all trains on one GPU unless started by torchrun: "
                      f"torchrun --nproc-per-node {torch.cuda.device_count()} -m facedouble train --device all ...")
    model_dir = ws.model
    model_dir.mkdir(parents=True, exist_ok=True)
    if dist.main:
        remove_temporaries(model_dir)  # what a kill in the middle of a save left
    opts, existing = resolve_options(model_dir, cfg)
    files = ckpt.ModelFiles(model_dir, opts.model)
    spec = ModelSpec.from_options(opts)

    # faces, decoded once (pretraining: one folder of anyone's faces on both sides)
    pretrain_files = pretrain_faces(opts) if opts.pretrain else None
    faces = {}
    for side in ("src", "dst"):
        paths = pretrain_files if pretrain_files is not None else ws.face_files(side)
        faces[side] = load_faceset(
            paths, side, opts.face_type, opts.resolution, scale_mod=opts.src_scale_mod / 100.0 if side == "src" else 0.0,
            mask_hands=bool(opts.mask_hands),
            progress=lambda it, s=side, n=len(paths): reporter.track(it, f"loading {s} faces", total=n),
            warn=reporter.warn)
        if faces[side].hands_left_out:
            where = ("the face loss (the learned mask still covers the face under it: dst's frames do not hold "
                     "that hand)" if side == "src" else "their training mask")
            reporter.info(f"{faces[side].hands_left_out} {side} face(s) with a hand over them: the hand is left out of "
                          f"{where} (--no-mask-hands learns it)")

    session = TrainSession(opts, device, dist)
    state = _State()
    if existing and files.weights.is_file():
        tensors, meta = ckpt.read_checkpoint(files.weights)
        if meta.get("spec") and ModelSpec.from_options(meta["spec"]) != spec:  # options added later: defaults
            raise OptionError(f"{files.weights} holds another architecture than {files.options}; restore the matching "
                              f"options from model/backups/ or move the model folder away.")
        session.load_state_tensors(tensors, meta.get("optimizers", {}))
        hist = tensors.get("history")
        state = _State(int(meta.get("iteration", 0)), float(meta.get("seconds_trained", 0.0)),
                       hist.tolist() if hist is not None else [])
        reporter.info(f"resuming {opts.model} at iteration {state.iteration} ({session.parameters / 1e6:.1f} M parameters, "
                      f"{device}, batch {opts.batch_size})")
        if opts.from_model:
            reporter.warn(f"--from {opts.from_model} starts new models only; {opts.model} in {model_dir} goes on from "
                          f"its own weights.")
    else:
        reporter.info(f"new model {opts.model}: {opts.archi} {opts.resolution} px {opts.face_type}, "
                      f"{session.parameters / 1e6:.1f} M parameters, {device}, batch {opts.batch_size}")
        if opts.from_model:
            reporter.info(start_from(session, Path(opts.from_model), spec))

    def save_synced() -> Path:
        """save() after checking that every process holds the same weights. When they do not, rank 0's weights
        are saved (its own consistent model) and training stops with TrainingError."""
        if _in_sync(dist, session.model):
            return save()
        save()
        raise TrainingError(
            f"The training processes hold different weights at iteration {state.iteration} (DistributedDataParallel "
            f"lost sync); the first process's weights are saved in {files.weights}: run the same command again to "
            f"continue from them.")

    def save() -> Path:
        if not dist.main:
            return files.weights
        tensors, groups = session.state_tensors()
        hist = torch.tensor(state.history, dtype=torch.float32).reshape(-1, 2)
        tensors["history"] = hist
        meta = state.meta(opts, spec, groups)
        dataclasses.replace(opts, override_options=False).save(files.options)
        ckpt.save_checkpoint(files.weights, tensors, meta)
        ckpt.write_state_json(files, {k: v for k, v in meta.items() if k != "optimizers"}, hist.numpy())
        return files.weights

    preview_faces = preview_batch(faces["src"], faces["dst"], PREVIEW_ROWS)

    identity_log = files.folder / f"{opts.model}_identity.json"
    centroids: list = []

    def score_identity(dst_src: np.ndarray) -> None:
        """Identity of the dst->src previews beside the loss: share nearer src than dst (dlib embeddings),
        logged and kept in model/<name>_identity.json. Never stops training: a failure is warned once."""
        from ..faces.likeness import centroid_from_records, identity_score

        if centroids == [None]:
            return
        try:
            if not centroids:
                centroids.extend([centroid_from_records(ws.aligned(side), compute_limit=16) for side in ("src", "dst")])
            ident = identity_score(list(dst_src), *centroids, face_type=opts.face_type)
        except Exception as e:  # noqa: BLE001 - scoring is advice, training goes on
            centroids[:] = [None]
            reporter.warn(f"identity of the previews is not scored ({type(e).__name__}: {e}).")
            return
        # "within 0.6 of src" as well as "nearer src": a network whose output collapsed to one colour is still
        # nearer one of the two people, but like neither
        reporter.info(f"iter {state.iteration}: identity {ident['nearer_src']:.0%} of {ident['n']} previews nearer src, "
                      f"{ident['same_as_src']:.0%} within 0.6 of src (the same person) (distance to src "
                      f"{ident['mean_src']:.3f}, to dst {ident['mean_dst']:.3f})")
        try:
            log = json.loads(identity_log.read_text(encoding="utf-8")) if identity_log.is_file() else []
        except ValueError:
            log = []
        log = [e for e in log if e.get("iteration", -1) < state.iteration]
        log.append({"iteration": state.iteration, "nearer_src": ident["nearer_src"], "same_as_src": ident["same_as_src"],
                    "mean_src": ident["mean_src"], "mean_dst": ident["mean_dst"]})
        write_json_atomic(identity_log, log)

    def write_preview(history_copy: bool) -> Path | None:
        if not dist.main:
            return None
        predicted = session.predict(preview_faces)
        png = encode_png(render_preview(predicted))
        write_png(files.preview, png)
        if not opts.pretrain:  # a pretraining faceset has no src or dst person to score against
            score_identity(predicted["dst_src"])
        if history_copy and opts.write_preview_history:
            write_png(files.history / f"{opts.model}_{state.iteration:08d}.png", png)
        write_png(files.loss_plot, loss_plot_png(np.asarray(state.history), f"{opts.model}: iteration {state.iteration}"))
        return files.preview

    if not (existing and files.weights.is_file()):
        save()  # iteration 0: a good state to roll back to, and the options on disk from the start

    maker = BatchMaker(faces["src"], faces["dst"], opts.batch_size, opts.seed, sample_options(opts), rank=dist.rank)
    start_iteration, started = state.iteration, time.monotonic()
    last_save = last_backup = started
    info_clock = [started]
    recent: list[float] = []
    stop: str | None = None
    preview_path: Path | None = None
    tuner = ThreadTuner(opts.threads, device)
    with stop_on_signals(reporter), _cv2_threads(1), Prefetcher(maker, state.iteration, opts.workers) as loader:
        try:
            while True:
                now = time.monotonic()
                run = state.iteration - start_iteration
                if reporter.cancelled:
                    stop = "cancelled"
                elif opts.target_iteration and state.iteration >= opts.target_iteration:
                    stop = "target"
                elif max_iterations is not None and run >= max_iterations:
                    stop = "max_iterations"
                elif max_seconds is not None and now - started >= max_seconds:
                    stop = "max_seconds"
                pressed = keys() if keys is not None and dist.main else ""
                if "\n" in pressed or "\r" in pressed:
                    stop = stop or "user"
                want_stop = int(stop is not None)
                want_save = int("s" in pressed or (opts.autosave_minutes > 0 and now - last_save >= opts.autosave_minutes * 60))
                want_backup = int(opts.backup_hours > 0 and now - last_backup >= opts.backup_hours * 3600)
                want_preview = int("p" in pressed)
                want_stop, want_save, want_backup, want_preview = _agree(dist, [want_stop, want_save, want_backup, want_preview])
                if want_stop:
                    stop = stop or "cancelled"
                    break
                if want_save or want_backup:
                    save_synced()
                    last_save = now
                    if want_backup and dist.main:
                        ckpt.backup(files, state.iteration, opts.backups_kept)
                        last_backup = now
                        reporter.info(f"backup at iteration {state.iteration} in {files.backups}")
                if want_preview:
                    preview_path = write_preview(False)

                if opts.random_warp and opts.warp_from and state.iteration == opts.warp_from and dist.main:
                    reporter.info(f"iteration {state.iteration}: random warp starts (--warp-from {opts.warp_from}); "
                                  f"the loss rises for a while as the model learns the warped faces")
                t0 = time.perf_counter()
                batch = loader.get()
                t1 = time.perf_counter()
                tuner.before_step(run)
                session.updating = False
                try:
                    src_loss, dst_loss = session.step(batch, state.iteration)
                except (RuntimeError, MemoryError) as e:
                    if not (is_out_of_memory(e) or isinstance(e, MemoryError)):
                        raise
                    raise _OutOfMemory(state.iteration + 1, session.updating) from None
                t2 = time.perf_counter()
                message = tuner.after_step(run, t2 - t1)
                if message:
                    reporter.info(message)
                step_ms = (t2 - t0) * 1000
                total = src_loss + dst_loss
                past = state.history[-(500 + COLLAPSE_WINDOW):]
                fault = loss_fault([a + b for a, b in past], total, min(state.iteration - start_iteration, len(past)))
                if _agree(dist, [int(fault is not None)])[0]:
                    raise _Diverged(fault or "went wrong on another process", state.iteration + 1)
                state.iteration += 1
                state.history.append([src_loss, dst_loss])
                recent = (recent + [step_ms])[-20:]
                ms = sum(recent) / len(recent)
                _status(reporter, f"[{time.strftime('%H:%M:%S')}] iter {state.iteration:>7}  src {src_loss:.4f}  "
                                  f"dst {dst_loss:.4f}  {ms:5.0f} ms/it  {opts.batch_size * 1000 / ms:5.1f} samples/s",
                        info_clock, iteration=state.iteration, src_loss=float(src_loss), dst_loss=float(dst_loss),
                        ms_per_it=float(ms), samples_per_s=opts.batch_size * 1000 / ms)
                if opts.preview_every and state.iteration % opts.preview_every == 0:
                    preview_path = write_preview(True)
        except _OutOfMemory as e:
            _free_memory(session)
            if e.during_update:  # the weights are half-way through an update: back to the last save
                tensors, meta = ckpt.read_checkpoint(files.weights)
                session.load_state_tensors(tensors, meta.get("optimizers", {}))
                kept = f"rolled back to its last save (iteration {int(meta.get('iteration', 0))})"
            else:  # the failure came before the weights changed: they are those of the last full iteration
                save()
                kept = f"saved at iteration {state.iteration}"
            smaller = max(1, opts.batch_size // 2)
            raise TrainingError(
                f"Out of {device} memory at iteration {e.iteration} with batch size {opts.batch_size}; the model is "
                f"{kept} in {files.weights}. Run again with --override and a smaller --batch-size (e.g. {smaller}), "
                f"or --optimizer-mode 2 (recompute activations) or 3 (also keep the optimizer state in CPU memory).") from None
        except _Diverged as e:
            # the last save is good (saves happen only between good steps): reload it and stop
            tensors, meta = ckpt.read_checkpoint(files.weights)
            session.load_state_tensors(tensors, meta.get("optimizers", {}))
            good = int(meta.get("iteration", 0))
            raise TrainingError(
                f"The loss {e.reason} at iteration {e.iteration}; the model is rolled back to its last save (iteration {good}) in {files.weights}. "
                f"Run again with --override and --clip-grad, a lower --lr, or without the option you last changed.") from None
        finally:
            state.seconds += time.monotonic() - started
            tuner.restore()

    elapsed = time.monotonic() - started
    checkpoint_path = save_synced()
    preview_path = write_preview(True) or preview_path
    ran = state.iteration - start_iteration
    tail = np.asarray(state.history[-100:], np.float64).reshape(-1, 2)
    src_mean, dst_mean = (tail.mean(0).tolist() if len(tail) else [float("nan")] * 2)
    result = TrainResult(model_dir=model_dir, name=opts.model, iteration=state.iteration, iterations_run=ran,
                         seconds=elapsed, src_loss=src_mean, dst_loss=dst_mean,
                         samples_per_second=ran * opts.batch_size * dist.world / elapsed if elapsed > 0 else 0.0,
                         stopped=stop or "cancelled", checkpoint=checkpoint_path, preview=preview_path, options=opts)
    reporter.info(f"saved {opts.model} at iteration {state.iteration} in {model_dir}")
    if result.stopped == "cancelled":
        raise Cancelled(f"Training stopped at iteration {state.iteration}; the model is saved in {model_dir} and the "
                        f"same command continues it.")
    return result


# -- interactive prompts (the CLI asks; the choice of questions lives here) -------------------------------------

def resolve_for_prompts(ws: Workspace, cfg: TrainConfig) -> tuple[TrainConfig, bool]:
    """The options a run of `cfg` would use, and whether the model exists (the prompts show these values)."""
    ws.model.mkdir(parents=True, exist_ok=True)
    return resolve_options(ws.model, cfg)


def interactive_fields(opts: TrainConfig, existing: bool) -> list[str]:
    """Which options to ask, like the original: a new `sae` model asks everything, the named presets ask the
    training options (H64/H128 also the lightweight encoder), an existing model asks the training options only
    with --override (architecture options are fixed)."""
    asked = [f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("ask", True)]
    changeable = set(changeable_options())
    if existing:
        return [n for n in asked if n in changeable] if opts.override_options else []
    if opts.model == "sae":
        return asked
    extra = {"lightweight_encoder"} if opts.model in ("h64", "h128") else set()
    return [n for n in asked if n in changeable or n in extra]
