"""train/models and train/optim: every preset and architecture option runs forward and backward; optimizer
modes agree; the training step works with every loss option."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from facedouble.config import TrainConfig
from facedouble.train.options import TRAINING_DEFAULTS
from facedouble.train.models import PRESETS, ModelSpec, build_model, count_parameters
from facedouble.train.trainer import TrainSession


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _options(**kw) -> TrainConfig:
    base = dict(model="sae", resolution=64, face_type="full", archi="df", ae_dims=32, e_dims=8, d_dims=8,
                d_mask_dims=4, learn_mask=True, residual_blocks=False, lightweight_encoder=False,
                multiscale_decoder=False, remove_gray_border=False, batch_size=2, lr=1e-4, seed=0, workers=0)
    return TrainConfig(**{**TRAINING_DEFAULTS, **base, **kw})


def _batch(res: int, b: int = 2, seed: int = 0, em: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for side in ("src", "dst"):
        out[f"{side}_in"] = rng.integers(0, 255, (b, res, res, 3), dtype=np.uint8)
        out[f"{side}_target"] = rng.integers(0, 255, (b, res, res, 3), dtype=np.uint8)
        mask = np.zeros((b, res, res), np.float32)
        mask[:, res // 4: 3 * res // 4, res // 4: 3 * res // 4] = 1
        out[f"{side}_mask"] = mask
        if em:
            out[f"{side}_em"] = mask * 0.5
    return out


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_runs_forward_and_backward(name):
    spec = ModelSpec(**{k: v for k, v in PRESETS[name].items() if k in ModelSpec.fields()})
    torch.manual_seed(0)
    model = build_model(spec)
    r = spec.resolution
    src, dst = torch.rand(1, 3, r, r), torch.rand(1, 3, r, r)
    out = model(src, dst, with_swap=True)
    for key in ("src_src", "dst_dst", "dst_src"):
        assert out[key].shape == (1, 3, r, r) and 0 <= out[key].min() and out[key].max() <= 1
    assert out["src_src_mask"].shape == (1, 1, r, r)
    loss = sum(out[k].mean() for k in ("src_src", "dst_dst", "src_src_mask", "dst_dst_mask"))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    face, mask = model.swap(dst)
    assert face.shape == (1, 3, r, r) and mask.shape == (1, 1, r, r)
    assert count_parameters(model) > 1e6


@pytest.mark.parametrize("change", [
    dict(archi="liae"), dict(archi="vg"), dict(residual_blocks=True), dict(lightweight_encoder=True),
    dict(multiscale_decoder=True), dict(learn_mask=False), dict(face_type="half", resolution=80),
])
def test_architecture_options_build_and_train(change):
    opts = _options(**change)
    session = TrainSession(opts, torch.device("cpu"))
    before = [p.detach().clone() for p in session.model.parameters()]
    src, dst = session.step(_batch(opts.resolution), 0)
    assert np.isfinite(src) and np.isfinite(dst)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, session.model.parameters()))
    assert changed > len(before) // 2
    face, mask = session.model.swap(torch.rand(1, 3, opts.resolution, opts.resolution))
    assert (mask is None) == (not opts.learn_mask)


def test_vg_is_deeper_than_df_and_lightweight_is_lighter():
    spec = ModelSpec(resolution=64, ae_dims=32, e_dims=16, d_dims=8, d_mask_dims=4)
    df = count_parameters(build_model(spec).encoder)
    assert count_parameters(build_model(dataclasses.replace(spec, archi="vg")).encoder) > 2 * df
    assert count_parameters(build_model(dataclasses.replace(spec, lightweight_encoder=True)).encoder) < df / 2


@pytest.mark.parametrize("change", [
    dict(pixel_loss=True), dict(eyes_mouth_priority=True), dict(face_style_power=10.0, bg_style_power=10.0),
    dict(gan_power=0.1), dict(true_face_power=0.1), dict(lr_dropout=True, clip_grad=True), dict(remove_gray_border=True),
])
def test_training_options_step(change):
    opts = _options(**change)
    session = TrainSession(opts, torch.device("cpu"))
    losses = [session.step(_batch(64, em=opts.eyes_mouth_priority, seed=i % 2), i) for i in range(3)]
    assert all(np.isfinite(v) for pair in losses for v in pair)
    if opts.gan_power:
        assert session.gan is not None and any(k.startswith("disc.gan.") for k in session.state_tensors()[0])
    if opts.true_face_power:
        assert session.code_d is not None and any(k.startswith("optim.code.") for k in session.state_tensors()[0])


def test_optimizer_modes_give_the_same_training():
    """Mode 2 (recomputed activations) and mode 3 (Adam on CPU master copies) change memory use, not the maths."""
    results = {}
    for mode in ("1", "2", "3"):
        session = TrainSession(_options(optimizer_mode=mode, amp=False, lr_dropout=True), torch.device("cpu"))
        for i in range(2):
            session.step(_batch(64, seed=i), i)
        results[mode] = torch.cat([p.detach().flatten() for p in session.model.parameters()])
    assert torch.allclose(results["1"], results["2"], atol=1e-6)
    assert torch.allclose(results["1"], results["3"], atol=1e-6)


def test_lr_dropout_keeps_about_seventy_percent_of_updates():
    session = TrainSession(_options(lr_dropout=True, amp=False), torch.device("cpu"))
    before = torch.cat([p.detach().flatten().clone() for p in session.model.parameters()])
    session.step(_batch(64), 0)
    after = torch.cat([p.detach().flatten() for p in session.model.parameters()])
    moved = (after != before).float().mean().item()
    assert 0.6 < moved < 0.8


def test_bf16_autocast_is_used_on_cpu_by_default():
    from facedouble.device import cpu_has_bf16

    session = TrainSession(_options(), torch.device("cpu"))
    assert session.amp == (torch.bfloat16 if cpu_has_bf16() else None)
    assert TrainSession(_options(amp=False), torch.device("cpu")).amp is None
    conv = session.model.encoder.stages[0][0].conv
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.gpu
def test_one_cuda_step_with_amp_and_channels_last():
    device = torch.device("cuda")
    session = TrainSession(_options(), device)
    assert session.amp in (torch.bfloat16, torch.float16)
    assert session.model.decoder_src.ups[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    src, dst = session.step(_batch(64), 0)
    assert np.isfinite(src) and np.isfinite(dst)
    assert all(p.device.type == "cuda" for p in session.model.parameters())
    session3 = TrainSession(_options(optimizer_mode="3"), device)  # optimizer state on the CPU
    session3.step(_batch(64), 0)
    assert session3.opt.master[0].device.type == "cpu"


def test_thread_tuner_keeps_all_cores_unless_fewer_are_clearly_faster():
    from facedouble.train.trainer import ThreadTuner

    before = torch.get_num_threads()
    tuner = ThreadTuner(0, torch.device("cpu"), first=0, probe=2)
    if len(tuner.candidates) < 2:
        pytest.skip("one core")
    most, fewer = tuner.candidates

    def probe(seconds_for):
        tuner.next_probe = 0
        for i in range(2 * (tuner.probe + 1)):
            tuner.before_step(i)
            n = torch.get_num_threads()
            msg = tuner.after_step(i, seconds_for[n])
        return msg

    assert probe({most: 1.0, fewer: 0.9}) is None and tuner.current == most  # 10% faster: not enough
    assert "using" in probe({most: 1.0, fewer: 0.5}) and tuner.current == fewer == torch.get_num_threads()
    assert probe({most: 0.6, fewer: 0.6}) and tuner.current == most  # as fast again: back to all cores
    assert ThreadTuner(1, torch.device("cpu")).candidates == [1]
    tuner.restore()
    torch.set_num_threads(before)


def test_double_resolution_decoder_works_at_half_the_face():
    """The original's "d" flag: the decoder's layers run at half the face's side and the heads predict 2x2
    pixels each, so a face of twice the side costs about what the plain decoder's does."""
    plain = build_model(ModelSpec(resolution=64, e_dims=8, d_dims=8, d_mask_dims=4, ae_dims=32))
    double = build_model(ModelSpec(resolution=64, e_dims=8, d_dims=8, d_mask_dims=4, ae_dims=32, double_resolution=True))
    sizes = []
    double.decoder_src.ups[-1].register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    x = torch.rand(2, 3, 64, 64)
    out = double(x, x, with_swap=True)
    assert sizes == [32, 32]  # the src decoder's last layer, for src -> src and for the swap: half of 64
    assert out["src_src"].shape == (2, 3, 64, 64) and out["src_src_mask"].shape == (2, 1, 64, 64)
    face, mask = double.swap(x)
    assert face.shape == (2, 3, 64, 64) and mask.shape == (2, 1, 64, 64)
    # the same layers as the plain model at half the bottleneck size, plus 2x2 heads: similar size
    assert 0.5 < count_parameters(double) / count_parameters(plain) < 1.5
    # a model saved before the option existed is a plain one
    assert ModelSpec.from_options({k: v for k, v in dataclasses.asdict(ModelSpec()).items()
                                   if k != "double_resolution"}).double_resolution is False


def test_adabelief_step_follows_its_formula_and_differs_from_adam():
    from facedouble.train.optim import ADABELIEF_EPS as EPS, BETAS, AdaBelief

    g1, g2 = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([1.0, 2.0, 0.5])
    w = torch.nn.Parameter(torch.zeros(3))
    opt = AdaBelief([w], lr=0.1)
    m = s = torch.zeros(3)
    expect = torch.zeros(3)
    for t, g in enumerate((g1, g2), start=1):
        w.grad = g.clone()
        opt.step()
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        s = BETAS[1] * s + (1 - BETAS[1]) * (g - m) ** 2 + EPS
        expect = expect - 0.1 * (m / (1 - BETAS[0] ** t)) / ((s / (1 - BETAS[1] ** t)).sqrt() + EPS)
    assert torch.allclose(w.detach(), expect, atol=1e-6)
    assert set(opt.state_dict()["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}  # Adam's checkpoint layout
    # a weight whose gradient keeps flipping sign (all surprise) moves far less, relative to one whose gradient
    # is steady, than under Adam
    def noisy_over_steady(opt_class) -> float:
        p = torch.nn.Parameter(torch.zeros(2))
        opt = opt_class([p], lr=0.01, betas=BETAS)
        for t in range(30):
            p.grad = torch.tensor([1.0, (-1.0) ** t])
            opt.step()
        return float(abs(p[1]) / abs(p[0]))

    assert noisy_over_steady(AdaBelief) < 0.5 * noisy_over_steady(torch.optim.Adam)


def test_adabelief_moves_small_gradients_as_far_as_adam():
    """Gradients the size these models see (RMS ~1e-4 per weight): the eps that AdaBelief adds to s must not
    set a floor under the denominator that shrinks its steps (with Adam's 1e-7 they were ~50x smaller)."""
    from facedouble.train.optim import Optimizer

    def moved(adabelief: bool) -> float:
        w = torch.nn.Parameter(torch.zeros(4))
        opt = Optimizer([w], lr=1e-3, adabelief=adabelief)
        for t in range(50):
            w.grad = 1e-4 * torch.tensor([1.0, 0.5, 2.0, 1.0]) * (1.0 + 0.5 * (-1.0) ** t)
            opt.step(t)
        return float(w.detach().abs().mean())

    assert 0.5 < moved(True) / moved(False) < 20.0


def test_adabelief_option_trains():
    # float32: on a CPU with bf16, autocast's rounding moves the loss more than five small AdaBelief steps do
    session = TrainSession(_options(adabelief=True, amp=False), torch.device("cpu"))
    from facedouble.train.optim import AdaBelief

    assert isinstance(session.opt.adam, AdaBelief)
    before = [p.detach().clone() for p in session.model.parameters()]
    first = session.step(_batch(64), 0)
    for i in range(1, 6):
        last = session.step(_batch(64, seed=0), i)
    assert sum(last) < sum(first)
    assert sum(not torch.equal(a, b) for a, b in zip(before, session.model.parameters())) > len(before) // 2


def test_adabelief_steps_at_a_third_of_the_learning_rate_given_also_after_a_resume():
    """The presets' learning rates are Adam's; AdaBelief at liae192's 3e-4 diverged (docs/quality.md), so it
    takes ADABELIEF_LR_SCALE of the rate given, when made and when a saved state is loaded, also after the
    user switches optimizer or changes --lr; Adam takes the rate as given."""
    from facedouble.train.optim import ADABELIEF_LR_SCALE

    belief = TrainSession(_options(adabelief=True, lr=3e-4), torch.device("cpu"))
    assert belief.opt.adam.param_groups[0]["lr"] == pytest.approx(3e-4 * ADABELIEF_LR_SCALE)
    belief.step(_batch(64), 0)
    tensors, groups = belief.state_tensors()
    resumed = TrainSession(_options(adabelief=True, lr=6e-4), torch.device("cpu"))
    resumed.load_state_tensors(tensors, groups)
    assert resumed.opt.adam.param_groups[0]["lr"] == pytest.approx(6e-4 * ADABELIEF_LR_SCALE)
    adam = TrainSession(_options(adabelief=False, lr=3e-4), torch.device("cpu"))  # switched back to Adam
    adam.load_state_tensors(tensors, groups)
    assert adam.opt.adam.param_groups[0]["lr"] == pytest.approx(3e-4)
