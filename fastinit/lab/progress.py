"""Progress a person can follow, and a log can keep: one status line, and Numba's compilations.

:class:`Status` writes one status line to stderr. On a terminal the line is rewritten in place;
on a pipe or a log file it is written as a plain line at most every ``every`` seconds, so a log
gets a few readable lines instead of a flood of carriage returns.

:class:`CompileWatch` listens to Numba's compile events (a compile event fires only when a
kernel is not in Numba's on-disk cache). On the first one it says that kernels are being
compiled, that this happens on the first run only and how to do it ahead (``fastinit warmup``);
while compiling it shows how many kernels are done and for how long; at the end, the total.
"""
import sys
import threading
import time

from numba.core import event as _event

__all__ = ["Status", "CompileWatch"]


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Status:
    """One status line on ``stream`` (default: stderr); disabled when ``enabled`` is false."""

    def __init__(self, stream=None, every=10.0, enabled=True):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.tty = _isatty(self.stream)
        self.every = every
        self._last = -float("inf")
        self._width = 0
        self._lock = threading.Lock()

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # the reader went away: progress is optional
            self.enabled = False

    def update(self, msg, force=False):
        """Show ``msg`` as the current state (on a log: only every ``every`` seconds)."""
        if not self.enabled:
            return
        with self._lock:
            if self.tty:
                pad = max(self._width - len(msg), 0)
                self._write("\r" + msg + " " * pad)
                self._width = len(msg)
            elif force or time.monotonic() - self._last >= self.every:
                self._write(msg + "\n")
                self._last = time.monotonic()

    def line(self, msg):
        """A permanent line (clears the status line first on a terminal)."""
        if not self.enabled:
            return
        with self._lock:
            if self.tty and self._width:
                self._write("\r" + " " * self._width + "\r")
                self._width = 0
            self._write(msg + "\n")
            self._last = time.monotonic()

    def clear(self):
        if self.enabled and self.tty and self._width:
            with self._lock:
                self._write("\r" + " " * self._width + "\r")
                self._width = 0


class CompileWatch(_event.Listener):
    """Context manager: reports Numba compilations on ``status`` while it is active.

    ``count`` and ``seconds`` tell afterwards how many kernels were compiled and how long the
    compilations took (0 when everything came from the cache)."""

    def __init__(self, status, hint="first run only; `fastinit warmup` compiles every kernel "
                                    "ahead"):
        self.status = status
        self.hint = hint
        self.count = 0
        self.seconds = 0.0
        self._depth = 0
        self._first = None
        self._count0 = 0
        self._current = ""
        self._stop = threading.Event()
        self._ticker = None

    def on_start(self, event):
        self._handle(event, True)

    def on_end(self, event):
        self._handle(event, False)

    def _handle(self, event, start):
        data = event.data if isinstance(event.data, dict) else {}
        name = getattr(getattr(data.get("dispatcher"), "py_func", None), "__name__", "?")
        if start:
            if self._first is None:
                self._first = time.monotonic()
                self._count0 = self.count
                self.status.line(f"compiling Numba kernels ({self.hint}) ...")
                if self.status.tty:
                    self._ticker = threading.Thread(target=self._tick, daemon=True)
                    self._ticker.start()
            if self._depth == 0:
                self._current = name
            self._depth += 1
        else:
            self._depth -= 1
            self.count += 1
            self._show()

    def _show(self):
        first = self._first          # the ticker thread may race finish()
        if first is None:
            return
        self.seconds = time.monotonic() - first
        self.status.update(f"  compiled {self.count - self._count0} kernels in "
                           f"{self.seconds:.0f} s "
                           f"(now: {self._current})")

    def _tick(self):
        while not self._stop.wait(1.0):
            self._show()

    def __enter__(self):
        _event.register("numba:compile", self)
        return self

    def finish(self):
        """Say what was compiled (once; later compilations start a new report)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._first is not None:
            self.seconds = time.monotonic() - self._first
            self.status.line(f"compiled {self.count - self._count0} Numba kernels in "
                             f"{self.seconds:.0f} s; "
                             "later runs load them from Numba's cache")
            self._first = None
            self._stop = threading.Event()

    def __exit__(self, *exc):
        _event.unregister("numba:compile", self)
        self.finish()
        return False
