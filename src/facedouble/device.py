"""Device choice: automatic best GPU, else CPU; `--device cpu|cuda:N|mps|all` overrides."""

from __future__ import annotations

from .errors import OptionError


def parse_device(spec: str | None = "auto"):
    """Return the torch.device for a --device value. `all` returns the first GPU (training spreads over the rest)."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return best_device()
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise OptionError("--device mps was asked for but Metal (MPS) is not available here; use --device cpu.")
        return torch.device("mps")
    if spec == "all" or spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise OptionError(f"--device {spec} was asked for but no CUDA GPU is available; use --device cpu or auto.")
        if spec in ("all", "cuda"):
            return best_device()
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError:
            raise OptionError(f"--device {spec} is not valid; write cuda:0, cuda:1, ...") from None
        if not 0 <= index < torch.cuda.device_count():
            raise OptionError(f"--device {spec}: there are only {torch.cuda.device_count()} GPU(s) (cuda:0..).")
        return torch.device(f"cuda:{index}")
    raise OptionError(f"--device must be auto, cpu, cuda:N, mps or all, not {spec!r}.")


def best_device():
    """The GPU with the most memory, else Apple's MPS, else the CPU."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        best = max(range(torch.cuda.device_count()), key=lambda i: torch.cuda.get_device_properties(i).total_memory)
        return torch.device(f"cuda:{best}")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def describe(device) -> str:
    import torch

    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{device} ({p.name}, {p.total_memory / 2**30:.0f} GiB)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def amp_dtype_for(device, enabled: bool):
    """The autocast dtype for a device, or None for float32."""
    import torch

    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":  # only where oneDNN runs bf16 in hardware; emulated bf16 is slower than float32
        return torch.bfloat16 if cpu_has_bf16() else None
    return None  # MPS: float32 (autocast there is not dependable yet)


X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (x86: AVX512-BF16 or AMX; ARM: what oneDNN reports).

    oneDNN also reports bf16 on x86 CPUs with plain AVX-512 (Ice Lake, Tiger Lake, Rocket Lake, Skylake-X),
    where it emulates it: liae192's training step took 3,168 ms there under bf16 autocast against 953 ms in
    float32 (two cores, docs/quality.md session 17), so emulated bf16 counts as none."""
    import platform

    import torch

    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    if platform.machine().lower() not in X86_MACHINES:
        return True
    return any(_cpu_feature(name) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def _cpu_feature(name: str) -> bool:
    """torch.cpu's cpuinfo check `name` (False where this torch lacks it)."""
    import torch

    check = getattr(torch.cpu, name, None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False
