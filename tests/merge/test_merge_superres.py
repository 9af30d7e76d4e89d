"""Super resolution: the face-detail network learned from src faces beats bicubic on held-back src faces."""

from __future__ import annotations

import numpy as np
import pytest

from facedouble.config import MergeConfig
from facedouble.faces import align, container
from facedouble.merge import merger, superres
from support.faces import landmarks
from support.media import decode
from support.swappers import IdentitySwapper


@pytest.fixture(scope="module")
def src_faces(media):
    """32 aligned faces of the woman (the src of the sample pair), 192 px."""
    out = []
    for img in decode(media / "WolfgangLanger_Pexels.mp4")[::14][:32]:
        for lm, _ in landmarks(img)[:1]:
            out.append(align.warp_to_face(img, align.face_matrix(lm, "whole-face", 192), 192))
    assert len(out) >= 24
    return out


@pytest.mark.slow  # ~25 s on 2 idle cores (800 steps: the 64 x 6 network needs more than the first 32 x 3 did)
def test_face_detail_beats_bicubic_on_held_back_faces(src_faces):
    detail = superres.train_face_detail(src_faces, 128, steps=800, holdout=0.2, seed=0)
    m = detail.metrics
    assert m["test_faces"] >= 5 and m["steps"] == 800
    assert m["psnr_net"] > m["psnr_bicubic"] + 0.3, m
    assert m["sharpness_bicubic"] < m["sharpness_net"] < 1.2 * m["sharpness_truth"], m
    up = detail.upscale([np.zeros((40, 40, 3), np.float32) + 0.5])[0]
    assert up.shape == (80, 80, 3) and abs(float(up.mean()) - 0.5) < 0.05


def test_save_load_and_merge_with_super_resolution(src_faces, dst_ws, unmarked, tmp_path):
    ws = dst_ws
    detail = superres.train_face_detail(src_faces[:6], 128, steps=20)
    path = detail.save(superres.detail_path(ws.model, 128))
    again = superres.FaceDetail.load(path)
    x = [src_faces[0][::3, ::3].astype(np.float32) / 255.0]
    assert np.allclose(again.upscale(x)[0], detail.upscale(x)[0], atol=1e-6)
    # the merge picks the saved network up (no training) and puts a 128 px face from a 64 px model
    s = merger.merge(ws, MergeConfig(mode="overlay", mask="dst", super_resolution=True), swapper=IdentitySwapper(64))
    assert s.written == len(ws.frame_files("dst"))


def test_super_resolution_trains_from_data_src_when_missing(dst_ws, src_faces, monkeypatch):
    ws = dst_ws
    for i, face in enumerate(src_faces[:4]):
        rec = container.FaceRecord(face_type="whole-face", size=192, landmarks=np.zeros((68, 2), np.float32),
                              source_landmarks=np.zeros((68, 2), np.float32), matrix=np.eye(2, 3),
                              source_filename=f"{i + 1:06d}.png", source_rect=(0, 0, 1, 1))
        container.write_face(ws.aligned("src") / f"{i + 1:06d}_0.jpg", face, rec)
    real = superres.train_face_detail
    monkeypatch.setattr(superres, "train_face_detail", lambda faces, size, **kw: real(faces, size, steps=5, **kw))
    detail = merger.load_face_detail(ws, MergeConfig(super_resolution=True), 64)
    assert detail.size == 128 and superres.detail_path(ws.model, 128).exists()


@pytest.fixture(scope="module")
def src_records(media):
    """(face, record) pairs of the woman: 192 px whole-face crops with their aligned landmarks."""
    out = []
    for img in decode(media / "WolfgangLanger_Pexels.mp4")[::14][:8]:
        for lm, _ in landmarks(img)[:1]:
            m = align.face_matrix(lm, "whole-face", 192)
            rec = container.FaceRecord(face_type="whole-face", size=192, landmarks=align.transform_points(lm, m),
                                  source_landmarks=np.asarray(lm, np.float32), matrix=m,
                                  source_filename=f"{len(out) + 1:06d}.png", source_rect=(0, 0, 1, 1))
            out.append((align.warp_to_face(img, m, 192), rec))
    assert len(out) >= 6
    return out


def test_detail_pairs_are_the_models_reconstructions_of_the_same_crops(dst_ws, src_records):
    """The face-detail network learns (model's reconstruction of a src face -> that face at twice the side):
    the two must be the same crop, the input at the model's resolution and face type."""
    import cv2

    ws = dst_ws
    for i, (face, rec) in enumerate(src_records):
        container.write_face(ws.aligned("src") / f"{i + 1:06d}_0.png", face, rec)
    targets, inputs, points = merger.detail_pairs(ws, IdentitySwapper(64, face_type="full"), 128)
    assert len(targets) == len(inputs) == len(points) == len(src_records)
    for t, x, lm, (face, rec) in zip(targets, inputs, points, src_records):
        assert t.shape == (128, 128, 3) and t.dtype == np.uint8 and x.shape == (64, 64, 3)
        down = cv2.resize(t, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        assert float(np.abs(down - x).mean()) < 0.03  # the same face, same place (an identity model)
        # the model's "full" crop of the face file, not the whole-face file itself
        m = align.face_matrix(rec.landmarks, "full", 128)
        full = align.warp_to_face(face, m, 128)
        assert float(np.abs(full.astype(np.float32) - t).mean()) < 1.0
        # and its landmarks moved with it (where the eyes are in the target, for the eyes' texture power)
        assert lm.shape == (68, 2) and np.allclose(lm, align.transform_points(rec.landmarks, m), atol=1e-3)
        assert float(np.abs(cv2.resize(face, (128, 128)).astype(np.float32) - t).mean()) > 5


def test_face_detail_learns_to_sharpen_soft_inputs(src_faces):
    """Given soft inputs (as a young model's reconstructions are), the network learns to give the sharp faces
    back: better than bicubic from the same inputs, and sharper."""
    import cv2

    hr = [cv2.resize(f, (96, 96), interpolation=cv2.INTER_AREA) for f in src_faces]
    soft = [cv2.GaussianBlur(cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA), (0, 0), 1.0) for f in hr]
    detail = superres.train_face_detail(hr, 96, inputs=soft, steps=300, holdout=0.2, patch=48, seed=0,
                                        seconds=1e9)  # steps, not a busy machine's time cap, end it
    m = detail.metrics
    assert m["psnr_net"] > m["psnr_bicubic"] + 0.2, m
    assert m["sharpness_net"] > 1.5 * m["sharpness_bicubic"], m


def test_detail_target_keeps_the_inputs_colour_and_the_real_faces_detail(src_faces):
    """The network is taught the real face's detail over its input's own colour: a target with the real face's
    colour would teach it to repaint every swapped face (it made them paler, measured), one without the real
    detail would teach it nothing."""
    import cv2

    face = cv2.resize(src_faces[0], (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    low = cv2.GaussianBlur(np.clip(superres.downscale(face) * [1.0, 0.85, 0.8] + 0.08, 0, 1).astype(np.float32),
                           (0, 0), 1.0)
    target = superres.detail_target(face, low)
    assert target.shape == face.shape and target.dtype == np.float32
    assert np.abs(target.mean((0, 1)) - low.mean((0, 1))).max() < 0.01          # the input's colour
    assert np.abs(face.mean((0, 1)) - low.mean((0, 1))).max() > 0.05            # (which is not the face's)
    up = superres.bicubic_up(low)
    assert superres.sharpness(target) > 0.7 * superres.sharpness(face) > 2 * superres.sharpness(up)


class _DarkEdgeModel(IdentitySwapper):
    """Stand-in for a young model: the face, darkening towards the edge of its learned (ellipse) mask, as
    liae192's faces do where its mask ends."""

    def __init__(self):
        super().__init__(96, "whole-face", learn_mask=True)

    def swap_numpy(self, faces):
        import cv2

        preds, masks = [], []
        for f in faces:
            s = f.shape[0]
            m = np.zeros((s, s), np.float32)
            cv2.ellipse(m, (s // 2, s // 2), (int(s * 0.3), int(s * 0.36)), 0, 0, 360, 1.0, -1)
            inner = cv2.GaussianBlur(cv2.erode(m, np.ones((3, 3), np.uint8), iterations=s // 24), (0, 0), s / 48)
            preds.append((f.astype(np.float32) / 255.0 * (0.35 + 0.65 * inner[..., None])).astype(np.float32))
            masks.append(m)
        return preds, masks


def test_a_super_resolved_face_is_blended_in_the_colour_of_the_models_face(dst_ws):
    """Super resolution doubles the face's side; the Poisson blend must still give it the colour it gives the
    model's own face (solved at the large size, its fixed-width rims let the dark face edge in and the face
    came out 15-20 levels brighter), and the large face's detail must survive the blend."""
    from facedouble.imagefile import read_rgb
    from facedouble.merge import compose

    class Bicubic:  # a face-detail network that adds nothing: any change of colour is the blend's
        def upscale(self, faces):
            return [superres.bicubic_up(f) for f in faces]

    class Sharpen(Bicubic):
        def upscale(self, faces):
            import cv2

            ups = super().upscale(faces)
            return [np.clip(2 * u - cv2.GaussianBlur(u, (0, 0), 1.5), 0, 1) for u in ups]

    ws, model = dst_ws, _DarkEdgeModel()
    path = merger.find_frame(ws, 5)
    frame, records = read_rgb(path), merger.frame_records(ws)[path.name]
    x0, y0, x1, y1 = (int(v) for v in (*records[0].source_landmarks.min(0), *records[0].source_landmarks.max(0)))
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))

    def merged(detail):
        cfg = MergeConfig(mode="seamless", mask="learned", super_resolution=detail is not None)
        return compose.merge_frame(frame, records, model, cfg, detail=detail).image[inner].astype(np.float32)

    plain, large, sharp = merged(None), merged(Bicubic()), merged(Sharpen())
    assert np.abs(large.mean((0, 1)) - plain.mean((0, 1))).max() < 2.0
    assert np.abs(sharp.mean((0, 1)) - plain.mean((0, 1))).max() < 2.0
    assert superres.sharpness(sharp / 255) > 1.3 * superres.sharpness(large / 255)


# -- --super-resolution auto: on where it helps, off with a notice where it cannot or would not ------------------

class _AgedSwapper(IdentitySwapper):
    """IdentitySwapper that says how long it has trained (`Swapper.iteration`), as a loaded model does."""

    def __init__(self, iteration, resolution: int = 64):
        super().__init__(resolution)
        self.iteration = iteration


def _merged(ws):
    import cv2

    return [cv2.imread(str(p)) for p in sorted(ws.merged.iterdir())]


def _add_src_faces(ws, src_records):
    for face, rec in src_records:
        container.write_face(ws.aligned("src") / rec.source_filename.replace(".png", "_0.jpg"), face, rec)


@pytest.fixture()
def quick_detail(monkeypatch):
    """The face-detail network trains 10 steps (its outcome is not what these tests are about)."""
    real = superres.train_face_detail
    monkeypatch.setattr(superres, "train_face_detail", lambda faces, size, **kw: real(faces, size, steps=10, **kw))


def test_auto_is_off_for_a_young_model_and_on_for_a_mature_one(dst_ws, src_records, unmarked, quick_detail):
    """auto merges a model younger than AUTO_MIN_ITERATIONS exactly as off does, learning nothing and saying why;
    a mature model's merge learns the network, saves it and puts its faces in (the frames change)."""
    from facedouble.progress import Reporter

    ws = dst_ws
    _add_src_faces(ws, src_records)
    young = superres.AUTO_MIN_ITERATIONS - 1
    merger.merge(ws, MergeConfig(mode="overlay", mask="dst", super_resolution="off"), swapper=_AgedSwapper(young))
    off = _merged(ws)
    rep = Reporter()
    s = merger.merge(ws, MergeConfig(mode="overlay", mask="dst"), swapper=_AgedSwapper(young), reporter=rep, force=True)
    assert not s.super_resolved and not superres.detail_path(ws.model, 128).exists()
    assert all(np.array_equal(a, b) for a, b in zip(_merged(ws), off))
    assert any("stays off (auto)" in m and f"{young:,} iterations" in m for m in rep.messages), rep.messages

    s = merger.merge(ws, MergeConfig(mode="overlay", mask="dst"), swapper=_AgedSwapper(superres.AUTO_MIN_ITERATIONS),
                     force=True)
    assert s.super_resolved
    saved = superres.FaceDetail.load(superres.detail_path(ws.model, 128))
    assert saved.metrics["model_iteration"] == superres.AUTO_MIN_ITERATIONS
    faced = [i for i, a in enumerate(off) if not np.array_equal(a, _merged(ws)[i])]
    assert len(faced) >= len(off) - 2  # every frame with a face (one has none) is merged with the network


def test_auto_without_src_faces_merges_without_it_and_warns_but_on_refuses(dst_ws, unmarked):
    from facedouble.errors import InputError
    from facedouble.progress import Reporter

    ws = dst_ws
    rep = Reporter()
    s = merger.merge(ws, MergeConfig(mode="overlay", mask="dst"), swapper=_AgedSwapper(20_000), reporter=rep)
    assert s.written == len(ws.frame_files("dst"))
    assert any(m.startswith("warning: super resolution stays off (auto)") and "src faces" in m for m in rep.messages)
    with pytest.raises(InputError, match="extract src faces"):
        merger.merge(ws, MergeConfig(mode="overlay", mask="dst", super_resolution="on"), swapper=_AgedSwapper(20_000),
                     force=True)


def test_the_tuner_uses_a_saved_network_and_never_trains_one(dst_ws, src_faces, unmarked):
    """The browser tuner answers in a second: auto without a saved network previews without it (said once, not on
    every frame), with one it uses it; on without one is a clear error."""
    from facedouble.errors import ModelError
    from facedouble.merge.session import MergeSession
    from facedouble.progress import Reporter

    ws = dst_ws
    rep = Reporter()
    session = MergeSession(ws, lambda ws, cfg: _AgedSwapper(20_000), reporter=rep)
    cfg = MergeConfig(mode="overlay", mask="dst")
    plain = [session.merge(n, cfg).image for n in (1, 2, 3)]
    assert sum("not in this preview yet" in m for m in rep.messages) == 1, rep.messages
    with pytest.raises(ModelError, match="Merge all once"):
        session.merge(1, MergeConfig(mode="overlay", mask="dst", super_resolution="on"))
    superres.train_face_detail(src_faces[:6], 128, steps=20).save(superres.detail_path(ws.model, 128))
    sharp = session.merge(1, cfg).image
    assert sharp.shape == plain[0].shape and not np.array_equal(sharp, plain[0])
    assert np.array_equal(session.merge(1, MergeConfig(mode="overlay", mask="dst", super_resolution="off")).image,
                          plain[0])


def test_super_resolution_option_reads_old_configs(tmp_path):
    """The option was a bool: code passing True / False gets on / off; a saved file's false (the old default,
    written by every merge) reads as auto, its true as on; anything else is refused by name."""
    import json

    from facedouble.errors import OptionError

    assert MergeConfig().super_resolution == "auto"
    assert MergeConfig(super_resolution=True).super_resolution == "on"
    assert MergeConfig(super_resolution=False).super_resolution == "off"
    for saved, read in ((False, "auto"), (True, "on"), ("off", "off")):
        path = tmp_path / "merge_config.json"
        path.write_text(json.dumps({"stage": "MergeConfig", "options": {"super_resolution": saved}}))
        assert MergeConfig.load(path).super_resolution == read
    with pytest.raises(OptionError, match="--super-resolution must be one of auto, on, off"):
        MergeConfig(super_resolution="sometimes")


def test_the_learning_rate_ends_low_when_the_time_cap_ends_training(src_faces, monkeypatch):
    """On a busy machine the time cap ends training before its steps: the schedule follows time too, so the
    network still ends at the low learning rate (it stopped at the peak's 0.6x before). A clock that moves a
    quarter second per reading stands in for the busy machine."""
    import types

    assert superres.learning_rate(0.0) == superres.PEAK_LR and superres.learning_rate(1.0) == superres.FINAL_LR
    now = [0.0]

    def tick() -> float:
        now[0] += 0.25
        return now[0]

    monkeypatch.setattr(superres, "time", types.SimpleNamespace(monotonic=tick))
    detail = superres.train_face_detail(src_faces[:8], 96, steps=1_000, seconds=10.0, patch=48)
    m = detail.metrics
    assert 10 <= m["steps"] <= 25 and m["final_lr"] < 1.2 * superres.FINAL_LR, m


def _planned_shorter(metrics: dict) -> None:
    metrics["planned_steps"] = superres.STEPS // 2


def _l1_alone(metrics: dict) -> None:
    del metrics["texture_power"]  # the networks saved before the texture loss recorded none (L1 alone)


def _eyes_at_full_power(metrics: dict) -> None:
    del metrics["eye_texture_power"]  # the networks saved before session 22 recorded none: the eyes had the full power


def _without_grain(metrics: dict) -> None:
    del metrics["grain_power"]  # the networks saved before session 23 recorded none: they learned without it


@pytest.mark.parametrize("older", [_planned_shorter, _l1_alone, _eyes_at_full_power, _without_grain],
                         ids=["planned shorter", "L1 alone", "eyes at full power", "without the grain loss"])
def test_a_network_of_an_older_default_is_trained_again(dst_ws, src_records, monkeypatch, older):
    """A network saved by an older default (fewer planned steps, learned without the texture loss, with the full
    texture power in the eyes, or without the grain loss) for the same model iteration is replaced once; one made
    by today's defaults is kept while the model has not trained on."""
    ws = dst_ws
    _add_src_faces(ws, src_records)
    calls = []
    real = superres.train_face_detail

    def counted(faces, size, **kw):
        calls.append(1)
        detail = real(faces, size, steps=5, **kw)
        detail.metrics["planned_steps"] = superres.STEPS  # as if trained to today's plan
        return detail

    old = superres.train_face_detail([face for face, _ in src_records], 128, steps=5, texture_power=0)
    old.metrics.update(model_iteration=9_000, planned_steps=superres.STEPS, texture_power=superres.TEXTURE_POWER,
                       eye_texture_power=superres.eye_power_for(9_000), grain_power=superres.grain_power_for(9_000))
    older(old.metrics)
    old.save(superres.detail_path(ws.model, 128))
    monkeypatch.setattr(superres, "train_face_detail", counted)
    cfg = MergeConfig(super_resolution="on")
    merger.load_face_detail(ws, cfg, 64, swapper=_AgedSwapper(9_000))
    assert len(calls) == 1  # the older network was replaced
    saved = superres.FaceDetail.load(superres.detail_path(ws.model, 128)).metrics
    assert saved["texture_power"] == superres.TEXTURE_POWER and saved["eye_texture_power"] == superres.EYE_TEXTURE_POWER
    assert saved["grain_power"] == superres.GRAIN_POWER
    merger.load_face_detail(ws, cfg, 64, swapper=_AgedSwapper(9_000))
    assert len(calls) == 1  # and the new one kept
    merger.load_face_detail(ws, cfg, 64, swapper=_AgedSwapper(9_500))
    assert len(calls) == 2  # the model trained on


def test_the_texture_loss_draws_the_detail_that_l1_alone_leaves_out(src_faces):
    """From inputs too soft to say where each edge lies (as a model's reconstructions are), L1 alone learns their
    mean, which is little detail; with the texture loss (the default) the same network, steps and seed draw about
    twice as much fine detail, still no more than the real faces have, and stay nearer them than bicubic."""
    import cv2

    hr = [cv2.resize(f, (96, 96), interpolation=cv2.INTER_AREA) for f in src_faces]
    soft = [cv2.GaussianBlur(cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA), (0, 0), 1.5) for f in hr]
    kw = dict(inputs=soft, steps=300, holdout=0.2, patch=48, seed=0, seconds=1e9)  # no time cap: a busy machine too
    l1 = superres.train_face_detail(hr, 96, texture_power=0, **kw).metrics
    textured = superres.train_face_detail(hr, 96, **kw).metrics
    assert textured["texture_power"] == superres.TEXTURE_POWER > 0 and l1["texture_power"] == 0
    assert textured["sharpness_net"] > 1.5 * l1["sharpness_net"], (l1, textured)  # measured 2.0x
    assert textured["sharpness_net"] < 1.2 * textured["sharpness_truth"], textured
    assert textured["psnr_net"] > textured["psnr_bicubic"], textured


def test_the_texture_power_grows_with_the_models_age():
    """A young model's network learns with less texture (its blob eyes drew as stacked contours at full power), a
    mature one's and one of unknown age (a DFM file) with the full power; never less for an older model."""
    ages = [superres.AUTO_MIN_ITERATIONS, 1_000, 1_500, 2_000, superres.FULL_TEXTURE_ITERATIONS, 9_000]
    powers = [superres.texture_power_for(i) for i in ages]
    assert powers == sorted(powers) and powers[0] < powers[-1] == superres.TEXTURE_POWER, powers
    assert superres.texture_power_for(superres.AUTO_MIN_ITERATIONS) == superres.YOUNG_TEXTURE_POWER
    assert superres.texture_power_for(None) == superres.TEXTURE_POWER


def test_a_young_models_network_is_learned_again_at_full_power_once_it_has_grown(dst_ws, src_records, monkeypatch):
    """The merge learns a young model's network at the young texture power without the grain loss and saves it
    with its powers; once the model has trained past FULL_TEXTURE_ITERATIONS the next merge learns it again at the
    full power, with the grain loss."""
    ws = dst_ws
    _add_src_faces(ws, src_records)
    powers, grains = [], []
    real = superres.train_face_detail

    def recorded(faces, size, **kw):
        powers.append(kw["texture_power"])
        grains.append(kw["grain_power"])
        return real(faces, size, steps=5, **kw)

    monkeypatch.setattr(superres, "train_face_detail", recorded)
    cfg = MergeConfig(super_resolution="on")
    young = superres.AUTO_MIN_ITERATIONS
    merger.load_face_detail(ws, cfg, 64, swapper=_AgedSwapper(young))
    saved = superres.FaceDetail.load(superres.detail_path(ws.model, 128)).metrics
    assert saved["texture_power"] == superres.YOUNG_TEXTURE_POWER < superres.TEXTURE_POWER
    assert saved["model_iteration"] == young
    merger.load_face_detail(ws, cfg, 64, swapper=_AgedSwapper(superres.FULL_TEXTURE_ITERATIONS))
    assert powers == [superres.YOUNG_TEXTURE_POWER, superres.TEXTURE_POWER]
    assert grains == [0.0, superres.GRAIN_POWER] and superres.GRAIN_POWER > 0  # the grain loss only at full power
    assert superres.FaceDetail.load(superres.detail_path(ws.model, 128)).metrics["texture_power"] == superres.TEXTURE_POWER


def _eye_region_faces(src_records, size):
    """The woman's faces at `size` px with their landmarks in those pixels."""
    import cv2

    faces = [cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA) for face, _ in src_records]
    return faces, [np.asarray(rec.landmarks, np.float32) * (size / face.shape[1]) for face, rec in src_records]


def test_the_eyes_mask_and_weights_lie_on_her_eyes(src_records):
    """The eye region covers both eyes (their centres and lids), not the nose, mouth or cheeks; the texture weight
    is the given ratio there and 1 elsewhere."""
    from facedouble.faces.regions import eyes_mask

    for face, lm in zip(*_eye_region_faces(src_records, 192)):
        mask, weight = eyes_mask(lm, 192), superres.eye_weights(lm, 192, 0.3)
        at = lambda im, p: float(im[int(round(p[1])), int(round(p[0]))])  # noqa: E731
        for centre in (lm[36:42].mean(0), lm[42:48].mean(0)):
            assert at(mask, centre) == 1.0 and at(weight, centre) == pytest.approx(0.3, abs=0.02)
        for lid in (lm[37], lm[38], lm[43], lm[44], lm[40], lm[46]):
            assert at(mask, lid) == 1.0
        for other in (lm[30], lm[33], lm[51], lm[57], lm[8], (lm[2] + lm[31]) / 2, (lm[14] + lm[35]) / 2):
            assert at(mask, other) == 0.0 and at(weight, other) == pytest.approx(1.0, abs=1e-3)
        assert 0.02 < mask.mean() < 0.15 and weight.min() >= 0.3 - 1e-6 and weight.max() <= 1.0


def test_each_patch_learns_with_the_eye_weights_of_its_own_place(src_records, monkeypatch):
    """The texture loss of every training patch gets the weights of the very pixels the patch was cut from, flipped
    with it: here each face *is* its weight map (grey), so the weights must equal the patch's own target."""
    import torch

    from facedouble.train import losses

    faces, lms = _eye_region_faces(src_records, 96)
    maps = [superres.eye_weights(lm, 96, 0.3) for lm in lms]
    seen = []
    real = losses.fine_detail_loss

    def recorded(pred, target, mask, texture_power, grain_power, weight=None):
        seen.append((target[:, :1].clone(), weight.clone()))
        return real(pred, target, mask, texture_power, grain_power, weight)

    monkeypatch.setattr(losses, "fine_detail_loss", recorded)
    detail = superres.train_face_detail([np.dstack([m] * 3) for m in maps], 96, landmarks=lms, texture_power=1.0,
                                        eye_power=0.3, steps=12, patch=48, seed=0)
    assert detail.metrics["eye_texture_power"] == 0.3 and len(seen) == 12
    target, weight = torch.cat([t for t, _ in seen]), torch.cat([w for _, w in seen])
    assert float((target - weight).abs().max()) <= 1 / 255 + 1e-6  # uint8-stored weights
    assert float(weight.min()) < 0.35 and float(weight.max()) == 1.0  # patches in and out of the eyes


def test_the_grain_loss_learns_beside_the_texture_loss_with_its_weights(src_records, monkeypatch):
    """Each step's grain loss gets the texture loss's patch, mask and eye weights, at `grain_power` times the
    texture power; grain_power 0 leaves it out and the network records the power it learned with."""
    from facedouble.train import losses

    faces, lms = _eye_region_faces(src_records, 96)
    calls = []
    real = losses.fine_detail_loss

    def recorded(pred, target, mask, texture_power, grain_power, weight=None):
        calls.append((texture_power, grain_power, weight))
        return real(pred, target, mask, texture_power, grain_power, weight)

    monkeypatch.setattr(losses, "fine_detail_loss", recorded)
    detail = superres.train_face_detail(faces, 96, landmarks=lms, texture_power=0.8, eye_power=0.3, grain_power=0.5,
                                        steps=4, patch=48, seed=0)
    assert detail.metrics["grain_power"] == 0.5 and len(calls) == 4
    for tp, gp, w in calls:
        assert tp == 0.8 and gp == pytest.approx(0.4) and w is not None  # the texture loss's eye weights
    calls.clear()
    off = superres.train_face_detail(faces, 96, landmarks=lms, texture_power=0.8, grain_power=0, steps=2, patch=48)
    assert off.metrics["grain_power"] == 0 and [gp for _, gp, _ in calls] == [0.0, 0.0]
    assert superres.train_face_detail(faces, 96, steps=1, patch=48).metrics["grain_power"] == superres.GRAIN_POWER


@pytest.mark.slow  # ~2 min on 2 idle cores: two networks at 192 px
def test_less_texture_power_in_the_eyes_draws_less_detail_there_and_the_same_elsewhere(src_faces, src_records):
    """The same network, steps and seed, from soft inputs, with the texture loss at full power in the eyes or at
    none there (L1 alone): the second draws less fine detail in the eyes (measured 0.85x after 300 steps), and
    about as much on the rest of the face (0.96x)."""
    import cv2

    from facedouble.faces.regions import eyes_mask, hull_mask

    hr, lms = _eye_region_faces(src_records, 192)
    soft = [cv2.GaussianBlur(cv2.resize(f, (96, 96), interpolation=cv2.INTER_AREA), (0, 0), 1.5) for f in hr]
    kw = dict(inputs=soft, landmarks=lms, steps=300, holdout=0.2, seed=0, seconds=1e9)
    full = superres.train_face_detail(hr, 192, eye_power=superres.TEXTURE_POWER, **kw)
    calm = superres.train_face_detail(hr, 192, eye_power=0.0, **kw)
    assert full.metrics["eye_texture_power"] == superres.TEXTURE_POWER and calm.metrics["eye_texture_power"] == 0.0
    soft01 = [np.float32(s) / 255 for s in soft]

    def detail(net, region):  # mean squared Laplacian of the upscales' luma inside each face's region
        total = 0.0
        for up, lm in zip(net.upscale(soft01), lms):
            lap = cv2.Laplacian(cv2.cvtColor(np.float32(up), cv2.COLOR_RGB2GRAY), cv2.CV_32F)
            m = region(lm)
            total += float((lap ** 2 * m).sum() / m.sum())
        return total / len(lms)

    eyes = lambda lm: eyes_mask(lm, 192)  # noqa: E731
    rest = lambda lm: hull_mask(lm, (192, 192)) * (1 - eyes_mask(lm, 192))  # noqa: E731
    in_eyes, elsewhere = detail(calm, eyes) / detail(full, eyes), detail(calm, rest) / detail(full, rest)
    assert in_eyes < 0.92 and 0.9 < elsewhere < 1.1 and in_eyes < elsewhere - 0.05, (in_eyes, elsewhere)  # 0.85, 0.96


def test_the_eyes_texture_power_is_the_young_one_at_every_age():
    """A mature model's network keeps its full power outside the eyes and the young power inside them; a young one's
    has the young power everywhere (never more in the eyes than elsewhere)."""
    for age in (superres.AUTO_MIN_ITERATIONS, superres.FULL_TEXTURE_ITERATIONS, 9_000, None):
        assert superres.eye_power_for(age) == min(superres.EYE_TEXTURE_POWER, superres.texture_power_for(age))
    assert superres.eye_power_for(9_000) == superres.EYE_TEXTURE_POWER < superres.texture_power_for(9_000)
    assert superres.eye_power_for(superres.AUTO_MIN_ITERATIONS) == superres.texture_power_for(superres.AUTO_MIN_ITERATIONS)
