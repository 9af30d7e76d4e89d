"""XSeg: labels in the face record (JPEG and PNG), the JSON import/export, label masks, training, apply/remove/
fetch, and `merge --mask xseg-dst` using the applied masks. Real faces: the train_faces and dst_ws fixtures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from facedouble.imagefile import read_rgb
from facedouble.cli import app
from facedouble.config import MergeConfig, XSegTrainConfig
from facedouble.errors import InputError, MetadataError
from facedouble.faces import container, record
from facedouble.faces import regions
from facedouble.merge import merger
from facedouble.merge import compose
from facedouble.workspace import Workspace
from facedouble.xseg import apply as A
from facedouble.xseg import labels as L
from facedouble.xseg import train as T
from support.swappers import IdentitySwapper

INCLUDE = [[[20.0, 30.0], [230.0, 28.5], [225.0, 240.0], [25.0, 235.0]]]
EXCLUDE = [[[90.0, 150.0], [170.0, 150.0], [130.0, 220.0]]]


@pytest.fixture()
def ws(tmp_path, train_faces):
    """A workspace with 8 real src and 4 real dst faces."""
    w = Workspace(tmp_path / "ws").create()
    for side, n in (("src", 8), ("dst", 4)):
        for f in sorted(train_faces[side].glob("*.jpg"))[:n]:
            shutil.copy2(f, w.aligned(side) / f.name)
    return w


def _labels_for(path):
    """Labels of a real face: the landmark hull (jaw and brows) minus a box over the mouth."""
    rec = container.read_record(path)
    lm = rec.landmarks
    hull = [[float(x), float(y)] for x, y in lm[list(range(17)) + list(range(26, 16, -1))]]
    x0, y0 = lm[48:68].min(0) - 4
    x1, y1 = lm[48:68].max(0) + 4
    return {"include": [hull], "exclude": [[[float(x0), float(y0)], [float(x1), float(y0)], [float(x1), float(y1)],
                                            [float(x0), float(y1)]]]}


# -- record and label masks --------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_labels_and_applied_mask_round_trip_through_the_file(train_faces, tmp_path, suffix):
    image, rec = container.read_face(sorted(train_faces["src"].glob("*.jpg"))[0])
    rec.mask_polys, rec.exclude_polys = INCLUDE, EXCLUDE
    applied = np.zeros((64, 64), np.float32)
    applied[10:50, 20:40] = 1.0
    rec.xseg_mask = container.xseg_mask_field(applied, "xseg-7-abc")
    path = container.write_face(tmp_path / f"face{suffix}", image, rec)
    back = container.read_record(path)
    assert back.version == record.FORMAT_VERSION == 2
    assert back.mask_polys == INCLUDE and back.exclude_polys == EXCLUDE
    assert back.xseg_mask["model"] == "xseg-7-abc"
    assert np.array_equal(container.xseg_mask_array(back), applied)
    # a record of version 1 kept exclude polygons in extra: they become the exclude field
    old = rec.to_json()
    old.update(version=1, exclude_polys=[], extra={"mask_exclude_polys": EXCLUDE, "yaw": 1.0})
    del old["xseg_mask"]
    v1 = container.FaceRecord.from_json(old)
    assert v1.exclude_polys == EXCLUDE and v1.extra == {"yaw": 1.0}
    # a damaged applied mask is refused as a MetadataError, not another exception
    bad = rec.to_json()
    bad["xseg_mask"] = {"png": "!!!", "model": ""}
    with pytest.raises(MetadataError, match="xseg_mask"):
        container.FaceRecord.from_json(bad)


def test_label_mask_is_include_minus_exclude():
    m = regions.label_mask(INCLUDE, EXCLUDE, 256)
    assert m.dtype == np.float32 and m.shape == (256, 256)
    assert m[100, 100] == 1.0            # inside include
    assert m[170, 130] == 0.0            # inside the exclude triangle
    assert m[5, 5] == 0.0 and m[250, 250] == 0.0
    tri = 0.5 * 80 * 70
    assert abs(m.sum() - (205 * 208 - tri)) < 0.03 * m.sum()
    half = regions.label_mask(INCLUDE, EXCLUDE, 128, scale=0.5)
    assert half[85, 65] == 0.0 and half[50, 50] == 1.0
    assert regions.label_mask([], EXCLUDE, 32).sum() == 0       # exclude alone selects nothing
    assert regions.label_mask([[[1, 1], [5, 5]]], [], 32).sum() == 0  # fewer than 3 points: ignored


# -- JSON import / export ---------------------------------------------------------------------------------

def test_labels_import_export_and_refusals(ws, tmp_path):
    runner = CliRunner()
    faces = ws.face_files("src")
    data = {f.name: _labels_for(f) for f in faces[:3]}
    src_json = tmp_path / "in.json"
    src_json.write_text(json.dumps(data))
    r = runner.invoke(app, ["xseg", "labels", "import", "src", str(src_json), "-w", str(ws.root)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out.json"
    r = runner.invoke(app, ["xseg", "labels", "export", "src", "-w", str(ws.root), "--out", str(out)])
    assert r.exit_code == 0, r.output
    back = json.loads(out.read_text())
    assert set(back) == set(data)
    for name, entry in data.items():
        assert np.allclose(np.array(back[name]["include"][0]), entry["include"][0], atol=1e-3)
        assert np.allclose(np.array(back[name]["exclude"][0]), entry["exclude"][0], atol=1e-3)
    before = {f.name: f.read_bytes() for f in faces}

    # a polygon outside the face, or a face that does not exist: one sentence, exit 1, nothing written
    size = container.read_record(faces[3]).size
    bad = {faces[3].name: {"include": [[[1, 1], [size + 40, 2], [3, 9]]]}, faces[0].name: {"include": [], "exclude": []}}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = runner.invoke(app, ["xseg", "labels", "import", "src", str(tmp_path / "bad.json"), "-w", str(ws.root)])
    assert r.exit_code == 1 and "outside" in r.output and "Traceback" not in r.output
    (tmp_path / "missing.json").write_text(json.dumps({faces[0].name: {"include": []}, "nope_0.jpg": {"include": []}}))
    r = runner.invoke(app, ["xseg", "labels", "import", "src", str(tmp_path / "missing.json"), "-w", str(ws.root)])
    assert r.exit_code == 1 and "does not exist" in r.output
    (tmp_path / "broken.json").write_text("{not json")
    r = runner.invoke(app, ["xseg", "labels", "import", "src", str(tmp_path / "broken.json"), "-w", str(ws.root)])
    assert r.exit_code == 1 and "JSON" in r.output
    assert {f.name: f.read_bytes() for f in faces} == before

    # fetch copies the labelled faces only, records inside
    r = runner.invoke(app, ["xseg", "fetch", "src", "-w", str(ws.root), "--out", str(tmp_path / "fetched")])
    assert r.exit_code == 0, r.output
    fetched = sorted(p.name for p in (tmp_path / "fetched").iterdir())
    assert fetched == sorted(data)
    assert container.read_record(tmp_path / "fetched" / fetched[0]).exclude_polys
    # an entry without polygons removes a face's labels
    L.import_labels(ws, "src", {faces[0].name: {"include": [], "exclude": []}})
    assert set(L.export_labels(ws, "src")) == set(data) - {faces[0].name}
    with pytest.raises(InputError, match="polygon of 2 point"):
        L.import_labels(ws, "src", {faces[1].name: {"include": [[[1, 1], [2, 2]]]}})


# -- training, apply, remove --------------------------------------------------------------------------------

def test_xseg_train_lowers_the_loss_resumes_and_apply_writes_masks(ws):
    for side in ("src", "dst"):
        L.import_labels(ws, side, {f.name: _labels_for(f) for f in ws.face_files(side)[:3]})
    cfg = XSegTrainConfig(target_iteration=25, batch_size=4, resolution=64, pretrain_iterations=0, save_every=10)
    res = T.train_xseg(ws, cfg)
    assert res.labelled == 6 and res.iteration == 25
    assert res.loss_after < 0.8 * res.loss_before, (res.loss_before, res.loss_after)
    assert (ws.model / "xseg.safetensors").is_file() and res.preview.is_file()
    state = json.loads((ws.model / "xseg.json").read_text())
    assert state["iteration"] == 25 and len(state["loss"]) == 25 and state["adam_steps"]
    # resumes where it stopped
    res2 = T.train_xseg(ws, XSegTrainConfig(target_iteration=28, batch_size=4, resolution=64, pretrain_iterations=0))
    assert res2.iteration == 28 and res2.iterations_run == 3

    runner = CliRunner()
    r = runner.invoke(app, ["xseg", "apply", "dst", "-w", str(ws.root)])
    assert r.exit_code == 0, r.output
    recs = [container.read_record(f) for f in ws.face_files("dst")]
    assert all(rec.xseg_mask is not None and rec.xseg_mask["model"].startswith("xseg-28-") for rec in recs)
    m = container.xseg_mask_array(recs[0])
    side = min(A.APPLIED_SIZE, recs[0].size)  # the face's side, at most the stored size
    assert m.shape == (side, side) and 0.0 <= m.min() and m.max() <= 1.0
    assert A.apply_xseg(ws, "dst").skipped == len(recs)  # resumes: nothing to redo
    labelled = [f for f in ws.face_files("dst") if L.has_labels(container.read_record(f))]
    r = runner.invoke(app, ["xseg", "remove", "dst", "-w", str(ws.root)])
    assert r.exit_code == 0, r.output
    assert all(container.read_record(f).xseg_mask is None for f in ws.face_files("dst"))
    assert all(L.has_labels(container.read_record(f)) for f in labelled)  # labels are never removed


def test_train_without_labels_says_what_to_do(ws):
    r = CliRunner().invoke(app, ["xseg", "train", "-w", str(ws.root), "-n", "2"])
    assert r.exit_code == 1 and "No labelled faces" in r.output


# -- merge uses the applied mask ----------------------------------------------------------------------------

class _LowerHalfOut:
    """Stand-in XSeg model: face everywhere except the lower 40 % of the aligned face (the mouth and chin)."""

    model_id = "test-lower-half"

    def __call__(self, faces):
        out = []
        for f in faces:
            m = np.ones(f.shape[:2], np.float32)
            m[int(f.shape[0] * 0.6):] = 0.0
            out.append(m)
        return out


class _AllIn:
    """Stand-in XSeg model: the whole aligned face."""

    model_id = "test-all-in"

    def __call__(self, faces):
        return [np.ones(f.shape[:2], np.float32) for f in faces]


def test_smoothing_over_time_never_covers_an_xseg_cutout_again(dst_ws):
    """A finger in front of the mouth in one frame only: the merge's mask smoothing over neighbouring frames
    (default 4) must not average it back under the swapped face (it would with the neighbours' full masks)."""
    A.apply_xseg(dst_ws, "dst", model=_AllIn())
    frames = dst_ws.frame_files("dst")
    path = frames[5]
    face = dst_ws.aligned("dst") / f"{path.stem}_0.jpg"
    rec = container.read_record(face)
    cut = np.ones((rec.size, rec.size), np.float32)
    cut[int(rec.size * 0.6):] = 0.0                                   # the mouth and chin are "behind a hand"
    rec.xseg_mask = container.xseg_mask_field(cut, "test-cut")
    container.update_record(face, rec)
    cfg = MergeConfig(mode="overlay", mask="xseg-dst")
    assert cfg.smooth_frames > 0
    merger.merge(dst_ws, cfg, swapper=IdentitySwapper(128))
    mouth = np.round(rec.source_landmarks[[62, 66]].mean(0)).astype(int)
    eyes = np.round(rec.source_landmarks[36:48].mean(0)).astype(int)
    own = read_rgb(dst_ws.merged_mask / f"{path.stem}.png")[..., 0]
    assert own[mouth[1], mouth[0]] < 30 and own[eyes[1], eyes[0]] > 200
    before = read_rgb(dst_ws.merged_mask / f"{frames[4].stem}.png")[..., 0]
    assert before[mouth[1], mouth[0]] > 200                          # the neighbours keep their whole face


def test_apply_writes_masks_that_merge_xseg_dst_uses(dst_ws):
    res = A.apply_xseg(dst_ws, "dst", model=_LowerHalfOut())
    assert res.written == len(dst_ws.face_files("dst"))
    path = dst_ws.frame_files("dst")[1]
    frame, recs = read_rgb(path), merger.frame_records(dst_ws)[path.name]
    rec = recs[0]
    assert rec.landmarks[62, 1] > 0.62 * rec.size  # the mouth is in the part the stand-in cuts out
    mouth = np.round(rec.source_landmarks[[62, 66]].mean(0)).astype(int)
    eyes = np.round(rec.source_landmarks[36:48].mean(0)).astype(int)
    out = {}
    for mode in ("dst", "xseg-dst", "learned-xseg-dst"):
        out[mode] = compose.merge_frame(frame, recs, IdentitySwapper(128, learn_mask=True), MergeConfig(mode="overlay", mask=mode))
    assert out["dst"].mask[mouth[1], mouth[0]] > 200            # the landmark hull covers the mouth
    assert out["xseg-dst"].mask[mouth[1], mouth[0]] < 30         # the applied XSeg mask keeps it out
    assert out["xseg-dst"].mask[eyes[1], eyes[0]] > 200
    assert out["learned-xseg-dst"].mask[mouth[1], mouth[0]] < 30
    # without applied masks the mode falls back to the hull, with a warning
    A.remove_xseg(dst_ws, "dst")
    recs = merger.frame_records(dst_ws)[path.name]
    warnings = []
    plain = compose.merge_frame(frame, recs, IdentitySwapper(128), MergeConfig(mode="overlay", mask="xseg-dst"),
                               warn=warnings.append)
    assert plain.mask[mouth[1], mouth[0]] > 200 and any("xseg apply dst" in w for w in warnings)
