"""Adam with the original tool's extras: learning-rate dropout, gradient clipping, and (optimizer mode 3) its
state and a float32 master copy of the weights kept on the CPU.

Its state is that of a plain `torch.optim.Adam` over the same parameters in the same order, so checkpoints
move freely between optimizer modes and devices.
"""

from __future__ import annotations

from typing import Iterable

import torch

BETAS = (0.5, 0.999)  # a short first-moment memory, as face-swap autoencoders have long used
EPS = 1e-7
# AdaBelief adds its eps to s at every step (as its paper does), so s never falls below eps / (1 - b2) and the
# step's denominator below sqrt of that: with 1e-7 a floor of 0.01, some 50x the median gradient RMS of these
# models (1.9e-4 after liae192's CPU-hour), which made every update ~50x smaller than Adam's. The paper's
# 1e-16 puts the floor at 3e-7, under any gradient that matters.
ADABELIEF_EPS = 1e-16
# AdaBelief's steps are larger than Adam's at the same learning rate (its denominator tracks the gradient's
# spread, not its size), so it takes this share of the learning rate given (the presets' values are Adam's).
# liae192 (docs/quality.md, session 12): at the preset's 3e-4 it diverged after 1,600 iterations (the loss rose
# from 2.5 to 15 and stayed); at 1e-4 its loss followed Adam's at 3e-4 over the hour.
ADABELIEF_LR_SCALE = 1.0 / 3.0
LR_DROPOUT_KEEP = 0.7
CLIP_NORM = 1.0


class Optimizer:
    """One Adam (or AdaBelief, at `ADABELIEF_LR_SCALE` of `lr`) over `params`. `step(seed)` applies the update;
    with lr dropout each element's update is kept with probability 0.7, drawn from a generator seeded with
    `seed` (so a resumed run draws the same)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, *, lr_dropout: bool = False,
                 clip_grad: bool = False, offload: bool = False, adabelief: bool = False):
        self.params = [p for p in params if p.requires_grad]
        self.lr_dropout, self.clip_grad, self.offload = lr_dropout, clip_grad, offload
        if offload:
            # mode 3: Adam runs on CPU float32 copies; the device holds only the weights and gradients
            self.master = [torch.nn.Parameter(p.detach().to("cpu", torch.float32, copy=True)) for p in self.params]
            target = self.master
        else:
            self.master = None
            target = self.params
        foreach = None if target and target[0].device.type != "cpu" else True
        self.lr_scale = ADABELIEF_LR_SCALE if adabelief else 1.0
        if adabelief:
            self.adam = AdaBelief(target, lr=lr * self.lr_scale, betas=BETAS, eps=ADABELIEF_EPS)
        else:
            self.adam = torch.optim.Adam(target, lr=lr, betas=BETAS, eps=EPS, foreach=foreach)
        self._gen = torch.Generator(device="cpu")

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def prepare(self, loss_scale: float = 1.0) -> bool:
        """Undo a loss scale on the gradients and clip them; False (skip the step) when a gradient is not
        finite, which with fp16 loss scaling means the scale was too large."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return False
        if loss_scale != 1.0:
            torch._foreach_mul_(grads, 1.0 / loss_scale)
            if not all(bool(torch.isfinite(n)) for n in torch._foreach_norm(grads)):
                return False
        if self.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.params, CLIP_NORM)
        return True

    @torch.no_grad()
    def step(self, seed: int) -> None:
        targets = self.master if self.offload else self.params
        if self.offload:
            for m, p in zip(self.master, self.params):  # type: ignore[arg-type]
                m.grad = None if p.grad is None else p.grad.detach().to("cpu", torch.float32)
        before = [t.detach().clone() for t in targets] if self.lr_dropout else None
        self.adam.step()
        if before is not None:
            self._gen.manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
            for t, old in zip(targets, before):
                keep = torch.rand(t.shape, generator=self._gen) < LR_DROPOUT_KEEP
                t.copy_(torch.where(keep.to(t.device), t, old))
        if self.offload:
            for m, p in zip(self.master, self.params):  # type: ignore[arg-type]
                p.copy_(m.to(p.device, p.dtype), non_blocking=True)

    # -- checkpoints -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return self.adam.state_dict()

    def load_state_dict(self, state: dict, lr: float | None = None) -> None:
        """Load a saved state; `lr` (the learning rate given, before `lr_scale`) replaces the saved one."""
        self.adam.load_state_dict(state)
        if lr is not None:
            self.set_lr(lr)
        if self.offload:  # the master copy starts from the (freshly loaded) weights
            with torch.no_grad():
                for m, p in zip(self.master, self.params):  # type: ignore[arg-type]
                    m.copy_(p.detach().to("cpu", torch.float32))

    def set_lr(self, lr: float) -> None:
        """Step with the learning rate `lr` as given (AdaBelief takes `lr_scale` of it)."""
        for group in self.adam.param_groups:
            group["lr"] = lr * self.lr_scale


class AdaBelief(torch.optim.Optimizer):
    """AdaBelief (Zhuang et al. 2020), the original tool's later default optimizer: Adam whose second moment
    tracks the squared *surprise* (g - m)^2 instead of g^2, so steps are large where the gradient agrees with
    its running mean and small where it is noisy:

        m = b1 m + (1 - b1) g;   s = b2 s + (1 - b2) (g - m)^2 + eps
        p -= lr * (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)

    Its state uses Adam's names ("step", "exp_avg", "exp_avg_sq" holding s), so checkpoints keep one layout."""

    def __init__(self, params, lr: float, betas: tuple[float, float] = BETAS, eps: float = ADABELIEF_EPS):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D401 - torch convention
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            ms, ss, steps = [], [], []
            for p in params:
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                ms.append(st["exp_avg"])
                ss.append(st["exp_avg_sq"])
                steps.append(float(st["step"]))
            torch._foreach_lerp_(ms, grads, 1 - b1)
            surprise = torch._foreach_sub(grads, ms)
            torch._foreach_mul_(surprise, surprise)
            torch._foreach_mul_(ss, b2)
            torch._foreach_add_(ss, surprise, alpha=1 - b2)
            torch._foreach_add_(ss, eps)
            t = steps[0]  # every parameter of a group steps together
            denom = torch._foreach_sqrt(ss)
            torch._foreach_div_(denom, (1 - b2 ** t) ** 0.5)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_([p for p in params], ms, denom, value=-lr / (1 - b1 ** t))
        return None


class LossScale:
    """Dynamic loss scaling for float16 training (bfloat16 and float32 need none): halve the scale when a
    gradient overflows (that step is skipped), double it after 1000 clean steps."""

    def __init__(self, enabled: bool, scale: float = 2.0 ** 15):
        self.enabled, self.scale, self.clean = enabled, (scale if enabled else 1.0), 0

    def update(self, stepped: bool) -> None:
        if not self.enabled:
            return
        if stepped:
            self.clean += 1
            if self.clean >= 1000:
                self.scale, self.clean = min(self.scale * 2, 2.0 ** 24), 0
        else:
            self.scale, self.clean = max(self.scale / 2, 1.0), 0
