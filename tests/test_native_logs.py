"""mediapipe's native log lines (TensorFlow Lite, absl) are kept out of facedouble's output, in this process and
in worker processes, while every other line still gets through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facedouble.native_logs import is_noise

ROOT = Path(__file__).resolve().parent.parent
NOISE = ("Created TensorFlow Lite XNNPACK delegate", "All log messages before absl::InitializeLog()",
         "Feedback manager requires a model with a single signature")

SCRIPT = r'''
import multiprocessing as mp
import os
import sys

import cv2
import numpy as np


def mediapipe_calls(path):
    from facedouble.faces.detect import MediaPipeDetector
    from facedouble.faces.mesh import HandTracker, face_mesh

    img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    found = MediaPipeDetector().detect(img)
    x0, y0, x1, y1 = (int(v) for v in found[0].rect)
    mesh = face_mesh(img[max(0, y0 - 60):y1 + 60, max(0, x0 - 60):x1 + 60])
    HandTracker()(img)
    return len(found), mesh.shape


if __name__ == "__main__":
    if sys.argv[1] == "api":
        from facedouble import api

        api.extract_faces  # the first stage taken from the API sets up the output
    print("faces, mesh:", *mediapipe_calls(sys.argv[2]), file=sys.stderr, flush=True)
    with mp.get_context("spawn").Pool(1) as pool:  # a worker process, as extraction starts them
        print("worker:", *pool.apply(mediapipe_calls, (sys.argv[2],)), file=sys.stderr, flush=True)
    os.write(2, b"a native line that is not noise\n")
    os.write(2, b"E0000 00:00:1796314541.920086   15404 graph.cc:1] an error line\n")
    sys.stderr.write("python stderr line\n")  # one write: print() writes the newline apart from the text
'''


def test_is_noise():
    assert is_noise(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert is_noise(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert is_noise(b"W0000 00:00:1796314541.920086   15404 inference_feedback_manager.cc:114] Feedback manager "
                    b"requires a model with a single signature inference. Disabling support for feedback tensors.")
    assert is_noise(b"I0000 00:00:1796314544.866426   15444 gl_context.cc:369] GL version: 2.1")
    assert not is_noise(b"E0000 00:00:1796314541.920086   15404 graph.cc:1] an error line")  # errors pass
    assert not is_noise(b"warning: 3 frames have no face")
    assert not is_noise(b"WARNING: something else")
    assert not is_noise(b"Extracting faces of data_dst: 4/72 (6%), 2.0/s")


def _run(mode: str, tmp_path: Path, media: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "mediapipe_calls.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run([sys.executable, str(script), mode, str(media / "single_face.jpg")], capture_output=True,
                          env=env, timeout=300, cwd=tmp_path)


def test_mediapipe_lines_are_silenced_in_the_process_and_its_workers(tmp_path, media):
    plain = _run("plain", tmp_path, media)
    quiet = _run("api", tmp_path, media)
    for out in (plain, quiet):
        assert out.returncode == 0, out.stderr.decode()[-3000:]
    before, after = plain.stderr.decode(), quiet.stderr.decode()
    # without the set-up the lines are there (so this test sees them when they come back) ...
    assert all(line in before for line in NOISE), before
    # ... with it, none of them, from this process or the worker; the rest all gets through, in order
    assert not any(line in after for line in NOISE), after
    assert "faces, mesh: 1 (478, 2)" in after and "worker: 1 (478, 2)" in after
    assert sorted(after.splitlines()) == sorted([
        "faces, mesh: 1 (478, 2)", "worker: 1 (478, 2)", "python stderr line", "a native line that is not noise",
        "E0000 00:00:1796314541.920086   15404 graph.cc:1] an error line"]), after  # nothing else, nothing lost
    assert after.index("a native line") < after.index("an error line")  # native lines keep their order
