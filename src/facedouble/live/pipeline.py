"""The live frame pipeline: source -> screen + find the face -> model -> blend + mark -> outputs.

Each step runs in its own thread, joined by short queues, so the frame rate is set by the slowest step and
not by their sum (OpenCV, dlib, onnxruntime and torch release the GIL while they work). A live source
(camera, stream) drops frames at the entry when the pipeline is busy, so the output never falls behind; a
file source waits, so no frame is dropped and the output has every frame with its own timestamp.

Per frame: the explicit-content screen (on the source frame, `safety.StreamScreen`: the first frame and one
a second; no off switch); the face: the previous frame's landmarks re-fitted (dlib's 68-point predictor,
~3 ms) while they stay on the face, the detector (`--detector`, mediapipe by default) when they do not or
every `redetect_frames` frames; the model's crop (`inference.crop_matrix`: DFM models take the original
tool's whole-face crop); the model; colour transfer towards the dst face, mask erode/blur, opacity, the
blend; the invisible watermark on the whole frame (every frame any output sees is marked).

Sound: a file source's own audio is muxed by the file output at close; a stream's audio track goes from the
read step straight to the output (`Source.audio_sink`), and `--audio` (a microphone or a file) is read by a
thread of its own into the output; neither passes the frame queues, so dropped frames never cut the audio.

`LiveSession` is what a UI drives: start(), stop(), update(**settings) while it runs, latest_frame(),
stats(); `live(cfg)` runs one session to its end (the CLI and the Python API).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import LiveConfig
from ..errors import Cancelled, FaceDoubleError, OptionError
from ..progress import Reporter
from .sources import Source, SourceFrame, open_source

STEPS = ("read", "screen", "face", "model", "blend", "mark", "write")
SETTINGS = ("color_transfer", "erode", "blur", "face_scale", "opacity", "morph", "mask", "delay_ms")
_END = object()


@dataclass(frozen=True)
class LiveTuning:
    """How the session spends the CPU (what `benchmarks/live.py` measured and chose; `LiveTuning.before()` is
    the first pipeline, kept to measure against in the same run).

    fresh: for live sources every queue holds one frame, and a frame waiting at the model's input is replaced
    by a newer one (counted as dropped) instead of queueing behind it. Files drop nothing either way.
    in_flight: for live sources (with `fresh`), at most this many frames are between the face step and the
    output at once; the face step takes the source's newest frame only when one of them is out. Frames then
    do not wait behind each other anywhere (on a loaded CPU every step is slow, not only the model), so the
    latency is about the steps' time added up; 2 keeps the model busy while the frame before it is blended
    and written (0: no limit).
    model_threads: threads the model runs on (onnxruntime's are per session; torch's count is process-wide,
    so the session sets it while it runs and puts it back after; 0 leaves it). One model thread leaves the
    other core(s) to the steps around it, and nothing spins waiting for a thread that the OS has parked.
    fast_model: run torch models through `inference.CpuRunner` (channels-last, inference mode) and DFM files
    on a session with `model_threads` sleeping threads.
    encoder_threads: libx264's threads for a file or stream output (0: its own choice, about 1.5 per core).
    """

    fresh: bool = True
    in_flight: int = 2
    model_threads: int = 1
    fast_model: bool = True
    encoder_threads: int = 1

    @classmethod
    def before(cls) -> "LiveTuning":
        return cls(fresh=False, in_flight=0, model_threads=0, fast_model=False, encoder_threads=0)


# ----------------------------------------------------------------------------------------------------------
# One face onto one frame (pure: arrays in, arrays out)
# ----------------------------------------------------------------------------------------------------------

def compose_face(frame: np.ndarray, landmarks: np.ndarray, pred: np.ndarray, learned: np.ndarray | None,
                 m_face: np.ndarray, face_type: str, settings: LiveConfig) -> np.ndarray:
    """Blend the model's face onto a copy of `frame` (RGB uint8 HWC).

    Args:
        landmarks: (68, 2) in the frame; m_face: the frame -> crop transform the model was fed through.
        pred: (r, r, 3) float32 [0, 1] RGB predicted face; learned: (r, r) float32 mask or None.
        settings: mask, color_transfer, erode, blur, face_scale, opacity (LiveConfig's fields).
    """
    from ..faces.align import FACE_TYPE_BOX, transform_points, warp_to_face
    from ..faces.regions import hull_mask
    from ..merge import blend as B
    from ..merge import color as C
    from ..merge import mask as K

    r = pred.shape[0]
    m = B.scale_matrix(m_face, r, settings.face_scale) if settings.face_scale else m_face
    if settings.mask == "learned" and learned is not None:
        mask = np.asarray(learned, np.float32)
    else:
        mask = hull_mask(transform_points(landmarks, m), (r, r), forehead=0.25 if face_type in ("whole-face", "head") else 0.0)
    mask = K.modify_mask(mask, settings.erode, settings.blur, r / FACE_TYPE_BOX.get(face_type, (0, 0, 1.0))[2])
    face = pred
    if settings.color_transfer != "none":
        dst = warp_to_face(frame, m, r).astype(np.float32) / 255.0
        sel = (mask > 0.5).astype(np.float32)
        if sel.sum() >= 16:
            face = np.clip(C.color_transfer(settings.color_transfer, pred, dst, sel, sel), 0.0, 1.0)
    mask = mask * K.edge_feather(r) * (settings.opacity / 100.0)
    out, _, _ = B.composite(frame.copy(), face, m, mask, m)
    return out


# ----------------------------------------------------------------------------------------------------------
# Following the face
# ----------------------------------------------------------------------------------------------------------

class FaceFollower:
    """68 landmarks of the largest face, frame after frame: the previous landmarks re-fitted while they stay
    on the face (box overlap >= 0.5, size within 30%), the detector otherwise and every `redetect` frames."""

    def __init__(self, detector: str = "mediapipe", redetect: int = 30):
        from ..faces.detect import make_detector
        from ..faces.landmarks import default_landmarker

        self.detector = make_detector(detector)
        self.landmarker = default_landmarker()
        self.redetect = max(1, int(redetect))
        self.previous: np.ndarray | None = None
        self.since = 0
        self.detections = 0

    @staticmethod
    def _box(lm: np.ndarray) -> np.ndarray:
        return np.array([*lm.min(0), *lm.max(0)], np.float32)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        from ..faces.detect import iou

        if self.previous is not None and self.since < self.redetect:
            lm = self.landmarker.refine(image, self.previous)
            a, b = self._box(lm), self._box(self.previous)
            size_a, size_b = float(np.ptp(lm[:, 0])), float(np.ptp(self.previous[:, 0]))
            if iou(a, b) >= 0.5 and size_b > 0 and 0.7 <= size_a / size_b <= 1.3:
                self.previous, self.since = lm, self.since + 1
                return lm
        self.detections += 1
        dets = self.detector.detect(image)
        if not dets:
            self.previous = None
            return None
        det = max(dets, key=lambda d: d.area)
        eyes = det.points[:2] if det.points is not None and len(det.points) >= 2 else None
        lm = self.landmarker(image, det.rect, det.detector, eyes=eyes)
        self.previous, self.since = lm, 0
        return lm


# ----------------------------------------------------------------------------------------------------------
# The session
# ----------------------------------------------------------------------------------------------------------

@dataclass
class _Item:
    sf: SourceFrame
    landmarks: np.ndarray | None = None
    m_face: np.ndarray | None = None
    pred: np.ndarray | None = None
    learned: np.ndarray | None = None
    image: np.ndarray | None = None
    times: dict[str, float] = field(default_factory=dict)
    slot: bool = False          # holds one of the session's in-flight slots (LiveTuning.in_flight)


@dataclass
class LiveSummary:
    source: str
    out: str
    frames_in: int = 0          # frames read from the source
    frames_out: int = 0         # frames written
    dropped: int = 0            # frames dropped at the entry or the model's input (live sources only)
    faces: int = 0              # frames with a face swapped
    seconds: float = 0.0
    fps: float = 0.0
    latency_ms_median: float = 0.0
    latency_ms_p95: float = 0.0
    step_ms: dict[str, float] = field(default_factory=dict)   # median time of each step
    run_id: str = ""
    stopped: str | None = None  # why a live source ended early (one sentence), if it did

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LiveSession:
    """A live swap: `start()`, then `update(**settings)` while it runs, `latest_frame()`, `stats()`, `stop()`;
    `wait()` returns the LiveSummary (and raises what stopped it, after the outputs are closed)."""

    def __init__(self, cfg: LiveConfig, *, model=None, workspace_model: Path | None = None,
                 reporter: Reporter | None = None, realtime: bool = False, tuning: LiveTuning | None = None):
        self.cfg = cfg
        self.tuning = tuning or LiveTuning()
        self._runner = None          # the model as the model step runs it (inference.live_runner)
        self._slots: threading.Semaphore | None = None   # in-flight frames of a live source (LiveTuning.in_flight)
        self._torch_threads: tuple[int, int] | None = None   # (before, set) while the session holds torch's count
        self._settings = cfg
        self._model = model
        self._workspace_model = workspace_model
        self.rep = reporter or Reporter()
        self.realtime = realtime
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._latest: tuple[int, np.ndarray] | None = None
        self._threads: list[threading.Thread] = []
        self._times: dict[str, deque] = {s: deque(maxlen=500) for s in STEPS}
        self._latency: deque = deque(maxlen=2000)
        self.summary = LiveSummary(str(cfg.source), str(cfg.out))
        self.source: Source | None = None
        self.output = None
        self._started = 0.0
        self._done = threading.Event()
        self._audio = None           # the --audio input (live/audio.py), read by its own thread
        self._steps: list[threading.Thread] = []   # the frame pipeline's threads (the audio thread follows them)
        self._source_ended = False
        self._out_times: list[float] = []

    # -- controls ---------------------------------------------------------------------------------------
    def update(self, **settings: Any) -> LiveConfig:
        """Change blend settings while running (any of SETTINGS); validated like the config; returns them."""
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise OptionError(f"{', '.join(sorted(unknown))} cannot change while live runs; stop and start again "
                              f"(changeable: {', '.join(SETTINGS)}).")
        with self._lock:
            self._settings = self._settings.override(**settings)
            if self._model is not None and hasattr(self._model, "morph_factor"):
                self._model.morph_factor = self._settings.morph / 100.0
            return self._settings

    @property
    def settings(self) -> LiveConfig:
        with self._lock:
            return self._settings

    def latest_frame(self) -> tuple[int, np.ndarray] | None:
        """(frame index, RGB uint8 HWC, watermarked) of the newest output frame, or None before the first."""
        with self._lock:
            return self._latest

    def stats(self) -> dict[str, Any]:
        """Frames in/out, dropped, fps and latency so far, and each step's median time in ms."""
        self._fill_summary()
        return self.summary.to_dict()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._done.is_set()

    @property
    def model(self):
        """The model swapping the faces (None before `start()` when none was given)."""
        return self._model

    @property
    def morphable(self) -> bool:
        """Whether the model has a morph factor (amp models, morphable DFM files): `update(morph=...)` acts."""
        return bool(getattr(self._model, "morphable", False))

    def press(self, keys: str, reporter: Reporter | None = None) -> None:
        """Apply keys pressed in a terminal (live/keys.py): settings through `update`, q stops, h lists them."""
        from .keys import key_action, key_help

        for key in keys:
            action = key_action(key, self.settings, self.morphable)
            if action.changes:
                self.update(**action.changes)
            if action.stop:
                self.stop()
            if reporter is not None and (action.text or action.help):
                reporter.info(key_help() if action.help else f"live: {action.text}")

    def stop(self) -> None:
        self._stop.set()

    # -- running ----------------------------------------------------------------------------------------
    def start(self) -> "LiveSession":
        cfg = self.cfg
        if cfg.audio:   # a microphone that is not there is refused before anything loads or is written
            from .audio import open_audio

            self._audio = open_audio(cfg.audio)
        try:
            self._start_pipeline()
        except BaseException:
            if self._audio is not None:
                self._audio.close()
            raise
        return self

    def _start_pipeline(self) -> None:
        from ..inference import load_model
        from ..provenance import new_run_id
        from .outputs import open_output

        cfg = self.cfg
        if self._model is None:
            folder = Path(cfg.model) if cfg.model else self._workspace_model
            self._model = load_model(folder, model_file=cfg.model_file, device=cfg.device, name=cfg.model_name,
                                     morph_factor=cfg.morph / 100.0)
        self.summary.run_id = new_run_id()
        self.source = open_source(cfg.source, realtime=self.realtime)
        try:
            self._follower = FaceFollower(cfg.detector, cfg.redetect_frames)
            from ..safety import StreamScreen

            self._screen = StreamScreen(f"the live source {self.source.label}")
            self._hold_threads()
            self._runner = self._model
            if self.tuning.fast_model:
                from ..inference import live_runner

                self._runner = live_runner(self._model, threads=max(1, self.tuning.model_threads))
            self._warm_up()
            self.output = open_output(cfg.out, self.source, self.summary.run_id)
            if self.tuning.encoder_threads and hasattr(self.output, "set_threads"):
                self.output.set_threads(self.tuning.encoder_threads)
            self._wire_audio()
        except BaseException:
            self._release_threads()
            self.source.close()
            raise
        fresh = self.source.live and self.tuning.fresh
        self._slots = threading.Semaphore(self.tuning.in_flight) if fresh and self.tuning.in_flight > 0 else None
        if fresh:    # one frame per queue; the model's input keeps the newest (see LiveTuning)
            qs = [queue.Queue(maxsize=1) for _ in range(4)]
        else:
            qs = [queue.Queue(maxsize=(1 if self.source.live else 4) if i == 0 else 2) for i in range(4)]
        steps = [(self._read, None, qs[0], False), (self._find, qs[0], qs[1], fresh), (self._swap, qs[1], qs[2], False),
                 (self._blend, qs[2], qs[3], False), (self._write, qs[3], None, False)]
        self._started = time.monotonic()
        for fn, qin, qout, newest in steps:
            t = threading.Thread(target=self._run_step, args=(fn, qin, qout, newest), name=f"live-{fn.__name__[1:]}",
                                 daemon=True)
            self._threads.append(t)
        self._steps = list(self._threads)
        if self._audio is not None:
            self._threads.append(threading.Thread(target=self._run_step, args=(self._record_audio, None, None, False),
                                                  name="live-audio", daemon=True))
        for t in self._threads:
            t.start()

    def _wire_audio(self) -> None:
        """Send the --audio input's, or else a live source's, audio to an output that carries sound."""
        take = getattr(self.output, "take_audio", None)
        if self._audio is not None:
            if take is None or not take(self._audio.stream, self._delay):
                self._audio.close()
                self._audio = None
                self.rep.info(f"live: {self.cfg.out} carries no sound; --audio is left out")
        elif self.source.live and self.source.audio_stream is not None and take is not None:
            if self.source.kind == "file" and self.source.path is not None and hasattr(self.output, "path"):
                return   # a file into a file: its own audio is copied at close
            if take(self.source.audio_stream, self._delay):
                self.source.audio_sink = self.output.add_audio

    def _delay(self) -> float:
        return self.settings.delay_ms / 1000.0

    def _record_audio(self, _q=None) -> None:
        """The --audio input into the output. A device or stream runs until the session stops; a file plays
        from the first frame: at its own pace beside a live source, at once beside a file, and is read on
        after the frames end up to the last one's end (the output cuts it there)."""
        audio, src = self._audio, self.source
        last = [-1.0]

        def done() -> bool:   # stopped (a file: and its frames all written), and past the last frame's end
            if not self._stop.is_set() or not (audio.live or not any(t.is_alive() for t in self._steps)):
                return False
            return last[0] >= getattr(self.output, "end_time", -1.0)

        for packet, t in audio.packets(lambda: src.t0, done):
            last[0] = t
            if not audio.live and src.live:
                while src.t0 is not None and time.monotonic() < src.t0 + t - 1.0 and not self._stop.is_set():
                    time.sleep(0.05)
            self.output.add_audio(packet, t)

    def _warm_up(self) -> None:
        """Load every model once before the first frame (screen, detector, landmarks, the swap model): their
        first runs take seconds, which a camera would otherwise spend dropping frames."""
        from ..safety import detect

        blank = np.zeros((max(64, self.source.height), max(64, self.source.width), 3), np.uint8)
        detect(blank)
        self._follower.detector.detect(blank)
        r = int(self._model.resolution)
        for _ in range(2):  # oneDNN picks its kernels on the first runs
            self._runner.swap_numpy([np.zeros((r, r, 3), np.uint8)])

    def _hold_threads(self) -> None:
        """Set torch's (process-wide) thread count to the tuning's model threads for the session's life."""
        n = self.tuning.model_threads
        if n <= 0 or not hasattr(self._model, "model"):  # DFM files and stand-ins do not run on torch's threads
            return
        import torch

        before = torch.get_num_threads()
        if before != n:
            torch.set_num_threads(n)
            self._torch_threads = (before, n)

    def _release_threads(self) -> None:
        """Put torch's thread count back, unless something else changed it meanwhile."""
        held, self._torch_threads = self._torch_threads, None
        if held is not None:
            import torch

            if torch.get_num_threads() == held[1]:
                torch.set_num_threads(held[0])

    def wait(self, reporter: Reporter | None = None, keys: Callable[[], str] | None = None) -> LiveSummary:
        """Block until the source ends or `stop()`; close the outputs; return the summary or raise what stopped it.
        `keys()` (a terminal reader) returns the keys pressed since its last call; they act through `press`."""
        rep = reporter
        try:
            while any(t.is_alive() for t in (self._steps or self._threads)):
                if keys is not None:
                    pressed = keys()
                    if pressed:
                        self.press(pressed, reporter)
                if rep is not None:
                    try:
                        rep.check()
                    except Cancelled:
                        self.stop()
                        rep = None
                time.sleep(0.05)
        finally:
            self.stop()
            for t in self._threads:
                t.join()
            self._finish()
        return self.summary

    def _finish(self) -> None:
        error = self._error
        complete = self._source_ended  # else the audio of a file source is cut where the video ends
        try:
            if self.output is not None:
                self.output.close(complete=complete)
        finally:
            if self.source is not None:
                self.source.close()
            if self._audio is not None:
                self._audio.close()
            self._release_threads()
            self._fill_summary()
            self._done.set()
        if error is not None:
            from .sources import SourceStopped

            if isinstance(error, SourceStopped):
                self.summary.stopped = error.message
            raise error

    def _fill_summary(self) -> None:
        s = self.summary
        s.seconds = time.monotonic() - self._started if self._started else 0.0
        span = self._out_times[1] - self._out_times[0] if self._out_times else 0.0
        s.fps = (s.frames_out - 1) / span if span > 0 else 0.0  # output rate, first to last frame out
        lat = np.array(self._latency, np.float64)
        if lat.size:
            s.latency_ms_median = float(np.median(lat))
            s.latency_ms_p95 = float(np.percentile(lat, 95))
        s.step_ms = {k: round(float(np.median(v)), 2) for k, v in self._times.items() if len(v)}

    def _run_step(self, fn, qin, qout, newest: bool = False) -> None:
        try:
            if qin is None:
                fn(qout)
                return
            while True:
                admitted = newest and self._admit()   # the face step waits for a slot, then takes the newest frame
                item = qin.get()
                if item is _END:
                    if admitted:
                        self._slots.release()
                    break
                if newest:
                    item.slot = admitted
                out = fn(item)  # after a stop too: the queues hold a few frames at most
                if qout is not None and out is not None:
                    if newest:
                        self._put_newest(qout, out)
                    else:
                        qout.put(out)
        except BaseException as e:  # noqa: BLE001 - the first error stops every step and is raised by wait()
            with self._lock:
                if self._error is None:
                    self._error = e
            self._stop.set()
            if qin is not None:  # keep the upstream step from blocking on a full queue
                while True:
                    try:
                        if qin.get(timeout=0.2) is _END:
                            break
                    except queue.Empty:
                        if not any(t.is_alive() for t in self._threads if t is not threading.current_thread()):
                            break
        finally:
            if qout is not None:
                qout.put(_END)

    def _admit(self) -> bool:
        """Take an in-flight slot (False without a limit, or once the session stops: then nothing waits)."""
        if self._slots is None:
            return False
        while not self._slots.acquire(timeout=0.05):
            if self._stop.is_set():
                return False
        return True

    def _release(self, item: _Item) -> None:
        if item.slot:
            item.slot = False
            self._slots.release()

    def _put_newest(self, q: queue.Queue, item: _Item) -> None:
        """Put `item` into `q` (this step is its only producer), replacing the frame waiting there, if any:
        that one is older and counts as dropped (live sources only)."""
        try:
            q.put_nowait(item)
            return
        except queue.Full:
            pass
        try:
            old = q.get_nowait()
            with self._lock:
                self.summary.dropped += 1
            if isinstance(old, _Item):
                self._release(old)
        except queue.Empty:
            pass
        q.put(item)

    def _timed(self, item: _Item, step: str, t0: float) -> None:
        dt = (time.perf_counter() - t0) * 1000.0
        item.times[step] = dt
        self._times[step].append(dt)

    # -- the steps --------------------------------------------------------------------------------------
    def _read(self, qout: queue.Queue) -> None:
        src = self.source
        assert src is not None
        limit = self.cfg.max_frames
        it = src.frames()
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                sf = next(it)
            except StopIteration:
                self._source_ended = True
                break
            item = _Item(sf)
            self._timed(item, "read", t0)
            self.summary.frames_in += 1
            if src.live:
                self._put_newest(qout, item)   # the older frame goes: the output never falls behind
            else:
                while not self._stop.is_set():
                    try:
                        qout.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
            if limit and self.summary.frames_in >= limit:
                break

    def _find(self, item: _Item) -> _Item:
        t0 = time.perf_counter()
        self._screen.offer(item.sf.image, item.sf.t)
        self._timed(item, "screen", t0)
        t0 = time.perf_counter()
        item.landmarks = self._follower(item.sf.image)
        self._timed(item, "face", t0)
        return item

    def _swap(self, item: _Item) -> _Item:
        from ..faces.align import warp_to_face
        from ..inference import crop_matrix

        t0 = time.perf_counter()
        if item.landmarks is not None:
            model = self._model
            item.m_face = crop_matrix(model, item.landmarks)
            crop = warp_to_face(item.sf.image, item.m_face, int(model.resolution))
            preds, masks = self._runner.swap_numpy([crop])
            item.pred = np.clip(np.asarray(preds[0], np.float32), 0.0, 1.0)
            learned = masks[0] if masks and getattr(model, "learn_mask", True) else None
            item.learned = None if learned is None else np.asarray(learned, np.float32).reshape(item.pred.shape[:2])
        self._timed(item, "model", t0)
        return item

    def _blend(self, item: _Item) -> _Item:
        from ..provenance import mark_frame

        t0 = time.perf_counter()
        settings = self.settings
        if item.pred is not None:
            item.image = compose_face(item.sf.image, item.landmarks, item.pred, item.learned, item.m_face,
                                      str(self._model.face_type), settings)
            self.summary.faces += 1
        else:
            item.image = item.sf.image
        self._timed(item, "blend", t0)
        t0 = time.perf_counter()
        item.image = np.asarray(mark_frame(np.ascontiguousarray(item.image), self.summary.run_id), np.uint8)
        self._timed(item, "mark", t0)
        return item

    def _write(self, item: _Item) -> None:
        delay = self.settings.delay_ms / 1000.0
        if delay and self.source is not None and self.source.live:
            self._release(item)   # a frame held back for the audio is done with the CPU
            wait = item.sf.arrived + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        t0 = time.perf_counter()
        self.output.write(item.image, item.sf)
        self._timed(item, "write", t0)
        self.summary.frames_out += 1
        now = time.monotonic()
        self._out_times = [self._out_times[0] if self._out_times else now, now]
        self._latency.append((time.monotonic() - item.sf.arrived) * 1000.0)
        with self._lock:
            self._latest = (item.sf.index, item.image)
        self._release(item)
        return None


def live(cfg: LiveConfig, *, model=None, workspace_model: Path | None = None,
         reporter: Reporter | None = None, keys: Callable[[], str] | None = None) -> LiveSummary:
    """Run a live swap from `cfg.source` to `cfg.out` until the source ends, `cfg.max_frames`, the reporter
    is cancelled (Ctrl-C, SIGTERM, UI) or `keys()` (a terminal reader, see live/keys.py) returns q. The output
    is closed properly in every case; a live source that stops raises SourceStopped (one sentence) after that."""
    rep = reporter or Reporter()
    session = LiveSession(cfg, model=model, workspace_model=workspace_model, reporter=rep)
    session.start()
    src = session.source
    rep.info(f"live: {src.label} ({src.width}x{src.height}, {src.fps:.2f} fps) -> {cfg.out}; model "
             f"{getattr(session._model, 'name', '?')} ({session._model.resolution} px)")
    if keys is not None:
        from .keys import key_help

        rep.info(key_help())
    summary = session.wait(rep, keys)
    rep.info(f"live: {summary.frames_out} frame(s) written ({summary.faces} with a face, {summary.dropped} dropped) "
             f"in {summary.seconds:.1f} s: {summary.fps:.1f} fps, latency median {summary.latency_ms_median:.0f} ms, "
             f"p95 {summary.latency_ms_p95:.0f} ms")
    return summary


__all__ = ["FaceFollower", "LiveSession", "LiveSummary", "compose_face", "live"]
