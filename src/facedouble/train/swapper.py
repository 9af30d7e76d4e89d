"""A trained model ready to swap faces: the contract the merge, live and export code against (`Swapper`: faces in,
predicted faces and masks out), the loading of a saved model into one (`load_swapper`), and a stand-in for tests
(`IdentitySwapper`), and a preset's network with fresh random weights for benchmarks and tests
(`untrained_swapper`: a trained model's shapes and speed). Files and their format are checkpoint.py's;
`facedouble.inference` adds DFM files and the fast CPU runner on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..device import amp_dtype_for
from ..errors import ModelError, OptionError
from .checkpoint import ModelFiles, find_models, load_options, read_inference_weights
from .models.registry import ModelSpec, build_model, preset


def ellipse_mask(size: int) -> np.ndarray:
    """A centred soft ellipse (float32 HW in [0, 1]) derived from nothing but the image size: semi-axes
    0.38 x width and 0.45 x height, centre at (0.5, 0.52) of the image, fully on inside 85% of the radius
    and fading smoothly (smoothstep) to 0 at the ellipse. Used where no mask is learned."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2.0
    r = np.sqrt(((xs - c) / (0.38 * size)) ** 2 + ((ys - 0.52 * (size - 1)) / (0.45 * size)) ** 2)
    t = np.clip((1.0 - r) / 0.15, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


class IdentitySwapper:
    """A stand-in for a trained model: returns each face unchanged, with `ellipse_mask` as its mask.
    Same interface as `Swapper` (resolution, face_type, learn_mask=False, device=cpu, swap, swap_numpy)."""

    learn_mask = False

    def __init__(self, resolution: int, face_type: str = "full"):
        import torch

        self.resolution, self.face_type = int(resolution), face_type
        self.device = torch.device("cpu")
        self._mask = ellipse_mask(self.resolution)

    def swap(self, faces):
        import torch

        _check_faces(faces, self.resolution)
        mask = torch.from_numpy(self._mask).to(faces.device)[None, None].expand(faces.shape[0], 1, -1, -1)
        return faces.float().clamp(0, 1).clone(), mask.clone()

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return _swap_numpy(self, faces)


class Swapper:
    """A trained model ready to swap faces (eval mode, no gradients).

    `swap(faces)`: B x 3 x H x W float tensor in [0, 1], RGB dst faces cut at the model's resolution and face
    type -> (src-identity faces B x 3 x H x W, masks B x 1 x H x W), float32 in [0, 1] on the input's device.
    It runs under autocast where the hardware has it: bf16 (else fp16) on a GPU, with channels-last; bf16 on a
    CPU with native bf16 (AVX512-BF16/AMX: 2.4x faster at batch 8 for quick96, output within 1 level of
    255 of float32, mean 0.15); float32 elsewhere.
    Without a learned mask the mask is `ellipse_mask`. `swap_numpy` does the same for lists of RGB uint8 HWC
    images and returns float32 HWC faces and HW masks."""

    def __init__(self, model, spec: ModelSpec, device, name: str, iteration: int, *, amp: bool = True,
                 morph_factor: float | None = None):
        self.model, self.spec, self.device, self.name, self.iteration = model, spec, device, name, iteration
        # morphable models (amp): 0 = dst's own face .. 1 = the full swap; ignored by the others
        self.morph_factor = 1.0 if morph_factor is None else float(morph_factor)
        self.resolution, self.face_type, self.learn_mask = spec.resolution, spec.face_type, spec.learn_mask
        self._amp = amp_dtype_for(device, amp)
        self._mask = ellipse_mask(self.resolution)

    def swap(self, faces):
        import torch

        _check_faces(faces, self.resolution)
        x = faces.to(self.device, torch.float32)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with self._inference():
            if self.morphable:
                face, mask = self.model.swap(x, morph=self.morph_factor)
            else:
                face, mask = self.model.swap(x)
        face = face.float().clamp(0, 1)
        if mask is None:
            mask = torch.from_numpy(self._mask).to(face.device)[None, None].expand(face.shape[0], 1, -1, -1)
        return face.to(faces.device).contiguous(), mask.float().clamp(0, 1).to(faces.device).contiguous()

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return _swap_numpy(self, faces)

    @property
    def morphable(self) -> bool:
        return bool(getattr(self.model, "morphable", False))

    @property
    def has_codes(self) -> bool:
        """Whether the swap splits into `codes_numpy` and `swap_codes_numpy` (df and liae networks; not amp,
        whose morph mixes two codes)."""
        return hasattr(self.model, "swap_code") and not self.morphable

    def _inference(self):
        """No gradients (rather than inference_mode: callers may change the returned tensors in place) and the
        model's autocast."""
        import contextlib

        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(torch.autocast(self.device.type, dtype=self._amp or torch.float32,
                                           enabled=self._amp is not None))
        return stack

    def codes_numpy(self, faces: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 (res, res, 3) dst faces -> their codes, float32 (B, D): the first half of the swap.
        Codes may be averaged (over neighbouring frames of one face) before `swap_codes_numpy`."""
        if not faces:
            return np.zeros((0, 0), np.float32)
        x = _faces_tensor(self, faces).to(self.device)
        with self._inference():
            code = self.model.swap_code(x)
        return code.float().cpu().numpy()

    def swap_codes_numpy(self, codes: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Codes from `codes_numpy` -> (faces float32 (res, res, 3), masks float32 (res, res)), the rest of the
        swap: `swap_codes_numpy(codes_numpy(faces))` is `swap_numpy(faces)`."""
        import torch

        if len(codes) == 0:
            return [], []
        with self._inference():
            face, mask = self.model.swap_from_code(torch.from_numpy(np.asarray(codes, np.float32)).to(self.device))
        return _faces_masks_numpy(self, face, mask)


def _check_faces(faces, resolution: int) -> None:
    if faces.ndim != 4 or faces.shape[1] != 3 or faces.shape[2] != resolution or faces.shape[3] != resolution:
        raise ModelError(f"The model takes B x 3 x {resolution} x {resolution} faces, not {tuple(faces.shape)}; "
                         f"cut the faces at the model's resolution and face type.")


def _faces_tensor(swapper, faces: list[np.ndarray]):
    """RGB uint8 (res, res, 3) faces -> a B x 3 x res x res float tensor in [0, 1] (CPU)."""
    import torch

    for f in faces:
        if f.shape != (swapper.resolution, swapper.resolution, 3):
            raise ModelError(f"The model takes {swapper.resolution} x {swapper.resolution} RGB faces, not {f.shape}.")
    return torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float().div_(255.0)


def _faces_masks_numpy(swapper, face, mask) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A swap's (face B x 3 x r x r, mask B x 1 x r x r or None) -> float32 HWC faces and HW masks in [0, 1]."""
    import torch

    face = face.float().clamp(0, 1)
    if mask is None:
        mask = torch.from_numpy(swapper._mask)[None, None].expand(face.shape[0], 1, -1, -1)
    face_np = face.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
    mask_np = mask.float().clamp(0, 1)[:, 0].cpu().numpy().astype(np.float32)
    return list(face_np), list(mask_np)


def _swap_numpy(swapper, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if not faces:
        return [], []
    face, mask = swapper.swap(_faces_tensor(swapper, faces))
    return _faces_masks_numpy(swapper, face, mask)


def load_swapper(model_dir: Path, device: str = "auto", name: str | None = None, *, amp: bool = True,
                 morph_factor: float | None = None) -> Swapper:
    """The trained model in `model_dir` (the newest saved one when several and `name` is None), ready to swap.
    `amp=False` keeps float32 everywhere (e.g. to compare with an exported float32 model). `morph_factor`
    (0..1, default 1) is the morph of an amp model; other architectures ignore it."""
    from ..device import parse_device

    model_dir = Path(model_dir)
    names = find_models(model_dir)
    if name is None:
        if not names:
            foreign = sorted(p.name for p in model_dir.glob("*") if p.suffix in (".npy", ".h5", ".dat", ".pth", ".ckpt")) \
                if model_dir.is_dir() else []
            if foreign:
                raise ModelError(f"{model_dir} holds model files of another tool ({', '.join(foreign[:3])}); facedouble "
                                 f"cannot use them: train a model with `facedouble train`.")
            raise ModelError(f"No trained model in {model_dir}; train one with `facedouble train` first.")
        name = names[0]
    files = ModelFiles(model_dir, name)
    if name not in names:
        raise ModelError(f"No trained model {name!r} in {model_dir}"
                         + (f" (there is {', '.join(names)})" if names else "") + "; train it with `facedouble train`.")
    opts = load_options(files)
    assert opts is not None
    spec = ModelSpec.from_options(opts)
    weights, meta = read_inference_weights(files.weights)
    saved_spec = meta.get("spec")
    if saved_spec and ModelSpec.from_options(saved_spec) != spec:  # options added later take their defaults
        raise ModelError(f"{files.weights} was trained with another architecture than {files.options} describes; "
                         f"restore the matching options file from model/backups/.")
    dev = parse_device(device)
    model = build_model(spec)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ModelError(f"{files.weights} does not fit the {spec.archi} architecture of {files.options} ({first}); "
                         f"restore a matching pair from model/backups/.") from None
    model = model.to(dev).eval()
    if dev.type == "cuda":
        import torch

        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return Swapper(model, spec, dev, name, int(meta.get("iteration", 0)), amp=amp, morph_factor=morph_factor)


def untrained_swapper(preset_name: str, *, seed: int = 0, device: str = "cpu", name: str | None = None,
                      amp: bool = True, **architecture) -> Swapper:
    """The network of the preset `preset_name` with fresh random weights (iteration 0), ready to swap: a trained
    model's shapes and speed without training, for benchmarks and tests. `architecture` replaces the preset's
    architecture options (`ModelSpec` fields, e.g. resolution=64); an option the preset does not name takes
    ModelSpec's default. The weights depend on `seed` only (the caller's random state is left as it was)."""
    import torch

    from ..device import parse_device

    unknown = sorted(set(architecture) - set(ModelSpec.fields()))
    if unknown:
        raise OptionError(f"untrained_swapper: {', '.join(unknown)} is not an architecture option; give only "
                          f"{', '.join(ModelSpec.fields())}.")
    values = {k: v for k, v in preset(preset_name).items() if k in ModelSpec.fields()}
    spec = ModelSpec(**{**values, **architecture})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec)
    dev = parse_device(device)
    model = model.to(dev).eval()
    if dev.type == "cuda":  # as load_swapper runs it
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return Swapper(model, spec, dev, name or preset_name, 0, amp=amp)
