"""One printer as its worker last saw it: the one projection that status, the control socket,
the metrics, telemetry and the morning report all read (taken by `PrinterWorker.snapshot()`).

Frozen: a reader holds a copy, never the worker's live state.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrinterSnapshot:
    name: str
    state: str = "starting"              # starting | idle | processing | stopped (IPP words)
    reasons: tuple[str, ...] = ()        # IPP printer-state-reasons, and paused / outside-print-window
    faults: tuple[str, ...] = ()         # Fault values behind `reasons`, for operator texts
    job_id: str | None = None
    paused: bool = False                 # by the operator (pause, drain)
    printed: int = 0                     # cards out since the agent started
    spoiled: int = 0
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    ribbon_left: int | None = None       # cards the ribbon can still print; None: not read yet
    card_counter: int | None = None
    capabilities: dict[str, object] | None = None  # what the printer answers beyond the guide

    @property
    def draining(self) -> bool:
        """Paused while a card is still in the printer: not yet safe to open."""
        return self.paused and self.state == "processing"
