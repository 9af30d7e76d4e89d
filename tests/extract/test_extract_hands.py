"""Hands tracked over the faces (extract/hands.py) and left out of the training mask (train/samples.py), on the
woman's clip: she lifts her hand over her mouth after about two and a half seconds and keeps it there."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from facedouble.extract.hands import covering, track_hands
from facedouble.faces.container import read_record
from facedouble.faces.record import HANDS_KEY, hands_of
from facedouble.train.samples import face_mask, load_faceset
from facedouble.workspace import Workspace
from support.media import decode_picks
from support.workspaces import write_dst_workspace

PICKS = list(range(30, 121, 3))  # 8 frames/s as the demo takes them: no hand until ~60, a hand over the mouth after ~65
HAND_FROM = 70                   # frames from here on all have the hand over her mouth


@pytest.fixture(scope="module")
def hands_ws(tmp_path_factory, media):
    """Her frames PICKS (640x360) with their aligned faces (dlib), hands tracked; the frames' hashes before."""
    frames = decode_picks(media / "WolfgangLanger_Pexels.mp4", PICKS)
    ws = Workspace(tmp_path_factory.mktemp("hands") / "ws")
    write_dst_workspace(ws, frames)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in ws.frame_files("dst")}
    result = track_hands(ws, "dst")
    return ws, result, before


def _by_pick(ws) -> dict[int, object]:
    return {PICKS[int(p.name[:6]) - 1]: (p, read_record(p)) for p in ws.face_files("dst")}


def test_the_hand_over_her_mouth_is_found_on_the_faces_that_have_it_and_only_there(hands_ws):
    ws, result, before = hands_ws
    faces = _by_pick(ws)
    assert result.faces == len(faces) >= 20 and result.skipped == 0
    with_hand = {n for n, (_, rec) in faces.items() if hands_of(rec)}
    early = {n for n in faces if n < 60}
    late = {n for n in faces if n >= HAND_FROM}
    assert not (with_hand & early)                   # no hand before she lifts it
    assert len(with_hand & late) >= 0.8 * len(late)  # tracked on (nearly) every face after
    assert result.covered == len(with_hand)
    for _, rec in faces.values():                    # every face checked: [] or 21-point hands
        assert hands_of(rec) is not None and all(h.shape == (21, 2) for h in hands_of(rec))
    # the frames were only read
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in ws.frame_files("dst")} == before


def test_the_training_mask_leaves_the_hand_out_at_her_mouth_and_nothing_else(hands_ws):
    ws, _, _ = hands_ws
    files = ws.face_files("dst")
    plain = load_faceset(files, "dst", "full", 96, workers=1)
    masked = load_faceset(files, "dst", "full", 96, workers=1, mask_hands=True)
    assert plain.xmasks is None and plain.hands_left_out == 0  # without the option: the landmark hull as before
    assert masked.xmasks is not None
    assert masked.hands_left_out == sum(bool(hands_of(read_record(p))) for p in files) > 0  # what training says
    side = masked.crops.shape[1]
    for i, path in enumerate(files):
        hull = face_mask(masked.landmarks[i], side, "full")
        rec = read_record(path)
        if not hands_of(rec):
            assert masked.xmasks[i] is None
            continue
        mask = masked.xmasks[i].astype(np.float32) / 255.0
        assert (mask <= hull + 1e-2).all()                 # only ever less than the hull
        removed = hull - mask
        assert removed.sum() > 0.1 * hull.sum()            # a real part of the face is left out
        mouth = masked.landmarks[i][48:68]                 # ... and it is where her mouth is
        x, y = np.round(mouth.mean(0)).astype(int)
        assert removed[y, x] > 0.5
        ys = np.nonzero(removed > 0.5)[0]
        assert ys.mean() > masked.landmarks[i][36:48, 1].mean()  # what is left out lies mostly below her eyes
        corners = [np.round(masked.landmarks[i][k]).astype(int) for k in (36, 45)]
        assert max(mask[y, x] for x, y in corners) > 0.5   # her fingers reach one eye at most: the other stays in


def test_eyes_and_mouth_priority_does_not_ask_for_the_mouth_under_her_hand(hands_ws):
    from facedouble.train.samples import BatchMaker, SampleOptions

    ws, _, _ = hands_ws
    files = ws.face_files("dst")
    opts = SampleOptions(random_warp=False, random_flip=False, eyes_mouth=True)
    weight = {}
    for hands in (False, True):
        fs = load_faceset(files, "dst", "full", 96, workers=1, mask_hands=hands)
        batches = [BatchMaker(fs, fs, 8, 7, opts).make(i) for i in range(4)]
        for b in batches:
            assert (b["dst_em"] <= b["dst_mask"] + 1e-6).all()  # the priority stays inside the training mask
        weight[hands] = sum(float(b["dst_em"].sum()) for b in batches)
    assert weight[True] < 0.85 * weight[False]  # with the hands left out, their mouths weigh less


def test_src_learns_a_mask_without_her_hand_and_dst_a_mask_that_leaves_his_out(hands_ws):
    """Her hand stays out of the face loss on both sides, but only dst's learned mask is taught the hole: the
    swap's mask decodes src's, and a hole there showed dst's own mouth in the merge where dst has no hand."""
    from facedouble.train.samples import BatchMaker, SampleOptions

    ws, _, _ = hands_ws
    files = ws.face_files("dst")
    fs = load_faceset(files, "dst", "full", 96, workers=1, mask_hands=True)
    maker = BatchMaker(fs, fs, 8, 7, SampleOptions(random_warp=False, random_flip=False))
    with_hand = without = 0
    lower = []  # where in the face (0 top, 1 chin) the filled hole lies
    for it in range(len(files) // 8 + 1):
        b, idx = maker.make(it), maker._order("src", len(fs), it)
        assert "dst_mask_target" not in b                                # dst: the mask that leaves the hand out
        assert (b["src_mask_target"] >= b["src_mask"] - 1e-6).all()      # src: never less than the loss's mask
        for j, i in enumerate(idx):
            gained = float((b["src_mask_target"][j] - b["src_mask"][j]).sum())
            if fs.hand_faces[i]:
                with_hand += 1
                assert gained > 0.1 * float(b["src_mask_target"][j].sum())  # the hand's hole is filled ...
                ys = np.nonzero(b["src_mask_target"][j] > 0.5)[0]
                filled = np.nonzero(b["src_mask_target"][j] - b["src_mask"][j] > 0.5)[0]
                lower.append((filled.mean() - ys.min()) / (ys.max() - ys.min()))
            else:
                without += 1
                assert gained == 0.0                                             # faces without a hand: as before
    assert with_hand > 0 and without > 0
    assert np.mean(lower) > 0.55  # ... mostly below the middle of the face, where her hand is over her mouth
    plain = load_faceset(files, "dst", "full", 96, workers=1)
    assert plain.hand_faces is None and "src_mask_target" not in BatchMaker(plain, plain, 8, 7,
                                                                             SampleOptions()).make(0)


def test_tracking_again_skips_the_faces_already_checked(hands_ws):
    ws, result, _ = hands_ws
    again = track_hands(ws, "dst", tracker_factory=lambda: pytest.fail("no frame should be tracked again"))
    assert again.faces == 0 and again.skipped == result.faces


def test_a_hand_away_from_the_face_is_not_kept(hands_ws):
    ws, _, _ = hands_ws
    late = [rec for n, (_, rec) in sorted(_by_pick(ws).items()) if hands_of(rec)]
    rec = late[0]
    hand = hands_of(rec)[0]
    far = hand + np.array([rec.source_size[0] * 2.0, 0], np.float32)  # the same hand moved out of the frame
    assert len(covering([hand], rec)) == 1 and covering([far], rec) == []
    # malformed stored hands read as "not checked", so they are tracked again rather than trusted
    rec.extra[HANDS_KEY] = [[[1, 2]] * 5]
    assert hands_of(rec) is None


def test_extracting_src_tracks_the_hands_and_no_hands_leaves_them_unchecked(tmp_path, media):
    import cv2

    from facedouble.config import ExtractConfig
    from facedouble.extract import extract

    frames = decode_picks(media / "WolfgangLanger_Pexels.mp4", [45, 90, 93, 96, 99, 102])
    runs = {}
    for hands in (None, False):
        ws = Workspace(tmp_path / f"ws-{hands}").create()
        for i, img in enumerate(frames, start=1):
            cv2.imwrite(str(ws.frames("src") / f"{i:06d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        summary = extract(ws, "src", ExtractConfig(hands=hands, workers=1))
        runs[hands] = (summary, [read_record(p) for p in ws.face_files("src")])
    summary, records = runs[None]  # the default on src: tracked
    assert summary.hands is not None and summary.hands.faces == len(records) >= 5
    assert all(hands_of(r) is not None for r in records)
    assert hands_of(records[0]) == [] and summary.hands.covered >= 3  # frame 45: no hand yet; then over her mouth
    assert "hand over them" in summary.text()
    summary, records = runs[False]
    assert summary.hands is None and all(hands_of(r) is None for r in records)


def test_a_new_model_leaves_the_tracked_hands_out_unless_told_not_to(tmp_path):
    from facedouble.config import TrainConfig
    from facedouble.train.options import resolve_options

    cfg, exists = resolve_options(tmp_path, TrainConfig(model="cpu192"))
    assert not exists and cfg.mask_hands is True
    cfg, _ = resolve_options(tmp_path, TrainConfig(model="cpu192", mask_hands=False))
    assert cfg.mask_hands is False
