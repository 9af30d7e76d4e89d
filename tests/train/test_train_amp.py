"""The amp architecture (`--model amp`, `--archi amp`): trained on the real sample faces, its swap at morph 0 is
dst's own reconstruction and at morph 1 the full swap; the merge's model loading passes `--morph-factor`
through; its DFM file has the `morph_value:0` input and onnxruntime agrees with PyTorch at 0 and 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facedouble.config import MergeConfig, TrainConfig
from facedouble.errors import OptionError
from facedouble.faces.container import read_face
from facedouble.inference import load_dfm, load_model
from facedouble.train import export
from facedouble.train.swapper import load_swapper
from facedouble.train.models import ModelSpec, build_model, preset
from facedouble.train.models.amp import AMP
from facedouble.train.trainer import train
from support.workspaces import make_workspace

RES = 64
TINY = dict(model="amp", resolution=RES, face_type="full", archi="amp", ae_dims=32, e_dims=8, d_dims=8,
            d_mask_dims=4, double_resolution=False, batch_size=4, lr=3e-4, seed=5, workers=0, threads=1,
            preview_every=0, autosave_minutes=0, backup_hours=0, amp=False)


@pytest.fixture(scope="module")
def amp_ws(train_faces, tmp_path_factory):  # noqa: F811
    """A workspace of real src/dst faces with a tiny amp model trained 40 iterations (~10 s on one core)."""
    ws = make_workspace(tmp_path_factory.mktemp("amp") / "ws", train_faces)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(ws, TrainConfig(**TINY), max_iterations=40)
    finally:
        torch.set_num_threads(before)
    return ws


def _dst_faces(ws, count=4) -> torch.Tensor:
    """Real dst faces cut as the model takes them (full face, 64 px), B3HW float in [0, 1]."""
    from facedouble.faces import align

    out = []
    for path in ws.face_files("dst")[:count]:
        image, rec = read_face(path)
        m = align.face_matrix(np.asarray(rec.landmarks, np.float32), "full", RES)
        out.append(align.warp_to_face(image, m, RES))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def test_amp_is_a_preset_and_an_architecture():
    assert preset("amp")["archi"] == "amp"
    assert isinstance(build_model(ModelSpec(resolution=64, archi="amp", ae_dims=32, e_dims=8, d_dims=8,
                                            d_mask_dims=4)), AMP)
    TrainConfig(model="amp", archi="amp")
    with pytest.raises(OptionError, match="--archi"):
        TrainConfig(archi="amq")


def test_morph_0_is_dst_reconstruction_and_1_the_swap(amp_ws):
    faces = _dst_faces(amp_ws)
    at = {m: load_swapper(amp_ws.model, device="cpu", amp=False, morph_factor=m) for m in (0.0, 0.5, 1.0)}
    model = at[0.0].model
    with torch.no_grad():
        out = model(faces, faces, with_swap=True)
    swapped = {m: s.swap(faces)[0] for m, s in at.items()}
    # morph 0 = dst through inter_dst (dst's reconstruction); morph 1 = dst through inter_src (the swap)
    assert (swapped[0.0] - out["dst_dst"]).abs().max() < 1e-5
    assert (swapped[1.0] - out["dst_src"]).abs().max() < 1e-5
    # the two ends are different faces, and 0.5 lies between them
    ends = (swapped[0.0] - swapped[1.0]).abs().mean().item()
    assert ends > 0.01, ends
    for m in (0.0, 1.0):
        assert (swapped[0.5] - swapped[m]).abs().mean().item() < 0.8 * ends
    # trained: dst's own code reconstructs the dst faces better than the swap does
    err = {m: (swapped[m] - faces).abs().mean().item() for m in (0.0, 1.0)}
    assert err[0.0] < err[1.0], err


def test_merge_loading_passes_the_morph_factor(amp_ws):
    faces = _dst_faces(amp_ws, 2)
    cfg = MergeConfig(morph_factor=0.0)
    swapper = load_model(amp_ws.model, device="cpu", morph_factor=cfg.morph_factor)
    assert swapper.morphable and swapper.morph_factor == 0.0
    default = load_model(amp_ws.model, device="cpu")
    assert default.morph_factor == 1.0
    assert (swapper.swap(faces)[0] - default.swap(faces)[0]).abs().mean() > 0.005
    with pytest.raises(OptionError, match="--morph-factor"):
        MergeConfig(morph_factor=1.5)
    from facedouble.cli import app

    result = CliRunner().invoke(app, ["merge", "--help"], env={"COLUMNS": "200"})
    assert "--morph-factor" in result.output


def test_amp_dfm_has_morph_input_and_matches_pytorch(amp_ws, tmp_path):
    path = export.export_dfm(amp_ws.model, tmp_path / "amp.dfm")
    model = load_dfm(path, morph_factor=0.0)
    assert model.morphable and model.morph_name == export.DFM_MORPH
    names = {i.name: i for i in model.session.get_inputs()}
    assert list(names[export.DFM_MORPH].shape) == [1] and names[export.DFM_MORPH].type == "tensor(float)"
    size = model.resolution
    x = np.random.default_rng(0).random((2, size, size, 3), dtype=np.float32)
    swapper = load_swapper(amp_ws.model, device="cpu", amp=False)
    graph = export._DFMGraph.build(swapper.model.float(), swapper.face_type, swapper.resolution, size)
    outs = {}
    for m in (0.0, 1.0):
        model.morph_factor = m
        got = model.swap_bgr(x)
        with torch.no_grad():
            want = graph(torch.from_numpy(x), torch.tensor([m]))
        for g, w in zip(got, want):
            assert np.abs(g - w.numpy()).max() < 1e-4
        outs[m] = got[1]
    assert np.abs(outs[0.0] - outs[1.0]).mean() > 0.005  # the morph input changes the face
