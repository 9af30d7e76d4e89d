"""Weight averaging (--ema-decay): the trainer keeps an exponential moving average of the weights with the
documented decay, saves it beside the trained weights, resumes it exactly, and the merge (load_swapper) and the
preview use it; with the option off nothing changes. Real faces, a tiny model, a few iterations."""

from __future__ import annotations

import pytest
import torch

from facedouble.config import TrainConfig
from facedouble.train import checkpoint as ckpt
from facedouble.train.swapper import load_swapper
from facedouble.train.trainer import train
from support.workspaces import make_workspace

TINY = dict(model="sae", resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, batch_size=2, seed=3,
            workers=0, threads=1, preview_every=0, autosave_minutes=0, backup_hours=0)


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-exact resumes need a fixed thread count
    yield
    torch.set_num_threads(before)


def _split(model_dir) -> tuple[dict, dict]:
    tensors, _ = ckpt.read_checkpoint(model_dir / "sae.safetensors")
    return ckpt.state_dict_of(tensors, ckpt.MODEL_PREFIX), ckpt.state_dict_of(tensors, ckpt.AVERAGE_PREFIX)


def _float_params(sd: dict) -> list[str]:
    return [k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1]


def test_average_follows_the_documented_decay(tmp_path, train_faces):
    """Two runs with the same seed, one stopped (and saved) after each iteration: the averaged weights after
    iteration n are decay * the previous average + (1 - decay) * the model's weights, decay = (1 + n) / (10 + n)
    while that is below ema_decay; the trained weights are those of a run without averaging."""
    cfg = TrainConfig(**TINY, ema_decay=0.99)
    ws = make_workspace(tmp_path / "a", train_faces)
    train(ws, cfg, max_iterations=1)
    model1, avg1 = _split(ws.model)
    assert avg1.keys() == model1.keys()
    for k in model1:  # the average starts as the weights after the first step
        assert torch.equal(avg1[k], model1[k]), k
    for n in (1, 2):  # iterations are counted from 0: the step that makes iteration n + 1 uses n
        train(ws, cfg, max_iterations=1)
        model2, avg2 = _split(ws.model)
        decay = (1 + n) / (10 + n)
        moved = 0
        for k in _float_params(model2):
            expected = decay * avg1[k].double() + (1 - decay) * model2[k].double()
            assert torch.allclose(avg2[k].double(), expected, atol=1e-6, rtol=1e-5), k
            moved += not torch.equal(avg2[k], model2[k])
        assert moved > len(_float_params(model2)) // 2  # the average lags behind the trained weights
        avg1 = avg2

    plain = make_workspace(tmp_path / "b", train_faces)
    train(plain, TrainConfig(**TINY), max_iterations=3)
    model_plain, avg_plain = _split(plain.model)
    assert avg_plain == {}  # off: no averaged weights are saved
    for k in model_plain:  # averaging never changes the training itself
        assert torch.equal(model_plain[k], model2[k]), k


def test_merge_uses_the_averaged_weights_and_falls_back_without_them(tmp_path, train_faces):
    ws = make_workspace(tmp_path / "ws", train_faces)
    train(ws, TrainConfig(**TINY, ema_decay=0.9), max_iterations=4)
    model, avg = _split(ws.model)
    loaded = load_swapper(ws.model).model.state_dict()
    differing = [k for k in _float_params(model) if not torch.equal(model[k], avg[k])]
    assert differing
    for k in differing:
        assert torch.equal(loaded[k], avg[k]) and not torch.equal(loaded[k], model[k]), k

    # switched off on resume: the average is dropped and the merge uses the trained weights
    train(ws, TrainConfig(model="sae", workers=0, threads=1, preview_every=0, autosave_minutes=0, ema_decay=0.0),
          max_iterations=1)
    model, avg = _split(ws.model)
    assert avg == {}
    loaded = load_swapper(ws.model).model.state_dict()
    for k in model:
        assert torch.equal(loaded[k], model[k]), k


def test_preview_shows_the_averaged_network(tmp_path, train_faces, monkeypatch):
    """The preview runs the averaged network (the one load_swapper gives the merge), not the trained one."""
    from facedouble.train import trainer as T

    seen = {}
    real_predict = T.TrainSession.predict

    def spy(self, preview):
        seen["net"] = self.inference_model
        seen["average"] = self.average
        return real_predict(self, preview)

    monkeypatch.setattr(T.TrainSession, "predict", spy)
    ws = make_workspace(tmp_path / "ws", train_faces)
    train(ws, TrainConfig(**{**TINY, "preview_every": 3}, ema_decay=0.9), max_iterations=3)
    assert seen["average"] is not None and seen["net"] is seen["average"]
