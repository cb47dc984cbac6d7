"""Is what the configuration names attached to this machine now? For `config check`: a printer or
reader that is missing is a warning (it may be plugged in later; `run` waits for it)."""

from __future__ import annotations

from pathlib import Path

from drivers.link.relay import relay_paths_from_env
from drivers.link.url import LinkAddress


class MachinePresence:
    """Looks at /dev, USB (pyusb, or the relay sockets a virtual printer uses) and PC/SC (pcscd)."""

    def __init__(self) -> None:
        self._readers: list[str] | None = None
        self._readers_error: str | None = None
        self._usb: list[dict[str, str]] | None = None

    def link(self, address: LinkAddress) -> str | None:
        if address.scheme == "serial":
            assert address.path is not None
            return None if Path(address.path).exists() else f"names {address.path}, which this machine does not have now"
        relays = [address.relay] if address.relay else relay_paths_from_env()
        if relays:
            missing = [str(p) for p in relays if not Path(p).exists()]
            return f"goes through the USB relay {', '.join(missing)}, which is not there" if missing else None
        wanted = f"{address.vendor_id:04x}" + (f":{address.product_id:04x}" if address.product_id is not None else "")
        if self._usb is None:
            from agent.ops.diagnose import attached_usb_printers

            self._usb = attached_usb_printers()
        for device in self._usb:
            if device["usb"].startswith(wanted) and (not address.serial or device["serial"] in ("", address.serial)):
                return None
        serial = f" with serial {address.serial}" if address.serial else ""
        return f"names USB printer {wanted}{serial}, which this machine does not see now"

    def reader(self, name: str) -> tuple[str, str] | None:
        if self._readers is None and self._readers_error is None:
            try:
                from smartcard.System import readers

                self._readers = [str(r) for r in readers()]
            except Exception as exc:  # noqa: BLE001 - pcscd down, no libpcsclite: say so, never crash
                self._readers_error = f"cannot be looked for: PC/SC does not answer ({type(exc).__name__}: {exc})"
        if self._readers_error:
            return self._readers_error, "start pcscd (systemctl start pcscd.socket) and check again"
        assert self._readers is not None
        if name in self._readers:
            return None
        listed = ", ".join(repr(r) for r in self._readers) or "none"
        return (f"is {name!r}, which PC/SC does not list now (it lists {listed})",
                "use the reader's name exactly as PC/SC lists it, and check that the printer's encoder is plugged in")
