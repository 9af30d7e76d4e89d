"""The explicit-content screen: the decision rule on synthetic detector outputs, the sampling policy, the real
model on the clean sample media, and the refusal naming the frames."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import pytest

from facedouble import safety
from facedouble.errors import SafetyError
from facedouble.progress import Reporter


def det(cls: str, score: float) -> dict:
    return {"class": cls, "score": score, "box": [0, 0, 10, 10]}


# -- the decision rule (pure) ---------------------------------------------------------------------------

def test_clean_detections_are_not_explicit():
    assert not safety.is_explicit([])
    ordinary = [det("FACE_FEMALE", 0.95), det("FACE_MALE", 0.9), det("FEMALE_BREAST_COVERED", 0.99),
                det("BUTTOCKS_COVERED", 0.99), det("BELLY_EXPOSED", 0.99), det("ARMPITS_EXPOSED", 0.99),
                det("FEET_EXPOSED", 0.99), det("MALE_BREAST_EXPOSED", 0.99), det("FEMALE_GENITALIA_COVERED", 0.99)]
    assert not safety.is_explicit(ordinary)


@pytest.mark.parametrize("cls", sorted(safety.THRESHOLDS))
def test_each_explicit_class_counts_from_its_threshold(cls):
    t = safety.THRESHOLDS[cls]
    assert not safety.is_explicit([det("FACE_FEMALE", 0.9), det(cls, t - 0.01)])
    assert safety.is_explicit([det("FACE_FEMALE", 0.9), det(cls, t)])
    assert safety.explicit_detections([det(cls, 0.99), det("FACE_MALE", 0.99)]) == [det(cls, 0.99)]


def test_thresholds_cover_the_explicit_classes_only():
    assert set(safety.THRESHOLDS) == {"FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED",
                                      "FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED"}
    assert set(safety.THRESHOLDS) <= set(safety.LABELS)


def test_sampling_policy():
    p = safety.SamplePolicy()
    assert p.pick(0) == [] and p.pick(7) == list(range(7)) and p.pick(30) == list(range(30))
    picked = p.pick(95)
    assert picked[:3] == [0, 10, 20] and picked[-1] == 94 and len(picked) == 11
    assert p.pick(95, safety.frame_times([f"{i + 1:06d}.png" for i in range(95)], 30)) == picked  # 3 s: the same
    long = p.pick(100_000, [i / 30 for i in range(100_000)])     # 55 minutes at 30 fps: one frame a second
    assert len(long) == 3334 and long[0] == 0 and long[-1] == 99_999
    assert safety.sample_count(18_000, fps=30) == 600            # 10 minutes at 30 fps
    assert safety.sample_count(18_000) == 1801                   # timing unknown: every 10th, no cap
    assert safety.sample_count(600, fps=1) == 600                # src taken at 1 fps: every frame


# -- the real model on clean media ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean_frames(media, tmp_path_factory) -> list[Path]:
    """A few frames of each sample video and the photos, as the files extraction would screen."""
    out = tmp_path_factory.mktemp("frames")
    paths = []
    for name in ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "no_face.mp4", "face_noface.mov",
                 "noface_face.mov"):
        with av.open(str(media / name)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % 45 == 0:
                    p = out / f"{Path(name).stem}_{i + 1:06d}.png"
                    cv2.imwrite(str(p), f.to_ndarray(format="bgr24"))
                    paths.append(p)
                if i >= 90:
                    break
    for name in ("single_face.jpg", "multi_face.jpg", "BWPictureHuman.jpg", "Image_with_alpha.png"):
        paths.append(media / name)
    return paths


def test_screen_passes_clean_media(clean_frames):
    rep = Reporter()
    result = safety.screen_frames(clean_frames, reporter=rep)
    assert not result.explicit and result.screened == len(clean_frames) == result.total
    assert result.ms_per_image > 0


def test_model_runs_and_sees_faces(media):
    img = cv2.cvtColor(cv2.imread(str(media / "multi_face.jpg")), cv2.COLOR_BGR2RGB)
    found = safety.detect(img)
    faces = [d for d in found if d["class"].startswith("FACE_")]
    assert len(faces) >= 3 and not safety.is_explicit(found)
    for d in faces:
        x, y, w, h = d["box"]
        assert 0 <= x < img.shape[1] and 0 <= y < img.shape[0] and w > 10 and h > 10
    grey = cv2.imread(str(media / "BWPictureHuman.jpg"), cv2.IMREAD_GRAYSCALE)
    assert isinstance(safety.detect(grey), list)


def test_explicit_frames_are_refused_by_name(clean_frames, monkeypatch):
    flagged = {clean_frames[1].name, clean_frames[6].name}
    calls = []

    def fake_detect(image):
        calls.append(image.shape)
        return [det("FEMALE_BREAST_EXPOSED", 0.9)] if fake_detect.current in flagged else [det("FACE_FEMALE", 0.9)]

    real_load = safety._load

    def load(item):
        name, img = real_load(item)
        fake_detect.current = name
        return name, img

    monkeypatch.setattr(safety, "detect", fake_detect)
    monkeypatch.setattr(safety, "_load", load)
    with pytest.raises(SafetyError) as err:
        safety.screen_frames(clean_frames)
    msg = err.value.message
    assert all(n in msg for n in flagged) and "cannot be turned off" in msg
    assert err.value.exit_code == 3 and len(calls) == len(clean_frames)


def test_screen_cannot_run_without_model_and_refuses(monkeypatch):
    monkeypatch.setattr(safety.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SafetyError, match="nudenet"):
        safety.model_path()


def test_unreadable_frame_is_a_clear_error(tmp_path):
    from facedouble.errors import InputError

    bad = tmp_path / "000001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="000001.png cannot be read"):
        safety.screen_frames([bad])
