"""The real provenance watermark in what the merge writes, in every merge mode and with --export-alpha, decoded
from the files on disk, and the issue's figure on merged frames: bit accuracy >= 0.99 after JPEG quality 50 and
after H.264 crf 28, frame by frame. (Most merge tests stub the mark out for exact pixel comparisons.)"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facedouble.provenance.robustness import h264_round_trip, jpeg_round_trip
from facedouble.config import MergeConfig
from facedouble.merge import merger
from facedouble.provenance import watermark as wm
from facedouble.provenance import watermark_run_id
from support.media import decode
from support.swappers import CastSwapper
from support.workspaces import copy_workspace, write_dst_workspace

FRAMES = 3  # a few small (640x360) real frames keep this quick


@pytest.fixture(scope="module")
def small_ws(tmp_path_factory, media):
    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("mark") / "ws")
    found = write_dst_workspace(ws, decode(media / "single_face.mp4", limit=FRAMES))
    assert all(len(v) == 1 for v in found.values()) and len(found) == FRAMES
    return ws


def _merge(small_ws, tmp_path, **options):
    ws = copy_workspace(small_ws, tmp_path / "ws")
    merger.merge(ws, MergeConfig(mask="dst", smooth_frames=0, **options), swapper=CastSwapper(128, jitter=0))
    run_id = json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())["run_id"]
    files = sorted(ws.merged.iterdir())
    assert len(files) == FRAMES
    return ws, run_id, files


def _read_rgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.ndim == 3, path
    return np.ascontiguousarray(cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)), img.shape[2]


def _accuracy(det, run_id: str) -> float:
    """The raw bit accuracy of a detection that found this run's mark (0 when it found none or another)."""
    if not det.found or det.payload["run_id_int"] != watermark_run_id(run_id):
        return 0.0
    return float(det.bit_accuracy)


MODES = [dict(mode="overlay"), dict(mode="hist-match"), dict(mode="hist-match-bw"), dict(mode="seamless"),
         dict(mode="seamless-hist-match"), dict(mode="raw", raw="rgb"), dict(mode="seamless", export_alpha=True),
         dict(mode="raw", raw="mask"),
         dict(mode="raw", raw="predicted")]


@pytest.mark.parametrize("options", MODES, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_every_merge_mode_writes_marked_files_that_survive_jpeg_50(small_ws, tmp_path, options):
    _, run_id, files = _merge(small_ws, tmp_path, **options)
    for path in files:
        image, channels = _read_rgb(path)
        assert channels == (4 if options.get("export_alpha") else 3)
        assert _accuracy(wm.detect(image, search=False), run_id) >= 0.99, path.name      # as written
        assert _accuracy(wm.detect(jpeg_round_trip(image), search=False), run_id) >= 0.99, path.name  # JPEG quality 50


def test_merged_frames_keep_the_mark_through_h264_crf28(small_ws, tmp_path):
    """As `verify` reads a video (soft bits of the frames summed) this run's payload is read exactly with at least
    0.99 of the raw bits right (the format-1 mark gave 0.95 here). The next tests read each frame alone."""
    _, run_id, files = _merge(small_ws, tmp_path, mode="seamless")
    decoded = h264_round_trip([_read_rgb(p)[0] for p in files], fps=30)
    assert len(decoded) == FRAMES
    det = wm.detect_frames(decoded, search=False)
    assert _accuracy(det, run_id) >= 0.99 and det.corrected <= 10


def test_every_merged_frame_alone_keeps_its_payload_through_h264_crf28(small_ws, tmp_path):
    """A random run id, as every merge gets: each frame read alone after crf 28 gives this run's payload exactly,
    with at least 0.97 of the raw bits right (a margin for the run id drawn: over 90 random run ids on the first
    three frames of each clip, unmerged, every frame kept at least 0.99 and the worst 0.992, docs/provenance.md);
    the format-1 mark kept 0.81-0.99 of the bits of these merged frames and did not always give the payload."""
    _, run_id, files = _merge(small_ws, tmp_path, mode="seamless")
    decoded = h264_round_trip([_read_rgb(p)[0] for p in files], fps=30)
    accuracies = [_accuracy(wm.detect(f, search=False), run_id) for f in decoded]
    assert min(accuracies) >= 0.97, accuracies


def test_merged_frames_keep_99_percent_of_the_bits_through_h264_crf28_frame_by_frame(small_ws, tmp_path, monkeypatch):
    """The issue's figure: at least 0.99 of the raw bits right in every frame, each read alone after H.264 crf 28,
    for the run id 5eed1234 (fixed so that the test repeats exactly: the merge and x264 are deterministic; the
    figure depends a little on the payload, see the test above)."""
    monkeypatch.setattr(merger, "new_run_id", lambda: "5eed1234")
    _, run_id, files = _merge(small_ws, tmp_path, mode="seamless")
    assert run_id == "5eed1234"
    decoded = h264_round_trip([_read_rgb(p)[0] for p in files], fps=30)
    accuracies = [_accuracy(wm.detect(f, search=False), run_id) for f in decoded]
    assert min(accuracies) >= 0.99, accuracies


def test_the_raw_mask_stays_a_matte_with_the_mark_in_its_opaque_part(small_ws, tmp_path):
    """`--mode raw --raw mask` writes the mask as an image a compositor reads as opacity. The mark lives in what is
    not transparent: every pixel the mask leaves out is still exactly 0 (the plain watermark lifted them all by 1-4
    levels, a ghost of the layer over the frame, and was not readable), the opaque part stays at least 95% opaque (90% in the blocks it shares with the soft edge),
    and the file reads back as this run's, also after JPEG q50 (the test above)."""
    ws, run_id, files = _merge(small_ws, tmp_path, mode="raw", raw="mask")
    for path in files:
        matte, _ = _read_rgb(path)
        mask = cv2.imread(str(ws.merged_mask / path.name), cv2.IMREAD_GRAYSCALE)
        assert mask is not None and (mask == 255).mean() > 0.03, path.name
        assert (matte[..., 0] == matte[..., 2]).all()                     # still grey
        assert (matte[mask == 0] == 0).all(), path.name                   # transparent stays transparent
        assert np.percentile(matte[mask == 255], 50) >= 243, path.name   # opaque stays >= 95% opaque...
        assert matte[mask == 255].min() >= 229, path.name                 # ... and >= 90% next to the edge
        soft = (mask > 0) & (mask < 255)
        assert (matte[soft][:, 0].astype(int) <= mask[soft]).all()          # the edge only dims
        assert _accuracy(wm.detect(matte, search=False), run_id) == 1.0, path.name
