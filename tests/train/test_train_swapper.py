"""train/swapper.py's `untrained_swapper`: a preset's network with random weights behind the Swapper interface
(what benchmarks/live.py, benchmarks/merge.py and the live tests' tiny model use)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facedouble.errors import OptionError
from facedouble.imagefile import read_rgb
from facedouble.train.models.registry import PRESETS
from facedouble.train.swapper import Swapper, untrained_swapper


def faces(media, size: int, n: int = 2) -> list[np.ndarray]:
    """n RGB uint8 crops of the real face photo at `size` x `size` (shifted a little each)."""
    image = read_rgb(media / "single_face.jpg")
    h, w = image.shape[:2]
    side = min(h, w)
    out = []
    for i in range(n):
        x0 = (w - side) // 2 + i * side // 20
        crop = image[: side, x0: x0 + side - side // 10]
        out.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return out


@pytest.mark.parametrize("name", ["cpu192", "h64"])
def test_a_presets_untrained_swapper_has_its_resolution_and_swaps_to_the_right_shapes(media, name):
    sw = untrained_swapper(name)
    res = PRESETS[name]["resolution"]
    assert isinstance(sw, Swapper)
    assert (sw.resolution, sw.face_type, sw.name, sw.iteration) == (res, PRESETS[name]["face_type"], name, 0)
    assert sw.device.type == "cpu" and not any(p.requires_grad for p in sw.model.parameters())

    batch = torch.from_numpy(np.stack(faces(media, res))).permute(0, 3, 1, 2).float() / 255.0
    face, mask = sw.swap(batch)
    assert face.shape == (2, 3, res, res) and mask.shape == (2, 1, res, res)
    assert face.dtype == torch.float32 and 0.0 <= float(face.min()) and float(face.max()) <= 1.0
    # a network, not a copy of its input: random weights give another picture
    assert float((face - batch).abs().mean()) > 0.02

    out, masks = sw.swap_numpy(faces(media, res, n=3))
    assert [o.shape for o in out] == [(res, res, 3)] * 3 and [m.shape for m in masks] == [(res, res)] * 3


def test_the_weights_depend_on_the_seed_only_and_leave_the_callers_random_state(media):
    small = dict(resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4)
    torch.manual_seed(123)
    before = torch.rand(4)
    torch.manual_seed(123)
    a = untrained_swapper("sae", seed=3, **small)
    assert torch.equal(torch.rand(4), before)  # the caller's generator did not move

    b = untrained_swapper("sae", seed=3, **small)
    c = untrained_swapper("sae", seed=4, **small)
    assert a.resolution == 64 and a.spec.ae_dims == 32 and a.spec.archi == PRESETS["sae"]["archi"]
    x = torch.from_numpy(np.stack(faces(media, 64))).permute(0, 3, 1, 2).float() / 255.0
    fa, fb, fc = a.swap(x)[0], b.swap(x)[0], c.swap(x)[0]
    assert torch.equal(fa, fb)
    assert float((fa - fc).abs().max()) > 1e-3


def test_an_option_that_is_not_an_architecture_option_is_refused():
    with pytest.raises(OptionError, match="batch_size is not an architecture option"):
        untrained_swapper("sae", batch_size=4)


@pytest.mark.parametrize("name", ["liae192", "cpu192", "amp"])
def test_the_swap_splits_into_codes_and_their_decoding(media, name):
    """The merge averages a face's codes over neighbouring frames (--smooth-codes): for df and liae networks the
    swap is exactly its two halves, and the code is small (the bottleneck: 256 numbers for liae192); a morphable
    amp model does not split."""
    small = dict(ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, resolution=64)
    sw = untrained_swapper(name, **small)
    if name == "amp":
        assert not sw.has_codes
        return
    assert sw.has_codes
    crops = faces(media, 64, n=3)
    codes = sw.codes_numpy(crops)
    assert codes.shape == (3, 64 if name == "liae192" else 32) and codes.dtype == np.float32
    whole, whole_masks = sw.swap_numpy(crops)
    split, split_masks = sw.swap_codes_numpy(codes)
    assert all(np.allclose(a, b, atol=2e-3) for a, b in zip(whole, split))
    assert all(np.allclose(a, b, atol=2e-3) for a, b in zip(whole_masks, split_masks))
    # a different code decodes to a different face (the decoding uses the code, not a cached input). The random
    # weights barely respond to codes of a face's size (1e-5 in float32; bf16's rounding hid that), so the other
    # code is another face's scaled far out, which moves the face by about 0.01 on average
    other, _ = sw.swap_codes_numpy(np.ascontiguousarray(codes[::-1] * 1000))
    assert np.abs(other[0] - whole[0]).mean() > 2e-3
