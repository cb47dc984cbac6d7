"""Open a printer link by URL, as pyserial's `serial_for_url` does: the scheme picks the module.

    serial:///dev/ttyUSB0?baud=115200     drivers/link/base.py (SerialLink)
    usb://0f49:1001?serial=SIMP00001       drivers/link/usb.py (pyusb), optionally through the relay

The base module (drivers/link/base.py) knows no implementation; this table knows them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from drivers.link.base import DEFAULT_BAUD, Link, SerialLink, Trace


@dataclass(frozen=True)
class LinkAddress:
    """A printer link URL, read but not opened: which device, and how."""

    scheme: str                       # "serial" or "usb"
    path: str | None = None           # serial: the device, e.g. /dev/ttyUSB0
    baud: int = DEFAULT_BAUD          # serial
    vendor_id: int | None = None      # usb
    product_id: int | None = None     # usb, optional
    serial: str | None = None         # usb: the printer's serial string, optional
    relay: Path | None = None         # usb: a relay socket given in the URL


def parse_link(url: str) -> LinkAddress:
    """Read a printer link URL without opening anything (the configuration checks it so).

    Raises ValueError naming the URL, what is wrong and the form it should take.
    """
    parts = urlsplit(url)
    if parts.scheme == "serial":
        return _parse_serial(url, parts.netloc, parts.path, parts.query)
    if parts.scheme == "usb":
        return _parse_usb(url, parts.netloc, parts.path, parts.query)
    if not parts.scheme and url.startswith("/dev/"):
        raise ValueError(f"{url}: a device path alone is not a link; write serial://{url}?baud={DEFAULT_BAUD}")
    raise ValueError(f"{url}: unknown printer link {parts.scheme!r}; expected serial:///dev/... or usb://VID:PID")


def open_link(url: str, *, trace: Trace | None = None) -> Link:
    """Open the printer link named by `url` (see the module docstring for the forms).

    Raises ValueError naming the URL for an unknown scheme or a bad query, and LinkError
    when the device cannot be opened (missing, no permission, in use).
    """
    address = parse_link(url)
    if address.scheme == "serial":
        assert address.path is not None
        return SerialLink(address.path, address.baud, trace=trace)
    # Imported here: pyusb is needed only by stations with a USB printer.
    from drivers.link.usb import UsbAddress, UsbLink
    from drivers.link.relay import relay_paths_from_env

    assert address.vendor_id is not None
    relays = (address.relay,) if address.relay else tuple(relay_paths_from_env())
    return UsbLink(UsbAddress(address.vendor_id, address.product_id, address.serial, relays), trace=trace)


def _parse_usb(url: str, host: str, path: str, query: str) -> LinkAddress:
    ids = re.fullmatch(r"(?:0x)?([0-9a-fA-F]{1,4})(?::(?:0x)?([0-9a-fA-F]{1,4}))?", host)
    if ids is None or path not in ("", "/"):
        raise ValueError(f"{url}: a USB link names the vendor and product id in hex, e.g. usb://0f49:1001?serial=...")
    options = _query(url, query, allowed={"serial", "relay"})
    if "serial" in options and not options["serial"]:
        raise ValueError(f"{url}: serial is empty; give the printer's serial number or leave the option out")
    return LinkAddress("usb", vendor_id=int(ids.group(1), 16),
                       product_id=int(ids.group(2), 16) if ids.group(2) else None,
                       serial=options.get("serial"), relay=Path(options["relay"]) if options.get("relay") else None)


def _parse_serial(url: str, host: str, path: str, query: str) -> LinkAddress:
    if host or not path:
        raise ValueError(f"{url}: a serial link names a device path, e.g. serial:///dev/ttyUSB0?baud=115200")
    options = _query(url, query, allowed={"baud"})
    baud = DEFAULT_BAUD
    if "baud" in options:
        text = options["baud"]
        if not text.isdigit() or not 50 <= int(text) <= 4_000_000:
            raise ValueError(f"{url}: baud must be a whole number of bits a second, e.g. 115200; got {text!r}")
        baud = int(text)
    return LinkAddress("serial", path=path, baud=baud)


def _query(url: str, query: str, *, allowed: set[str]) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as e:
        raise ValueError(f"{url}: cannot read the options after '?': {e}") from e
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise ValueError(f"{url}: unknown option {key!r}; known: {', '.join(sorted(allowed))}")
        if key in options:
            raise ValueError(f"{url}: option {key!r} given twice")
        options[key] = value
    return options


