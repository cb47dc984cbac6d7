"""systemd's notify protocol (READY, STATUS, WATCHDOG, STOPPING), without a library: one datagram each."""

from __future__ import annotations

import os
import socket


class Notifier:
    """Talks to $NOTIFY_SOCKET when systemd set it; does nothing otherwise (a terminal, a test)."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self._address = address or None
        usec = os.environ.get("WATCHDOG_USEC", "")
        # Feed the watchdog at half its period, as systemd recommends.
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None

    def send(self, *fields: str) -> None:
        if self._address is None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Never block the main loop: a notify socket nobody reads must not wedge the station.
            sock.setblocking(False)
            try:
                sock.sendto("\n".join(fields).encode(), self._address)
            except OSError:
                pass  # systemd gone (shutdown) or not reading: nothing to tell

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")
