"""Sound in `facedouble live`: a stream's audio track into a file output, in sync with the video however many
frames were dropped; `--audio FILE` (the microphone's code path: any PyAV input with audio) muxed into a file
and cut where the video ends; a stream output carrying the audio; a microphone that is not there refused in
one sentence before anything is written (tests/reliability/test_reliability_inputs.py drives that through the CLI)."""

from __future__ import annotations

import threading
import time
import types
from pathlib import Path

import av
import numpy as np
import pytest

from facedouble.config import LiveConfig
from facedouble.errors import InputError
from facedouble.live import live
from facedouble.live.sources import SourceStopped
from facedouble.provenance.verify import verify_file
from support.network import free_port
from support.swappers import TintModel

FPS, RATE = 30, 48000
BEEP_EVERY, BEEP = 2.0, 0.1          # seconds: a 1 kHz beep of 0.1 s every 2 s of the stream


@pytest.fixture(autouse=True)
def _patient(monkeypatch):
    from facedouble.live import sources

    monkeypatch.setattr(sources, "OPEN_TIMEOUT", 60.0)


def _stamp(image: np.ndarray, index: int) -> np.ndarray:
    """The frame's index in 8 black/white squares at the bottom left (far from the face; survive x264)."""
    out = image.copy()
    for bit in range(8):
        x = 8 + bit * 30
        out[326:350, x:x + 24] = 255 if (index >> bit) & 1 else 0
    return out


def _read_stamp(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if image[332:344, 14 + bit * 30:26 + bit * 30].mean() > 128)


def test_the_stamp_reads_back_through_x264(media):
    """The test's own clock: the index stamped on each frame reads back after an H.264 round trip."""
    with av.open(str(media / "single_face.mp4")) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    for index in (0, 1, 77, 200, 255):
        f = av.VideoFrame.from_ndarray(_stamp(frame, index), format="rgb24").reformat(format="yuv420p")
        assert _read_stamp(f.to_ndarray(format="rgb24")) == index


def _stream_file(path: Path, media: Path, seconds: float) -> None:
    """An MPEG-TS file like a camera's stream: the man's clip looped with each frame's index stamped, and an
    AAC track with a beep every 2 s (at the frames 0, 60, 120, ...)."""
    with av.open(str(media / "single_face.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    out = av.open(str(path), "w", format="mpegts")
    v = out.add_stream("libx264", rate=FPS)
    v.width, v.height, v.pix_fmt = 640, 360, "yuv420p"
    v.codec_context.options = {"preset": "ultrafast", "g": "15"}
    a = out.add_stream("aac", rate=RATE)
    a.layout = "mono"
    for i in range(int(seconds * FPS)):
        f = av.VideoFrame.from_ndarray(_stamp(frames[i % len(frames)], i), format="rgb24").reformat(format="yuv420p")
        f.pts = i
        for p in v.encode(f):
            out.mux(p)
    t = np.arange(int(seconds * RATE)) / RATE
    sound = np.where(t % BEEP_EVERY < BEEP, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)
    for k in range(0, len(sound), 1024):
        af = av.AudioFrame.from_ndarray(sound[None, k:k + 1024], format="fltp", layout="mono")
        af.sample_rate, af.pts = RATE, k
        for p in a.encode(af):
            out.mux(p)
    for s in (v, a):
        for p in s.encode(None):
            out.mux(p)
    out.close()


def _send(path: Path, port: int) -> None:
    """Send the MPEG-TS file over UDP to 127.0.0.1:port in real time (as `ffmpeg -re -c copy` does)."""
    inp = av.open(str(path))
    out = av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", "w", format="mpegts")
    streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
    start, first = time.monotonic(), None
    try:
        for p in inp.demux():
            if p.dts is None:
                continue
            t = float(p.dts * p.time_base)
            first = t if first is None else first
            time.sleep(max(0.0, start + t - first - time.monotonic()))
            p.stream = streams[p.stream.index]
            out.mux(p)
    finally:
        out.close()
        inp.close()


def _tracks(path: Path) -> tuple[list[tuple[float, np.ndarray]], np.ndarray, float, float]:
    """((time, frame) of each frame, the audio as mono float at its own rate, audio start, rate)."""
    with av.open(str(path)) as c:
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        chunks, start = [], None
        for f in c.decode(a):
            start = float(f.pts * f.time_base) if start is None else start
            chunks.append(f.to_ndarray().reshape(len(f.layout.channels), -1).mean(axis=0))
        return frames, np.concatenate(chunks), start, float(a.sample_rate)


def _audio_seconds(path: Path, fps: float = 30.0) -> tuple[float, float]:
    """(video length: the first frame's time to the last one's end, audio length: its packets' durations)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [float(p.pts * p.time_base) for p in c.demux(v) if p.size]
        assert min(times) == 0.0
        video = max(times) + 1.0 / fps
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        audio = sum(p.duration for p in c.demux(a) if p.size) * float(a.time_base)
    return video, audio


@pytest.mark.slow  # real time: 8 s of stream, then the 5 s that tell a stopped stream; more on a loaded machine
def test_stream_audio_goes_into_the_file_in_sync(media, tmp_path):
    ts = tmp_path / "camera.ts"
    _stream_file(ts, media, 8.0)
    port = free_port()
    sender = threading.Thread(target=_send, args=(ts, port), daemon=True)
    sender.start()
    out = tmp_path / "result.mp4"
    with pytest.raises(SourceStopped):
        live(LiveConfig(source=f"udp://127.0.0.1:{port}", out=str(out), color_transfer="none"), model=TintModel())
    sender.join()
    video_len, audio_len = _audio_seconds(out)
    assert video_len > 2.0 and abs(audio_len - video_len) < 0.2, (video_len, audio_len)
    report = verify_file(out)
    assert report.watermark["found"] and report.c2pa["state"] == "valid" and report.tag

    # in sync: each frame shows which stream frame it is; the beeps are where their frames' times put them
    frames, sound, audio_start, rate = _tracks(out)
    assert abs(audio_start - frames[0][0]) < 0.05
    offsets = [i / FPS - t for t, i in ((t, _read_stamp(img)) for t, img in frames)]
    assert np.ptp(offsets) < 0.04, offsets   # every frame at its own time, dropped ones or not
    offset = float(np.median(offsets))        # stream time = output time + offset
    loud = np.abs(sound) > 0.1
    checked = 0
    for k in range(10):
        expected = k * BEEP_EVERY - offset  # when the beep of stream time 2k s plays in the output
        if expected < 0.05 or expected > len(sound) / rate - 0.3:
            continue
        lo = max(0, int((expected - 0.5 - audio_start) * rate))
        onset = (lo + int(np.argmax(loud[lo:lo + int(rate)]))) / rate + audio_start
        assert abs(onset - expected) < 0.05, (k, onset, expected)
        checked += 1
    assert checked >= 1


def test_audio_file_is_muxed_and_cut_where_the_video_ends(media, tmp_path):
    """`--audio FILE` beside a file source: the woman's clip's sound (AAC, copied packet for packet) instead
    of the man's own (MP3), from the first frame to the end of the last (30 frames: 1 s)."""
    out = tmp_path / "with_sound.mp4"
    sound = media / "WolfgangLanger_Pexels.mp4"
    summary = live(LiveConfig(source=str(media / "single_face.mp4"), out=str(out), audio=str(sound),
                              color_transfer="none", blur=20, max_frames=30), model=TintModel())
    assert summary.frames_out == 30
    video_len, audio_len = _audio_seconds(out)
    assert video_len == pytest.approx(1.0, abs=0.01)
    assert abs(audio_len - video_len) < 0.05, (video_len, audio_len)   # the 19.7 s of sound cut at 1 s
    with av.open(str(out)) as c, av.open(str(sound)) as s:
        assert len(c.streams.audio) == 1 and c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].sample_rate == 48000           # hers, not the man's 44.1 kHz MP3
        got = [bytes(p) for p in c.demux(audio=0) if p.size]
        theirs = [bytes(p) for p, _ in zip((p for p in s.demux(audio=0) if p.size), range(len(got)))]
        assert got == theirs
    report = verify_file(out)
    assert report.watermark["found"] and report.c2pa["state"] == "valid" and report.tag
    assert not list(tmp_path.glob(".*"))    # no temporary left


def _pcm_wav(path: Path, seconds: float = 4.0) -> Path:
    """A 16-bit PCM WAV (what a microphone gives: ALSA's pcm_s16le) with a 440 Hz tone."""
    out = av.open(str(path), "w", format="wav")
    s = out.add_stream("pcm_s16le", rate=RATE)
    s.layout = "mono"
    t = np.arange(int(seconds * RATE)) / RATE
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for k in range(0, len(tone), 1024):
        f = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="s16", layout="mono")
        f.sample_rate, f.pts = RATE, k
        for p in s.encode(f):
            out.mux(p)
    for p in s.encode(None):
        out.mux(p)
    out.close()
    return path


def test_microphone_pcm_is_encoded_into_the_file(media, tmp_path):
    """A microphone's PCM (here from a WAV file through the same code path) becomes AAC in the mp4, cut at the
    last frame's end."""
    wav = _pcm_wav(tmp_path / "mic.wav")
    out = tmp_path / "rec.mp4"
    live(LiveConfig(source=str(media / "single_face.mp4"), out=str(out), audio=str(wav), color_transfer="none",
                    max_frames=30), model=TintModel())
    video_len, audio_len = _audio_seconds(out)
    assert video_len == pytest.approx(1.0, abs=0.01) and abs(audio_len - video_len) < 0.05, (video_len, audio_len)
    frames, sound, _, _ = _tracks(out)
    assert sound.size and 0.15 < float(np.sqrt(np.mean(sound[2048:-2048] ** 2))) < 0.3   # the tone (0.3 / sqrt 2)


@pytest.mark.parametrize("sound", ["aac", "pcm"])
def test_stream_output_carries_the_audio(media, tmp_path, sound):
    """What a UDP/RTMP output sends, into an MPEG-TS file: the frames and the audio (AAC copied, a
    microphone's PCM encoded to AAC), timed on the output's clock (the capture time plus the delay)."""
    from facedouble.live.audio import open_audio
    from facedouble.live.outputs import StreamOutput
    from facedouble.provenance import mark_frame

    with av.open(str(media / "single_face.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    source = types.SimpleNamespace(fps=30.0, width=640, height=360, t0=time.monotonic())
    out = StreamOutput(str(tmp_path / "out.ts"), source, "5eed1234")
    spec = media / "WolfgangLanger_Pexels.mp4" if sound == "aac" else _pcm_wav(tmp_path / "mic.wav", 2.4)
    audio = open_audio(str(spec))
    assert out.take_audio(audio.stream, lambda: 0.2)
    marked = [mark_frame(f, "5eed1234") for f in frames]
    packets = audio.packets(lambda: source.t0)
    source.t0 = time.monotonic()     # the capture of the first frame and the first sound
    for i, f in enumerate(marked):
        for packet, t in packets:
            out.add_audio(packet, t)
            if t > i / 30:
                break
        if i == 0:
            first_write = time.monotonic()
        out.write(f, None)
    audio.close()
    out.close()
    with av.open(str(tmp_path / "out.ts")) as c:
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
        a, v = c.streams.audio[0], c.streams.video[0]
        ap = [p for p in c.demux(a) if p.size]
        audio_start, video_start = float(a.start_time * a.time_base), float(v.start_time * v.time_base)
    seconds = sum(p.duration for p in ap) * float(a.time_base)
    assert 2.2 < seconds < 3.0, seconds
    # the sound is timed at its capture plus the delay (0.2 s), where the pipeline writes the held-back video;
    # this test writes each frame at once, so the first frame is at the time it was written
    expected = 0.2 - (first_write - source.t0)
    assert abs(audio_start - video_start - expected) < 0.05, (audio_start, video_start, expected)
    with av.open(str(tmp_path / "out.ts")) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(frames)


def test_missing_microphone_and_soundless_audio_get_one_sentence(media, tmp_path):
    out = tmp_path / "x.mp4"
    for spec, words in (("alsa:hw:7,0", "There is no audio input alsa:hw:7,0"),
                        ("hw:7", "There is no audio input hw:7"),
                        (str(tmp_path / "missing.wav"), "does not exist"),
                        (str(media / "single_face.jpg"), "has no audio stream")):
        with pytest.raises(InputError, match=words) as e:
            live(LiveConfig(source=str(media / "single_face.mp4"), out=str(out), audio=spec), model=TintModel())
        assert "\n" not in e.value.message and e.value.message.endswith(".")
    assert not list(tmp_path.iterdir())


def test_file_played_in_real_time_keeps_its_audio_in_sync_when_the_first_frames_drop(media, tmp_path):
    """A file played like a camera (the UI's default) whose first half second was dropped: the output starts
    with the first frame written, and its audio (the file's own, copied) starts at the same moment of the
    file, not half a second early."""
    from fractions import Fraction

    from facedouble.live.outputs import FileOutput
    from facedouble.live.sources import SourceFrame

    clip = media / "single_face.mp4"
    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(clip)) as c:
        theirs = [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(audio=0) if p.size]
    source = types.SimpleNamespace(live=True, kind="file", path=clip, has_audio=True, fps=30.0, width=640,
                                   height=360, time_base=Fraction(1, 15360))
    out = FileOutput(tmp_path / "played.mp4", source, "5eed1234")
    for i in range(15, 45):                          # frames 0-14 dropped: the output starts at 0.5 s of the file
        out.write(frames[i], SourceFrame(frames[i], i, i / 30, None, 0.0))
    out.close(complete=False)
    with av.open(str(tmp_path / "played.mp4")) as c:
        got = [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(audio=0) if p.size]
    first = next(k for k, (t, _) in enumerate(theirs) if t >= 0.5 - 1e-6)
    assert got[0][1] == theirs[first][1] and abs(got[0][0] - (theirs[first][0] - 0.5)) < 0.005
    assert got[-1][0] < 1.0 + 0.03                    # cut at the 30th frame's end (1.0 s)
