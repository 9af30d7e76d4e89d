"""The live pipeline's speed work keeps what the output looks like: the traced channels-last runner gives the
Swapper's faces and masks (and follows a morphable model's morph factor), the float32 L*a*b* conversions agree
with the float64 formulas, the direct rgb24 -> yuv420p conversion gives the same planes; a live source keeps
only the newest frame at the model's input (latency bounded by the model's time, not the queues' depth), and the
session puts torch's thread count back."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest

from facedouble.config import LiveConfig
from facedouble.faces.align import warp_to_face
from facedouble.inference import CpuRunner, crop_matrix, live_runner
from facedouble.live import LiveSession
from facedouble.live.pipeline import FaceFollower, LiveTuning


def _swapper(archi: str = "df", resolution: int = 64):
    import torch

    from facedouble.train.swapper import Swapper
    from facedouble.train.models.registry import ModelSpec, build_model

    spec = ModelSpec(resolution=resolution, face_type="full", archi=archi, ae_dims=32, e_dims=8, d_dims=8,
                     d_mask_dims=4)
    torch.manual_seed(5)
    model = build_model(spec).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Swapper(model, spec, torch.device("cpu"), f"tiny-{archi}", 0)


def _frames(media, n: int = 40) -> list[np.ndarray]:
    with av.open(str(media / "single_face.mp4")) as c:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(video=0))]


@pytest.fixture(scope="module")
def faces(media):
    """Real faces cut from the sample clip at 64 px (the tiny models' crop)."""
    follower = FaceFollower()
    out = []
    model = _swapper()
    for frame in _frames(media)[::8]:
        lm = follower(frame)
        assert lm is not None
        out.append(warp_to_face(frame, crop_matrix(model, lm), 64))
    return out


def test_runner_gives_the_swappers_faces_and_masks(faces, one_torch_thread):
    swapper = _swapper()
    runner = live_runner(swapper)
    assert isinstance(runner, CpuRunner) and runner._traced is not None
    assert runner.resolution == 64 and runner.face_type == "full" and runner.name == "tiny-df"
    for face in faces:
        (a,), (ma,) = swapper.swap_numpy([face])
        (b,), (mb,) = runner.swap_numpy([face])
        assert b.shape == (64, 64, 3) and mb.shape == (64, 64) and b.dtype == mb.dtype == np.float32
        assert np.abs(a - b).max() * 255 <= 1.0     # bf16 rounding at most (the Swapper runs bf16 too where it can)
        assert np.abs(ma - mb).max() * 255 <= 1.0
    # it is the model's output, not some other face: a different model's differs by far more
    other = _swapper(resolution=64)
    import torch

    with torch.no_grad():
        for p in other.model.parameters():
            p.add_(0.05)
    assert np.abs(other.swap_numpy(faces[:1])[0][0] - runner.swap_numpy(faces[:1])[0][0]).max() * 255 > 5


def test_runner_follows_the_morph_factor(faces, one_torch_thread):
    import torch

    swapper = _swapper("amp")
    with torch.no_grad():   # untrained inters give nearly the same face: make src's clearly another one
        for p in swapper.model.inter_src.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    runner = CpuRunner(swapper)
    assert runner._traced is not None and runner._morphable
    out = {}
    for morph in (0.0, 1.0):
        swapper.morph_factor = morph      # the session's control changes the wrapped model
        out[morph] = runner.swap_numpy(faces[:1])[0][0]
        expected = swapper.swap_numpy(faces[:1])[0][0]
        assert np.abs(out[morph] - expected).max() * 255 <= 1.0
    assert np.abs(out[0.0] - out[1.0]).max() * 255 > 2   # dst's reconstruction vs the swap


def test_lab_in_float32_agrees_with_the_float64_formulas(media):
    from facedouble.merge import color as C

    img = _frames(media, 1)[0]

    def lab64(c):
        c = c.astype(np.float64) / 255.0
        lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        xyz = (lin @ C._RGB2XYZ.T) / C._WHITE
        d = 6.0 / 29.0
        f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d ** 2) + 4.0 / 29.0)
        return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)

    lab = C.rgb_to_lab(img)
    assert lab.dtype == np.float32 and lab.shape == img.shape
    assert np.abs(lab - lab64(img)).max() < 1e-3
    assert np.abs(C.lab_to_rgb(lab) - img / 255.0).max() < 1e-4          # the inverse
    assert lab[..., 0].min() >= 0 and 20 < lab[..., 0].mean() < 90      # real L* values, not a constant


def test_direct_yuv_conversion_is_bit_identical(media):
    from facedouble.live.outputs import _yuv
    from facedouble.video.pixels import image_to_frame

    img = _frames(media, 1)[0][:359, :639]  # odd sizes are padded the same way
    from facedouble.live.outputs import _even

    a = _yuv(img)
    b = image_to_frame(np.ascontiguousarray(_even(img)[..., ::-1]), "yuv420p", colorspace="ITU709", color_range=1)
    assert (a.width, a.height) == (640, 360)
    for pa, pb in zip(a.planes, b.planes):
        assert np.array_equal(np.frombuffer(pa, np.uint8), np.frombuffer(pb, np.uint8))


class SlowModel:
    """A stand-in model that takes 150 ms per face (sleeping: the test measures queueing, not the CPU)."""

    resolution, face_type, learn_mask, name = 64, "full", False, "slow"

    def swap_numpy(self, faces):
        time.sleep(0.15)
        return [f.astype(np.float32) / 255.0 for f in faces], [np.ones((64, 64), np.float32) for _ in faces]


def _latency(media, tmp_path, tuning: LiveTuning):
    session = LiveSession(LiveConfig(source=str(media / "single_face.mp4"), out=str(tmp_path / f"{id(tuning)}.mp4"),
                                     color_transfer="none"), model=SlowModel(), realtime=True, tuning=tuning)
    session.start()
    return session.wait()


def test_live_source_keeps_the_newest_frame_at_the_model(media, tmp_path):
    """The clip played at 30 fps like a camera into a 150 ms model: at most two frames are in flight and only the
    newest waits at the model's input, so a frame waits at most about one model step, where the first pipeline
    queued two or three frames ahead of it (~0.6x its latency measured at load 14; timing on a shared machine,
    so the bound is loose)."""
    before = _latency(media, tmp_path, LiveTuning.before())
    now = _latency(media, tmp_path, LiveTuning())
    assert now.frames_in == before.frames_in == 72
    assert now.dropped > 0 and now.frames_out + now.dropped == now.frames_in
    assert now.frames_out >= 8                                     # up to ~6.7 fps through a 150 ms model
    assert now.latency_ms_median < 0.8 * before.latency_ms_median, (now.latency_ms_median, before.latency_ms_median)


def test_session_holds_torch_threads_and_puts_them_back(media, tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        swapper = _swapper()
        session = LiveSession(LiveConfig(source=str(media / "single_face.mp4"), out=str(tmp_path / "t.mp4"),
                                         color_transfer="none", max_frames=8), model=swapper)
        session.start()
        seen.append(torch.get_num_threads())
        summary = session.wait()
        assert seen == [1] and torch.get_num_threads() == 2
        assert summary.frames_out == 8 and summary.faces >= 6 and summary.dropped == 0
    finally:
        torch.set_num_threads(before)


def test_dfm_runs_on_its_own_sleeping_thread_with_the_same_output(faces, tmp_path):
    from support.models import tiny_untrained_model

    from facedouble.inference import load_model
    from facedouble.train.export import export_dfm

    tiny_untrained_model(tmp_path / "model")
    dfm = load_model(model_file=export_dfm(tmp_path / "model", tmp_path / "tiny.dfm"))
    runner = live_runner(dfm, threads=1)
    assert runner is not dfm and runner.resolution == dfm.resolution and runner.crop == dfm.crop
    opts = runner._fast.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    r = dfm.resolution
    import cv2

    crop = cv2.resize(faces[0], (r, r), interpolation=cv2.INTER_CUBIC)   # a real face at the DFM's size
    (a,), (ma,) = dfm.swap_numpy([crop])
    (b,), (mb,) = runner.swap_numpy([crop])
    assert np.abs(a - b).max() < 1e-5 and np.abs(ma - mb).max() < 1e-5
