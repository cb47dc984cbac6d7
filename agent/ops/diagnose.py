"""`printstation diagnose`: what a technician needs to know about each printer, read from the printer itself.

Probes the configured printers and the attached ones (serial ports under /dev/printstation,
USB printer-class devices through pyusb when it is installed). A printer the daemon holds is
asked through the daemon's control socket, which probes it between two cards on its own link.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from drivers.evolis.printer import EvolisPrinter
from drivers.faults import Fault
from drivers.link.url import open_link
from drivers.printer_errors import PrinterError

Trace = Callable[[str, bytes], None]

# Where the udev rules (systemd/70-printstation.rules) name the printers' ports.
ATTACHED_GLOB = "/dev/printstation/tty-*"
USB_PRINTER_CLASS = 7


@dataclass
class FaultReport:
    fault: str
    message: str
    remedy: str


@dataclass
class PrinterReport:
    """One printer as it answered the probe; `error` set when it could not be reached."""

    name: str
    link: str
    reachable: bool = False
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    counters: dict[str, int] = field(default_factory=dict)
    ribbon: dict[str, object] = field(default_factory=dict)
    sensors: dict[str, bool] = field(default_factory=dict)
    # What the printer answers beyond the guide's documented reads (status words, feeder
    # sensor, ACK/NACK protocol): found by asking, never assumed.
    capabilities: dict[str, object] = field(default_factory=dict)
    faults: list[FaultReport] = field(default_factory=list)
    error: str | None = None
    via: str = "direct"  # direct | daemon
    trace: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


class TraceRecorder:
    """Collects every byte both ways, with the time since the probe began."""

    MAX_SHOWN = 120  # bytes of one chunk kept in the report; panels are not sent by a probe

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lines: list[dict[str, str]] = []

    def __call__(self, direction: str, data: bytes) -> None:
        shown = data[: self.MAX_SHOWN]
        self.lines.append({"t": f"{time.monotonic() - self.started:.3f}", "dir": direction,
                           "bytes": shown.hex(" "), "text": shown.decode("ascii", "replace").encode("unicode_escape").decode(),
                           "length": str(len(data))})


def probe(printer: EvolisPrinter, report: PrinterReport, lang: str) -> PrinterReport:
    """Fill `report` from the printer's answers. Raises PrinterError when it stops answering."""
    identity = printer.identity()
    report.model, report.firmware, report.serial = identity.model, identity.firmware, identity.serial
    capabilities = printer.detect_capabilities()
    report.capabilities = capabilities.as_json()
    counters = printer.counters()
    report.counters = {"cards": counters.cards, "panels": counters.panels}
    status = printer.status()
    report.ribbon = {"type": printer.ribbon_type(), "cards_left": counters.ribbon_left, "low": status.ribbon_low}
    report.sensors = {"cover_open": printer.cover_open(), "card_inside": printer.card_present(),
                      "feeder_empty": Fault.FEEDER_EMPTY in status.faults,
                      "ribbon_ended": printer.ribbon_ended(), "busy": status.busy,
                      "cleaning_recommended": status.cleaning_recommended}
    report.faults = [FaultReport(f.value, f.message(lang), f.remedy(lang)) for f in sorted(status.faults, key=lambda f: f.value)]
    if status.unknown_warnings or status.unknown_errors:
        report.faults.append(FaultReport(
            "unknown", f"status bits this agent has no name for: warning {status.unknown_warnings:#x}, error {status.unknown_errors:#x}",
            "note the bits and the firmware version, and ask the vendor's support"))
    report.reachable = True
    return report


def probe_link(name: str, url: str, lang: str, *, trace: bool = False) -> PrinterReport:
    """Open `url` and probe the printer on it; never raises: a failure is the report's `error`."""
    report = PrinterReport(name=name, link=url)
    recorder = TraceRecorder() if trace else None
    try:
        link = open_link(url, trace=recorder)
    except (ValueError, PrinterError) as exc:
        return unreachable(report, str(exc), lang)
    try:
        probe(EvolisPrinter(link), report, lang)
    except PrinterError as exc:
        unreachable(report, str(exc), lang)
    finally:
        link.close()
        if recorder is not None:
            report.trace = recorder.lines
    return report


def unreachable(report: PrinterReport, error: str, lang: str) -> PrinterReport:
    """Mark `report` as a printer that cannot be reached: the error, and the link-lost fault with its remedy."""
    report.error = error
    report.faults = [FaultReport(Fault.LINK_LOST.value, Fault.LINK_LOST.message(lang), Fault.LINK_LOST.remedy(lang))]
    return report


def attached_serial_links(configured: set[str]) -> list[tuple[str, str]]:
    """(name, link) of printer ports the udev rules named that the configuration does not list."""
    found = []
    for path in sorted(glob.glob(ATTACHED_GLOB)):
        url = f"serial://{path}"
        if not any(c.startswith(url) for c in configured):
            found.append((path.rsplit("/", 1)[-1], url))
    return found


def attached_usb_printers() -> list[dict[str, str]]:
    """USB printer-class devices (class 7 on any interface), as vendor:product and serial; [] without pyusb."""
    try:
        import usb.core
        import usb.util
    except ImportError:
        return []
    devices = []
    try:
        for dev in usb.core.find(find_all=True) or []:
            classes = {intf.bInterfaceClass for cfg in dev for intf in cfg}
            if USB_PRINTER_CLASS in classes:
                try:
                    serial = usb.util.get_string(dev, dev.iSerialNumber) if dev.iSerialNumber else None
                except (usb.core.USBError, ValueError):
                    serial = None  # reading strings needs access to the device; the ids still help
                devices.append({"usb": f"{dev.idVendor:04x}:{dev.idProduct:04x}", "serial": serial or "",
                                "bus": f"{dev.bus}-{dev.address}"})
    except usb.core.NoBackendError:
        return []
    return devices


# Capability names for the technician's page: (Indonesian, English).
_CAPABILITY_WORDS: dict[str, tuple[str, str]] = {
    "status_words": ("kata status", "status words"),
    "feeder_sensor": ("sensor pengumpan", "feeder sensor"),
    "ack_nack": ("protokol ACK/NACK", "ACK/NACK protocol"),
}


def _capability_value(value: object, en: bool) -> str:
    """A command the printer answers (`Rpst`), or yes / no."""
    if isinstance(value, str):
        return value
    return ("yes" if en else "ya") if value else ("no" if en else "tidak")


def render_text(reports: list[PrinterReport], usb: list[dict[str, str]], lang: str) -> str:
    """The technician's page: one block a printer, faults with their remedies, then the trace."""
    en = lang == "en"
    lines: list[str] = []
    for r in reports:
        lines.append(f"== {r.name}  ({r.link}){'  [' + ('via the service' if en else 'melalui layanan') + ']' if r.via == 'daemon' else ''}")
        if not r.reachable:
            lines.append(f"   {'not reachable' if en else 'tidak terjangkau'}: {r.error}")
        else:
            lines.append(f"   model {r.model}, firmware {r.firmware}, serial {r.serial}")
            lines.append(f"   {'counters' if en else 'penghitung'}: " + ", ".join(f"{k} {v}" for k, v in r.counters.items()))
            lines.append(f"   ribbon: {r.ribbon.get('type')}, {r.ribbon.get('cards_left')} "
                         f"{'cards left' if en else 'kartu lagi'}{' (low)' if r.ribbon.get('low') and en else ' (hampir habis)' if r.ribbon.get('low') else ''}")
            lines.append(f"   {'sensors' if en else 'sensor'}: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in r.sensors.items()))
            lines.append(f"   {'capabilities' if en else 'kemampuan'}: "
                         + ", ".join(f"{_CAPABILITY_WORDS[k][en]} {_capability_value(v, en)}" for k, v in r.capabilities.items()))
        if r.faults:
            for f in r.faults:
                lines.append(f"   ! {f.fault}: {f.message}")
                lines.append(f"     -> {f.remedy}")
        elif r.reachable:
            lines.append(f"   {'no faults' if en else 'tidak ada gangguan'}")
        for t in r.trace:
            arrow = ">>" if t["dir"] == "tx" else "<<"
            lines.append(f"   {t['t']:>8} {arrow} {t['text']}   [{t['bytes']}]")
    for dev in usb:
        lines.append(f"== USB {dev['usb']} serial {dev['serial'] or '?'} (bus {dev['bus']}): "
                     + ("printer-class device, not in the configuration" if en else "perangkat kelas printer, tidak ada di konfigurasi"))
    return "\n".join(lines)
