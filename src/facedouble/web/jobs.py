"""One stage at a time in a background thread, with live progress, a log and cancel.

`JobReporter` is the stage functions' `Reporter` for the UI: it records the current task (description,
done, total, rate), the log lines and the trainer's status line, and carries the cancel flag the stages
poll. `JobRunner` starts a job (refusing a second while one runs), and reports its state for polling.
"""

from __future__ import annotations

import collections
import threading
import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..errors import Cancelled, FaceDoubleError
from ..progress import Reporter

LOG_LINES = 2000


class JobReporter(Reporter):
    """Progress and log of one job, read by the polling endpoint from another thread."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.log: collections.deque[tuple[int, str]] = collections.deque(maxlen=LOG_LINES)
        self._seq = 0
        self.task_name = ""
        self.total: int | None = None
        self.done = 0
        self.task_started = time.monotonic()
        self.status_line = ""
        self.status_figures: dict[str, float] = {}   # the trainer's numbers behind the status line
        self.keys = ""            # keys for the trainer ("s" save, "p" preview), consumed by `read_keys`

    def _add(self, text: str) -> None:
        with self._lock:
            self._seq += 1
            self.log.append((self._seq, text))

    def info(self, message: str) -> None:
        self._add(message)

    def warn(self, message: str) -> None:
        self._add("warning: " + message)

    def status(self, text: str, **figures: float) -> None:
        """The trainer's in-place progress line, and its numbers (iteration, ms_per_it, samples_per_s, losses)."""
        self.status_line, self.status_figures = text, dict(figures)

    def press(self, key: str) -> None:
        with self._lock:
            self.keys += key

    def read_keys(self) -> str:
        with self._lock:
            keys, self.keys = self.keys, ""
        return keys

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        with self._lock:
            self.task_name, self.total, self.done, self.task_started = description, total, 0, time.monotonic()
        self._add(f"{description} ...")

        def advance(n: int = 1) -> None:
            self.done += n

        yield advance
        self._add(f"{description}: done ({self.done}{'/' + str(total) if total else ''})")

    def progress(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.task_started, 1e-6)
        rate = self.done / elapsed if self.done else 0.0
        left = (self.total - self.done) / rate if rate and self.total else None
        return {"task": self.task_name, "done": self.done, "total": self.total, "rate": round(rate, 2),
                "seconds_left": None if left is None else round(left, 1), "status": self.status_line}

    def lines(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [{"seq": s, "text": t} for s, t in self.log if s > since]


class Job:
    def __init__(self, number: int, name: str, fn: Callable[[JobReporter], Any]) -> None:
        self.number, self.name, self.fn = number, name, fn
        self.reporter = JobReporter()
        self.state = "running"          # running, done, failed, cancelled
        self.message = ""
        self.result: Any = None
        self.started = time.time()
        self.finished: float | None = None
        self.thread = threading.Thread(target=self._run, name=f"facedouble-job-{number}", daemon=True)

    def _run(self) -> None:
        rep = self.reporter
        try:
            out = self.fn(rep)
            self.result = out
            if isinstance(out, str):
                summary = out
            elif callable(getattr(out, "summary", None)):
                summary = out.summary()
            elif callable(getattr(out, "text", None)):
                summary = out.text()
            else:
                summary = ""
            self.message = summary if isinstance(summary, str) else ""
            self.state = "done"
        except Cancelled as e:
            self.state, self.message = "cancelled", e.message if hasattr(e, "message") else str(e)
        except FaceDoubleError as e:
            self.state, self.message = "failed", getattr(e, "message", str(e))
        except Exception as e:  # noqa: BLE001 - shown to the user, never kills the server
            self.state, self.message = "failed", f"internal error: {type(e).__name__}: {e}"
            rep._add(traceback.format_exc())
        finally:
            self.finished = time.time()
            if self.message:
                rep._add(self.message)

    def to_dict(self, since: int = 0) -> dict[str, Any]:
        return {"id": self.number, "name": self.name, "state": self.state, "message": self.message,
                "started": self.started, "finished": self.finished, "cancel_requested": self.reporter.cancelled,
                "progress": self.reporter.progress(), "log": self.reporter.lines(since)}


class JobBusy(Exception):
    pass


class JobRunner:
    """Runs one job at a time; keeps the last one for polling."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self.current: Job | None = None

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.state == "running"

    def start(self, name: str, fn: Callable[[JobReporter], Any]) -> Job:
        with self._lock:
            if self.running:
                raise JobBusy(f"{self.current.name} is still running; wait for it or cancel it first.")  # type: ignore[union-attr]
            self._count += 1
            job = Job(self._count, name, fn)
            self.current = job
        job.thread.start()
        return job

    def cancel(self) -> bool:
        job = self.current
        if job is None or job.state != "running":
            return False
        job.reporter.cancel()
        return True

    def wait(self, timeout: float | None = None) -> Job | None:
        job = self.current
        if job is not None:
            job.thread.join(timeout)
        return job
