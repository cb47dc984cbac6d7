"""Long-lived threads under supervision: one that dies is logged, alerted and started again with
a growing pause; one that keeps dying ends the daemon with EXIT_THREAD_FAILED, after telling
systemd why (STATUS=), and the unit does not restart it (RestartPreventExitStatus): a station that
cannot keep a thread alive needs a technician, not a restart loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from agent.core.os_thread import daemon_thread

log = structlog.get_logger("supervisor")

EXIT_THREAD_FAILED = 70  # EX_SOFTWARE: a thread kept failing; the unit does not restart on it
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 60.0
# More crashes than this within the window: the thread cannot be kept alive.
MAX_CRASHES = 5
WINDOW_S = 600.0


@dataclass
class Supervised:
    """One supervised loop: `target(stop)` runs until `stop` is set; a crash restarts it."""

    name: str
    target: Callable[[threading.Event], None]
    stop: threading.Event
    on_crash: Callable[[str, BaseException, int], None] = lambda name, exc, n: None
    first_pause_s: float = FIRST_PAUSE_S
    crashes: list[float] = field(default_factory=list)
    gave_up: bool = False
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = daemon_thread(self.name, self._run)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        pause = self.first_pause_s
        while not self.stop.is_set():
            try:
                self.target(self.stop)
                return  # a clean return: the loop saw `stop`
            except Exception as exc:  # noqa: BLE001 - the supervisor's whole job
                now = time.monotonic()
                self.crashes = [t for t in self.crashes if now - t < WINDOW_S] + [now]
                log.exception("thread-crashed", thread=self.name, crashes=len(self.crashes),
                              restart_in_s=None if len(self.crashes) > MAX_CRASHES else round(pause, 1))
                self.on_crash(self.name, exc, len(self.crashes))
                if len(self.crashes) > MAX_CRASHES:
                    self.gave_up = True
                    log.error("thread-gave-up", thread=self.name, crashes=len(self.crashes), window_s=WINDOW_S,
                              remedy="send a support bundle to the technician; the service stays stopped")
                    return
                if self.stop.wait(pause):
                    return
                pause = min(pause * 2, LONGEST_PAUSE_S)
