"""A pyusb backend (`usb.backend.IBackend`) whose devices sit behind local Unix sockets.

The virtual printer (`simulators/printer/usb_port.py`) serves one USB device per socket. This backend
relays to it what libusb would put on the cable: control transfers (descriptors, strings, the
printer class's device id), bulk transfers, interface claims and the kernel driver's binding.
pyusb's own code (find, descriptors, endpoint discovery, string reads, timeouts) then runs
exactly as with a real device; only the last hop differs. The relay's wire is in
docs/PROTOCOLS.md section 7.

Errors come back as pyusb's: `usb.core.USBError` with libusb's error codes, and
`usb.core.USBTimeoutError` for a timeout, so callers handle both kinds of device alike.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import usb.backend
import usb.core

__all__ = ["RELAY_ENV", "RelayBackend", "relay_paths_from_env"]

# Names the relay sockets when a program finds printers without a URL (e.g. diagnose);
# several are separated by ':' like PATH.
RELAY_ENV = "PRINTSTATION_USB_RELAY"

MAX_HEADER = 64 * 1024
MAX_DATA = 16 * 1024 * 1024
CONNECT_TIMEOUT_S = 2.0
# A reply always comes: the device bounds its own waits by the transfer's timeout.
REPLY_MARGIN_S = 10.0

GET_DESCRIPTOR = 0x06
DESC_DEVICE = 1
DESC_CONFIGURATION = 2
DESC_INTERFACE = 4
DESC_ENDPOINT = 5

# libusb's error codes (libusb.h), by the relay's error names.
_LIBUSB_ERRORS: dict[str, tuple[int, int, str]] = {
    "io": (-1, errno.EIO, "Input/Output Error"),
    "invalid": (-2, errno.EINVAL, "Invalid parameter"),
    "access": (-3, errno.EACCES, "Access denied (insufficient permissions)"),
    "no-device": (-4, errno.ENODEV, "No such device (it may have been disconnected)"),
    "not-found": (-5, errno.ENOENT, "Entity not found"),
    "busy": (-6, errno.EBUSY, "Resource busy"),
    "timeout": (-7, errno.ETIMEDOUT, "Operation timed out"),
    "pipe": (-9, errno.EPIPE, "Pipe error"),
}


def relay_paths_from_env() -> list[Path]:
    """The relay sockets named by PRINTSTATION_USB_RELAY (none when unset)."""
    return [Path(p) for p in os.environ.get(RELAY_ENV, "").split(":") if p]


def _usb_error(code: str, detail: str = "") -> usb.core.USBError:
    number, err, text = _LIBUSB_ERRORS.get(code, _LIBUSB_ERRORS["io"])
    message = f"{text}: {detail}" if detail else text
    if code == "timeout":
        return usb.core.USBTimeoutError(message, number, err)
    return usb.core.USBError(message, number, err)


@dataclass
class _Descriptor:
    """A descriptor as pyusb reads it: fields as attributes."""

    fields: dict[str, Any]
    extra_descriptors: list[int] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["fields"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class _Interface:
    descriptor: _Descriptor
    endpoints: list[_Descriptor]


@dataclass
class _Configuration:
    descriptor: _Descriptor
    interfaces: list[list[_Interface]]  # by interface index, then by alternate setting


@dataclass
class _RelayDevice:
    """One device found on a relay socket, with the descriptors read at enumeration."""

    path: Path
    device: _Descriptor
    configurations: list[_Configuration]


class _Connection:
    """One socket to a relay; requests and answers one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            self._sock.connect(str(path))
        except OSError:
            self._sock.close()
            raise

    def request(self, header: dict[str, Any], data: bytes | memoryview = b"", *,
                wait_s: float = 0.0) -> tuple[dict[str, Any], bytes]:
        """Send one request; return the answer. Raises USBError (no-device when the socket is gone).

        `data` goes out after the header as it is (a panel is half a megabyte: not copied)."""
        if data:
            header = {**header, "data_len": len(data)}
        encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
        with self._lock:
            try:
                self._sock.settimeout(wait_s + REPLY_MARGIN_S)
                self._sock.sendall(struct.pack(">I", len(encoded)) + encoded)
                if data:
                    self._sock.sendall(data)
                answer, payload = self._receive()
            except (OSError, EOFError, ValueError) as e:
                self.close()
                raise _usb_error("no-device", f"relay {self.path}: {e}") from e
        if not answer.get("ok"):
            raise _usb_error(str(answer.get("error")), str(answer.get("message", "")))
        return answer, payload

    def close(self) -> None:
        self._sock.close()

    def _receive(self) -> tuple[dict[str, Any], bytes]:
        (size,) = struct.unpack(">I", self._exactly(4))
        if size > MAX_HEADER:
            raise ValueError(f"relay answer header of {size} bytes")
        answer = json.loads(self._exactly(size))
        if not isinstance(answer, dict):
            raise ValueError("relay answer is not an object")
        data_len = answer.get("data_len", 0)
        if not isinstance(data_len, int) or not 0 <= data_len <= MAX_DATA:
            raise ValueError(f"relay data length {data_len!r}")
        return answer, self._exactly(data_len)

    def _exactly(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._sock.recv(min(size - len(chunks), 1 << 20))
            if not chunk:
                raise EOFError("the device closed the relay (unplugged)")
            chunks += chunk
        return bytes(chunks)


def _bytes_of(data: Any) -> memoryview:
    """pyusb's buffer (an array of bytes) seen as bytes, without a copy."""
    return memoryview(data).cast("B")


class RelayBackend(usb.backend.IBackend):
    """pyusb backend for the devices behind `relays` (socket paths); pass it to usb.core.find."""

    def __init__(self, relays: Iterable[Path | str]) -> None:
        super().__init__()
        self.relays = [Path(p) for p in relays]

    # -- enumeration: read the descriptors once, as libusb reads them from sysfs ------------

    def enumerate_devices(self) -> Iterator[_RelayDevice]:
        for path in self.relays:
            try:
                conn = _Connection(path)
            except OSError:
                continue  # nothing plugged in behind this socket
            try:
                yield self._describe(path, conn)
            except usb.core.USBError:
                continue  # unplugged while being enumerated
            finally:
                conn.close()

    def _describe(self, path: Path, conn: _Connection) -> _RelayDevice:
        bus, _ = conn.request({"op": "bus"})
        raw = _control_in(conn, 0x80, GET_DESCRIPTOR, DESC_DEVICE << 8, 0, 18)
        device = _parse_device(raw, bus)
        configurations = []
        for index in range(device.bNumConfigurations):
            head = _control_in(conn, 0x80, GET_DESCRIPTOR, DESC_CONFIGURATION << 8 | index, 0, 9)
            (total,) = struct.unpack_from("<H", head, 2)
            full = _control_in(conn, 0x80, GET_DESCRIPTOR, DESC_CONFIGURATION << 8 | index, 0, total)
            configurations.append(_parse_configuration(full))
        return _RelayDevice(path, device, configurations)

    def get_device_descriptor(self, dev: _RelayDevice) -> _Descriptor:
        return dev.device

    def get_configuration_descriptor(self, dev: _RelayDevice, config: int) -> _Descriptor:
        return self._config(dev, config).descriptor

    def get_interface_descriptor(self, dev: _RelayDevice, intf: int, alt: int, config: int) -> _Descriptor:
        return self._interface(dev, intf, alt, config).descriptor

    def get_endpoint_descriptor(self, dev: _RelayDevice, ep: int, intf: int, alt: int, config: int) -> _Descriptor:
        endpoints = self._interface(dev, intf, alt, config).endpoints
        if not 0 <= ep < len(endpoints):
            raise IndexError(f"no endpoint {ep}")
        return endpoints[ep]

    @staticmethod
    def _config(dev: _RelayDevice, config: int) -> _Configuration:
        if not 0 <= config < len(dev.configurations):
            raise IndexError(f"no configuration {config}")
        return dev.configurations[config]

    def _interface(self, dev: _RelayDevice, intf: int, alt: int, config: int) -> _Interface:
        interfaces = self._config(dev, config).interfaces
        if not 0 <= intf < len(interfaces) or not 0 <= alt < len(interfaces[intf]):
            raise IndexError(f"no interface {intf} alternate {alt}")
        return interfaces[intf][alt]

    # -- handles ------------------------------------------------------------------------------

    def open_device(self, dev: _RelayDevice) -> _Connection:
        try:
            conn = _Connection(dev.path)
        except OSError as e:
            raise _usb_error("no-device", f"relay {dev.path}: {e}") from e
        bus, _ = conn.request({"op": "bus"})
        if bus.get("address") != dev.device.address:
            conn.close()  # the socket now serves a re-enumerated device: this one is gone
            raise _usb_error("no-device", "the device was re-enumerated")
        return conn

    def close_device(self, dev_handle: _Connection) -> None:
        dev_handle.close()

    def set_configuration(self, dev_handle: _Connection, config_value: int) -> None:
        dev_handle.request({"op": "ctrl", "request_type": 0x00, "request": 0x09, "value": config_value,
                            "index": 0, "length": 0})

    def get_configuration(self, dev_handle: _Connection) -> int:
        return _control_in(dev_handle, 0x80, 0x08, 0, 0, 1)[0]

    def claim_interface(self, dev_handle: _Connection, intf: int) -> None:
        dev_handle.request({"op": "claim", "interface": intf})

    def release_interface(self, dev_handle: _Connection, intf: int) -> None:
        dev_handle.request({"op": "release", "interface": intf})

    def is_kernel_driver_active(self, dev_handle: _Connection, intf: int) -> bool:
        answer, _ = dev_handle.request({"op": "kernel_driver", "interface": intf, "action": "query"})
        return bool(answer["active"])

    def detach_kernel_driver(self, dev_handle: _Connection, intf: int) -> None:
        dev_handle.request({"op": "kernel_driver", "interface": intf, "action": "detach"})

    def attach_kernel_driver(self, dev_handle: _Connection, intf: int) -> None:
        dev_handle.request({"op": "kernel_driver", "interface": intf, "action": "attach"})

    # -- transfers --------------------------------------------------------------------------

    def bulk_write(self, dev_handle: _Connection, ep: int, intf: int, data: Any, timeout: int) -> int:
        answer, _ = dev_handle.request({"op": "bulk_out", "endpoint": ep, "timeout_ms": timeout}, _bytes_of(data),
                                       wait_s=timeout / 1000)
        return int(answer["written"])

    def bulk_read(self, dev_handle: _Connection, ep: int, intf: int, buff: Any, timeout: int) -> int:
        size = len(buff) * buff.itemsize
        _, payload = dev_handle.request({"op": "bulk_in", "endpoint": ep, "length": size, "timeout_ms": timeout},
                                        wait_s=timeout / 1000)
        memoryview(buff).cast("B")[: len(payload)] = payload
        return len(payload)

    def ctrl_transfer(self, dev_handle: _Connection, bmRequestType: int, bRequest: int, wValue: int,
                      wIndex: int, data: Any, timeout: int) -> Any:
        size = len(data) * data.itemsize
        header = {"op": "ctrl", "request_type": bmRequestType, "request": bRequest, "value": wValue,
                  "index": wIndex, "length": size}
        if bmRequestType & 0x80 == 0:  # OUT: the data stage goes to the device
            answer, _ = dev_handle.request(header, bytes(data), wait_s=timeout / 1000)
            return int(answer.get("written", size))
        _, payload = dev_handle.request(header, wait_s=timeout / 1000)
        memoryview(data).cast("B")[: len(payload)] = payload
        return len(payload)


def _control_in(conn: _Connection, request_type: int, request: int, value: int, index: int, length: int) -> bytes:
    _, payload = conn.request({"op": "ctrl", "request_type": request_type, "request": request, "value": value,
                               "index": index, "length": length})
    return payload


def _parse_device(raw: bytes, bus: dict[str, Any]) -> _Descriptor:
    if len(raw) < 18 or raw[1] != DESC_DEVICE:
        raise _usb_error("io", "malformed device descriptor")
    names = ("bLength", "bDescriptorType", "bcdUSB", "bDeviceClass", "bDeviceSubClass", "bDeviceProtocol",
             "bMaxPacketSize0", "idVendor", "idProduct", "bcdDevice", "iManufacturer", "iProduct",
             "iSerialNumber", "bNumConfigurations")
    fields: dict[str, Any] = dict(zip(names, struct.unpack_from("<BBHBBBBHHHBBBB", raw)))
    fields.update(bus=bus["bus"], address=bus["address"], port_number=bus["port"], port_numbers=(bus["port"],),
                  speed=bus["speed"])
    return _Descriptor(fields)


def _parse_configuration(raw: bytes) -> _Configuration:
    """Walk a full configuration descriptor: interfaces, each followed by its endpoints."""
    names = ("bLength", "bDescriptorType", "wTotalLength", "bNumInterfaces", "bConfigurationValue",
             "iConfiguration", "bmAttributes", "bMaxPower")
    if len(raw) < 9 or raw[1] != DESC_CONFIGURATION:
        raise _usb_error("io", "malformed configuration descriptor")
    configuration = _Configuration(_Descriptor(dict(zip(names, struct.unpack_from("<BBHBBBBB", raw)))), [])
    current: _Interface | None = None
    offset = raw[0]
    while offset + 2 <= len(raw):
        length, kind = raw[offset], raw[offset + 1]
        if length < 2 or offset + length > len(raw):
            raise _usb_error("io", "malformed descriptor inside the configuration")
        if kind == DESC_INTERFACE:
            interface_names = ("bLength", "bDescriptorType", "bInterfaceNumber", "bAlternateSetting",
                               "bNumEndpoints", "bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol",
                               "iInterface")
            fields = dict(zip(interface_names, struct.unpack_from("<BBBBBBBBB", raw, offset)))
            current = _Interface(_Descriptor(fields), [])
            if fields["bAlternateSetting"] == 0:
                configuration.interfaces.append([current])
            elif configuration.interfaces:
                configuration.interfaces[-1].append(current)
        elif kind == DESC_ENDPOINT and current is not None:
            endpoint_names = ("bLength", "bDescriptorType", "bEndpointAddress", "bmAttributes", "wMaxPacketSize",
                              "bInterval")
            fields = dict(zip(endpoint_names, struct.unpack_from("<BBBBHB", raw, offset)))
            fields.update(bRefresh=0, bSynchAddress=0)
            current.endpoints.append(_Descriptor(fields))
        offset += length
    return configuration
