"""Ctrl-C held to points where raising it is safe.

Python raises ``KeyboardInterrupt`` at whatever bytecode runs when SIGINT arrives. Inside
PyTorch that can be Python code that C++ called back (pybind11): the exception becomes a
C++ exception there, and a C++ exception that crosses a ``noexcept`` frame ends the
process with ``terminate called after throwing an instance of
'pybind11::error_already_set'`` (SIGABRT: none of the CLI's clean exit 130; seen about
once in 50 Ctrl-Cs during BPR-MF training on a loaded machine). Code that runs such a
library wraps it in :func:`interrupts_held` and calls :func:`interruption_point` where
plain Python runs (between minibatches): Ctrl-C still stops it within one step.

A leaf module, beside :mod:`harness.errors`: every layer may use it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator

# SIGINTs received inside the outermost held block, not raised yet (main thread only).
_pending: list[int] = []
_depth = 0


def _hold(signum: int, frame: FrameType | None) -> None:
    _pending.append(signum)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Within the block, Ctrl-C is raised only at :func:`interruption_point` calls, or
    when the block ends (as ``KeyboardInterrupt``, as Python would have raised it).

    Only where Python's own handler is in place in the main thread: elsewhere (a worker
    thread, a program with its own SIGINT handler) the block runs unchanged. Nested
    blocks share the outer one's hold.
    """
    global _depth
    # signal handlers belong to the main thread; another thread's block (a model fitted in
    # a worker thread) neither holds nor counts
    if threading.current_thread() is not threading.main_thread() or (
            _depth == 0 and signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    if _depth == 0:
        _pending.clear()
        signal.signal(signal.SIGINT, _hold)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            interrupted = bool(_pending)
            _pending.clear()
            if interrupted:
                raise KeyboardInterrupt


def interruption_point() -> None:
    """Raise ``KeyboardInterrupt`` here if Ctrl-C came while interrupts were held."""
    if _pending:
        _pending.clear()
        raise KeyboardInterrupt
