"""Fixtures shared by the test folders: the real sample media, and small workspaces and faces made from it
(their helpers are in tests/support/). A fixture only one folder uses lives in that folder's conftest.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))     # `from support.media import decode` from every folder
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


# -- workspaces and faces shared by several test folders (their helpers are in support/) -----------------------


@pytest.fixture(scope="session")
def dst_ws_template(tmp_path_factory, media):
    """A workspace with 12 real dst frames (single_face.mp4, 640x360; frame 12 from no_face.mp4) and their
    aligned faces found with dlib, whole-face 256 px. Copy it before changing it (`dst_ws`)."""
    from facedouble.workspace import Workspace
    from support.media import decode
    from support.workspaces import N_FRAMES, NO_FACE_RECORD, REAL_NO_FACE, write_dst_workspace

    frames = decode(media / "single_face.mp4", limit=N_FRAMES - 1)
    frames.append(decode(media / "no_face.mp4", limit=1, size=(640, 360))[0])
    ws = Workspace(tmp_path_factory.mktemp("merge") / "ws")
    found = write_dst_workspace(ws, frames, drop_faces=(NO_FACE_RECORD,))
    assert all(len(found[f"{i:06d}.png"]) == 1 for i in range(1, N_FRAMES) if i != NO_FACE_RECORD)
    assert found[f"{REAL_NO_FACE:06d}.png"] == []
    return ws


@pytest.fixture()
def dst_ws(dst_ws_template, tmp_path):
    """A copy of `dst_ws_template` for one test."""
    from support.workspaces import copy_workspace

    return copy_workspace(dst_ws_template, tmp_path / "ws")


@pytest.fixture()
def unmarked(monkeypatch):
    """Replace the provenance mark with a recorder (for exact pixel comparisons); returns the recorder."""
    from facedouble.merge import marking
    from support.marks import MarkRecorder

    rec = MarkRecorder()
    monkeypatch.setattr(marking, "mark_output", rec)      # every image the merge writes is marked there
    return rec


@pytest.fixture(scope="session")
def train_faces(tmp_path_factory, media) -> dict[str, Path]:
    """{'src': folder, 'dst': folder} of ~36 real aligned faces each (the woman and the man), made once per
    test session. Copy them into a workspace with support.workspaces.make_workspace."""
    from support.facesets import build_faces

    return build_faces(tmp_path_factory.getbasetemp() / "train_faces", media)


@pytest.fixture(scope="session")
def web_template(tmp_path_factory, media):
    """A small workspace made with the real extraction stage (support.workspaces.make_extracted_workspace).
    Copy it before changing it (`web_ws`)."""
    import time

    from support.workspaces import make_extracted_workspace

    t0 = time.perf_counter()
    ws = make_extracted_workspace(tmp_path_factory.mktemp("web-template") / "ws", media)
    print(f"web workspace made in {time.perf_counter() - t0:.1f} s")
    return ws


@pytest.fixture()
def web_ws(web_template, tmp_path):
    """A copy of `web_template` for one test."""
    from facedouble.workspace import Workspace

    root = tmp_path / "ws"
    shutil.copytree(web_template.root, root)
    return Workspace(root)
