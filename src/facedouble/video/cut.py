"""`video cut`: a time span of a video into `<name>_cut.<ext>` beside it; the original is never touched.

The video is decoded and re-encoded (so the cut lands on the first frame at or after --from, not on a
keyframe) keeping each frame's own time, which keeps variable frame rates and the display rotation; the
chosen audio track is trimmed to the same span with sample accuracy and re-encoded.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import av

from ..config import VideoCutConfig, write_json_atomic
from ..errors import InputError, OptionError, WorkspaceError
from ..progress import Reporter
from .audio import AudioEncoder
from .images import ensure_writable, keep_backup
from .probe import demux_decode, open_video, probe

# extension -> (container, video codec, audio codec)
CUT_FORMATS = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".m4v": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"),
    ".avi": ("avi", "mpeg4", "libmp3lame"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),
    ".ts": ("mpegts", "libx264", "aac"),
    ".flv": ("flv", "libx264", "aac"),
}


@dataclasses.dataclass(frozen=True)
class CutResult:
    path: Path
    frames: int
    start: float          # time of the first frame kept, in the input's timeline (seconds)
    duration: float       # seconds of video written
    audio: bool
    backup: Path | None   # where an older _cut file was moved


def parse_time(text: str, flag: str) -> float:
    """Seconds from `HH:MM:SS.mmm`, `MM:SS.mmm` or `SS.mmm`; OptionError naming `flag` otherwise."""
    parts = str(text).strip().split(":")
    try:
        if not 1 <= len(parts) <= 3 or any(p.strip() == "" for p in parts):
            raise ValueError
        seconds = float(parts[-1])
        minutes = int(parts[-2]) if len(parts) >= 2 else 0
        hours = int(parts[-3]) if len(parts) == 3 else 0
        if min(seconds, minutes, hours) < 0 or (len(parts) > 1 and seconds >= 60) or (len(parts) > 2 and minutes >= 60):
            raise ValueError
    except ValueError:
        raise OptionError(f"{flag} must be a time like 00:01:05.250 (HH:MM:SS.mmm), not {text!r}.") from None
    return hours * 3600 + minutes * 60 + seconds


def format_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def cut_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}_cut{path.suffix}")


def cut_video(path: str | os.PathLike, cfg: VideoCutConfig | None = None, *,
              reporter: Reporter | None = None) -> CutResult:
    """Write the span [cfg.start, cfg.end) of `path` to `<stem>_cut<ext>` beside it (an existing one is
    renamed to `<stem>_cut.1<ext>` first) and save the config as `<stem>_cut.video_cut.json`."""
    cfg = cfg or VideoCutConfig()
    rep = reporter or Reporter()
    path = Path(path)
    start = parse_time(cfg.start, "--from")
    end = parse_time(cfg.end, "--to") if cfg.end else None
    if end is not None and end <= start:
        raise OptionError(f"--to {cfg.end} must be later than --from {cfg.start}.")
    info = probe(path)
    formats = CUT_FORMATS.get(path.suffix.lower())
    if formats is None:
        raise InputError(f"Cutting {path.suffix or 'extension-less'} files is not supported; use one of "
                         f"{', '.join(sorted(CUT_FORMATS))} (convert {path.name} first).")
    if info.duration and start >= info.duration:
        raise OptionError(f"--from {cfg.start} is past the end of {path.name} ({format_time(info.duration)}); "
                          "give an earlier time.")
    out_path = cut_output(path)
    ensure_writable(path.parent)
    tmp = out_path.with_name(f".{out_path.stem}.partial-{os.getpid()}{out_path.suffix}")
    try:
        frames, first, duration, has_audio = _cut(path, tmp, formats, cfg, start, end, info, rep)
        backup = keep_backup(out_path)
        os.replace(tmp, out_path)
    except OSError as e:
        raise WorkspaceError(f"Cannot write {out_path} ({e.strerror or e}); free some disk space or make "
                             f"{path.parent} writable.") from None
    finally:
        tmp.unlink(missing_ok=True)
    write_json_atomic(out_path.with_name(out_path.stem + ".video_cut.json"),
                      {"stage": type(cfg).__name__, "options": cfg.to_dict(), "source": path.name})
    if backup is not None:
        rep.info(f"the previous {out_path.name} was kept as {backup.name}.")
    return CutResult(out_path, frames, first, duration, has_audio, backup)


def _cut(path: Path, tmp: Path, formats: tuple[str, str, str], cfg: VideoCutConfig, start: float,
         end: float | None, info, rep: Reporter) -> tuple[int, float, float, bool]:
    container_name, vcodec, acodec = formats
    with open_video(path) as src:
        vin = src.streams.video[0]
        vin.codec_context.thread_type = "AUTO"
        audios = list(src.streams.audio)
        if audios and cfg.audio_track >= len(audios):
            raise OptionError(f"--audio-track {cfg.audio_track} does not exist: {path.name} has {len(audios)} audio "
                              f"track(s), numbered 0 to {len(audios) - 1}.")
        if not audios and cfg.audio_track > 0:
            raise OptionError(f"--audio-track {cfg.audio_track} does not exist: {path.name} has no audio; leave "
                              "--audio-track out.")
        ain = audios[cfg.audio_track] if audios else None
        zero = (src.start_time or 0) / av.time_base
        vtb = Fraction(vin.time_base)
        start_pts = round((start + zero) / vtb)

        out = av.open(str(tmp), "w", format=container_name)
        try:
            cc = vin.codec_context
            width, height = cc.width + cc.width % 2, cc.height + cc.height % 2
            vs = out.add_stream(vcodec, rate=info.fps)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.time_base = vtb
            vs.codec_context.time_base = vtb
            vs.bit_rate = int(cfg.bitrate * 1_000_000)
            if vcodec == "libx264":
                vs.codec_context.options = {"preset": "medium"}
            elif vcodec == "mpeg4":
                vs.codec_tag = "XVID"
            for attr in ("color_range", "colorspace", "color_primaries", "color_trc"):
                value = getattr(cc, attr, None)
                if value:
                    setattr(vs.codec_context, attr, value)
            if info.rotation:
                vs.set_display_rotation(info.rotation)
            enc = AudioEncoder(out, acodec, ain, start=start, end=end, zero=zero) if ain is not None else None

            seek_to = max(0.0, start - 1.0)
            if seek_to > 0:
                try:
                    src.seek(round((seek_to + zero) / vtb), stream=vin, backward=True)
                except av.FFmpegError:
                    pass  # unseekable: decode from the start
            expected = round(((end if end is not None else info.duration) - start) * float(info.fps)) or None
            frames, first, last_end = 0, None, 0
            video_done = audio_done = False
            streams = [vin] + ([ain] if ain is not None else [])
            with rep.task(f"Cutting {path.name}", expected) as advance:
                for kind, frame in demux_decode(src, streams, path):
                    if kind == "video":
                        rep.check()
                        if frame.pts is None or frame.pts < start_pts:
                            continue
                        t = float(frame.pts * vtb) - zero
                        if end is not None and t >= end - 1e-6:
                            video_done = True
                        else:
                            if first is None:
                                first = t
                            rel = frame.pts - start_pts
                            dur = int(frame.duration or 0)
                            if frame.format.name != "yuv420p" or (frame.width, frame.height) != (width, height):
                                frame = frame.reformat(width=width, height=height, format="yuv420p")
                            frame.pts, frame.time_base = rel, vtb
                            if dur:
                                frame.duration = dur
                            last_end = max(last_end, rel + (dur or round(1 / (info.fps * vtb))))
                            for p in vs.encode(frame):
                                out.mux(p)
                            frames += 1
                            advance(1)
                    elif enc is not None:
                        if end is not None and frame.pts is not None and frame.time_base is not None \
                                and float(frame.pts * frame.time_base) - zero >= end:
                            audio_done = True
                        else:
                            for p in enc.push(frame):
                                out.mux(p)
                    if video_done and (enc is None or audio_done):
                        break
                for p in vs.encode(None):
                    out.mux(p)
                if enc is not None:
                    for p in enc.flush():
                        out.mux(p)
        finally:
            out.close()
    if frames == 0:
        raise OptionError(f"No frame of {path.name} lies between --from {cfg.start} and --to {cfg.end}; "
                          "give a wider span.")
    return frames, float(first or 0.0), float(last_end * vtb), enc is not None
