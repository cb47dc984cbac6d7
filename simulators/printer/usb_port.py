"""The virtual printer as a USB printer-class device, served on a local Unix socket.

A host reaches it through pyusb with `drivers.link.relay`, which relays what libusb
would send down the cable: control transfers (descriptors, the printer class's device id),
bulk OUT (commands) and bulk IN (replies, each ended by NUL), interface claims and the kernel
printer driver's binding. The wire of the relay is in docs/PROTOCOLS.md section 7.

Plugging in is listening on the socket; unplugging closes it and every connection, as a pulled
cable ends every open handle. Each plug is a new enumeration: a new device address, and the
kernel's printer driver (usblp) bound to the interface again until a host detaches it.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.printer.link_bandwidth import LinkClock, UsbSpeed

log = logging.getLogger(__name__)

# USB standard requests and descriptor types (USB 2.0, chapter 9).
GET_DESCRIPTOR = 0x06
GET_CONFIGURATION = 0x08
SET_CONFIGURATION = 0x09
DESC_DEVICE = 1
DESC_CONFIGURATION = 2
DESC_STRING = 3
LANG_EN_US = 0x0409
# Printer class requests (USB Printer Class 1.1, section 4.2).
PRINTER_GET_DEVICE_ID = 0
PRINTER_GET_PORT_STATUS = 1
PORT_STATUS_READY = 0x18  # selected, no error

PRINTER_CLASS = 7
PRINTER_SUBCLASS = 1
PROTOCOL_BIDIRECTIONAL = 2
EP_OUT = 0x01
EP_IN = 0x82
CONFIGURATION_VALUE = 1
INTERFACE = 0
STRING_MANUFACTURER, STRING_PRODUCT, STRING_SERIAL = 1, 2, 3

MAX_HEADER = 64 * 1024
MAX_DATA = 16 * 1024 * 1024
ACCEPT_POLL_S = 0.2


@dataclass(frozen=True)
class UsbIdentity:
    """What the device says about itself in its descriptors."""

    vendor_id: int
    product_id: int
    manufacturer: str
    product: str
    serial_number: str
    speed: UsbSpeed = UsbSpeed.FULL


class RelayRefused(Exception):
    """A request the device answers with a USB error (`code` as in docs/PROTOCOLS.md section 7)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UsbPort:
    """One printer's USB port: the relay socket at `path`, and the printer's side of the link.

    `read`/`write` are the printer's side (a ByteLink for `evolis_server.serve`): bulk OUT bytes
    come out of `read`, `write` queues a reply for bulk IN. `clock`, when given, charges every
    bulk OUT transfer its time on the cable before the transfer completes.
    Raises OSError from `plug` when the socket cannot be bound.
    """

    terminator = b"\x00"  # replies end with NUL on USB (docs/PROTOCOLS.md section 1)

    def __init__(self, path: Path, identity: UsbIdentity, clock: LinkClock | None = None) -> None:
        self.path = Path(path)
        self.identity = identity
        self._clock = clock
        self._cond = threading.Condition()
        self._from_host = bytearray()
        self._to_host = bytearray()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: dict[int, tuple[socket.socket, threading.Thread]] = {}
        self._next_connection = 1
        self._plugged = threading.Event()
        self._generation = 0
        self.address = 0
        self.kernel_driver_active = False
        self._claimed_by: int | None = None
        self.events: list[str] = []  # what hosts did, in order: "detach", "claim", "release", "attach"
        self._closed = threading.Event()
        self._replug_cancel = threading.Event()
        self._replug_thread: threading.Thread | None = None

    # -- the cable ---------------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        return self._plugged.is_set()

    def plug(self) -> None:
        """Connect the device: listen on the socket, enumerate with a new address."""
        with self._cond:
            if self._plugged.is_set():
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)  # left by a simulator that was killed
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(str(self.path))
                listener.listen(4)
            except OSError:
                listener.close()
                raise
            self._listener = listener
            self._generation += 1
            self.address += 1
            self.kernel_driver_active = True  # the kernel binds usblp to a new printer at once
            self._claimed_by = None
            self._from_host.clear()
            self._to_host.clear()
            self._plugged.set()
            self._accept_thread = threading.Thread(target=self._accept, args=(listener,),
                                                   name=f"usb-accept-{self.identity.serial_number}")
            self._accept_thread.start()
        log.info("usb %s plugged in at address %d (%s)", self.identity.serial_number, self.address, self.path)

    def unplug(self, for_s: float | None = None) -> None:
        """Pull the cable: the socket goes, every open handle fails, pending bytes are lost.

        With `for_s`, the cable goes back in (a new enumeration) after that many seconds.
        """
        if for_s is not None:
            self._schedule_replug(for_s)
        with self._cond:
            if not self._plugged.is_set():
                return
            self._plugged.clear()
            listener, self._listener = self._listener, None
            self._from_host.clear()
            self._to_host.clear()
            self._claimed_by = None
            self.kernel_driver_active = False
            connections = list(self._connections.values())
            self._cond.notify_all()
        if listener is not None:
            listener.close()
        self.path.unlink(missing_ok=True)
        for conn, _ in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its host
        threads = [t for _, t in connections]
        if self._accept_thread is not None:
            threads.append(self._accept_thread)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        log.info("usb %s unplugged", self.identity.serial_number)

    def close(self) -> None:
        """Unplug for good, cancelling a pending replug. Closing twice is harmless."""
        self._closed.set()
        self._replug_cancel.set()
        replug = self._replug_thread
        if replug is not None and replug is not threading.current_thread():
            replug.join()
        self.unplug()

    def describe(self) -> dict[str, str]:
        """The device as `devices.json` names it, with the link URL the agent configures."""
        i = self.identity
        return {"vid": f"{i.vendor_id:04x}", "pid": f"{i.product_id:04x}", "serial": i.serial_number,
                "relay": str(self.path),
                "url": f"usb://{i.vendor_id:04x}:{i.product_id:04x}?serial={i.serial_number}&relay={self.path}"}

    def _schedule_replug(self, for_s: float) -> None:
        previous = self._replug_thread
        if previous is not None and previous is not threading.current_thread():
            self._replug_cancel.set()
            previous.join()
        self._replug_cancel = threading.Event()
        cancel = self._replug_cancel

        def replug() -> None:
            if not cancel.wait(for_s) and not self._closed.is_set():
                try:
                    self.plug()
                except OSError as e:
                    log.error("usb %s: cannot plug back in: %s", self.identity.serial_number, e)

        self._replug_thread = threading.Thread(target=replug, name=f"usb-replug-{self.identity.serial_number}")
        self._replug_thread.start()

    # -- the printer's side ---------------------------------------------------------------

    def read(self, timeout: float | None) -> bytes:
        """Bytes the host sent by bulk OUT, or b"" when none came within `timeout` seconds."""
        with self._cond:
            if not self._from_host:
                self._cond.wait(timeout)
            data = bytes(self._from_host)
            self._from_host.clear()
            return data

    def write(self, data: bytes) -> None:
        """Queue a reply for bulk IN; with the cable out it is lost, as on real hardware."""
        with self._cond:
            if self._plugged.is_set():
                self._to_host += data
                self._cond.notify_all()

    # -- the relay -------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while self._plugged.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], ACCEPT_POLL_S)
                if not ready:
                    continue
                conn, _ = listener.accept()
            except (OSError, ValueError):  # closed by unplug
                return
            with self._cond:
                if not self._plugged.is_set():
                    conn.close()
                    return
                number = self._next_connection
                self._next_connection += 1
                thread = threading.Thread(target=self._serve_connection, args=(number, conn, self._generation),
                                          name=f"usb-host-{number}")
                self._connections[number] = (conn, thread)
            thread.start()

    def _serve_connection(self, number: int, conn: socket.socket, generation: int) -> None:
        try:
            while True:
                try:
                    header, data = _receive(conn)
                except (EOFError, OSError, ValueError):
                    return
                try:
                    reply, payload = self._handle(number, generation, header, data)
                except RelayRefused as e:
                    reply, payload = {"ok": False, "error": e.code, "message": str(e)}, b""
                try:
                    _send(conn, reply, payload)
                except OSError:
                    return
        finally:
            with self._cond:
                self._connections.pop(number, None)
                if self._claimed_by == number:
                    self._claimed_by = None  # a closed handle releases its interfaces
            conn.close()

    def _handle(self, number: int, generation: int, h: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
        if generation != self._generation or not self._plugged.is_set():
            raise RelayRefused("no-device", "the device was unplugged")
        op = h.get("op")
        if op == "bus":
            return {"ok": True, "bus": 1, "address": self.address, "port": 1,
                    "speed": self.identity.speed.descriptor_speed}, b""
        if op == "ctrl":
            return self._control(number, h, data)
        if op == "kernel_driver":
            return self._kernel_driver(number, _int(h, "interface"), h.get("action"))
        if op == "claim":
            return self._claim(number, _int(h, "interface"))
        if op == "release":
            with self._cond:
                if self._claimed_by == number:
                    self._claimed_by = None
                    self.events.append("release")
            return {"ok": True}, b""
        if op == "bulk_out":
            return self._bulk_out(number, _int(h, "endpoint"), data)
        if op == "bulk_in":
            return self._bulk_in(number, generation, _int(h, "endpoint"), _int(h, "length"), _int(h, "timeout_ms"))
        raise RelayRefused("invalid", f"unknown relay operation {op!r}")

    def _kernel_driver(self, number: int, interface: int, action: object) -> tuple[dict[str, Any], bytes]:
        _require_interface(interface)
        with self._cond:
            if action == "detach":
                if not self.kernel_driver_active:
                    raise RelayRefused("not-found", "no kernel driver is bound to the interface")
                self.kernel_driver_active = False
                self.events.append("detach")
                log.info("usb %s: host detached the kernel printer driver", self.identity.serial_number)
            elif action == "attach":
                if self._claimed_by is not None:
                    raise RelayRefused("busy", "the interface is claimed by a program")
                if self.kernel_driver_active:
                    raise RelayRefused("busy", "the kernel printer driver is already bound")
                self.kernel_driver_active = True
                self.events.append("attach")
                log.info("usb %s: kernel printer driver bound again", self.identity.serial_number)
            elif action != "query":
                raise RelayRefused("invalid", f"unknown kernel driver action {action!r}")
            return {"ok": True, "active": self.kernel_driver_active}, b""

    def _claim(self, number: int, interface: int) -> tuple[dict[str, Any], bytes]:
        _require_interface(interface)
        with self._cond:
            if self.kernel_driver_active:
                raise RelayRefused("busy", "the kernel printer driver holds the interface; detach it first")
            if self._claimed_by not in (None, number):
                raise RelayRefused("busy", "another program has claimed the printer")
            if self._claimed_by is None:
                self._claimed_by = number
                self.events.append("claim")
        return {"ok": True}, b""

    def _require_claimed(self, number: int) -> None:
        if self._claimed_by != number:
            raise RelayRefused("access", "claim the interface before bulk transfers")

    def _bulk_out(self, number: int, endpoint: int, data: bytes) -> tuple[dict[str, Any], bytes]:
        if endpoint != EP_OUT:
            raise RelayRefused("pipe", f"no OUT endpoint 0x{endpoint:02x}")
        with self._cond:
            self._require_claimed(number)
        if self._clock is not None:
            self._clock.charge(len(data))  # the transfer completes once the cable has carried it
        with self._cond:
            if not self._plugged.is_set():
                raise RelayRefused("no-device", "the device was unplugged")
            self._from_host += data
            self._cond.notify_all()
        return {"ok": True, "written": len(data)}, b""

    def _bulk_in(self, number: int, generation: int, endpoint: int, length: int,
                 timeout_ms: int) -> tuple[dict[str, Any], bytes]:
        if endpoint != EP_IN:
            raise RelayRefused("pipe", f"no IN endpoint 0x{endpoint:02x}")
        # libusb: a timeout of 0 waits for ever; a relay bounds it so unplug is always seen.
        deadline = time.monotonic() + (timeout_ms / 1000 if timeout_ms > 0 else 3600.0)
        with self._cond:
            self._require_claimed(number)
            while not self._to_host:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RelayRefused("timeout", "no data within the timeout")
                self._cond.wait(left)
                if generation != self._generation or not self._plugged.is_set():
                    raise RelayRefused("no-device", "the device was unplugged")
            data = bytes(self._to_host[:length])
            del self._to_host[:length]
        return {"ok": True, "data_len": len(data)}, data

    def _control(self, number: int, h: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
        request_type, request = _int(h, "request_type"), _int(h, "request")
        value, index, length = _int(h, "value"), _int(h, "index"), _int(h, "length")
        if request_type == 0x80 and request == GET_DESCRIPTOR:
            answer = self._descriptor(value >> 8, value & 0xFF, index)
        elif request_type == 0x80 and request == GET_CONFIGURATION:
            answer = bytes([CONFIGURATION_VALUE])
        elif request_type == 0x00 and request == SET_CONFIGURATION:
            if value != CONFIGURATION_VALUE:
                raise RelayRefused("pipe", f"no configuration {value}")
            return {"ok": True, "written": 0}, b""
        elif request_type == 0xA1 and request == PRINTER_GET_DEVICE_ID:
            text = self._ieee1284_id().encode("ascii")
            answer = struct.pack(">H", len(text) + 2) + text
        elif request_type == 0xA1 and request == PRINTER_GET_PORT_STATUS:
            answer = bytes([PORT_STATUS_READY])
        else:
            raise RelayRefused("pipe", f"request 0x{request_type:02x}/0x{request:02x} not supported (stall)")
        answer = answer[:length]
        return {"ok": True, "data_len": len(answer)}, answer

    def _descriptor(self, kind: int, index: int, langid: int) -> bytes:
        i = self.identity
        if kind == DESC_DEVICE:
            return struct.pack("<BBHBBBBHHHBBBB", 18, DESC_DEVICE, 0x0200, 0, 0, 0, 64, i.vendor_id, i.product_id,
                               0x0100, STRING_MANUFACTURER, STRING_PRODUCT, STRING_SERIAL, 1)
        if kind == DESC_CONFIGURATION and index == 0:
            packet = 512 if i.speed is UsbSpeed.HIGH else 64
            config = struct.pack("<BBHBBBBB", 9, DESC_CONFIGURATION, 9 + 9 + 7 + 7, 1, CONFIGURATION_VALUE, 0, 0xC0, 1)
            interface = struct.pack("<BBBBBBBBB", 9, 4, INTERFACE, 0, 2, PRINTER_CLASS, PRINTER_SUBCLASS,
                                    PROTOCOL_BIDIRECTIONAL, 0)
            out = struct.pack("<BBBBHB", 7, 5, EP_OUT, 2, packet, 0)
            in_ = struct.pack("<BBBBHB", 7, 5, EP_IN, 2, packet, 0)
            return config + interface + out + in_
        if kind == DESC_STRING:
            if index == 0:
                return struct.pack("<BBH", 4, DESC_STRING, LANG_EN_US)
            strings = {STRING_MANUFACTURER: i.manufacturer, STRING_PRODUCT: i.product, STRING_SERIAL: i.serial_number}
            if index in strings and langid == LANG_EN_US:
                text = strings[index].encode("utf-16-le")
                return bytes([2 + len(text), DESC_STRING]) + text
        raise RelayRefused("pipe", f"no descriptor {kind}/{index} (stall)")

    def _ieee1284_id(self) -> str:
        i = self.identity
        return f"MFG:{i.manufacturer};MDL:{i.product};CMD:EVOLIS;CLS:PRINTER;SN:{i.serial_number};"


def _require_interface(interface: int) -> None:
    if interface != INTERFACE:
        raise RelayRefused("not-found", f"no interface {interface}")


def _int(h: dict[str, Any], key: str) -> int:
    value = h.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RelayRefused("invalid", f"field {key!r} must be a whole number")
    return value


def _receive(conn: socket.socket) -> tuple[dict[str, Any], bytes]:
    (size,) = struct.unpack(">I", _exactly(conn, 4))
    if size > MAX_HEADER:
        raise ValueError(f"relay header of {size} bytes")
    header = json.loads(_exactly(conn, size))
    if not isinstance(header, dict):
        raise ValueError("relay header is not an object")
    data_len = header.get("data_len", 0)
    if not isinstance(data_len, int) or not 0 <= data_len <= MAX_DATA:
        raise ValueError(f"relay data length {data_len!r}")
    return header, _exactly(conn, data_len)


def _exactly(conn: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise EOFError("the host closed the relay")
        chunks += chunk
    return bytes(chunks)


def _send(conn: socket.socket, header: dict[str, Any], data: bytes) -> None:
    if data:
        header = {**header, "data_len": len(data)}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    conn.sendall(struct.pack(">I", len(encoded)) + encoded + data)


def relay_path_fits(path: Path) -> bool:
    """True when `path` is short enough for a Unix socket address (108 bytes on Linux)."""
    return len(os.fsencode(path)) < 100


# Evolis's vendor id as the shared notes believe it (unverified); the product id is an
# assumption: no public list of Evolis product ids was found.
VIRTUAL_VENDOR_ID = 0x0F49
VIRTUAL_PRODUCT_ID = 0x1001


def relay_socket_path(state_dir: Path, name: str) -> Path:
    """Where printer `name` listens: `<state_dir>/usb/<name>.sock`, or under /tmp when that
    path is too long for a Unix socket (deep test folders)."""
    path = state_dir / "usb" / f"{name}.sock"
    if relay_path_fits(path):
        return path
    return Path(tempfile.gettempdir()) / f"printstation-usb-{os.getpid()}-{name}.sock"
