"""Fixtures of the sort tests: real aligned faces of two people and a group photo (support.facesets)."""

from __future__ import annotations

import pytest

from support.facesets import make_sort_faces


@pytest.fixture(scope="session")
def faces_cache(tmp_path_factory, media):
    """(folder of real aligned faces, names by person), made once per test session (~5 s). Copy the faces
    you change (support.facesets.copy_faces)."""
    folder = tmp_path_factory.mktemp("sort_faces")
    names = make_sort_faces(media, folder)
    assert len(names["woman"]) >= 20 and len(names["man"]) >= 6 and len(names["multi"]) >= 3, names
    return folder, names
