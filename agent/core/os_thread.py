"""The kernel's name for each of the daemon's threads (`top -H`, `ps -L`, /proc/PID/task/*/comm):
a technician sees which part of the station a busy thread is (printer-p1, render-ahead, intake,
outbox, web, ...), and `printstation bench` says what each part costs a card. Python gives its
threads names only among themselves."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from agent.core.libc import libc_function

_PR_SET_NAME = 15  # prctl's option (linux/prctl.h)
_NAME_BYTES = 15  # the kernel keeps 16 bytes, the last a NUL
_PRCTL = libc_function("prctl", ctypes.c_int, ctypes.c_char_p)


def name_this_thread() -> None:
    """Tell the kernel the calling thread's Python name (its first 15 bytes); a no-op without prctl."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_NAME, threading.current_thread().name.encode("utf-8", "replace")[:_NAME_BYTES])


def daemon_thread(name: str, target: Callable[..., object], **kwargs: Any) -> threading.Thread:
    """A daemon thread (not started) running `target(**kwargs)`, named `name` to the kernel too."""

    def run() -> None:
        name_this_thread()
        target(**kwargs)

    return threading.Thread(target=run, name=name, daemon=True)
