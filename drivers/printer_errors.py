"""What can go wrong talking to a card printer, as types.

Every error carries `.fault`: the printer-level Fault it shows (None when it says nothing
about the printer, e.g. a refused parameter). Anything about the link itself is LINK_LOST.
"""

from __future__ import annotations

from drivers.faults import Fault


class PrinterError(Exception):
    """Base of every error the printer driver raises."""

    def __init__(self, message: str, fault: Fault | None = None) -> None:
        super().__init__(message)
        self.fault = fault


class LinkError(PrinterError):
    """The link to the printer cannot be opened or has failed (device missing, closed, I/O error)."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(message, Fault.LINK_LOST)
        self.device = device


class ReplyTimeout(PrinterError):
    """The printer did not send a complete reply before the deadline."""

    def __init__(self, device: str, timeout: float) -> None:
        super().__init__(
            f"the printer on {device} did not answer within {timeout:g} s; "
            "check that it is switched on and not showing an error",
            Fault.LINK_LOST,
        )
        self.device = device
        self.timeout = timeout


class ProtocolError(PrinterError):
    """The printer sent something that is not a valid reply (garbage, wrong shape)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None)


class CommandRejected(PrinterError):
    """The printer answered `ERR ...` to a command."""

    def __init__(self, command: str, reply: str, fault: Fault | None) -> None:
        super().__init__(f"the printer refused {command}: {reply}", fault)
        self.command = command
        self.reply = reply
