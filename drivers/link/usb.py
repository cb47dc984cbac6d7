"""A card printer on USB, through pyusb: the same `Link` as the serial one.

The printer is a USB printer-class device (interface class 7) with one bulk OUT endpoint for
commands and one bulk IN endpoint for replies (each ended by NUL). It is found by vendor id,
optionally product id, the printer interface and its serial string; its endpoints are found by
direction, never by number. While the link is open the kernel's printer driver (usblp) is
detached from the interface, and bound again on close, so the system's print spooler gets the
printer back when printstation lets go.

pyusb's default backend (libusb) reaches real printers; `drivers.link.relay` reaches the
virtual printer the same way, through a socket.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import usb.core
import usb.util

from drivers.link.base import Link, Trace
from drivers.printer_errors import LinkError

__all__ = ["PRINTER_CLASS", "UsbAddress", "UsbLink"]

PRINTER_CLASS = 7
# Extra seconds a bulk write may take beyond its bytes at the slowest rate we accept.
WRITE_MARGIN_S = 5.0
SLOWEST_BYTES_PER_S = 100_000  # far below full speed; only a stalled printer is slower
# Replies are a few dozen bytes; reading whole packets avoids libusb's overflow error.
READ_PACKETS = 16
DISCARD_READS = 16  # bounded: a printer that keeps talking is noise, not stale input


@dataclass(frozen=True)
class UsbAddress:
    """Which USB printer: vendor id, optional product id and serial string, optional relay sockets."""

    vendor_id: int
    product_id: int | None = None
    serial: str | None = None
    relays: tuple[Path, ...] = ()

    def __str__(self) -> str:
        ids = f"{self.vendor_id:04x}" + (f":{self.product_id:04x}" if self.product_id is not None else "")
        return f"usb://{ids}" + (f"?serial={self.serial}" if self.serial else "")


USB_FULL_SPEED_BYTES_PER_S = 1_000_000  # effective bulk rate of a full-speed printer (an assumption)


class UsbLink(Link):
    """An open USB printer. Raises LinkError from the constructor when it is not found, not
    accessible, or held by another program, and from every call once it is unplugged.
    """

    DRAIN_ONLY_AFTER_TROUBLE = True  # packets carry only the printer's answers: drained after trouble

    def transfer_seconds(self, size: int) -> float:
        return size / USB_FULL_SPEED_BYTES_PER_S

    def __init__(self, address: UsbAddress, *, trace: Trace | None = None) -> None:
        super().__init__(str(address), trace)
        self.address = address
        self._dev: usb.core.Device | None = None
        self._detached = False
        self._interface = 0
        try:
            self._open()
        except usb.core.USBError as e:
            self._release()
            raise LinkError(self.device, _failure(self.device, e)) from e
        except LinkError:
            self._release()
            raise

    def _open(self) -> None:
        backend = None
        if self.address.relays:
            from drivers.link.relay import RelayBackend  # only the virtual printer needs it

            backend = RelayBackend(self.address.relays)
        try:
            candidates = list(usb.core.find(find_all=True, backend=backend, idVendor=self.address.vendor_id))
        except usb.core.NoBackendError as e:
            raise LinkError(self.device, "cannot reach USB printers: libusb is not installed "
                                         "(Debian: apt-get install libusb-1.0-0)") from e
        found = [dev for dev in candidates if self._wanted(dev)]
        if not found:
            raise LinkError(
                self.device,
                f"no USB printer {self.device} is connected; check that the printer is switched on, its USB "
                "cable is plugged in, and the vendor id and serial number in the configuration are right",
            )
        if len(found) > 1:
            raise LinkError(
                self.device,
                f"{len(found)} USB printers match {self.device}; add ?serial=<its serial number> to the link",
            )
        dev = self._dev = found[0]
        try:
            config = dev.get_active_configuration()
        except usb.core.USBError:
            dev.set_configuration()  # unconfigured: take the first configuration
            config = dev.get_active_configuration()
        interface = usb.util.find_descriptor(config, bInterfaceClass=PRINTER_CLASS)
        if interface is None:
            raise LinkError(self.device, f"{self.device} has no printer interface (USB class 7)")
        self._interface = interface.bInterfaceNumber
        if _kernel_driver_active(dev, self._interface):
            dev.detach_kernel_driver(self._interface)
            self._detached = True
        usb.util.claim_interface(dev, self._interface)
        self._out = _bulk_endpoint(interface, usb.util.ENDPOINT_OUT)
        self._in = _bulk_endpoint(interface, usb.util.ENDPOINT_IN)
        if self._out is None or self._in is None:
            raise LinkError(self.device, f"{self.device} lacks a bulk OUT and a bulk IN endpoint")

    def _wanted(self, dev: usb.core.Device) -> bool:
        if self.address.product_id is not None and dev.idProduct != self.address.product_id:
            return False
        if not any(usb.util.find_descriptor(cfg, bInterfaceClass=PRINTER_CLASS) is not None for cfg in dev):
            return False
        if self.address.serial is None:
            return True
        try:
            return dev.serial_number == self.address.serial
        except (usb.core.USBError, ValueError):
            return False  # a device that cannot tell its serial is not the one asked for

    def send(self, data: bytes) -> None:
        out = self._endpoint(self._out)
        if self._trace is not None:
            self._trace("tx", data)
        allowed = WRITE_MARGIN_S + len(data) / SLOWEST_BYTES_PER_S
        try:
            written = out.write(data, timeout=_ms(allowed))
        except usb.core.USBTimeoutError as e:
            raise LinkError(
                self.device,
                f"the printer on {self.device} stopped taking data (nothing moved for {allowed:.0f} s); "
                "check that it is switched on and not showing an error",
            ) from e
        except usb.core.USBError as e:
            raise LinkError(self.device, _failure(self.device, e)) from e
        if written != len(data):
            raise LinkError(self.device, f"the printer on {self.device} took {written} of {len(data)} bytes")

    def _read_some(self, timeout: float) -> bytes:
        endpoint = self._endpoint(self._in)
        try:
            return bytes(endpoint.read(READ_PACKETS * endpoint.wMaxPacketSize, timeout=_ms(timeout)))
        except usb.core.USBTimeoutError:
            return b""
        except usb.core.USBError as e:
            raise LinkError(self.device, _failure(self.device, e)) from e

    def _discard_input(self) -> None:
        endpoint = self._endpoint(self._in)
        for _ in range(DISCARD_READS):
            try:
                if not endpoint.read(READ_PACKETS * endpoint.wMaxPacketSize, timeout=1):
                    return
            except usb.core.USBTimeoutError:
                return
            except usb.core.USBError as e:
                raise LinkError(self.device, _failure(self.device, e)) from e

    def close(self) -> None:
        """Release the interface and give the printer back to the kernel's driver. Harmless twice."""
        self._release()

    def _release(self) -> None:
        dev, self._dev = self._dev, None
        if dev is None:
            return
        # An unplugged printer has nothing left to release: each step may fail, none must stop the rest.
        try:
            usb.util.release_interface(dev, self._interface)
        except usb.core.USBError:
            pass
        if self._detached:
            try:
                dev.attach_kernel_driver(self._interface)
            except usb.core.USBError:
                pass
        usb.util.dispose_resources(dev)

    def _endpoint(self, endpoint: usb.core.Endpoint | None) -> usb.core.Endpoint:
        if self._dev is None or endpoint is None:
            raise LinkError(self.device, f"the link to the printer on {self.device} is closed")
        return endpoint


def _bulk_endpoint(interface: usb.core.Interface, direction: int) -> usb.core.Endpoint | None:
    return usb.util.find_descriptor(
        interface,
        custom_match=lambda e: usb.util.endpoint_direction(e.bEndpointAddress) == direction
        and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK,
    )


def _kernel_driver_active(dev: usb.core.Device, interface: int) -> bool:
    try:
        return bool(dev.is_kernel_driver_active(interface))
    except NotImplementedError:  # platforms without kernel drivers to detach (Windows, macOS)
        return False


def _ms(seconds: float) -> int:
    # pyusb takes milliseconds, and 0 would mean "wait for ever".
    return max(1, int(seconds * 1000))


def _failure(device: str, e: usb.core.USBError) -> str:
    if e.errno == errno.ENODEV:
        return (
            f"lost the USB printer {device} (unplugged or switched off); check the cable and the power, "
            "printstation reconnects by itself when it is back"
        )
    if e.errno in (errno.EACCES, errno.EPERM):
        return (
            f"cannot open the USB printer {device}: permission denied; install the udev rule from systemd/ "
            "so the service user may use it"
        )
    if e.errno == errno.EBUSY:
        return f"the USB printer {device} is in use by another program (a second printstation, a vendor tool?)"
    return f"USB error on the printer {device}: {e}"
