"""device.cpu_has_bf16: bf16 autocast only where the CPU computes bf16 in hardware (emulated bf16 made training
3.3x slower than float32 on an AVX-512 CPU without it)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from facedouble import device  # noqa: E402


def _cpu(monkeypatch, machine: str, onednn: bool, **features: bool) -> None:
    monkeypatch.setattr("platform.machine", lambda: machine)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn, raising=False)
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda v=features.get(name, False): v, raising=False)


def test_plain_avx512_is_not_bf16(monkeypatch):
    """oneDNN says yes on AVX-512 without the bf16 instructions: that is emulation, so float32."""
    _cpu(monkeypatch, "x86_64", True)
    assert device.cpu_has_bf16() is False
    assert device.amp_dtype_for(torch.device("cpu"), True) is None


@pytest.mark.parametrize("feature", ["_is_avx512_bf16_supported", "_is_amx_tile_supported"])
def test_native_bf16_on_x86(monkeypatch, feature):
    _cpu(monkeypatch, "x86_64", True, **{feature: True})
    assert device.cpu_has_bf16() is True
    assert device.amp_dtype_for(torch.device("cpu"), True) == torch.bfloat16
    assert device.amp_dtype_for(torch.device("cpu"), False) is None


def test_no_onednn_bf16_anywhere(monkeypatch):
    for machine in ("x86_64", "aarch64"):
        _cpu(monkeypatch, machine, False, _is_amx_tile_supported=True)
        assert device.cpu_has_bf16() is False


def test_arm_follows_onednn(monkeypatch):
    _cpu(monkeypatch, "aarch64", True)
    assert device.cpu_has_bf16() is True

