"""The virtual printer's parameter memory: what the guide's `P` (and `A`) commands set and the
`R` commands read back (Evolis Programming Guide A5013 rev D2/E, section 8 "P" and "R").

Values are kept as the text the printer would answer, keyed by the setting's name
(`contrast.y`, `insertion`, `error_mode`, ...). Most live in the printer's non-volatile
memory and come back after a power cycle (saved with the printer's state); the guide names two
exceptions, kept here as volatile: `Pem` without its `s` option ("Further a switch ON/OFF of
the printer, the following parameter becomes null") and the framing characters of `Psc`
(**assumption**: the guide gives a way back, `Psc` alone, and no word on memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Defaults from the guide where it gives one (contrast 10, ribbon offset 552, magnetic start
# 512, magnetic length 1032, track start 24, smart-card offset 1158); the rest are assumptions
# in the same style (a mid value of 10, offsets 0).
DEFAULTS: dict[str, str] = {
    **{f"contrast.{c}": "10" for c in ("y", "m", "c", "kb", "kw", "kr", "kbl", "kgr", "kgo", "ksi", "ksc", "o")},
    **{f"luminosity.{c}": "10" for c in ("y", "m", "c")},
    **{f"speed.{c}": "10" for c in ("y", "m", "c", "k", "o")},
    **{f"potentiometer.{s}": "128" for s in ("c", "m", "o", "p", "r", "f")},
    "bitmap_mode": "p",  # Pbm
    "kit_number": "120000001",  # Pkn: resistance x 10, serial
    "insertion": "F",  # Pmi
    "insertion_ejection": "0;0",  # Piem
    "feeder_type": "S2",  # Pfm
    "mono_speed": "s;s",  # Pmk
    "motor_speed": "100",  # Pms
    "lines": "1016",  # Pnl
    "lines_y": "648",  # Pnw
    "mono_heating": "s",  # Ppk
    "parallel": "0",  # Ppn
    "ribbon_sync": "0",  # Prm
    "ribbon_offset": "552",  # Pro
    "ribbon_size": "L;A",  # Prs
    "smart_signal": "0;u",  # Psm
    "start_position": "0",  # Psp
    "offset.x": "0",  # Px
    "offset.y": "0",  # Py
    "write_bitmap": "k",  # Pwb
    "write_check": "0",  # Pwcs
    "write_justify": "l",  # Pwj
    "write_mode": "s",  # Pwm
    "write_rotation": "0",  # Pwr
    "contactless_offset": "0",  # Poc
    "smart_offset": "1158",  # Pos
    "magnetic.start": "512",  # Pmbs
    "magnetic.coercivity": "h",  # Pmc
    **{f"magnetic.density.{t}": "210" if t != "2" else "75" for t in ("1", "2", "3")},  # Pmd
    "magnetic.length": "1032",  # Pml
    **{f"magnetic.format.{t}": t for t in ("1", "2", "3")},  # Pmt: ISO 1, 2, 3
    **{f"magnetic.control.{t}": "0;0;ON" for t in ("1", "2", "3")},  # Pmtc
    **{f"magnetic.track_start.{t}": "24" for t in ("1", "2", "3")},  # Pmts
    "magnetic.motor_speed": "100",
    # Sent by the vendor's Windows driver on every job, in neither revision of the guide:
    # stored as given, meaning unknown (docs/PROTOCOLS.md, "Vendor commands").
    "vendor.Pdt": "",
    "vendor.Ppws": "",
    # Pcom: serial ports as the guide's example "(ESC)Pcom;1;9600;N;8;1"; the printer's serial
    # port here is on (a technician enabled it), 115200 baud, no protocol.
    "com.1": "115200;N;8;1;NONE;E",
    "com.2": "9600;N;8;1;NONE;D",
}

# Pem: the mode (0..3, 16, 18) and the two flags the guide lets a host set apart.
ERROR_MODE_DEFAULT = 0


@dataclass
class ErrorManagement:
    """`Pem` / `Rem`: the current mode and the one saved for power-on, and the ACK/NACK protocol."""

    mode: int = ERROR_MODE_DEFAULT
    saved: int = ERROR_MODE_DEFAULT
    ack_nack: bool = False
    ack_nack_saved: bool = False
    keep_going_on_magnetic_error: bool = False


@dataclass
class Settings:
    """Current parameter values; `to_json` is what the printer keeps through a power cycle."""

    values: dict[str, str] = field(default_factory=lambda: dict(DEFAULTS))
    errors: ErrorManagement = field(default_factory=ErrorManagement)
    # Psc: start, separator, end characters (volatile).
    framing: tuple[int, int, int] = (27, 59, 13)

    def get(self, key: str) -> str:
        return self.values[key]

    def set(self, key: str, value: str) -> None:
        if key not in DEFAULTS:
            raise KeyError(key)
        self.values[key] = value

    def power_cycle(self) -> None:
        """What a switch off and on (or `Srs`) forgets."""
        self.errors.mode = self.errors.saved
        self.errors.ack_nack = self.errors.ack_nack_saved
        self.framing = (27, 59, 13)

    def to_json(self) -> dict[str, Any]:
        e = self.errors
        return {"values": {k: v for k, v in self.values.items() if v != DEFAULTS[k]},
                "error_mode_saved": e.saved, "ack_nack_saved": e.ack_nack_saved}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Settings:
        """Settings saved by `to_json` (unknown keys from another version are dropped)."""
        s = cls()
        if not d:
            return s
        for key, value in dict(d.get("values", {})).items():
            if key in DEFAULTS:
                s.values[key] = str(value)
        s.errors.saved = s.errors.mode = int(d.get("error_mode_saved", ERROR_MODE_DEFAULT))
        s.errors.ack_nack_saved = s.errors.ack_nack = bool(d.get("ack_nack_saved", False))
        return s
