"""Shared fixtures: the real sample media, and small workspaces made from it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from media import media_dir  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def _config_dir(tmp_path_factory):
    """Signing keys and other per-user files go to a temporary folder, never the user's real one."""
    import os

    folder = tmp_path_factory.mktemp("facedouble-config")
    old = os.environ.get("FACEDOUBLE_CONFIG_DIR")
    os.environ["FACEDOUBLE_CONFIG_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("FACEDOUBLE_CONFIG_DIR", None)
    else:
        os.environ["FACEDOUBLE_CONFIG_DIR"] = old


@pytest.fixture(scope="session")
def media() -> Path:
    return media_dir()


@pytest.fixture()
def workspace(tmp_path: Path):
    from facedouble.workspace import Workspace

    return Workspace(tmp_path / "ws").create()


@pytest.fixture()
def one_torch_thread():
    """One torch thread for the test: bit-exact results need a fixed thread count, and on a shared 2-core
    machine one thread is the faster choice for small models. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_gpu = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip)
