"""allocator.tune: glibc keeps frame-sized blocks for reuse; worker processes get the same settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facedouble import allocator


@pytest.mark.skipif(allocator._glibc() is None, reason="glibc only")
def test_tune_applies_and_is_inherited(monkeypatch):
    monkeypatch.setattr(allocator, "_result", None)
    for name in allocator._ENV:
        monkeypatch.delenv(name, raising=False)
    assert allocator.tune() is True
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(allocator.MMAP_THRESHOLD)
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == str(allocator.TRIM_THRESHOLD)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(allocator.MMAP_THRESHOLD)


@pytest.mark.skipif(allocator._glibc() is None, reason="glibc only")
def test_a_users_own_setting_is_kept(monkeypatch):
    monkeypatch.setattr(allocator, "_result", None)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert allocator.tune() is True
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == "1048576"


def test_cli_and_api_tune_the_allocator(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "tune", lambda: calls.append(1) or True)
    from facedouble import api

    assert api.build_video is not None and calls
