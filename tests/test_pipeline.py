"""`run` chains the stages in one process; each stage must run there as fast as it does alone."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from facedouble.config import MergeConfig, TrainConfig
from facedouble.pipeline import ProcessSettings, stage_scope
from support.workspaces import N_FRAMES


def test_stage_scope_puts_back_what_a_stage_changed():
    import cv2
    import torch

    before = ProcessSettings.capture()
    assert before.torch_threads >= 1 and before.cv2_threads is not None
    with stage_scope():
        torch.set_num_threads(before.torch_threads + 1)
        cv2.setNumThreads(before.cv2_threads + 1)
        torch.set_grad_enabled(False)
        os.environ["OMP_NUM_THREADS"] = "123"
        assert ProcessSettings.capture() != before
    assert ProcessSettings.capture() == before
    with pytest.raises(RuntimeError), stage_scope():  # also when the stage fails
        torch.set_num_threads(before.torch_threads + 1)
        raise RuntimeError("stage failed")
    assert ProcessSettings.capture() == before


def _merge_cost(ws) -> tuple[float, int]:
    """CPU seconds per merged frame (all threads of this process) of a forced merge; the frames written."""
    from facedouble.merge.merger import merge

    c0 = time.process_time()
    summary = merge(ws, MergeConfig(device="cpu"), force=True)
    return (time.process_time() - c0) / summary.written, summary.written


def test_merge_after_training_in_the_same_process_costs_what_it_costs_alone(dst_ws):  # noqa: F811
    """The order of `run`: train (automatic model threads, a loader thread, stopped in the middle of its thread
    probe), then merge. Training leaves the thread settings as they were and nothing running, and the merge
    then needs no more CPU per frame than the same merge alone (CPU time, so other programs on the machine do
    not move the ratio)."""
    from facedouble.train.trainer import train

    ws = dst_ws
    for p in ws.face_files("dst"):
        shutil.copy(p, ws.aligned("src") / p.name)
    tiny = TrainConfig(model="sae", resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, batch_size=2,
                       seed=3, workers=1, threads=0, preview_every=0, autosave_minutes=0, backup_hours=0)
    train(ws, tiny, max_iterations=1)          # a model to merge with
    _merge_cost(ws)                            # warm-up: imports, mask and detector models
    alone = min(_merge_cost(ws)[0] for _ in range(2))

    before = ProcessSettings.capture()
    with stage_scope():
        train(ws, tiny, max_iterations=13)     # the thread probe starts at iteration 10 of a run
    assert ProcessSettings.capture() == before
    assert not [t.name for t in threading.enumerate() if t.name.startswith("facedouble-samples")]
    after, written = _merge_cost(ws)
    assert written == N_FRAMES
    assert after < 1.5 * alone, (after, alone)
