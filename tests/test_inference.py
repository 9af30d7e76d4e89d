"""DFM files both ways: `export-onnx --format dfm` writes the file live face-swap apps load (names, shapes,
order, BGR, the original tool's whole-face crop), and `merge --model-file FILE.dfm` runs any DFM with the same
result as the native model and the same provenance marks; broken model files get one sentence."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facedouble.config import MergeConfig, TrainConfig
from facedouble.errors import ModelError
from facedouble.faces import align
from facedouble.inference import crop_matrix, load_dfm, load_model
from facedouble.merge import merger
from facedouble.merge import marking
from facedouble.train import export
from facedouble.train.swapper import load_swapper
from facedouble.train.trainer import train
from support.workspaces import N_FRAMES

TINY = dict(model="sae", resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, batch_size=2, seed=3,
            workers=0, threads=1, preview_every=0, autosave_minutes=0, backup_hours=0)


def _tiny_config() -> TrainConfig:
    """TINY with every architecture option spelled out (ModelSpec's defaults: a full-face df model)."""
    from facedouble.train.models.registry import ModelSpec

    spec = ModelSpec()
    return TrainConfig(**TINY, **{f: getattr(spec, f) for f in ModelSpec.fields() if f not in TINY})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained_template(dst_ws_template, tmp_path_factory):  # noqa: F811
    """The merge tests' dst workspace with a tiny full-face model trained 2 iterations on its own faces."""
    from support.workspaces import copy_workspace

    ws = copy_workspace(dst_ws_template, tmp_path_factory.mktemp("dfm") / "ws")
    for p in ws.face_files("dst"):
        shutil.copy(p, ws.aligned("src") / p.name)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    train(ws, _tiny_config(), max_iterations=2)
    torch.set_num_threads(before)
    return ws


@pytest.fixture()
def trained(trained_template, tmp_path):
    from support.workspaces import copy_workspace

    return copy_workspace(trained_template, tmp_path / "ws")


def _faces(ws, count=3):
    """(aligned RGB images, their 68 landmarks) of real dst faces (the aligned image used as the frame)."""
    from facedouble.faces.container import read_record

    out = []
    for path in ws.face_files("dst")[:count]:
        rec = read_record(path)
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        out.append((img, np.asarray(rec.landmarks, np.float32)))
    return out


def test_dfm_export_names_shapes_order_and_values(trained):
    import onnxruntime as ort

    ws = trained
    path = export.export_dfm(ws.model)
    assert path == ws.model / "sae.dfm"
    size = export.dfm_resolution("full", 64)
    assert size == 80  # a 64 px full face covers about 80 px of the whole-face crop
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "in_face:0" and inp.type == "tensor(float)" and inp.shape[1:] == [size, size, 3]
    assert [o.name for o in sess.get_outputs()] == list(export.DFM_OUTPUTS)
    faces = _faces(ws)
    bgr = np.stack([align.warp_to_face(img, align.dfl_face_matrix(lm, size), size)[..., ::-1] for img, lm in faces])
    x = bgr.astype(np.float32) / 255.0
    dst_mask, face, face_mask = sess.run(None, {"in_face:0": x})
    assert dst_mask.shape == (3, size, size, 1) and face.shape == (3, size, size, 3) and face_mask.shape == (3, size, size, 1)
    # the same as the PyTorch model wrapped the same way, on the same BGR faces
    sw = load_swapper(ws.model, "cpu", amp=False)
    graph = export._DFMGraph.build(sw.model.float(), sw.face_type, sw.resolution, size)
    with torch.no_grad():
        t_dst, t_face, t_mask = (t.numpy() for t in graph(torch.from_numpy(x)))
    assert np.abs(face - t_face).max() < 1e-4 and np.abs(dst_mask - t_dst).max() < 1e-4
    assert np.abs(face_mask - t_mask).max() < 1e-4
    # and the native model on its own full-face crop (RGB): the DFM's face, put into that crop, agrees
    native, _ = sw.swap_numpy([align.warp_to_face(img, align.face_matrix(lm, "full", 64), 64) for img, lm in faces])
    for (img, lm), f, n in zip(faces, face, native):
        to_native = align.compose(align.face_matrix(lm, "full", 64), align.invert(align.dfl_face_matrix(lm, size)))
        back = cv2.warpAffine(np.ascontiguousarray(f[..., ::-1]), to_native, (64, 64), flags=cv2.INTER_LINEAR)
        inner = np.s_[8:56, 8:56]
        assert np.abs(back[inner] - n[inner]).mean() < 0.02


class _Identity(torch.nn.Module):
    """A model whose swap returns its input face and an all-ones mask (to see geometry and channel order)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def swap(self, x):
        return x * self.scale, torch.ones_like(x[:, :1])


def test_dfm_graph_takes_bgr_whole_face_crops(trained, tmp_path):
    """An identity model through the DFM wrapper gives back the BGR input where its full-face crop reaches,
    mask 1 there and 0 outside: the crop conversion and the channel order are right."""
    import onnxruntime as ort

    size = 96
    graph = export._DFMGraph.build(_Identity(), "full", 64, size)
    out = tmp_path / "id.dfm"
    export._export(graph, torch.rand(1, size, size, 3), out, "identity", [export.DFM_INPUT], list(export.DFM_OUTPUTS))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for img, lm in _faces(trained, 2):
        crop = align.warp_to_face(img, align.dfl_face_matrix(lm, size), size)        # RGB
        x = crop[None, ..., ::-1].astype(np.float32) / 255.0                          # BGR, as the apps feed it
        dst_mask, face, face_mask = sess.run(None, {"in_face:0": x})
        # where the model's full-face square lies in the whole-face crop (this face's own landmarks)
        square = align.transform_points(np.array([[0, 0], [64, 0], [64, 64], [0, 64]], np.float32),
                                        align.compose(align.dfl_face_matrix(lm, size), align.invert(align.face_matrix(lm, "full", 64))))
        inside = np.zeros((size, size), np.uint8)
        cv2.fillConvexPoly(inside, np.round(square).astype(np.int32), 1)
        got = face_mask[0, ..., 0] > 0.5
        iou = (got & (inside > 0)).sum() / (got | (inside > 0)).sum()
        assert iou > 0.9, iou
        assert np.array_equal(dst_mask, face_mask)
        core = cv2.erode(got.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        err = np.abs(face[0] - x[0])[core].mean()
        swapped = np.abs(face[0][..., ::-1] - x[0])[core].mean()
        assert err < 0.03 and swapped > 3 * err, (err, swapped)


def test_dfm_face_type_check_and_loader_errors(tmp_path, trained):
    # wrong suffix for a DFM export: one sentence
    with pytest.raises(ModelError, match=r"\.dfm"):
        export.export_dfm(trained.model, tmp_path / "m.onnx")
    # not ONNX at all
    bad = tmp_path / "broken.dfm"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not an ONNX model"):
        load_dfm(bad)
    # ONNX, but facedouble's own graph (first input dst_face): not a DFM
    plain = export.export_onnx(trained.model, tmp_path / "plain.onnx")
    shutil.copy(plain, tmp_path / "plain.dfm")
    with pytest.raises(ModelError, match="not a DFM model"):
        load_dfm(tmp_path / "plain.dfm")
    with pytest.raises(ModelError, match="does not exist"):
        load_model(model_file=tmp_path / "missing.dfm")


def test_merge_with_dfm_matches_native_and_is_marked(trained, tmp_path, monkeypatch):
    from facedouble.provenance import watermark
    from support.marks import MarkRecorder

    ws = trained
    dfm = export.export_dfm(ws.model, tmp_path / "model.dfm")
    model = load_model(model_file=dfm)
    assert model.resolution == 80 and not model.morphable and model.face_type == "whole-face"
    # crops are the original's whole-face type
    lm = _faces(ws, 1)[0][1]
    assert np.allclose(crop_matrix(model, lm), align.dfl_face_matrix(lm, 80))

    # pixels first, without the watermark (two runs carry two run ids, hence two different marks)
    monkeypatch.setattr(marking, "mark_output", MarkRecorder())
    cfg = MergeConfig(mode="overlay", mask="learned", smooth_frames=0, suppress_seamless_jitter=False, device="cpu")
    assert merger.merge(ws, cfg).written == N_FRAMES
    native = {p.name: cv2.imread(str(p)).astype(float) for p in ws.merged.iterdir()}
    merger.merge(ws, cfg.override(model_file=str(dfm)), force=True)
    dst = {p.name: cv2.imread(str(p)).astype(float) for p in ws.frame_files("dst")}
    for name, a in native.items():
        b = cv2.imread(str(ws.merged / name)).astype(float)
        changed = np.abs(a - dst[name]).max(axis=2) > 0
        if not changed.any():  # a frame without a face: copied by both
            assert np.array_equal(a, b), name
            continue
        assert changed.mean() > 0.03, name  # the model put a face there
        err = np.abs(a - b)[changed].mean()
        assert err < 3.0, (name, err)      # levels of 255, inside the face
    # then the real marks: every frame written with the DFM carries its run's watermark
    monkeypatch.undo()
    merger.merge(ws, cfg.override(model_file=str(dfm)), force=True)
    run = json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())
    assert run["model"] == str(dfm) and run["model_resolution"] == 80
    for path in ws.frame_files("dst"):
        found = watermark.detect(cv2.cvtColor(cv2.imread(str(ws.merged / path.name)), cv2.COLOR_BGR2RGB), search=False)
        assert found.found and found.payload["run_id"] == run["run_id"], path.name


def test_cli_export_dfm_and_merge_with_a_broken_dfm(trained, tmp_path):
    from facedouble.cli import app

    out = tmp_path / "m.dfm"
    r = CliRunner().invoke(app, ["export-onnx", "-w", str(trained.root), "--format", "dfm", "--out", str(out)])
    assert r.exit_code == 0 and out.stat().st_size > 10_000, r.output
    assert load_dfm(out).resolution == 80
    r = CliRunner().invoke(app, ["export-onnx", "-w", str(trained.root), "--format", "tflite"])
    assert r.exit_code != 0 and "--format 'tflite'" in r.output and "Traceback" not in r.output
    bad = tmp_path / "broken.dfm"
    bad.write_bytes(b"\x00" * 100)
    r = CliRunner().invoke(app, ["merge", "-w", str(trained.root), "--model-file", str(bad)])
    assert r.exit_code != 0 and "not an ONNX model" in r.output and "Traceback" not in r.output
