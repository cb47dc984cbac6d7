"""The desktop channel: notify-send, where a desktop session runs (DISPLAY or WAYLAND_DISPLAY
set and notify-send on PATH); elsewhere skipped silently (said once, at debug)."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading

import structlog

log = structlog.get_logger("notify")

TIMEOUT_S = 10.0


def desktop_command() -> str | None:
    """notify-send's path when a desktop session can show it, else None."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None
    return shutil.which("notify-send")


class DesktopNotifier:
    def __init__(self) -> None:
        self._queue: queue.Queue[list[str]] = queue.Queue()
        self._said_skipped = False

    def queue(self, summary: str, body: str, *, urgent: bool) -> None:
        command = desktop_command()
        if command is None:
            if not self._said_skipped:
                self._said_skipped = True
                log.debug("notify-desktop-skipped", reason="no desktop session or no notify-send")
            return
        self._queue.put([command, "--app-name=printstation", f"--urgency={'critical' if urgent else 'normal'}",
                         summary, body])

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                command = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                subprocess.run(command, check=True, timeout=TIMEOUT_S, capture_output=True)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("notify-desktop-failed", error=str(exc),
                            remedy="check that the station's user may show notifications on the desktop session")
