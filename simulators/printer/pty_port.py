"""A pseudo-terminal that a host opens as the printer's serial port.

The simulator keeps the master side and also holds the slave open itself: without that, a host
closing the port leaves the master reading EIO until someone opens it again, and a host that
opens and closes the port repeatedly would break the simulator.
"""

from __future__ import annotations

import errno
import os
import select
import termios
import time
import tty
from pathlib import Path


class PtyPort:
    """One pty: `path` is the device a host opens; `read`/`write` are the printer's side.

    Raises OSError from the constructor when no pty can be allocated.
    """

    terminator = b"\r"  # replies end with CR on a serial link (docs/PROTOCOLS.md section 1)

    def __init__(self, write_timeout: float = 2.0) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave, termios.TCSANOW)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._write_timeout = write_timeout
        self._closed = False

    def read(self, timeout: float | None) -> bytes:
        """Bytes the host wrote, or b"" when none came within `timeout` seconds."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self._master, 65536)
        except BlockingIOError:
            return b""
        except OSError as e:
            # Only while no one, not even we, holds the slave; we always do, so treat it as quiet.
            if e.errno == errno.EIO:
                return b""
            raise

    def write(self, data: bytes) -> None:
        """Send a reply to the host.

        When the host stops reading (it went away mid-command), the reply is dropped after the
        write timeout together with anything stale, so the next host starts clean.
        """
        view = memoryview(data)
        deadline = time.monotonic() + self._write_timeout
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                termios.tcflush(self._slave, termios.TCIFLUSH)
                return
            _, ready, _ = select.select([], [self._master], [], remaining)
            if not ready:
                continue
            try:
                sent = os.write(self._master, view)
            except BlockingIOError:
                continue
            view = view[sent:]

    def close(self) -> None:
        """Close both sides; a host still holding the port then reads end of file."""
        if self._closed:
            return
        self._closed = True
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self) -> PtyPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StablePort:
    """A pty that hosts find under a fixed name (a symlink, as udev's /dev/serial/by-id gives)
    and that can be unplugged for a while: the pty is closed, the name disappears, and after the
    outage a new pty appears under the same name. The kernel picks pty numbers, so only the name
    can stay the same. Used only from the printer's thread.
    """

    def __init__(self, link_path: Path, write_timeout: float = 2.0) -> None:
        self.path = str(link_path)
        self.terminator = PtyPort.terminator
        self._link = link_path
        self._write_timeout = write_timeout
        self._port: PtyPort | None = None
        self._back_at = 0.0
        self._plug()

    @property
    def pty_path(self) -> str | None:
        """The pty under the name now, or None while unplugged."""
        return self._port.path if self._port is not None else None

    def unplug(self, for_s: float) -> None:
        """Drop the link now; it comes back under the same name after `for_s` seconds."""
        if self._port is not None:
            self._link.unlink(missing_ok=True)
            self._port.close()  # the host reading the old pty sees the device go away
            self._port = None
        self._back_at = time.monotonic() + for_s

    def read(self, timeout: float | None) -> bytes:
        """Bytes the host sent, or b"" within `timeout` (always b"" while unplugged)."""
        if self._port is None:
            if time.monotonic() < self._back_at:
                time.sleep(min(timeout or 0.0, max(0.0, self._back_at - time.monotonic())))
                return b""
            self._plug()
        assert self._port is not None
        return self._port.read(timeout)

    def write(self, data: bytes) -> None:
        """Send a reply; while unplugged it is lost, as on a pulled cable."""
        if self._port is not None:
            self._port.write(data)

    def close(self) -> None:
        self._link.unlink(missing_ok=True)
        if self._port is not None:
            self._port.close()
            self._port = None

    def _plug(self) -> None:
        port = PtyPort(self._write_timeout)
        tmp = self._link.with_name(self._link.name + ".new")
        tmp.unlink(missing_ok=True)
        os.symlink(port.path, tmp)
        os.replace(tmp, self._link)
        self._port = port
