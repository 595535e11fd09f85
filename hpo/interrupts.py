"""Ctrl-C and SIGTERM: a stop lands at once inside a trial's training, never half-way through a store write.

Optuna writes a trial's row before it calls the objective and the trial's result after it. A stop in either
window would leave the trial RUNNING for good. Inside `protected()`, a signal that arrives outside
`interruptible()` is held, and raised when the next interruptible block starts or the protected block ends;
a second signal while one is held is raised at once.

Python drops an exception raised inside a garbage-collection callback (a weakref's, a `__del__`), and the
handler runs wherever the main thread is, collections included. So a raised stop stays requested until it
reaches `run_trials` or the command line; `check()`, called at each training step and before each trial,
raises it again if it was dropped.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_held = False
_requested = False  # raised, and not yet seen to arrive where stops are handled
_protecting = 0
_open = 0


def _stop(signum: int, frame: Any) -> None:
    global _held, _requested
    if _protecting and not _open and not _held:  # a second stop does not wait
        _held = True
        return
    _requested = True
    raise KeyboardInterrupt


def check() -> None:
    """Raise a stop that was raised but dropped; inside `protected()` and outside `interruptible()`, hold it."""
    global _held, _requested
    if not _requested or not _main_thread():
        return
    _requested = False
    if _protecting and not _open:
        _held = True
        return
    raise KeyboardInterrupt


@contextmanager
def handled_here() -> Iterator[None]:
    """Where a stop's KeyboardInterrupt arrives it is no longer requested, so a later call does not stop again."""
    global _requested
    try:
        yield
    except KeyboardInterrupt:
        _requested = False
        raise


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """SIGTERM stops like Ctrl-C (exit 130, trials saved); an ignored SIGINT stays ignored."""
    if not _main_thread():
        return
    signal.signal(signal.SIGTERM, _stop)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _stop)


@contextmanager
def protected() -> Iterator[None]:
    """Hold stops that arrive outside `interruptible()` until the block ends."""
    global _held, _protecting
    if not _main_thread():  # signals reach the main thread only
        yield
        return
    # for callers that did not `install()` (the Python API): Ctrl-C, if Python's default handler has it
    swap = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, _stop) if swap else None
    _protecting += 1
    try:
        yield
    finally:
        _protecting -= 1
        if swap:
            signal.signal(signal.SIGINT, previous)
        if _held and not _protecting:
            _held = False
            raise KeyboardInterrupt


@contextmanager
def interruptible() -> Iterator[None]:
    """A block a stop may cut short: raises a held stop on entry."""
    global _held, _open
    if not _main_thread():
        yield
        return
    check()
    if _held:
        _held = False
        raise KeyboardInterrupt
    _open += 1
    try:
        yield
    finally:
        _open -= 1
