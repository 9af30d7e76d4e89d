"""SAE training options of the original's later versions: random HSV power (colour augmentation of src), GAN
patch size and GAN dims. Each test shows the option's effect: src colours shift by up to the power (dst never),
the critic's first layer has the GAN dims, and its measured receptive field follows the patch size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facedouble.config import TrainConfig
from facedouble.errors import OptionError
from facedouble.train.options import TRAINING_DEFAULTS
from facedouble.train.models.layers import PatchDiscriminator
from facedouble.train.samples import BatchMaker, SampleOptions, load_faceset, random_hsv_shift
from facedouble.train.trainer import TrainSession, sample_options


def _hsv_means(images: np.ndarray, sel: np.ndarray | None = None) -> np.ndarray:
    """Mean saturation and value (0..1) of RGB uint8 images (over the pixels `sel` when given)."""
    hsv = cv2.cvtColor(images.reshape(-1, images.shape[-2], 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    sv = hsv[..., 1:].reshape(-1, 2)
    return (sv if sel is None else sv[sel]).mean(0)


def test_random_hsv_shift_is_bounded_by_its_power(train_faces):  # noqa: F811
    from facedouble.faces.container import read_face

    face, _ = read_face(sorted(train_faces["src"].glob("*.jpg"))[0])
    rng = np.random.default_rng(0)
    assert random_hsv_shift(face, rng, 0.0) is face
    # pixels bright enough that rounding to uint8 keeps their saturation (dark ones: (max - min) / max is noise)
    sel = face.max(axis=-1).reshape(-1) > 80
    base = _hsv_means(face, sel)
    for power in (0.05, 0.3):
        shifts = np.array([_hsv_means(random_hsv_shift(face, rng, power), sel) - base for _ in range(24)])
        # value moves by at most power / 2 (clipping only shrinks it); saturation by at most power
        assert np.abs(shifts[:, 1]).max() <= power / 2 + 0.01
        assert np.abs(shifts[:, 0]).max() <= power + 0.01
        assert np.abs(shifts).max() > power / 4  # and it does move, in both directions
        assert (shifts[:, 1] > 0).any() and (shifts[:, 1] < 0).any()
    # the hue turns: a 0.3 power changes a face's colour much more than 0.05 does
    diff = lambda p: np.mean([np.abs(random_hsv_shift(face, rng, p).astype(int) - face).mean() for _ in range(12)])  # noqa: E731
    assert diff(0.3) > 2 * diff(0.05) > 0


def test_random_hsv_power_changes_src_batches_only(train_faces):  # noqa: F811
    src = load_faceset(sorted(train_faces["src"].glob("*.jpg"))[:6], "src", "full", 64)
    dst = load_faceset(sorted(train_faces["dst"].glob("*.jpg"))[:6], "dst", "full", 64)
    opts = sample_options(TrainConfig(**{**TRAINING_DEFAULTS, "random_hsv_power": 0.2, "random_warp": False,
                                         "random_flip": False}))
    assert opts.random_hsv_power == 0.2
    plain = BatchMaker(src, dst, 6, 0, SampleOptions(random_warp=False, random_flip=False)).make(0)
    shifted = BatchMaker(src, dst, 6, 0, opts).make(0)
    assert np.array_equal(plain["dst_in"], shifted["dst_in"])
    assert np.array_equal(shifted["src_in"], shifted["src_target"])  # the input and its target alike
    per_face = np.abs(plain["src_in"].astype(int) - shifted["src_in"]).mean(axis=(1, 2, 3))
    assert (per_face > 1).all(), per_face  # every src face recoloured
    with pytest.raises(OptionError, match="--random-hsv-power"):
        TrainConfig(random_hsv_power=0.5)


def _receptive_field(critic: PatchDiscriminator, res: int) -> int:
    """The measured side of the input square that one central logit depends on."""
    x = torch.rand(1, 3, res, res, requires_grad=True)
    y = critic(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    cols = np.nonzero(x.grad[0].abs().sum(dim=(0, 1)).numpy() > 0)[0]
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("patch", [16, 32, 48, 96])
def test_gan_patch_size_sets_the_critics_receptive_field(patch):
    torch.manual_seed(0)
    critic = PatchDiscriminator(256, ch=8, patch=patch)
    measured = _receptive_field(critic, 256)
    assert measured == critic.receptive_field
    n_down = sum(isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) for m in critic.modules())
    assert abs(measured - patch) <= 2 ** n_down, (patch, measured)


def test_gan_dims_and_patch_size_reach_the_training_critic():
    base = dict(model="sae", resolution=64, face_type="full", archi="df", ae_dims=32, e_dims=8, d_dims=8,
                d_mask_dims=4, learn_mask=True, residual_blocks=False, lightweight_encoder=False,
                multiscale_decoder=False, remove_gray_border=False, batch_size=2, lr=1e-4, seed=0, workers=0,
                amp=False)
    cfg = lambda **kw: TrainConfig(**{**TRAINING_DEFAULTS, **base, "gan_power": 0.1, **kw})  # noqa: E731
    small = TrainSession(cfg(gan_dims=8, gan_patch_size=16), torch.device("cpu")).gan
    big = TrainSession(cfg(gan_dims=24, gan_patch_size=40), torch.device("cpu")).gan
    first = lambda c: next(m for m in c.modules() if isinstance(m, torch.nn.Conv2d))  # noqa: E731
    assert first(small).out_channels == 8 and first(big).out_channels == 24
    assert _receptive_field(small, 64) < _receptive_field(big, 64)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters())
    # the defaults keep the critic of models made before the options existed
    default = TrainSession(cfg(), torch.device("cpu")).gan
    assert first(default).out_channels == 32
    with pytest.raises(OptionError, match="--gan-dims"):
        cfg(gan_dims=2)


def test_cli_has_the_flags():
    from facedouble.cli import app

    out = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "220"}).output
    for flag in ("--random-hsv-power", "--gan-patch-size", "--gan-dims", "--color-transfer"):
        assert flag in out, flag
