"""The SAE-family networks: one file per architecture (df, liae, vg), shared layers, and the registry of
architectures and presets."""

from .registry import ARCHITECTURES, PRESETS, ModelSpec, build_model, count_parameters, preset

__all__ = ["ARCHITECTURES", "PRESETS", "ModelSpec", "build_model", "count_parameters", "preset"]
