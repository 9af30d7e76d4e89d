"""Bad inputs, driven through the real CLI: each gives one sentence naming the file or option and what to do,
the typed exit code, no traceback and no "internal error", and loses nothing (inputs byte-identical, earlier
outputs and checkpoints intact). Inputs that can be read (grey-scale, RGBA, 16-bit, CMYK, a wrong extension,
unicode and spaces in paths) simply work. docs/reliability.md lists every row with the message it gets."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facedouble.cli import app
from facedouble.imagefile import read_rgb
from facedouble.faces import container
from facedouble.workspace import Workspace
from support.workspaces import make_workspace

# A tiny model, trained for two iterations: enough to have real checkpoint files to break.
TINY_FLAGS = ["--model", "sae", "--resolution", "64", "--ae-dims", "32", "--e-dims", "8", "--d-dims", "8",
              "--d-mask-dims", "4", "-b", "2", "--seed", "1", "--workers", "0", "--threads", "1",
              "--preview-every", "0", "--autosave-minutes", "0", "--backup-hours", "0"]
EXTRACT_FLAGS = ["--size", "128", "--workers", "1"]


# -- helpers ---------------------------------------------------------------------------------------------------

def cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def one_sentence(text: str) -> str:
    """The message after 'error:' is one sentence: a full stop at its end and none before a new sentence."""
    message = text.split(":", 1)[1].strip()
    assert message.endswith("."), message
    assert not re.search(r"[.!?]\s+[A-Z]", message), f"more than one sentence: {message}"
    return message


def error_of(*args, code: int = 1) -> str:
    result = cli(*args)
    assert result.exit_code == code, result.output
    message = one_sentence(error_line(result.output))
    print(f"MESSAGE ({code}) {' '.join(str(a) for a in args[:2])}: {message}")  # docs/reliability.md quotes these
    return message


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under `roots` (a file root is taken alone)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def visible_temps(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith(".tmp"))


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A small tmpfs mounted at `folder` (skips the test where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (and mount); run the tests as root to check this row")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({done.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount_read_only(folder: Path) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"remounting read-only is not permitted here ({done.stderr.strip()})")


def fill_disk(folder: Path, leave: int) -> None:
    """Fill the filesystem of `folder` with one file until `leave` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler.bin", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def big_grey_png(width: int, height: int) -> bytes:
    """A complete, valid, all-black grey PNG of any size (zeros compress ~1000:1)."""
    comp = zlib.compressobj(1)
    rows = bytes(width + 1) * 100
    body = [comp.compress(rows) for _ in range(height // 100)] + [comp.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(body)) + png_chunk(b"IEND", b"")


def huge_jpeg(media: Path, width: int, height: int) -> bytes:
    """single_face.jpg with its frame header (SOF) saying `width` x `height`."""
    data = bytearray((media / "single_face.jpg").read_bytes())
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            data[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF in single_face.jpg")


# -- fixtures ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_faces):  # noqa: F811
    """A workspace with real aligned faces and a tiny 'sae' model trained for two iterations."""
    ws = make_workspace(tmp_path_factory.mktemp("trained") / "ws", train_faces)
    r = cli("train", "-w", ws.root, *TINY_FLAGS, "--max-iterations", "2")
    assert r.exit_code == 0, r.output
    return ws


@pytest.fixture()
def model_ws(tmp_path, trained, media):
    """A copy of the trained workspace, with the dst frames its aligned faces come from (for merge)."""
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(trained.root, ws.root)
    return ws


def frames_for_merge(ws: Workspace, media: Path) -> None:
    """The dst frames that the aligned dst faces name (single_face.mp4, decoded with PyAV)."""
    import av

    wanted = {container.read_record(p).source_filename for p in ws.face_files("dst")}
    ws.frames("dst").mkdir(parents=True, exist_ok=True)
    with av.open(str(media / "single_face.mp4")) as c:
        for i, f in enumerate(c.decode(video=0), 1):
            if f"{i:06d}.png" in wanted:
                cv2.imwrite(str(ws.frames("dst") / f"{i:06d}.png"), f.to_ndarray(format="bgr24"))


# -- videos ------------------------------------------------------------------------------------------------------

def test_truncated_video(workspace, media):
    data = (media / "single_face.mp4").read_bytes()
    video = workspace.root / "data_src.mp4"
    video.write_bytes(data[: len(data) // 2])
    before = snapshot(video)
    text = error_of("video", "extract", "src", "-w", workspace.root)
    assert "data_src.mp4" in text and "truncated" in text
    assert snapshot(video) == before and not workspace.frame_files("src")


def test_corrupt_video(workspace, media):
    data = bytearray((media / "single_face.mp4").read_bytes())
    start = data.find(b"mdat") + 8
    data[start:start + 150_000] = np.random.default_rng(0).integers(0, 256, 150_000, dtype=np.uint8).tobytes()
    video = workspace.root / "data_dst.mp4"
    video.write_bytes(bytes(data))
    before = snapshot(video)
    text = error_of("video", "extract", "dst", "-w", workspace.root)
    assert "data_dst.mp4 is corrupt" in text
    assert snapshot(video) == before


def test_zero_byte_video(workspace, tmp_path):
    (workspace.root / "data_src.mp4").write_bytes(b"")
    text = error_of("video", "extract", "src", "-w", workspace.root)
    assert "data_src.mp4" in text and "empty" in text
    assert (workspace.root / "data_src.mp4").read_bytes() == b"" and not workspace.frame_files("src")
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    text = error_of("video", "cut", empty, "--from", "1")
    assert "empty.mov" in text and "empty" in text and not (tmp_path / "empty_cut.mov").exists()


# -- images that can be read work ------------------------------------------------------------------------------

def _variants(media: Path, tmp: Path) -> dict[str, Path]:
    from PIL import Image

    bgr = cv2.imread(str(media / "single_face.jpg"))
    out = {}
    p = tmp / "png_named.jpg"                                  # a PNG with a .jpg name
    cv2.imwrite(str(tmp / "x.png"), bgr)
    os.replace(tmp / "x.png", p)
    out["png-named-jpg"] = p
    p = tmp / "jpeg_named.png"                                 # a JPEG with a .png name
    shutil.copy(media / "single_face.jpg", p)
    out["jpeg-named-png"] = p
    p = tmp / "cmyk.jpg"
    Image.open(media / "single_face.jpg").convert("CMYK").save(p, quality=95)
    out["cmyk-jpeg"] = p
    p = tmp / "deep.png"
    cv2.imwrite(str(p), bgr.astype(np.uint16) * 257)
    out["16-bit-png"] = p
    p = tmp / "grey.png"
    cv2.imwrite(str(p), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    out["grey-png"] = p
    p = tmp / "grey.jpg"
    cv2.imwrite(str(p), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    out["grey-jpeg"] = p
    out["rgba-png"] = Path(shutil.copy(media / "Image_with_alpha.png", tmp / "rgba.png"))
    return out


@pytest.mark.parametrize("kind", ["png-named-jpg", "jpeg-named-png", "cmyk-jpeg", "16-bit-png", "grey-png", "grey-jpeg",
                                  "rgba-png"])
def test_readable_images_are_converted_and_work(workspace, media, tmp_path, kind):
    image = _variants(media, tmp_path)[kind]
    frame = workspace.frames("src") / ("000001" + image.suffix)
    shutil.copy(image, frame)
    before = snapshot(frame)
    r = cli("extract", "src", "-w", workspace.root, *EXTRACT_FLAGS)
    assert r.exit_code == 0, r.output
    faces = workspace.face_files("src")
    assert len(faces) == 1, r.output
    face, record = container.read_face(faces[0])
    assert face.shape == (128, 128, 3) and face.dtype == np.uint8
    assert record.source_filename == frame.name
    assert snapshot(frame) == before
    if kind in ("grey-png", "grey-jpeg"):
        assert np.abs(face[..., 0].astype(int) - face[..., 2]).max() <= 2       # still grey, as three channels
    elif kind != "rgba-png":                                   # the same colours as the original photo
        rgb = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)
        assert np.abs(read_rgb(frame).astype(int) - rgb).mean() < 3
    # the same file works as the --reference photo too
    r = cli("extract", "src", "-w", workspace.root, *EXTRACT_FLAGS, "--reference", image)
    assert r.exit_code == 0, r.output


# -- a huge image ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_huge_image_is_refused_before_decoding(workspace, media, tmp_path, kind):
    import resource

    if kind == "png":
        data, name, size = big_grey_png(20000, 10000), "000002.png", "20000 x 10000"   # complete: 200 megapixels
    else:
        data, name, size = huge_jpeg(media, 30000, 30000), "000002.jpg", "30000 x 30000"
    huge = workspace.frames("src") / name
    huge.write_bytes(data)
    shutil.copy(media / "single_face.jpg", workspace.frames("src") / "000001.jpg")
    before = snapshot(huge)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = cli("extract", "src", "-w", workspace.root, *EXTRACT_FLAGS)
    assert r.exit_code == 0, r.output                          # the good frame is extracted, the huge one listed
    text = "".join(r.output.split())                           # (the warning is wrapped, even inside a path)
    assert f"{name}is{size}pixels".replace(" ", "") in text and "scaleitdown" in text, r.output
    assert len(workspace.face_files("src")) == 1
    # as --reference it is an error
    ref = tmp_path / f"ref{huge.suffix}"
    ref.write_bytes(data)
    text = error_of("extract", "src", "-w", workspace.root, *EXTRACT_FLAGS, "--reference", ref)
    assert f"ref{huge.suffix} is {size} pixels" in text and "scale it down" in text
    # never decoded: the process did not grow by the 600 MB+ the pixels would take
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 300_000
    assert snapshot(huge) == before


def test_header_size_matches_the_decoded_size(media, tmp_path):
    from facedouble.imagefile import header_size

    for kind, path in _variants(media, tmp_path).items():
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert header_size(path.read_bytes()) == (image.shape[1], image.shape[0]), kind
        assert header_size(np.fromfile(str(path), np.uint8)) == (image.shape[1], image.shape[0]), kind
    progressive = tmp_path / "progressive.jpg"
    cv2.imwrite(str(progressive), cv2.imread(str(media / "multi_face.jpg")), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert header_size(progressive.read_bytes()) == (1000, 667)
    assert header_size(big_grey_png(20000, 100)) == (20000, 100)
    for junk in (b"", b"\xff\xd8", b"\xff\xd8\xff\xe0\x00", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"not an image at all"):
        assert header_size(junk) is None


# -- paths ------------------------------------------------------------------------------------------------------

def test_unicode_and_spaces_in_paths(tmp_path, media):
    root = tmp_path / "prøve mappe ✓" / "arbeits bereich ü"
    r = cli("workspace", "init", root)
    assert r.exit_code == 0, r.output
    ws = Workspace(root)
    shutil.copy(media / "single_face.mp4", root / "data_src.mp4")
    r = cli("video", "extract", "src", "-w", root, "--fps", "2", "--format", "jpg")
    assert r.exit_code == 0, r.output
    assert len(ws.frame_files("src")) >= 4
    ref = tmp_path / "réf photo ☺.jpg"
    shutil.copy(media / "single_face.jpg", ref)
    r = cli("extract", "src", "-w", root, *EXTRACT_FLAGS, "--reference", ref)
    assert r.exit_code == 0, r.output
    assert len(ws.face_files("src")) >= 4
    r = cli("sort", "src", "-w", root, "--by", "blur")
    assert r.exit_code == 0, r.output


def test_read_only_workspace(tmp_path, media):
    """As root (who writes anywhere) the workspace sits on a tmpfs remounted read-only; otherwise chmod 0555."""
    folder = tmp_path / "ro"
    as_root = os.geteuid() == 0
    folder.mkdir()
    with tmpfs(folder, "8m") if as_root else contextlib.nullcontext(folder):
        ws = Workspace(folder / "ws").create()
        shutil.copy(media / "single_face.mp4", ws.root / "data_src.mp4")
        before = snapshot(ws.root)
        folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
        if as_root:
            remount_read_only(folder)
        else:
            for d in folders:
                d.chmod(0o555)
        try:
            text = error_of("video", "extract", "src", "-w", ws.root)
            assert str(ws.frames("src")) in text and re.search("read-only|permission denied", text, re.I)
            text = error_of("workspace", "init", folder / "other")
            assert str(folder / "other") in text and re.search("read-only|permission denied", text, re.I)
            assert snapshot(ws.root) == before
        finally:
            if not as_root:
                for d in folders:
                    d.chmod(0o755)


# -- a full disk -------------------------------------------------------------------------------------------------

def test_full_disk_during_frame_extraction(tmp_path, media):
    folder = tmp_path / "small"
    with tmpfs(folder, "3m"):
        ws = Workspace(folder / "ws").create()
        shutil.copy(media / "single_face.mp4", ws.root / "data_dst.mp4")
        before = snapshot(ws.root / "data_dst.mp4")
        text = error_of("video", "extract", "dst", "-w", ws.root)
        assert "disk is full" in text and str(folder) in text and "free" in text, text
        assert snapshot(ws.root / "data_dst.mp4") == before
        assert visible_temps(ws.root) == []
        frames = ws.frame_files("dst")
        assert frames, "some frames fit before the disk filled"
        for p in frames:                                        # every frame left is whole
            assert cv2.imread(str(p)) is not None, p


def test_full_disk_while_saving_the_model(tmp_path, trained):
    folder = tmp_path / "small"
    with tmpfs(folder, "12m"):
        ws = Workspace(folder / "ws")
        shutil.copytree(trained.root, ws.root)
        before = snapshot(ws.model)
        fill_disk(folder, 64 * 1024)
        text = error_of("train", "-w", ws.root, *TINY_FLAGS, "--max-iterations", "1")
        assert "disk is full" in text and str(folder) in text and "free" in text, text
        assert visible_temps(ws.root) == []
        assert snapshot(ws.model) == before                       # the last good checkpoint is intact


@pytest.mark.parametrize("stage", ["extract", "merge"])
def test_full_disk_while_writing_faces_or_merged_frames(tmp_path, media, trained, stage):
    folder = tmp_path / "small"
    with tmpfs(folder, "24m"):
        ws = Workspace(folder / "ws")
        if stage == "extract":
            ws.create()
            for i, name in enumerate(["multi_face.jpg", "single_face.jpg"] * 3):
                shutil.copy(media / name, ws.frames("src") / f"{i + 1:06d}.jpg")
            args = ["extract", "src", "-w", ws.root, *EXTRACT_FLAGS]
            kept = ws.frames("src")
        else:
            shutil.copytree(trained.root, ws.root)
            frames_for_merge(ws, media)
            args = ["merge", "-w", ws.root]
            kept = ws.root
        before = snapshot(kept)
        fill_disk(folder, 48 * 1024)
        text = error_of(*args)
        assert "disk is full" in text and str(folder) in text, text
        (folder / "filler.bin").unlink()
        assert {k: v for k, v in snapshot(kept).items() if k in before} == before
        assert visible_temps(ws.root) == []
        for p in [*ws.face_files("src"), *(sorted(ws.merged.glob("*.png")) if ws.merged.is_dir() else [])]:
            assert cv2.imread(str(p)) is not None, p                # whatever was written is whole


# -- faces -----------------------------------------------------------------------------------------------------

def test_faces_without_metadata(workspace, media):
    bgr = cv2.resize(cv2.imread(str(media / "single_face.jpg")), (256, 256))
    for side in ("src", "dst"):
        for i in range(3):
            cv2.imwrite(str(workspace.aligned(side) / f"{i + 1:06d}_0.jpg"), bgr)
    shutil.copy(media / "single_face.jpg", workspace.frames("dst") / "000001.jpg")
    before = snapshot(workspace.root)
    text = error_of("train", "-w", workspace.root, *TINY_FLAGS, "--max-iterations", "1")
    assert str(workspace.aligned("src")) in text and "face record" in text and "extract" in text
    text = error_of("merge", "-w", workspace.root)
    assert str(workspace.aligned("dst")) in text and "face record" in text and "extract" in text
    text = error_of("sort", "src", "-w", workspace.root, "--by", "blur")
    assert str(workspace.aligned("src")) in text and "face record" in text
    assert {k: v for k, v in snapshot(workspace.root).items() if k in before} == before


def test_dfl_file_with_a_malicious_pickle(tmp_path, media):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    face = cv2.resize(cv2.imread(str(media / "single_face.jpg")), (256, 256))
    jpg = container.encode_image(face[..., ::-1], ".jpg", 95)
    payload = pickle.dumps({"face_type": "whole_face", "landmarks": Evil()})
    folder = tmp_path / "dfl"
    folder.mkdir()
    evil = folder / "00001_0.jpg"
    evil.write_bytes(jpg[:2] + b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload + jpg[2:])
    before = snapshot(folder)
    text = error_of("util", "import-dfl", folder, "--no-identity", "--out", tmp_path / "imported")
    assert "00001_0.jpg" in text and "refused" in text
    assert not marker.exists() and snapshot(folder) == before


# -- models ----------------------------------------------------------------------------------------------------

def test_model_of_another_resolution_or_architecture(model_ws, media):
    ws = model_ws
    frames_for_merge(ws, media)
    before = snapshot(ws.model)
    text = error_of("train", "-w", ws.root, "--model", "sae", "--resolution", "128", "--max-iterations", "1")
    assert "--resolution is fixed" in text and str(ws.model) in text
    options = ws.model / "sae_options.json"
    original = options.read_text()
    saved = json.loads(original)
    for key, value in (("resolution", 128), ("archi", "liae")):
        tampered = json.loads(json.dumps(saved))
        tampered["options"][key] = value
        options.write_text(json.dumps(tampered))
        text = error_of("merge", "-w", ws.root)
        assert "sae.safetensors" in text and "another architecture" in text and "backups" in text
        text = error_of("train", "-w", ws.root, "--model", "sae", "--workers", "0", "--max-iterations", "1")
        assert "sae.safetensors" in text and "another architecture" in text
    options.write_text(original)
    assert snapshot(ws.model) == before
    # another preset's name, and a folder of another tool's model files
    text = error_of("merge", "-w", ws.root, "--model-name", "h64")
    assert "No trained model 'h64'" in text and "there is sae" in text
    other = ws.root / "other_model"
    other.mkdir()
    (other / "SAEHD_data.dat").write_bytes(b"\x80\x04 not ours")
    text = error_of("merge", "-w", ws.root, "--model", other)
    assert "another tool" in text and "SAEHD_data.dat" in text
    assert snapshot(ws.model) == before
    assert not ws.merged.exists() or not any(ws.merged.iterdir())


def test_train_and_run_without_a_preset_resume_the_workspace_model(model_ws, tmp_path):
    """A workspace trained under another preset (an older default) keeps training that model when no --model
    is given: no new model of the default preset starts beside it from scratch."""
    from facedouble.choices import DEFAULT_MODEL
    from facedouble.config import RunConfig
    from facedouble.pipeline import _train_config
    from facedouble.train.checkpoint import find_models

    ws = model_ws
    state = ws.model / "sae_state.json"
    before = json.loads(state.read_text())["iteration"]
    run_flags = TINY_FLAGS[TINY_FLAGS.index("--workers"):]   # the tiny model's run flags, no preset or shape
    r = cli("train", "-w", ws.root, *run_flags, "--max-iterations", "1")
    assert r.exit_code == 0, r.output
    assert find_models(ws.model) == ["sae"]
    assert json.loads(state.read_text())["iteration"] == before + 1
    assert _train_config(ws, RunConfig()).model == "sae"
    assert _train_config(ws, RunConfig(model="h64")).model == "h64"
    empty = Workspace(tmp_path / "empty").create()
    assert _train_config(empty, RunConfig()).model == DEFAULT_MODEL


def test_checkpoint_with_nan_weights(model_ws, media):
    from safetensors import safe_open
    from safetensors.torch import save_file

    ws = model_ws
    frames_for_merge(ws, media)
    weights = ws.model / "sae.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        metadata = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    name = next(k for k in tensors if k.startswith("model.") and tensors[k].is_floating_point() and tensors[k].numel() > 8)
    tensors[name].view(-1)[:4] = float("nan")
    save_file(tensors, str(weights), metadata=metadata)
    before = snapshot(ws.model)
    text = error_of("merge", "-w", ws.root)
    assert "sae.safetensors" in text and "NaN" in text and "backups" in text
    text = error_of("train", "-w", ws.root, "--model", "sae", "--workers", "0", "--max-iterations", "1")
    assert "sae.safetensors" in text and "NaN" in text and "backups" in text
    assert snapshot(ws.model) == before
    assert not ws.merged.exists() or not any(ws.merged.iterdir())


def test_live_audio_input_that_is_not_there(tmp_path, media):
    """`live --audio` naming a microphone that does not exist (this machine has no sound card), or an input
    without sound: one sentence and exit 1 before the model loads or anything is written; the source is
    left as it was."""
    out = tmp_path / "rec.mp4"
    source = media / "single_face.mp4"
    before = snapshot(source)
    text = error_of("live", "-w", tmp_path / "ws", "--source", source, "--audio", "alsa:hw:7,0", "--out", out)
    assert "no audio input alsa:hw:7,0" in text and "--audio" in text
    text = error_of("live", "-w", tmp_path / "ws", "--source", source, "--audio", media / "single_face.jpg",
                    "--out", out)
    assert "has no audio stream" in text
    assert not list(tmp_path.iterdir()) and snapshot(source) == before
