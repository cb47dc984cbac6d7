"""What the operators' tools may use of a running station: the typed seam between the daemon
(agent.station, which implements it) and the control socket, status and metrics (which read it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from agent.core.config import PrinterConfig, StationConfig
from agent.core.printer_snapshot import PrinterSnapshot
from agent.journal import Journal
from agent.upstream.stock_forecast import StockPicture
from drivers.evolis.printer import EvolisPrinter


class PrinterHandle(Protocol):
    """One printer's worker, as the operators' tools reach it."""

    name: str
    config: PrinterConfig
    language: str
    paused: threading.Event
    link_lock: Any  # an RLock, held around every exchange with the printer
    printer: EvolisPrinter | None
    trace_sink: Callable[[str, bytes], None] | None
    hold_reason: Callable[[], str | None]

    def snapshot(self) -> PrinterSnapshot: ...


class UpstreamLink(Protocol):
    online: bool


class RunningStation(Protocol):
    config: StationConfig
    journal: Journal
    work: threading.Condition
    stop: threading.Event

    @property
    def workers(self) -> Sequence[PrinterHandle]: ...

    @property
    def intake(self) -> UpstreamLink: ...

    def stock(self) -> StockPicture: ...
