"""Third-party native log lines kept out of facedouble's output.

mediapipe 0.10.21 logs through absl's C++ logging and TensorFlow Lite's own logger, straight to file
descriptor 2 from C++ threads: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR", "W0000 ... inference_feedback_manager.cc:114]
Feedback manager requires a model with a single signature ...". absl's C++ logging reads no environment variable
(GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL only reach older builds; they are set too) and mediapipe exports none
of its log functions, so the lines are stopped at the descriptor: `silence()` points fd 2 at a pipe whose reader
thread drops those lines and forwards every other byte to the real stderr. Python's own `sys.stderr` keeps
writing to the real stderr directly, so progress bars and messages are not delayed. Child processes inherit the
filtered descriptor, so the lines of worker processes are dropped as well.

Called once per process by the CLI (and so the UI), the Python API, `make demo` and extraction's worker
processes. It does nothing when stderr is not the process's own fd 2 (under pytest's capture, in a notebook);
errors (absl `E`/`F` lines) and anything unrecognised always pass.
"""

from __future__ import annotations

import atexit
import io
import os
import re
import select
import sys
import threading

ENVIRONMENT = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2", "ABSL_MIN_LOG_LEVEL": "2"}

# absl / glog info and warning lines ("I0000 00:00:1796314541.920086   15404 file.cc:114] ..."), TensorFlow
# Lite's delegate notice, absl's pre-initialisation notice.
NOISE = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\] "
                   rb"|INFO: Created TensorFlow Lite \w+ delegate"
                   rb"|INFO: Initialized TensorFlow Lite runtime"
                   rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)")

_lock = threading.Lock()
_active: "_Filter | None" = None


def is_noise(line: bytes) -> bool:
    """Whether one line written to stderr is a third-party native log line that facedouble drops."""
    return NOISE.match(line.lstrip(b"\r")) is not None


def set_environment() -> None:
    """The log-level variables of the native libraries, for this process and those it starts (before mediapipe
    is imported; a value the user set is kept)."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def silence() -> None:
    """Drop the native log lines of mediapipe / TensorFlow Lite / absl from this process's stderr and its
    children's (idempotent; see the module's docstring)."""
    global _active
    set_environment()
    with _lock:
        if _active is not None or not _own_stderr():
            return
        try:
            _active = _Filter()
        except OSError:  # no pipes here (a sandbox): the lines stay, nothing else changes
            _active = None


def restore() -> None:
    """Put the real stderr back on fd 2 and forward what the filter still holds (before exec, and at exit)."""
    global _active
    with _lock:
        if _active is not None:
            _active.close()
            _active = None


def _own_stderr() -> bool:
    if os.name != "posix" or sys.stderr is None or sys.stderr is not sys.__stderr__:
        return False
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


class _Filter:
    """fd 2 -> pipe -> reader thread -> the real stderr, minus the noise lines."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self.real = os.dup(2)                      # the real stderr (not inherited by children)
        read, write = os.pipe()
        os.dup2(write, 2)                          # native code and children now write into the pipe
        os.close(write)
        self.read = read
        self.closing = False
        self.saved_stderr = sys.stderr
        sys.stderr = io.TextIOWrapper(io.FileIO(self.real, "w", closefd=False), encoding=sys.stderr.encoding,
                                      errors=sys.stderr.errors, line_buffering=True, write_through=True)
        self.thread = threading.Thread(target=self._pump, name="facedouble-native-logs", daemon=True)
        self.thread.start()
        atexit.register(restore)

    def _pump(self) -> None:
        pending = b""
        while True:
            ready = select.select([self.read], [], [], 0.05 if self.closing else 0.2)[0]
            if not ready and self.closing:  # all written so far is read (a child may hold the pipe open)
                break
            if not ready:  # a partial line that sat for 0.2 s (a prompt, a \r status): pass it on
                if pending and not _may_be_noise(pending):
                    self._write(pending)
                    pending = b""
                continue
            try:
                chunk = os.read(self.read, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
            if kept:
                self._write(kept)
        if pending and not is_noise(pending):
            self._write(pending)
        os.close(self.read)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self.real, data)
        except OSError:
            pass

    def close(self) -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.real, 2)                      # the pipe's write end now lives only in children, if any
        sys.stderr = self.saved_stderr
        self.closing = True
        self.thread.join(timeout=1.0)              # forwards what is left, then stops


def _may_be_noise(partial: bytes) -> bool:
    """Whether a line still without its end could become a noise line (then the reader waits for the end)."""
    return partial.lstrip(b"\r")[:1] in (b"", b"I", b"W")
