"""`facedouble util` face-set commands on real faces: landmark debug copies, original names, metadata."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from typer.testing import CliRunner

from facedouble.cli import app
from facedouble.config import SortConfig
from facedouble.faces import container
from facedouble.sort import faceset, sort_faces, undo_sort

from support.facesets import copy_faces
from support.files import tree_digest


def _run(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


def _setup(workspace, faces_cache, n=8):
    folder, names = faces_cache
    copy_faces(folder, workspace.aligned("src"), names["woman"][:n])
    return workspace.aligned("src"), names["woman"][:n]


def test_landmark_debug_copies_are_drawn_ignored_by_sort_and_removed(workspace, faces_cache):
    aligned, names = _setup(workspace, faces_cache)
    out = _run("util", "add-landmarks-debug", "src", "-w", workspace.root)
    assert f"wrote debug copies of {len(names)} file(s)" in out
    for n in names:
        debug = aligned / n.replace(".jpg", "_debug.jpg")
        assert debug.is_file() and container.read_record(debug) is None
        face, rec = container.read_face(aligned / n)
        drawn = container.decode_image(debug.read_bytes())
        # the landmark dots are there: green where the points are
        x, y = np.round(rec.landmarks[30]).astype(int)
        assert drawn[y, x, 1] > 200 and drawn[y, x, 0] < 80
        assert np.abs(drawn.astype(int) - face.astype(int)).mean() > 1
    # sorting renames (or trashes) each debug copy with its face, so they stay side by side
    res = sort_faces(workspace, "src", SortConfig(by="final", target=len(names) - 2))
    assert len(res.order) == len(names) - 2 and not res.untouched
    assert sorted(p.name for p in aligned.glob("*.jpg")) == sorted(
        res.order + [n.replace(".jpg", "_debug.jpg") for n in res.order])
    trash = workspace.aligned_trash("src")
    assert sorted(p.name for p in trash.iterdir()) == sorted(res.trashed + [n.replace(".jpg", "_debug.jpg") for n in res.trashed])
    undo_sort(workspace, "src")
    assert sorted(p.name for p in aligned.glob("*.jpg")) == sorted(names + [n.replace(".jpg", "_debug.jpg") for n in names])
    (aligned / names[0]).unlink()  # a face deleted by hand: its debug copy is reported and left alone
    res = sort_faces(workspace, "src", SortConfig(by="blur"))
    assert list(res.untouched) == [names[0].replace(".jpg", "_debug.jpg")]
    out = _run("util", "remove-debug", "src", "-w", workspace.root)
    assert f"removed {len(names)} file(s)" in out
    assert sorted(p.name for p in aligned.glob("*.jpg")) == sorted(res.order)
    # a face that happens to end in _debug is never deleted
    real = aligned / "keep_debug.jpg"
    real.write_bytes((aligned / res.order[0]).read_bytes())
    out = _run("util", "remove-debug", aligned)
    assert real.is_file() and "holds a face record" in out


def test_recover_original_filename_after_a_sort_and_undo_it(workspace, faces_cache):
    aligned, names = _setup(workspace, faces_cache)
    before = tree_digest(aligned)
    sort_faces(workspace, "src", SortConfig(by="face-yaw"))
    sorted_names = tree_digest(aligned)
    assert set(before) != set(sorted_names)
    (aligned / "photo.jpg").write_bytes(container.encode_image(np.zeros((32, 32, 3), np.uint8), ".jpg"))
    first = sorted(aligned.glob("00000_*.jpg"))[0]
    (aligned / (first.stem + "_debug.jpg")).write_bytes(b"debug copy")
    out = _run("util", "recover-original-filename", "src", "-w", workspace.root)
    assert f"renamed {len(names)} file(s)" in out and "photo.jpg (no face record)" in out
    (aligned / "photo.jpg").unlink()
    debug = f"aligned/{first.stem.split('_', 1)[1]}_debug.jpg"  # the debug copy followed its face
    after = tree_digest(aligned)
    assert after.pop(debug) == hashlib.sha256(b"debug copy").hexdigest() and after == before
    undo_sort(workspace, "src")  # the rename is journalled like a sort
    after = tree_digest(aligned)
    assert after.pop(f"aligned/{first.stem}_debug.jpg") and after == sorted_names


def test_metadata_save_and_restore_after_editing_in_an_image_editor(workspace, faces_cache, tmp_path):
    import cv2

    aligned, names = _setup(workspace, faces_cache)
    sort_faces(workspace, "src", SortConfig(by="blur"))
    files = sorted(aligned.glob("*.jpg"))
    records = {p.name: container.read_record(p) for p in files}
    backup = tmp_path / "records.json"
    out = _run("util", "metadata-save", "src", "-w", workspace.root, "--file", backup)
    assert f"saved the records of {len(names)} file(s)" in out
    assert set(json.loads(backup.read_text())["faces"]) == set(records)

    # the "editor": re-encodes every face without our metadata; one is retouched and one resized
    for i, p in enumerate(files):
        image = container.decode_image(p.read_bytes())
        if i == 0:
            image = cv2.GaussianBlur(image, (0, 0), 1.0)
        if i == 1:
            image = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA)
        p.write_bytes(container.encode_image(image, ".jpg", 90))
        assert container.read_record(p) is None
    # and one was saved back with a new extension
    png = files[2].with_suffix(".png")
    png.write_bytes(container.encode_image(container.decode_image(files[2].read_bytes()), ".png"))
    files[2].unlink()
    pixels = {p.name: container.decode_image(p.read_bytes()) for p in aligned.iterdir() if p.suffix in (".jpg", ".png")}

    out = _run("util", "metadata-restore", "src", "-w", workspace.root, "--file", backup)
    assert f"restored the records of {len(names)} file(s)" in out
    for p in aligned.iterdir():
        if p.suffix not in (".jpg", ".png"):
            continue
        rec = container.read_record(p)
        saved = records[p.name if p.suffix == ".jpg" else p.with_suffix(".jpg").name]
        if p.name == files[1].name:
            assert rec.size == 128
            assert np.allclose(rec.landmarks, saved.landmarks / 2, atol=1e-4)
        else:
            assert rec.to_bytes() == saved.to_bytes()
        assert np.array_equal(container.decode_image(p.read_bytes()), pixels[p.name])  # pixels untouched
    # the restored faces sort again (by name of their frame, and with the right landmarks)
    res = sort_faces(workspace, "src", SortConfig(by="origname"))
    assert len(res.order) == len(names) and not res.untouched
    # restoring again changes nothing
    out = _run("util", "metadata-restore", "src", "-w", workspace.root, "--file", backup)
    assert "restored the records of 0 file(s)" in out


def test_faceset_errors_are_one_sentence(workspace, tmp_path):
    r = CliRunner().invoke(app, ["util", "metadata-restore", "src", "-w", str(workspace.root)])
    assert r.exit_code == 1 and "metadata.json does not exist" in r.output
    r = CliRunner().invoke(app, ["util", "add-landmarks-debug", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "There is no face folder" in r.output
    res = faceset.add_landmarks_debug(workspace.aligned("src"))
    assert res.done == [] and res.skipped == {}
