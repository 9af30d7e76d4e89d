"""Progress bars (Rich) and the optional interactive prompts of the original tool.

Stages take a `Reporter`; the CLI passes a Rich one, the web UI its own, tests a silent one.
Stages also poll `reporter.cancelled` so that Ctrl-C, SIGTERM or a UI cancel stops them cleanly.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
import typing
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, TypeVar

from .errors import Cancelled

T = TypeVar("T")


class Reporter:
    """Silent base reporter: counts progress, records messages, carries a cancel flag."""

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self.messages: list[str] = []

    # cancellation ------------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise Cancelled if a stop was asked for; stages call this between units of work."""
        if self._cancel.is_set():
            raise Cancelled("Stopped on request; what was finished is kept and a re-run resumes.")

    # output --------------------------------------------------------------------------------------
    def info(self, message: str) -> None:
        self.messages.append(message)

    def warn(self, message: str) -> None:
        self.messages.append("warning: " + message)

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A unit of work with `total` steps; yields `advance(n)`."""
        yield lambda n=1: None

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        with self.task(description, total) as advance:
            for item in items:
                self.check()
                yield item
                advance(1)


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(description: str, done: int, total: int | None, elapsed: float) -> str:
    """One plain progress line for logs: `merge: 45/82 (55%), 12.3/s, 0:00:03 elapsed, 0:00:03 left`
    (no share or time left when the total is unknown)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{description}: {done}"
    if total:
        text += f"/{total} ({100 * done / total:.0f}%)"
    text += f", {rate:.1f}/s, {_clock(elapsed)} elapsed"
    if total and rate > 0 and done < total:
        text += f", {_clock((total - done) / rate)} left"
    return text


class RichReporter(Reporter):
    """Progress on stderr. On a terminal: Rich bars with rate and time left, and the training status line
    rewritten in place. Otherwise (CI logs, pipes, nohup): a plain progress line every `every` seconds and one
    when a task ends, and the status line every `status_every` seconds."""

    def __init__(self, *, every: float = 10.0, status_every: float = 30.0, console: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self.every, self.status_every, self.clock = every, status_every, clock
        self._status_last = -float("inf")
        self._status_open = False

    def info(self, message: str) -> None:
        self.end_line()
        super().info(message)
        self.console.print(message, soft_wrap=True, highlight=False, markup=False)

    def warn(self, message: str) -> None:
        self.end_line()
        super().warn(message)
        from rich.markup import escape

        self.console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True, highlight=False)

    def status(self, text: str, **figures: float) -> None:
        """The training progress line: in place on a terminal (at most 4 times a second), else a plain line
        every `status_every` seconds. `figures` (iteration, ms_per_it, samples_per_s, src_loss, dst_loss) are
        the same numbers for programs; a terminal shows the text."""
        now = self.clock()
        if self.console.is_terminal:
            if now - self._status_last >= 0.25:
                self.console.file.write("\r" + text + "\x1b[K")
                self.console.file.flush()
                self._status_open, self._status_last = True, now
        elif now - self._status_last >= self.status_every:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)
            self._status_last = now

    def end_line(self) -> None:
        """Finish the in-place status line (before other output)."""
        if self._status_open:
            self.console.file.write("\n")
            self._status_open = False

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        if not self.console.is_terminal:
            with self._log_task(description, total) as advance:
                yield advance
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.end_line()
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as bar:
            task_id = bar.add_task(description, total=total, rate="")

            def advance(n: int = 1) -> None:
                bar.advance(task_id, n)
                speed = bar.tasks[0].speed
                if speed:
                    bar.update(task_id, rate=f"{speed:.1f}/s")

            yield advance

    @contextmanager
    def _log_task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """Not a terminal: a progress line every `every` seconds, and the totals when the task ends."""
        started = self.clock()
        state = {"done": 0, "last": started}
        lock = threading.Lock()

        def advance(n: int = 1) -> None:
            with lock:
                state["done"] += n
                now = self.clock()
                if now - state["last"] < self.every:
                    return
                state["last"] = now
                self.console.print(progress_line(description, state["done"], total, now - started),
                                   highlight=False, markup=False, soft_wrap=True)

        yield advance  # a task that fails says nothing more: its error is the one sentence the user reads
        elapsed = self.clock() - started
        if state["done"] or total:
            self.console.print(progress_line(description, state["done"], total, elapsed),
                               highlight=False, markup=False, soft_wrap=True)


@contextmanager
def stop_on_signals(reporter: Reporter) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set the reporter's cancel flag instead of killing the process,
    so a stage finishes its current unit, saves, and returns. A second Ctrl-C stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):  # pragma: no cover - exercised by signal tests
        if reporter.cancelled and signum == signal.SIGINT:
            raise KeyboardInterrupt
        reporter.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# -- interactive prompts -----------------------------------------------------------------------------

def ask_options(config, *, input_fn: Callable[[str], str] = input, output: Callable[[str], None] | None = None,
                only: Iterable[str] | None = None):
    """Ask for each option of a stage config the way the original tool did:
    `Name (help) [default]: `; Enter keeps the default, `?` prints the help. Returns a new config."""
    from .errors import OptionError

    out = output or (lambda s: print(s, file=sys.stderr))
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    wanted = set(only) if only is not None else None
    for f in dataclasses.fields(config):
        if not f.metadata.get("ask", True) or (wanted is not None and f.name not in wanted):
            continue
        current = getattr(config, f.name)
        label = f.name.replace("_", " ").capitalize()
        options = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal else ()
        shown = "/".join(options) + ", " if options else ""
        default_text = "" if current is None else ("y" if current is True else "n" if current is False else str(current))
        while True:
            answer = input_fn(f"{label} ({shown}? help) [{default_text}]: ").strip()
            if answer == "?":
                out(type(config).field_help(f.name))
                continue
            if answer == "":
                break
            try:
                value = _parse_answer(answer, hints[f.name], current)
                dataclasses.replace(config, **{**changes, f.name: value})  # validates
            except (ValueError, OptionError) as e:
                out(f"  {e}")
                continue
            changes[f.name] = value
            break
    return dataclasses.replace(config, **changes) if changes else config


def _parse_answer(answer: str, tp: Any, current: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if typing.get_origin(tp) is typing.Union and args else tp
    if base is bool or isinstance(current, bool):
        if answer.lower() in ("y", "yes", "1", "true"):
            return True
        if answer.lower() in ("n", "no", "0", "false"):
            return False
        raise ValueError("answer y or n")
    if base is int:
        return int(answer)
    if base is float:
        return float(answer)
    return answer
