"""The station's configuration (TOML), checked whole at start so that a mistake is named early."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The configuration is missing or wrong; the message names the file, the key and a fix."""


@dataclass(frozen=True)
class UpstreamConfig:
    url: str
    token: str
    authority_keys: dict[str, Path]
    prefetch: int = 20
    lease_max: int = 10
    wait_s: float = 20.0
    timeout_s: float = 10.0


@dataclass(frozen=True)
class PrinterConfig:
    name: str
    link: str
    reader: str


@dataclass(frozen=True)
class ChipConfig:
    profile: str
    trust_anchors: tuple[Path, ...]
    card_wait_s: float = 10.0


@dataclass(frozen=True)
class StationConfig:
    station_id: str
    journal: Path
    upstream: UpstreamConfig
    chip: ChipConfig
    printers: tuple[PrinterConfig, ...]
    max_attempts: int = 3
    panel_depth: int = 128
    language: str = "id"
    source: Path | None = field(default=None, compare=False)


_PANEL_DEPTHS = (2, 32, 64, 128)


class _Reader:
    """Reads typed values out of a TOML table, naming the key and its line on error."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, key: str) -> int | None:
        """The line where `key` (e.g. "upstream.token", "printers[1].link") is set, if it can be found."""
        table, _, leaf = key.rpartition(".")
        start = 0
        if table:
            m = re.fullmatch(r"(.+)\[(\d+)\]", table)
            header = rf"\s*\[\[\s*{re.escape(m.group(1))}\s*\]\]" if m else rf"\s*\[\s*{re.escape(table)}\s*\]"
            wanted = int(m.group(2)) if m else 0
            found = [i for i, text in enumerate(self.lines) if re.match(header, text)]
            if len(found) <= wanted:
                return None
            start = found[wanted]
        for i in range(start, len(self.lines)):
            if i > start and table and self.lines[i].lstrip().startswith("["):
                break
            if re.match(rf"\s*\"?{re.escape(leaf)}\"?\s*=", self.lines[i]) or (not table and re.match(rf"\s*\[+\s*{re.escape(leaf)}\s*\]", self.lines[i])):
                return i + 1
        return start + 1 if table else None

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        line = self.line_of(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {key} {problem}. Fix: {fix}")

    def get(self, table: dict, key: str, where: str, kind: type | tuple[type, ...], *, default: Any = ...,
            fix: str = "") -> Any:
        full = f"{where}.{key}" if where else key
        if key not in table:
            if default is ...:
                raise self.fail(full, "is missing", fix or f"add `{key} = ...` to [{where}]")
            return default
        value = table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(full, f"has the wrong type ({type(value).__name__})", fix or "see systemd/printstation.example.toml")
        return value


def load_config(path: Path | str) -> StationConfig:
    """Read and check a configuration file; raises ConfigError naming what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file. Fix: pass --config with the path of the station's TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}). Fix: check the file's permissions") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}. Fix: correct the syntax at that line") from None
    r = _Reader(path, text)
    base = path.parent

    def resolve(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else base / p

    station = r.get(data, "station", "", dict, fix="add a [station] table with id and journal")
    upstream = r.get(data, "upstream", "", dict, fix="add an [upstream] table with url, token and authority_keys")
    chip = r.get(data, "chip", "", dict, default={})
    pipeline = r.get(data, "pipeline", "", dict, default={})
    printers_raw = r.get(data, "printers", "", list, fix="add one [[printers]] table per printer (name, link, reader)")
    if not printers_raw:
        raise r.fail("printers", "is empty", "add one [[printers]] table per printer (name, link, reader)")

    url = r.get(upstream, "url", "upstream", str)
    if not re.match(r"^https?://", url):
        raise r.fail("upstream.url", f"is not an http(s) URL ({url!r})", "write it as https://host:port")
    keys_raw = r.get(upstream, "authority_keys", "upstream", dict,
                     fix="add [upstream.authority_keys] with `key-id = \"path/to/key.pem\"`")
    if not keys_raw:
        raise r.fail("upstream.authority_keys", "is empty", "name at least one authority public key")
    authority_keys = {}
    for kid, value in keys_raw.items():
        if not isinstance(value, str):
            raise r.fail(f"upstream.authority_keys.{kid}", "must be a file path", "write it as a quoted path")
        authority_keys[kid] = resolve(value)
        if not authority_keys[kid].is_file():
            raise r.fail(f"upstream.authority_keys.{kid}", f"names a missing file ({authority_keys[kid]})",
                         "copy the authority's public key there or correct the path")

    anchors = tuple(resolve(p) for p in r.get(chip, "trust_anchors", "chip", list, default=[]))
    for anchor in anchors:
        if not anchor.is_file():
            raise r.fail("chip.trust_anchors", f"names a missing file ({anchor})", "copy the CSCA certificate there or correct the path")

    printers = []
    for i, entry in enumerate(printers_raw):
        where = f"printers[{i}]"
        if not isinstance(entry, dict):
            raise r.fail(where, "is not a table", "write it as [[printers]] with name, link and reader")
        printers.append(PrinterConfig(
            name=r.get(entry, "name", where, str),
            link=r.get(entry, "link", where, str, fix="e.g. link = \"serial:///dev/ttyUSB0?baud=115200\""),
            reader=r.get(entry, "reader", where, str, fix="the PC/SC name of the printer's encoder reader"),
        ))
    names = [p.name for p in printers]
    if len(set(names)) != len(names):
        raise r.fail("printers.name", "repeats a printer name", "give every printer its own name")

    depth = r.get(pipeline, "panel_depth", "pipeline", int, default=128)
    if depth not in _PANEL_DEPTHS:
        raise r.fail("pipeline.panel_depth", f"is {depth}", f"use one of {', '.join(map(str, _PANEL_DEPTHS))}")
    max_attempts = r.get(pipeline, "max_attempts", "pipeline", int, default=3)
    if not 1 <= max_attempts <= 10:
        raise r.fail("pipeline.max_attempts", f"is {max_attempts}", "use a number from 1 to 10")
    language = r.get(station, "language", "station", str, default="id")
    if language not in ("id", "en"):
        raise r.fail("station.language", f"is {language!r}", "use \"id\" (Bahasa Indonesia) or \"en\" (English)")

    return StationConfig(
        station_id=r.get(station, "id", "station", str),
        journal=resolve(r.get(station, "journal", "station", str, fix="e.g. journal = \"/var/lib/printstation/journal.db\"")),
        upstream=UpstreamConfig(
            url=url.rstrip("/"),
            token=r.get(upstream, "token", "upstream", str, fix="the station's bearer token from the centre"),
            authority_keys=authority_keys,
            prefetch=r.get(upstream, "prefetch", "upstream", int, default=20),
            lease_max=r.get(upstream, "lease_max", "upstream", int, default=10),
            wait_s=float(r.get(upstream, "wait_s", "upstream", (int, float), default=20.0)),
            timeout_s=float(r.get(upstream, "timeout_s", "upstream", (int, float), default=10.0)),
        ),
        chip=ChipConfig(
            profile=r.get(chip, "profile", "chip", str, default="icao9303"),
            trust_anchors=anchors,
            card_wait_s=float(r.get(chip, "card_wait_s", "chip", (int, float), default=10.0)),
        ),
        printers=tuple(printers),
        max_attempts=max_attempts,
        panel_depth=depth,
        language=language,
        source=path,
    )
