"""Running the engine over many frames: in this process, or in worker processes (one detector and landmarker
each) with results taken back in frame order; dst's sequencing always runs in this process."""

from __future__ import annotations

import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..config import ExtractConfig
from ..errors import FaceDoubleError
from ..faces.find import FaceFinder
from ..progress import Reporter
from .engine import Engine, Frame, Job, Result
from .sequencer import DstSequencer

CHUNK = 8             # frames per task sent to a worker


_ENGINE: Optional[Engine] = None
_FINDER: Optional[FaceFinder] = None


def _worker_engine(job: Job) -> Engine:
    global _ENGINE
    if _ENGINE is None:
        same = _FINDER is not None and _FINDER.detector_name == job.cfg.detector
        _ENGINE = Engine(job, _FINDER if same else None)
    return _ENGINE


def _init_worker(detector: str, device: str, detect_size: int, identity: bool) -> None:
    """Worker start: Ctrl-C is left to the main process (which stops cleanly), one thread each, and the
    models are loaded at once, while the main process screens the frames."""
    global _FINDER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ..native_logs import silence

    silence()  # the detectors' native log lines (mediapipe) stay out of the output
    import cv2

    cv2.setNumThreads(1)
    if detector not in ("manual",) or identity:
        import torch

        torch.set_num_threads(1)
    try:
        _FINDER = FaceFinder(detector, device=device, detect_size=detect_size)
        if identity:
            from ..faces.identity import default_encoder

            default_encoder()
    except FaceDoubleError:
        _FINDER = None      # the same error is raised again, with its message, by the first task


def _warm() -> int:
    return os.getpid()


def _task_src(job: Job, items: list[tuple[Path, int, bool]]) -> list[Result]:
    eng = _worker_engine(job)
    return [eng.src_frame(path, number) for path, number, _ in items]


def _task_dst(job: Job, items: list[tuple[Path, int, bool]]) -> list[Frame]:
    eng = _worker_engine(job)
    return [eng.analyse(path, number, warmup) for path, number, warmup in items]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _ordered(pool: ProcessPoolExecutor, fn: Callable, job: Job, chunks: list[list], depth: int) -> Iterator[list]:
    """Results of fn(job, chunk) in order, with at most `depth` chunks in flight (bounded memory)."""
    pending: list[Future] = []
    it = iter(chunks)
    for chunk in it:
        pending.append(pool.submit(fn, job, chunk))
        if len(pending) >= depth:
            break
    while pending:
        done = pending.pop(0)
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(fn, job, nxt))
        yield done.result()


def start_pool(cfg: ExtractConfig, workers: int, side: str) -> ProcessPoolExecutor:
    """Worker processes, started now so that they load their models while this process screens the frames.
    spawn: the same on every OS, and no forked copies of this process's threads."""
    import multiprocessing as mp

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(cfg.detector, cfg.device, cfg.detect_size, side == "src"))
    for _ in range(workers):
        pool.submit(_warm)
    return pool


def run_here(job: Job, side: str, items: list, rep: Reporter, record: Callable[[Result], None],
              advance: Callable[[int], None]) -> None:
    eng = Engine(job)
    seq = DstSequencer(eng) if side == "dst" else None
    for path, number, warmup in items:
        rep.check()
        if seq is None:
            res: Optional[Result] = eng.src_frame(path, number)
        else:
            res = seq.step(eng.analyse(path, number, warmup))
        if res is not None:
            record(res)
            advance(1)


def run_pool(pool: ProcessPoolExecutor, job: Job, side: str, items: list, workers: int, rep: Reporter,
              record: Callable[[Result], None], advance: Callable[[int], None]) -> None:
    chunks = _chunks(items, CHUNK)
    if side == "src":
        for results in _ordered(pool, _task_src, job, chunks, depth=2 * workers + 1):
            for res in results:
                rep.check()
                record(res)
                advance(1)
    else:
        eng = Engine(job)     # this process: target choice, smoothing, identity, writing
        seq = DstSequencer(eng)
        for frames in _ordered(pool, _task_dst, job, chunks, depth=2 * workers):
            for fr in frames:
                rep.check()
                res = seq.step(fr)
                if res is not None:
                    record(res)
                    advance(1)
