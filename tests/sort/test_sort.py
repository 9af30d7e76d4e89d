"""The sort stage on real faces: orderings, trash moves, undo, bad input, the metric cache, the CLI."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from facedouble.cli import app
from facedouble.config import SortConfig
from facedouble.errors import InputError, OptionError, WorkspaceError
from facedouble.faces import container
from facedouble.progress import Reporter
from facedouble.sort import journal, metrics, sorting
from facedouble.sort import sort_faces, undo_sort

from support.faces import mirrored
from support.facesets import copy_faces
from support.files import tree_digest


def _ws(workspace, faces_cache, who=("woman",), extra=()):
    folder, names = faces_cache
    picked = [n for w in who for n in names[w]] + list(extra)
    copy_faces(folder, workspace.aligned("src"), picked)
    return workspace.aligned("src")


def _plain(name: str) -> str:
    """A sorted name without its order prefix."""
    head, _, rest = name.partition("_")
    assert head.isdigit() and len(head) == 5, name
    return rest


def _sort(workspace, **kw):
    rep = Reporter()
    return sort_faces(workspace, "src", SortConfig(**kw), reporter=rep), rep


def test_blur_and_motion_blur_put_degraded_copies_after_their_originals(workspace, faces_cache):
    import cv2

    aligned = _ws(workspace, faces_cache)
    names = sorted(p.name for p in aligned.iterdir())
    originals = names[::5][:4]
    kernel = np.zeros((9, 9), np.float32)
    kernel[4, :] = 1 / 9  # horizontal camera shake
    for n in originals:
        image, rec = container.read_face(aligned / n)
        container.write_face(aligned / n.replace(".jpg", "_soft.jpg"), cv2.GaussianBlur(image, (0, 0), 2.0), rec)
        container.write_face(aligned / n.replace(".jpg", "_shake.jpg"), cv2.filter2D(image, -1, kernel), rec)

    res, _ = _sort(workspace, by="blur")
    order = [_plain(n) for n in res.order]
    assert len(order) == len(names) + 2 * len(originals) and not res.trashed
    for n in originals:
        assert order.index(n.replace(".jpg", "_soft.jpg")) > order.index(n)
    # the defocused copies are the blurriest faces of the set
    assert {o for o in order[-len(originals):]} == {n.replace(".jpg", "_soft.jpg") for n in originals}
    assert sorted(p.name for p in aligned.iterdir() if p.suffix == ".jpg") == sorted(res.order)

    res, _ = _sort(workspace, by="motion-blur")
    order = [_plain(n) for n in res.order]
    for n in originals:
        assert order.index(n.replace(".jpg", "_shake.jpg")) > order.index(n)
    assert {o for o in order[-len(originals):]} == {n.replace(".jpg", "_shake.jpg") for n in originals}


def test_face_yaw_orders_left_to_right_with_mirrored_copies(workspace, faces_cache):
    aligned = _ws(workspace, faces_cache)
    flipped = {}
    for p in sorted(aligned.iterdir()):
        image, rec = container.read_face(p)
        yaw, _ = metrics.pose(rec.landmarks)
        if abs(yaw) >= 8:
            img2, rec2 = mirrored(image, rec)
            name2 = "f" + p.name
            container.write_face(aligned / name2, img2, rec2)
            # the mirror estimate is the negated one: the pose really comes from the points
            assert metrics.pose(rec2.landmarks)[0] == pytest.approx(-yaw, abs=1.5)
            flipped[p.name] = (name2, yaw)
    assert len(flipped) >= 8
    assert min(y for _, y in flipped.values()) < -12 and max(y for _, y in flipped.values()) > 12  # real turns both ways

    res, _ = _sort(workspace, by="face-yaw")
    order = [_plain(n) for n in res.order]
    for orig, (copy, yaw) in flipped.items():
        assert (order.index(orig) < order.index(copy)) == (yaw < 0), (orig, yaw)
    yaws = [metrics.pose(container.read_record(aligned / n).landmarks)[0] for n in res.order]
    assert yaws == sorted(yaws)
    # the faces turned furthest left open the list and those turned furthest right close it
    assert yaws[0] < -15 and yaws[-1] > 15
    # a pose stored by extraction (extra yaw/pitch, degrees) is used as it is
    first = aligned / res.order[0]
    rec = container.read_record(first)
    rec.extra["yaw"] = 80.0
    container.update_record(first, rec)
    res, _ = _sort(workspace, by="face-yaw")
    assert _plain(res.order[-1]) == _plain(first.name)


def test_face_pitch_puts_the_laughing_head_tilted_back_last(workspace, faces_cache):
    # Frames 1-60 of the woman's clip: head level; frames 230-330: laughing with the head tilted back.
    aligned = _ws(workspace, faces_cache)
    res, _ = _sort(workspace, by="face-pitch")
    frame = [int(_plain(n)[:6]) for n in res.order]
    level = [i for i, f in enumerate(frame) if f <= 60]
    up = [i for i, f in enumerate(frame) if 230 <= f <= 330]
    assert level and up and max(level) < min(up)


def test_identity_separates_the_woman_and_the_man_and_keeps_a_reference_person(workspace, faces_cache, media):
    aligned = _ws(workspace, faces_cache, who=("woman", "man"))
    _, names = faces_cache
    missing = [n for n in names["woman"] if container.read_record(aligned / n).identity is None]
    assert missing  # the sort must compute these with dlib
    res, rep = _sort(workspace, by="identity")
    who = ["man" if _plain(n) in names["man"] else "woman" for n in res.order]
    assert who == ["woman"] * len(names["woman"]) + ["man"] * len(names["man"])  # two blocks, largest first
    assert res.measured == len(missing)
    assert any("2 person group(s)" in m for m in rep.messages)

    # a photo of the man that is not in the set: him first, and with --trash-others the woman goes
    from support.media import frames

    _, frame = next(frames(media / "single_face.mp4", 1000, limit=70))
    ref = workspace.root / "him.png"
    ref.write_bytes(container.encode_image(frame, ".png"))
    res, _ = _sort(workspace, by="identity", reference=str(ref))
    assert [_plain(n) in names["man"] for n in res.order[:len(names["man"])]] == [True] * len(names["man"])
    res, _ = _sort(workspace, by="identity", reference=str(ref), trash_others=True)
    assert sorted(_plain(n) for n in res.order) == sorted(names["man"])
    assert sorted(p.name for p in workspace.aligned_trash("src").iterdir()) == sorted(names["woman"])
    with pytest.raises(OptionError, match="--trash-others needs --reference"):
        _sort(workspace, by="identity", trash_others=True)
    noface = workspace.root / "noface.png"
    noface.write_bytes(container.encode_image(np.full((200, 200, 3), 90, np.uint8), ".png"))
    from facedouble.errors import NoFaceError

    with pytest.raises(NoFaceError, match="noface.png"):
        _sort(workspace, by="identity", reference=str(noface))


def test_final_keeps_exactly_n_spread_over_yaw(workspace, faces_cache):
    aligned = _ws(workspace, faces_cache)
    for p in sorted(aligned.iterdir()):
        image, rec = container.read_face(p)
        img2, rec2 = mirrored(image, rec)
        container.write_face(aligned / ("f" + p.name), img2, rec2)
    total = len(list(aligned.iterdir()))
    recs = {p.name: container.read_record(p) for p in aligned.iterdir()}
    yaw_all = np.array([metrics.pose(r.landmarks)[0] for r in recs.values()])

    res, _ = _sort(workspace, by="final", target=10)
    kept = sorted(p.name for p in aligned.iterdir() if p.suffix == ".jpg")
    assert len(kept) == 10 == len(res.order)
    assert len(list(workspace.aligned_trash("src").iterdir())) == total - 10
    yaw_kept = np.array([metrics.pose(recs[_plain(n)].landmarks)[0] for n in res.order])
    assert list(yaw_kept) == sorted(yaw_kept)  # kept faces are ordered left to right
    # spread: both ends of the yaw range are kept and no two kept faces crowd together
    span = yaw_all.max() - yaw_all.min()
    assert yaw_kept.min() < yaw_all.min() + 0.15 * span and yaw_kept.max() > yaw_all.max() - 0.15 * span
    assert np.diff(yaw_kept).max() < 0.3 * span
    # the 10 sharpest alone leave a wider hole in the yaw range
    sharp = sorted(recs, key=lambda n: -metrics.sharpness(*_img_lm(aligned, workspace, n)))[:10]
    yaw_sharp = np.sort([metrics.pose(recs[n].landmarks)[0] for n in sharp])
    assert np.diff(yaw_kept).max() < np.diff(yaw_sharp).max()

    res, _ = _sort(workspace, by="final", target=2000)  # fewer faces than the target: all stay
    assert len(res.order) == 10 and not res.trashed


def _img_lm(aligned, workspace, name):
    for folder in (aligned, workspace.aligned_trash("src")):
        for p in folder.iterdir():
            if p.name == name or p.name.endswith("_" + name):
                image, rec = container.read_face(p)
                return image, rec.landmarks
    raise FileNotFoundError(name)


def test_undo_restores_the_exact_file_set_and_survives_a_crash(workspace, faces_cache, monkeypatch):
    aligned = _ws(workspace, faces_cache, who=("woman", "multi"))
    trash = workspace.aligned_trash("src")
    (trash / "earlier_reject.jpg").write_bytes((aligned / sorted(os.listdir(aligned))[0]).read_bytes())
    before = tree_digest(aligned, trash)

    _sort(workspace, by="oneface")
    _sort(workspace, by="final", target=7)
    _sort(workspace, by="blur")
    assert tree_digest(aligned, trash) != before
    for _ in range(3):
        undo_sort(workspace, "src")
    assert tree_digest(aligned, trash) == before
    with pytest.raises(InputError, match="Nothing to undo"):
        undo_sort(workspace, "src")

    # a sort killed half-way through its moves: undo puts everything back from wherever it got to
    real_move, calls = journal._move, []

    def dying_move(src, dst):
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt
        real_move(src, dst)

    monkeypatch.setattr(journal, "_move", dying_move)
    with pytest.raises(KeyboardInterrupt):
        _sort(workspace, by="final", target=5)
    monkeypatch.setattr(journal, "_move", real_move)
    assert tree_digest(aligned, trash) != before
    undo_sort(workspace, "src")
    assert tree_digest(aligned, trash) == before

    # killed again, and this time the next sort finishes the interrupted one first
    calls.clear()
    monkeypatch.setattr(journal, "_move", dying_move)
    with pytest.raises(KeyboardInterrupt):
        _sort(workspace, by="final", target=5)
    monkeypatch.setattr(journal, "_move", real_move)
    res, rep = _sort(workspace, by="origname")
    assert any("interrupted" in m for m in rep.messages)
    assert len(res.order) == 5
    undo_sort(workspace, "src")
    undo_sort(workspace, "src")
    assert tree_digest(aligned, trash) == before


def test_images_without_a_face_record_are_reported_and_left_alone(workspace, faces_cache, media):
    aligned = _ws(workspace, faces_cache, who=("woman", "multi"))
    shutil.copy(media / "single_face.jpg", aligned / "holiday_photo.jpg")          # a photo, no record
    (aligned / "notes.png").write_bytes(b"this is not an image")                      # not an image at all
    good = sorted(aligned.iterdir())[0]
    stripped = aligned / "stripped.jpg"                                                # a face whose record was lost
    stripped.write_bytes(container.with_record(good.read_bytes(), None))
    damaged = bytearray(good.read_bytes())
    i = damaged.index(container.IDENT) + len(container.IDENT) + 10
    damaged[i:i + 6] = b"!!!!!!"
    (aligned / "damaged.jpg").write_bytes(bytes(damaged))
    odd = ["holiday_photo.jpg", "notes.png", "stripped.jpg", "damaged.jpg"]
    before = {n: (aligned / n).read_bytes() for n in odd}
    for by in ("blur", "oneface", "final"):
        res, rep = _sort(workspace, by=by, target=3)
        assert set(res.untouched) == set(odd)
        assert res.untouched["holiday_photo.jpg"] == "no face record"
        assert res.untouched["stripped.jpg"] == "no face record"
        assert "damaged face record" in res.untouched["damaged.jpg"]
        assert {n: (aligned / n).read_bytes() for n in odd} == before      # same names, same bytes
        assert not set(odd) & {p.name for p in workspace.aligned_trash("src").iterdir()}
        assert any("holiday_photo.jpg (no face record)" in m for m in rep.messages)
        assert "holiday_photo.jpg" in res.summary()


def test_missing_or_empty_folder_is_one_clear_sentence(tmp_path, workspace):
    from facedouble.workspace import Workspace

    with pytest.raises(WorkspaceError, match="does not exist"):
        sort_faces(Workspace(tmp_path / "nowhere"), "src", SortConfig())
    shutil.rmtree(workspace.aligned("dst"))
    with pytest.raises(WorkspaceError, match=r"There is no face folder .*aligned; extract faces first"):
        sort_faces(workspace, "dst", SortConfig())
    with pytest.raises(InputError, match="holds no face images"):
        sort_faces(workspace, "src", SortConfig())
    r = CliRunner().invoke(app, ["sort", "src", "-w", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["sort", "src", "-w", str(workspace.root), "--by", "sharpest"])
    assert r.exit_code == 1 and "--by must be one of" in r.output


def test_oneface_black_origname_and_appearance_methods(workspace, faces_cache, media):
    import cv2

    aligned = _ws(workspace, faces_cache, who=("woman", "man", "multi"))
    _, names = faces_cache
    # a face cut by the left edge of its frame (the extractor smeared the edge pixels in)
    from support.faces import dlib_models, face_from_frame
    from support.media import frames

    m = dlib_models()
    number, frame = next(frames(media / "single_face.mp4", 1000))
    rect = m.detector(frame, 0)[0]
    cut = np.ascontiguousarray(frame[:, rect.left() + rect.width() // 3:])
    shift = rect.left() + rect.width() // 3
    import dlib

    image, rec = face_from_frame(cut, dlib.rectangle(0, rect.top(), rect.right() - shift, rect.bottom()), m, "300001.png")
    container.write_face(aligned / "300001_0.jpg", image, rec)
    # a darker copy of a face
    image, rec = container.read_face(aligned / names["woman"][3])
    container.write_face(aligned / "dark.jpg", (image * 0.5).astype(np.uint8), replace(rec, source_filename="400001.png"))

    res, _ = _sort(workspace, by="black")
    order = [_plain(n) for n in res.order]
    # after every face of the same man whole in his frame (the woman's close-ups are cut at the top)
    assert order.index("300001_0.jpg") > max(order.index(n) for n in names["man"])
    black = metrics.outside_fraction(*(lambda im, r: (im, r.matrix, r.source_size))(*container.read_face(aligned / res.order[-1])))
    assert black > 0.2

    res, _ = _sort(workspace, by="brightness")
    order = [_plain(n) for n in res.order]
    assert order.index("dark.jpg") > order.index(names["woman"][3])

    res, _ = _sort(workspace, by="oneface")
    assert sorted(p.name for p in workspace.aligned_trash("src").iterdir()) == sorted(names["multi"])
    assert len(res.order) == len(names["woman"]) + len(names["man"]) + 2

    res, _ = _sort(workspace, by="origname")
    recs = [container.read_record(aligned / n) for n in res.order]
    keys = [(r.source_filename, r.face_index) for r in recs]
    assert keys == sorted(keys)

    res, _ = _sort(workspace, by="source-rect-size")
    areas = [(lambda r: (r[2] - r[0]) * (r[3] - r[1]))(container.read_record(aligned / n).source_rect) for n in res.order]
    assert areas == sorted(areas, reverse=True)

    res, _ = _sort(workspace, by="hist")  # the man's door background vs the woman's dark room: two runs
    who = ["man" if _plain(n) in names["man"] else "w" for n in res.order if _plain(n) in names["man"] + names["woman"]]
    assert "".join(who).count("manw") + "".join(who).count("wman") <= 2

    res, _ = _sort(workspace, by="hist-dissim")
    assert len(res.order) == len(list(aligned.glob("*.jpg")))
    res, _ = _sort(workspace, by="hue")
    hues = [metrics.brightness_hue(*(lambda im, r: (im, r.landmarks))(*container.read_face(aligned / n)))[1] for n in res.order]
    assert hues == sorted(hues, reverse=True)


def test_names_keep_the_original_and_prefixes_never_stack(workspace, faces_cache):
    aligned = _ws(workspace, faces_cache)
    originals = sorted(p.name for p in aligned.iterdir())
    for by in ("blur", "face-yaw", "blur"):
        res, _ = _sort(workspace, by=by)
    assert all(len(n.split("_")[0]) == 5 for n in res.order)
    assert sorted(_plain(n) for n in res.order) == originals
    for n in res.order:
        rec = container.read_record(aligned / n)
        assert _plain(n) == sorting.original_name(rec, ".jpg")
    res2, _ = _sort(workspace, by="blur")  # same order again: nothing to move, no journal
    assert res2.order == res.order and res2.journal is None


def test_metrics_are_cached_and_remeasured_when_a_file_changes(workspace, faces_cache):
    aligned = _ws(workspace, faces_cache)
    n = len(list(aligned.iterdir()))
    res, _ = _sort(workspace, by="blur")
    assert (res.measured, res.cached) == (n, 0)
    index = json.loads((aligned / ".sort_index.json").read_text())
    assert len(index["faces"]) == n and all("blur" in e for e in index["faces"].values())
    res, _ = _sort(workspace, by="blur")
    assert (res.measured, res.cached) == (0, n)
    edited = aligned / res.order[0]
    image, rec = container.read_face(edited)
    container.write_face(edited, image[::-1, ::-1].copy(), rec)  # edited in place: new bytes, new mtime
    res, _ = _sort(workspace, by="blur")
    assert (res.measured, res.cached) == (1, n - 1)
    (aligned / ".sort_index.json").write_text("{ broken")
    res, _ = _sort(workspace, by="blur")
    assert res.measured == n  # rebuilt from the files


def test_worker_pool_gives_the_same_order(workspace, faces_cache, monkeypatch):
    aligned = _ws(workspace, faces_cache, who=("woman", "man"))
    serial, _ = _sort(workspace, by="hist")
    (aligned / ".sort_index.json").unlink()
    undo_sort(workspace, "src")
    monkeypatch.setattr(sorting, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(sorting, "_workers", lambda cfg, jobs: 2)
    pooled, _ = _sort(workspace, by="hist", workers=2)
    assert pooled.measured == len(serial.order) and pooled.order == serial.order


def test_cli_sort_and_undo(workspace, faces_cache):
    aligned = _ws(workspace, faces_cache)
    before = tree_digest(aligned, workspace.aligned_trash("src"))
    runner = CliRunner()
    r = runner.invoke(app, ["sort", "src", "-w", str(workspace.root), "--by", "final", "--target", "5"])
    assert r.exit_code == 0, r.output
    assert "moved" in r.output and "facedouble sort undo src" in r.output
    assert len(list(aligned.glob("*.jpg"))) == 5
    saved = json.loads((workspace.frames("src") / "sort_config.json").read_text())
    assert saved["options"]["by"] == "final" and saved["options"]["target"] == 5
    r = runner.invoke(app, ["sort", "undo", "src", "-w", str(workspace.root)])
    assert r.exit_code == 0, r.output
    assert tree_digest(aligned, workspace.aligned_trash("src")) == before
    r = runner.invoke(app, ["sort", "undo", "src", "-w", str(workspace.root)])
    assert r.exit_code == 1 and "Nothing to undo" in r.output


def test_cancel_while_measuring_moves_nothing_and_the_next_run_resumes(workspace, faces_cache):
    from facedouble.errors import Cancelled

    aligned = _ws(workspace, faces_cache)
    n = len(list(aligned.iterdir()))
    before = tree_digest(aligned, workspace.aligned_trash("src"))

    class StopAfter(Reporter):
        def __init__(self, calls):
            super().__init__()
            self.calls = calls

        def check(self):
            self.calls -= 1
            if self.calls < 0:
                self.cancel()
            super().check()

    with pytest.raises(Cancelled):
        sort_faces(workspace, "src", SortConfig(by="blur"), reporter=StopAfter(n + 10))  # n reads, then 10 measured
    assert tree_digest(aligned, workspace.aligned_trash("src")) == before
    res, _ = _sort(workspace, by="blur")
    assert (res.measured, res.cached) == (n - 10, 10)
