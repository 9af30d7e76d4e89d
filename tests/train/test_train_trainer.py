"""The training stage on real faces: the loss falls, training resumes exactly, options persist and are
refused or overridden, previews and plots are written, divergence rolls back, a stop saves, the trained
model loads for the merge (Swapper contract) and exports to ONNX, and the CLI drives it all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facedouble.config import TrainConfig
from facedouble.errors import Cancelled, ModelError, OptionError, TrainingError
from facedouble.progress import Reporter
from facedouble.train import checkpoint as ckpt
from facedouble.train.options import describe_changes, option_changes
from facedouble.train import losses
from facedouble.train.swapper import IdentitySwapper, ellipse_mask, load_swapper
from facedouble.train.preview import preview_layout
from facedouble.train.trainer import interactive_fields, train
from support.workspaces import make_workspace

ROOT = Path(__file__).resolve().parents[2]

# A small model for the mechanics (the real presets are exercised in test_train_models.py and below).
TINY = dict(model="sae", resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, batch_size=2, seed=3,
            workers=0, threads=1, preview_every=0, autosave_minutes=0, backup_hours=0)


@pytest.fixture(autouse=True)
def _threads():
    """One model thread: bit-exact resumes need a fixed thread count, and on a shared 2-core machine one
    thread is the faster choice (see ThreadTuner)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def ws(tmp_path, train_faces):  # noqa: F811
    return make_workspace(tmp_path / "ws", train_faces)


def _weights(model_dir: Path, name: str = "sae") -> dict[str, torch.Tensor]:
    tensors, _ = ckpt.read_checkpoint(model_dir / f"{name}.safetensors")
    return tensors


def _masked_errors(model_dir: Path, ws, res: int) -> tuple[float, float]:
    """Mean abs error of dst -> dst inside the face mask, and that of the best flat colour (the mean face colour):
    a model that learned a face beats the flat colour; one that learned only the colour does not."""
    from facedouble.faces.align import transform_points
    from facedouble.train.samples import face_mask, load_faceset
    from facedouble.train.warp import centre_affine, warp_sample

    sw = load_swapper(model_dir, "cpu")
    fs = load_faceset(ws.face_files("dst"), "dst", "full", res)
    idx = np.linspace(0, len(fs) - 1, 8).round().astype(int)
    m = centre_affine(fs.crops.shape[1], res)
    faces = np.stack([warp_sample(fs.crops[i], m, res, None)[1] for i in idx])
    dst = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(np.stack([face_mask(transform_points(fs.landmarks[i], m), res, "full") for i in idx]))[:, None]
    with torch.no_grad():
        out = sw.model(dst, dst)
    err = ((out["dst_dst"] - dst).abs() * masks).sum() / (masks.sum() * 3)
    mean = (dst * masks).sum((0, 2, 3), keepdim=True) / masks.sum()
    flat = ((dst - mean).abs() * masks).sum() / (masks.sum() * 3)
    return err.item(), flat.item()


def _loss_falls(ws, resolution: int, iterations: int, reporter=None) -> tuple[np.ndarray, np.ndarray, float, float]:
    res = train(ws, TrainConfig(model="lean96", resolution=resolution, batch_size=4, seed=0, workers=1, threads=1,
                                preview_every=0, autosave_minutes=0, backup_hours=0), max_iterations=iterations,
                reporter=reporter)
    hist = np.asarray(_weights(ws.model, "lean96")["history"])
    assert res.iteration == iterations and hist.shape == (iterations, 2)
    return hist[:10].mean(0), hist[-20:].mean(0), *_masked_errors(ws.model, ws, resolution)


def test_loss_falls_on_real_faces(ws):
    """lean96's architecture at 64 px (to keep the test under a minute), batch 4, 150 iterations, bf16: the loss
    of both people halves, and the reconstruction inside the face beats the best flat colour."""
    said = []

    class Heard(Reporter):
        def info(self, text, **kw):
            said.append(text)

    first, last, err, flat = _loss_falls(ws, 64, 150, Heard())
    assert np.all(last < 0.7 * first), (first, last)
    assert err < 0.9 * flat, (err, flat)
    # the final preview's dst->src faces were scored for identity beside the loss
    log = json.loads((ws.model / "lean96_identity.json").read_text())
    assert log[-1]["iteration"] == 150 and 0.0 <= log[-1]["nearer_src"] <= 1.0 and log[-1]["mean_src"] > 0
    # ... and said so, with the share like src (a collapsed network's previews are nearer one person, like none)
    line = next(t for t in said if t.startswith("iter 150: identity"))
    assert f"{log[-1]['same_as_src']:.0%} within 0.6 of src" in line, line


@pytest.mark.slow
def test_loss_falls_on_real_faces_lean96_full_size(ws):
    """The real lean96 (96 px), 600 iterations: the reconstruction is clearly a face. The loss falls by 40% or
    more (float32 on a CPU without bf16: her loss to 0.55 of its start, his to 0.33; her 472 frames of many
    expressions, the hand over her mouth among them, are harder to learn than his 72), and the reconstruction
    beats the best flat colour clearly."""
    first, last, err, flat = _loss_falls(ws, 96, 600)
    assert np.all(last < 0.6 * first), (first, last)
    assert err < 0.7 * flat, (err, flat)


def test_resume_continues_exactly(tmp_path, train_faces):  # noqa: F811
    """Train 3 iterations, stop (save), resume for 1 more: the weights equal those of 4 uninterrupted iterations
    (fixed seeds; the batch of each iteration is a pure function of the seed and the iteration)."""
    cfg = TrainConfig(**TINY, lr_dropout=True)
    a = make_workspace(tmp_path / "a", train_faces)
    b = make_workspace(tmp_path / "b", train_faces)
    train(a, cfg, max_iterations=4)
    train(b, cfg, max_iterations=3)
    res = train(b, cfg, max_iterations=1)
    assert res.iteration == 4 and res.iterations_run == 1
    wa, wb = _weights(a.model), _weights(b.model)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    meta = ckpt.read_meta(b.model / "sae.safetensors")
    assert meta["iteration"] == 4 and meta["seed"] == 3


def test_options_persist_fixed_ones_are_refused_and_given_ones_change_the_rest(ws):
    train(ws, TrainConfig(**TINY), max_iterations=1)
    saved = TrainConfig.load(ws.model / "sae_options.json")
    assert saved.resolution == 64 and saved.batch_size == 2 and saved.random_flip is True
    # a later run without options uses the saved ones (not the sae preset's 128 px)
    res = train(ws, TrainConfig(model="sae", workers=0, preview_every=0, autosave_minutes=0), max_iterations=1)
    assert res.options.resolution == 64 and res.iteration == 2
    with pytest.raises(OptionError, match="--resolution is fixed"):
        train(ws, TrainConfig(model="sae", resolution=96), max_iterations=1)
    with pytest.raises(OptionError, match="--archi is fixed"):
        train(ws, TrainConfig(model="sae", archi="liae"), max_iterations=1)
    with pytest.raises(OptionError, match="cannot be carried over"):  # the refusal says why
        train(ws, TrainConfig(model="sae", resolution=96, batch_size=3), max_iterations=1)
    assert TrainConfig.load(ws.model / "sae_options.json").batch_size == 2  # nothing applied by a refused run
    lr = saved.lr / 2
    given = TrainConfig(model="sae", batch_size=3, random_flip=False, lr=lr, target_iteration=None, workers=0,
                        preview_every=0, autosave_minutes=0)
    changes = option_changes(ws.model, given)
    assert changes == {"batch_size": (2, 3), "random_flip": (True, False), "lr": (saved.lr, lr)}
    assert describe_changes("sae", changes) == \
        f"sae: changed --batch-size 2 -> 3, --random-flip True -> False, --lr {saved.lr!r} -> {lr!r}"
    res = train(ws, given, max_iterations=1)  # given options apply without --override
    assert res.options.batch_size == 3 and res.options.random_flip is False and res.iteration == 3
    saved = TrainConfig.load(ws.model / "sae_options.json")
    assert saved.batch_size == 3 and saved.lr == lr and saved.resolution == 64
    assert interactive_fields(saved, existing=True) == []
    assert "resolution" not in interactive_fields(saved.override(override_options=True), existing=True)
    assert "batch_size" in interactive_fields(saved.override(override_options=True), existing=True)
    assert "resolution" in interactive_fields(TrainConfig(model="sae"), existing=False)
    assert "resolution" not in interactive_fields(TrainConfig(model="quick96"), existing=False)


def test_preview_loss_plot_history_backups_and_state(ws):
    import cv2

    cfg = TrainConfig(**{**TINY, "preview_every": 2, "autosave_minutes": 1e-6, "backup_hours": 1e-9,
                         "backups_kept": 2}, write_preview_history=True)
    res = train(ws, cfg, max_iterations=4)
    preview = cv2.imread(str(ws.model / "sae_preview.png"))
    assert preview is not None and preview.shape[:2] == preview_layout(64, 4)  # 4 rows x 5 columns of 64 px
    assert res.preview == ws.model / "sae_preview.png"
    body = preview[preview.shape[0] - 4 * 64:]
    assert body[:, :64].std() > 10  # the src column holds a real face
    plot = cv2.imread(str(ws.model / "sae_loss.png"))
    assert plot is not None and plot.shape[0] > 100
    history = sorted((ws.model / "history").glob("sae_*.png"))
    assert [p.name for p in history] == ["sae_00000002.png", "sae_00000004.png"]
    backups = sorted((ws.model / "backups").glob("sae_*.safetensors"))
    assert len(backups) == 2 and backups[-1].name == "sae_00000003.safetensors"
    state = json.loads((ws.model / "sae_state.json").read_text())
    assert state["iteration"] == 4 and len(state["loss_history"]) == 4 and state["seed"] == 3
    assert not list(ws.model.glob("*.tmp"))


@pytest.mark.parametrize("fault", ["nan", "explode", "collapse"])
def test_bad_loss_rolls_back_to_the_last_save_and_says_so(ws, monkeypatch, fault):
    """A NaN loss, one that explodes against the recent median, or one that jumps to a few times its level and
    stays there (a collapse, under the explosion's 10x) stops training with a message and leaves the model of
    the last save (iteration 3), finite, in memory and on disk."""
    from facedouble.train import trainer as T

    train(ws, TrainConfig(**TINY), max_iterations=3)
    good = _weights(ws.model)
    calls = {"n": 0}
    real = losses.dssim
    factor, after_calls = (float("nan"), 4) if fault == "nan" else (1e4, 24)  # a few good iterations first

    def poisoned(a, b, window):
        calls["n"] += 1
        out = real(a, b, window)
        return out * factor if calls["n"] > after_calls else out

    real_losses = T.TrainSession.losses

    def collapsed(self, out, b, *rest):  # eight good iterations of this run, then every loss 6x (under 10x) for good
        calls["n"] += 1
        src, dst = real_losses(self, out, b, *rest)
        return (src * 6, dst * 6) if calls["n"] > 8 else (src, dst)

    monkeypatch.setattr(T, "EXPLODE_WARMUP", 5)  # judged against the median of the last 5+ iterations
    monkeypatch.setattr(T, "COLLAPSE_WINDOW", 3)  # ... and a collapse by the last 3 against the 5+ before
    if fault == "collapse":
        monkeypatch.setattr(T.TrainSession, "losses", collapsed)
    else:
        monkeypatch.setattr(losses, "dssim", poisoned)
    said = {"nan": r"became nan", "explode": r"exploded to", "collapse": r"rose to .*x its median"}[fault]
    with pytest.raises(TrainingError, match=said + r".* rolled back to its last save \(iteration 3\)"):
        train(ws, TrainConfig(model="sae", workers=0, threads=1, preview_every=0, autosave_minutes=0), max_iterations=30)
    after = _weights(ws.model)
    assert ckpt.read_meta(ws.model / "sae.safetensors")["iteration"] == 3
    for k in good:
        assert torch.equal(good[k], after[k]), k
    assert all(torch.isfinite(v).all() for k, v in after.items() if v.is_floating_point())


def test_loss_fault_tells_a_collapse_from_training_noise_and_from_a_resumed_change():
    """Summed losses as liae192 logged them with AdaBelief at 3e-4: about 3.7 and falling, then from iteration
    1,600 about 26 and staying (the output one flat colour). The collapse is named once it fills half of the
    window; the jump itself (7x) is under the explosion's 10x; the noise of a healthy run, and a rise that
    comes with a resume (the history before this run), are not collapses."""
    from facedouble.train.trainer import COLLAPSE_WINDOW, loss_fault

    rng = np.random.default_rng(0)
    healthy = list(3.7 * np.exp(rng.normal(0, 0.35, 600)))  # single-batch losses spread about +-40%
    assert loss_fault(healthy, 3.7 * 2.5, own=600) is None  # one bad batch
    assert loss_fault(healthy[:-1], float("nan"), own=599) == "became nan"
    assert loss_fault(healthy[:-1], 60.0, own=599).startswith("exploded to")
    early = healthy + [26.0] * (COLLAPSE_WINDOW // 2 - 2)  # under half of the window high: not yet
    assert loss_fault(early, 26.0, own=len(early)) is None
    collapsed = healthy + [26.0] * (COLLAPSE_WINDOW // 2 + 2)
    said = loss_fault(collapsed, 26.0, own=len(collapsed))
    assert said is not None and said.startswith("rose to 26") and "x its median" in said
    # the same rise straight after a resume whose change raised the loss: this run's own losses are all high
    assert loss_fault(collapsed, 26.0, own=COLLAPSE_WINDOW - 1) is None


def test_cancel_saves_and_raises_cancelled(ws):
    seen = []

    class StopAfter(Reporter):
        def status(self, text, **figures):  # the progress line and its numbers; stop after the second iteration
            seen.append((text, figures))
            if figures["iteration"] == 2:
                self.cancel()

    rep = StopAfter()
    with pytest.raises(Cancelled, match="saved"):
        train(ws, TrainConfig(**TINY), reporter=rep, max_iterations=50)
    # the numbers behind the text (the UI's training monitor reads these, not the text)
    text, figures = seen[-1]
    assert re.search(r"iter +2 ", text) and figures["iteration"] == 2
    assert figures["ms_per_it"] > 0 and abs(figures["samples_per_s"] * figures["ms_per_it"] / 1000
                                            - TINY.get("batch_size", 8)) < 1e-6
    assert f"{figures['src_loss']:.4f}" in text and f"{figures['dst_loss']:.4f}" in text
    assert ckpt.read_meta(ws.model / "sae.safetensors")["iteration"] == 2
    res = train(ws, TrainConfig(model="sae", workers=0), max_seconds=0.0)  # resumes, stops at once
    assert res.iteration == 2 and res.stopped == "max_seconds"


def test_keys_save_preview_and_stop(ws):
    pressed = iter(["", "p", "s", "", "\n"])
    res = train(ws, TrainConfig(**TINY), keys=lambda: next(pressed, ""), max_iterations=50)
    assert res.stopped == "user" and res.iteration == 4
    assert (ws.model / "sae_preview.png").is_file()


def test_target_iteration_stops(ws):
    res = train(ws, TrainConfig(**TINY, target_iteration=2), max_iterations=50)
    assert res.stopped == "target" and res.iteration == 2


def test_warp_from_says_when_the_warp_starts(ws):
    rep = Reporter()
    res = train(ws, TrainConfig(**TINY, warp_from=2), max_iterations=3, reporter=rep)
    starts = [m for m in rep.messages if "random warp starts" in m]
    assert res.iteration == 3 and starts == [
        "iteration 2: random warp starts (--warp-from 2); the loss rises for a while as the model learns the warped faces"]


def test_no_faces_is_a_clear_error(tmp_path):
    from facedouble.errors import NoFaceError
    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path / "empty").create()
    with pytest.raises(NoFaceError, match="extract"):
        train(ws, TrainConfig(**TINY), max_iterations=1)


# -- the inference contract -------------------------------------------------------------------------------

def test_swapper_contract(ws):
    train(ws, TrainConfig(**TINY), max_iterations=2)
    sw = load_swapper(ws.model)
    assert sw.resolution == 64 and sw.face_type == "full" and sw.learn_mask is True
    assert sw.device.type == "cpu" and not sw.model.training
    faces = torch.rand(3, 3, 64, 64)
    face, mask = sw.swap(faces)
    assert face.shape == (3, 3, 64, 64) and mask.shape == (3, 1, 64, 64)
    assert face.dtype == mask.dtype == torch.float32 and not face.requires_grad
    assert 0 <= face.min() and face.max() <= 1 and 0 <= mask.min() and mask.max() <= 1
    imgs = [(np.random.default_rng(i).random((64, 64, 3)) * 255).astype(np.uint8) for i in range(2)]
    faces_np, masks_np = sw.swap_numpy(imgs)
    assert len(faces_np) == 2 and faces_np[0].shape == (64, 64, 3) and faces_np[0].dtype == np.float32
    assert masks_np[0].shape == (64, 64) and masks_np[0].dtype == np.float32
    # the same faces through the tensor path give the same result
    t_face, _ = sw.swap(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255)
    assert np.allclose(faces_np[1], t_face[1].permute(1, 2, 0).numpy(), atol=1e-6)
    with pytest.raises(ModelError, match="64 x 64"):
        sw.swap(torch.rand(1, 3, 96, 96))


def test_load_swapper_errors(tmp_path):
    with pytest.raises(ModelError, match="No trained model"):
        load_swapper(tmp_path)
    (tmp_path / "model.h5").write_bytes(b"x")
    with pytest.raises(ModelError, match="another tool"):
        load_swapper(tmp_path)


def test_load_swapper_refuses_another_architecture(ws):
    train(ws, TrainConfig(**TINY), max_iterations=1)
    opts = json.loads((ws.model / "sae_options.json").read_text())
    opts["options"]["archi"] = "liae"
    (ws.model / "sae_options.json").write_text(json.dumps(opts))
    with pytest.raises(ModelError, match="another architecture"):
        load_swapper(ws.model)
    with pytest.raises(ModelError, match="No trained model 'h64'"):
        load_swapper(ws.model, name="h64")


def test_identity_swapper():
    sw = IdentitySwapper(96, "whole-face")
    faces = torch.rand(2, 3, 96, 96)
    face, mask = sw.swap(faces)
    assert torch.equal(face, faces) and mask.shape == (2, 1, 96, 96)
    m = ellipse_mask(96)
    assert m[48, 48] == 1.0 and m[0, 0] == 0.0 and m[2, 48] == 0.0 and 0 < m.mean() < 0.6
    assert np.allclose(m, m[:, ::-1], atol=1e-6)  # symmetric left-right
    f, k = sw.swap_numpy([np.zeros((96, 96, 3), np.uint8)])
    assert f[0].shape == (96, 96, 3) and np.array_equal(k[0], m)
    assert sw.resolution == 96 and sw.face_type == "whole-face" and sw.learn_mask is False


def test_onnx_export_matches_pytorch(ws):
    from facedouble.train.export import export_onnx, run_onnx

    train(ws, TrainConfig(**TINY), max_iterations=1)
    path = export_onnx(ws.model)
    assert path == ws.model / "sae.onnx"
    faces = np.random.default_rng(0).random((3, 64, 64, 3), dtype=np.float32)
    o_face, o_mask = run_onnx(path, faces)
    t_face, t_mask = load_swapper(ws.model, "cpu", amp=False).swap(torch.from_numpy(faces).permute(0, 3, 1, 2))
    assert o_face.shape == (3, 64, 64, 3) and o_mask.shape == (3, 64, 64, 1)
    assert np.abs(o_face - t_face.permute(0, 2, 3, 1).numpy()).max() < 1e-4
    assert np.abs(o_mask - t_mask.permute(0, 2, 3, 1).numpy()).max() < 1e-4


# -- the command line -----------------------------------------------------------------------------------------

def test_cli_train_refuses_fixed_options_and_exports(ws, tmp_path):
    from facedouble.cli import app

    runner = CliRunner()
    flags = ["--model", "sae", "--resolution", "64", "--ae-dims", "32", "--e-dims", "8", "--d-dims", "8",
             "--d-mask-dims", "4", "-b", "2", "--seed", "1", "--workers", "0", "--threads", "1", "--preview-every", "0"]
    r = runner.invoke(app, ["train", "-w", str(ws.root), *flags, "--max-iterations", "2"])
    assert r.exit_code == 0, r.output
    assert "iteration 2" in r.output
    r = runner.invoke(app, ["train", "-w", str(ws.root), "--model", "sae", "--resolution", "128", "--max-iterations", "1"])
    assert r.exit_code == 1 and "--resolution is fixed" in r.output and "Traceback" not in r.output
    assert "cannot be carried over" in r.output  # and says why
    # a training option typed on the command line is the user's override: applied, and said in one line
    r = runner.invoke(app, ["train", "-w", str(ws.root), "--model", "sae", "-b", "4", "--target-iteration", "50",
                            "--workers", "0", "--max-iterations", "1"])
    assert r.exit_code == 0, r.output
    assert "sae: changed --batch-size 2 -> 4, --target-iteration 0 -> 50" in r.output
    saved = TrainConfig.load(ws.model / "sae_options.json")
    assert saved.batch_size == 4 and saved.target_iteration == 50
    r = runner.invoke(app, ["train", "-w", str(ws.root), "--model", "sae", "-b", "4", "--override", "--workers", "0",
                            "--max-iterations", "1"])
    assert r.exit_code == 0 and "changed" not in r.output, r.output  # --override still accepted; nothing new to say
    out = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export-onnx", "-w", str(ws.root), "--out", str(out)])
    assert r.exit_code == 0 and out.stat().st_size > 10_000, r.output


def test_sigterm_saves_and_exits(ws):
    """A real `facedouble train` process stopped by SIGTERM (what schedulers and `kill` send) saves and exits 130."""
    cmd = [sys.executable, "-m", "facedouble", "train", "-w", str(ws.root), "--model", "sae", "--resolution", "64",
           "--ae-dims", "32", "--e-dims", "8", "--d-dims", "8", "--d-mask-dims", "4", "-b", "2", "--workers", "0",
           "--threads", "1", "--preview-every", "0", "--autosave-minutes", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for the first save (iteration 0) and some training
            if (ws.model / "sae.safetensors").is_file() and (ws.model / "sae_state.json").is_file():
                time.sleep(3)
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "stopped" in err.decode()
    assert ckpt.read_meta(ws.model / "sae.safetensors")["iteration"] > 0


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _torchrun(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    """torchrun in a session of its own, so a timeout ends its worker processes too, not only the launcher. Each
    run needs ~10-25 s of CPU (12-28 s on 2 idle cores); the timeout allows for a heavily shared machine."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(TORCHRUN + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_distributed_training_with_lr_dropout_under_torchrun_on_cpu(ws):
    """Two processes (gloo on the CPU; the same code uses NCCL on GPUs) train on their own batches with lr dropout:
    every process draws the same dropout mask, so the replicas end identical (train() compares a weight checksum
    across processes before saving); rank 0 alone saves and reports. Before the fix each rank drew its own mask
    and the run ended in "lost sync"."""
    out = _torchrun(["-m", "facedouble", "train", "-w", str(ws.root), "--model", "sae", "--resolution", "64",
                     "--ae-dims", "32", "--e-dims", "8", "--d-dims", "8", "--d-mask-dims", "4", "-b", "2",
                     "--workers", "0", "--threads", "1", "--device", "cpu", "--seed", "1", "--max-iterations", "3",
                     "--preview-every", "0", "--lr-dropout"])
    err = out.stderr.decode()
    assert out.returncode == 0, err[-2000:]
    assert "lost sync" not in err
    assert err.count("iteration 3 (3 this run") == 1  # rank 0 reports for both
    meta = ckpt.read_meta(ws.model / "sae.safetensors")
    assert meta["iteration"] == 3
    assert TrainConfig.load(ws.model / "sae_options.json").lr_dropout is True


_DRIFT = """
import json, os, sys
import torch
from facedouble.config import TrainConfig
from facedouble.errors import TrainingError
from facedouble.train import trainer
from facedouble.workspace import Workspace

rank = int(os.environ["RANK"])
step, seen = trainer.TrainSession.step, {}

def drifting_step(self, batch, iteration):  # rank 1's weights drift after its second iteration
    losses = step(self, batch, iteration)
    seen["model"] = self.model
    if rank == 1 and iteration == 1:
        with torch.no_grad():
            next(self.model.parameters()).add_(1e-3)
    return losses

trainer.TrainSession.step = drifting_step
try:
    trainer.train(Workspace(sys.argv[1]), TrainConfig(**json.loads(sys.argv[2])), max_iterations=3)
except TrainingError as e:
    sums = {k: float(v.double().sum()) for k, v in seen["model"].state_dict().items()}
    with open(os.path.join(sys.argv[3], f"rank{rank}.json"), "w") as fh:
        json.dump({"error": e.message, "sums": sums}, fh)
    sys.exit(1)
"""


def test_processes_that_lose_sync_save_rank_0s_weights_and_stop(ws, tmp_path):
    """A forced desync (rank 1's weights nudged mid-run): training stops with one sentence saying so, and the
    checkpoint holds rank 0's weights at the last iteration rather than losing the run since the last save."""
    script = tmp_path / "drift.py"
    script.write_text(_DRIFT)
    cfg = {k: v for k, v in TINY.items()} | {"device": "cpu", "lr_dropout": True}
    out = _torchrun([str(script), str(ws.root), json.dumps(cfg), str(tmp_path)])
    assert out.returncode != 0
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert "lost sync" in reports[0]["error"] and "iteration 3" in reports[0]["error"], reports[0]["error"]
    assert "run the same command again" in reports[0]["error"]
    meta = ckpt.read_meta(ws.model / "sae.safetensors")
    assert meta["iteration"] == 3  # not iteration 0, the last save before the desync
    saved = {k[len("model."):]: float(v.double().sum()) for k, v in _weights(ws.model).items() if k.startswith("model.")}
    assert saved == reports[0]["sums"]   # exactly rank 0's weights
    assert saved != reports[1]["sums"]


def test_cli_asks_options_on_the_first_run_and_with_override(ws, monkeypatch):
    from facedouble.cli import app, train_cmd

    monkeypatch.setattr(train_cmd, "_can_prompt", lambda: True)
    runner = CliRunner()
    # sae asks every option, architecture first (resolution, face type, archi, ae/e/d/mask dims, ...): answer
    # the first seven, then Enter for the rest
    answers = "64\nfull\ndf\n32\n8\n8\n4\n" + "\n" * 40
    base = ["train", "-w", str(ws.root), "--model", "sae", "-i", "--workers", "0", "--threads", "1",
            "--preview-every", "0", "--seed", "2", "-b", "2", "--max-iterations", "1"]
    r = runner.invoke(app, base, input=answers)
    assert r.exit_code == 0, r.output
    saved = TrainConfig.load(ws.model / "sae_options.json")
    assert (saved.resolution, saved.ae_dims, saved.e_dims, saved.d_dims, saved.d_mask_dims) == (64, 32, 8, 8, 4)
    # later: without --override nothing is asked; with it, only training options (the first is batch size)
    r = runner.invoke(app, ["train", "-w", str(ws.root), "--model", "sae", "-i", "--workers", "0", "--threads", "1",
                            "--max-iterations", "1"], input="")
    assert r.exit_code == 0 and "saved options" in r.output, r.output
    r = runner.invoke(app, ["train", "-w", str(ws.root), "--model", "sae", "-i", "--override", "--workers", "0",
                            "--threads", "1", "--max-iterations", "1"], input="3\n" + "\n" * 40)
    assert r.exit_code == 0, r.output
    saved = TrainConfig.load(ws.model / "sae_options.json")
    assert saved.batch_size == 3 and saved.resolution == 64
    assert "Resolution" not in r.output.split("Batch size")[-1]


def test_a_kill_during_save_keeps_the_previous_checkpoint(ws, monkeypatch):
    import safetensors.torch

    train(ws, TrainConfig(**TINY), max_iterations=2)
    before = (ws.model / "sae.safetensors").read_bytes()

    def dies_halfway(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # what a kill in the middle of writing looks like to the code

    monkeypatch.setattr(safetensors.torch, "save_file", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        train(ws, TrainConfig(model="sae", workers=0, threads=1), max_iterations=1)
    assert (ws.model / "sae.safetensors").read_bytes() == before
    assert not list(ws.model.glob("*.tmp")) and not list(ws.model.glob(".*.tmp"))
    assert ckpt.read_meta(ws.model / "sae.safetensors")["iteration"] == 2


@pytest.mark.parametrize("during_update", [False, True])
def test_out_of_memory_saves_or_rolls_back_and_suggests_a_smaller_batch(ws, monkeypatch, during_update):
    """An allocation failure (as CUDA raises it) in the forward pass saves the model as of the last full
    iteration; one while the weights are being updated rolls back to the last save. Both say what to do."""
    from facedouble.train import trainer as T

    train(ws, TrainConfig(**TINY), max_iterations=2)
    real = T.TrainSession.step
    calls = {"n": 0}

    def oom(self, batch, iteration):
        calls["n"] += 1
        if calls["n"] == 3:
            self.updating = during_update
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, batch, iteration)

    monkeypatch.setattr(T.TrainSession, "step", oom)
    with pytest.raises(TrainingError) as info:
        train(ws, TrainConfig(model="sae", workers=0, threads=1, preview_every=0, autosave_minutes=0), max_iterations=10)
    msg = info.value.message
    assert "Out of cpu memory at iteration 5 with batch size 2" in msg and "--batch-size (e.g. 1)" in msg
    assert "--optimizer-mode 2" in msg
    iteration = ckpt.read_meta(ws.model / "sae.safetensors")["iteration"]
    if during_update:
        assert "rolled back to its last save (iteration 2)" in msg and iteration == 2
    else:
        assert "saved at iteration 4" in msg and iteration == 4
    assert all(torch.isfinite(v).all() for v in _weights(ws.model).values() if v.is_floating_point())


def test_swapper_runs_bf16_on_a_cpu_that_has_it_within_a_level_of_float32(ws):
    from facedouble.device import cpu_has_bf16

    train(ws, TrainConfig(**TINY), max_iterations=2)
    faces = torch.from_numpy(np.random.default_rng(1).random((4, 3, 64, 64), dtype=np.float32))
    fast, exact = load_swapper(ws.model, "cpu"), load_swapper(ws.model, "cpu", amp=False)
    assert fast._amp == (torch.bfloat16 if cpu_has_bf16() else None)  # noqa: SLF001
    (f1, m1), (f2, m2) = fast.swap(faces), exact.swap(faces)
    assert f1.dtype == torch.float32 and m1.dtype == torch.float32
    assert float((f1 - f2).abs().max()) * 255 < 2.0 and float((f1 - f2).abs().mean()) * 255 < 0.5
    assert float((m1 - m2).abs().max()) * 255 < 2.0


def test_pretrain_on_a_faceset_then_start_a_pair_from_it(tmp_path, train_faces):  # noqa: F811
    """`--pretrain --faceset DIR` learns from one folder of anyone's faces (the workspace needs no pair);
    `--from MODEL_DIR` starts a new model with every network weight of it, and fresh counters."""
    from facedouble.workspace import Workspace

    pre = Workspace(tmp_path / "pre").create()  # no data_src/aligned, no data_dst/aligned
    res = train(pre, TrainConfig(**TINY, pretrain=True, faceset=str(train_faces["src"])), max_iterations=3)
    assert res.iteration == 3 and not (pre.model / "sae_identity.json").exists()
    pretrained = _weights(pre.model)

    pair = make_workspace(tmp_path / "pair", train_faces)
    seen = []

    class Lines(Reporter):
        def info(self, text):
            seen.append(text)

    res = train(pair, TrainConfig(**TINY, from_model=str(pre.model)), max_iterations=0, reporter=Lines())
    assert res.iteration == 0
    started = _weights(pair.model)
    nets = [k for k in pretrained if k.startswith("model.")]
    assert nets and all(torch.equal(started[k], pretrained[k]) for k in nets)
    assert any("started from" in s and "iteration 3" in s for s in seen), seen
    state = json.loads((pair.model / "sae_state.json").read_text())
    assert state["iteration"] == 0


def test_from_a_model_of_another_architecture_is_refused(tmp_path, train_faces):  # noqa: F811
    pre = make_workspace(tmp_path / "pre", train_faces)
    train(pre, TrainConfig(**TINY), max_iterations=1)
    pair = make_workspace(tmp_path / "pair", train_faces)
    with pytest.raises(OptionError, match="another architecture.*--ae-dims 32"):
        train(pair, TrainConfig(**{**TINY, "ae_dims": 64}, from_model=str(pre.model)), max_iterations=1)
    with pytest.raises(OptionError, match="--faceset"):
        train(pair, TrainConfig(**TINY, pretrain=True), max_iterations=1)
