"""The station's configuration (TOML), checked whole at start so that a mistake is named early."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from agent.chip.registry import PROFILES
from agent.core.config_schema import schema_problems
from agent.core.limits import DEFAULT_LIMITS, JobLimits
from agent.core.listen import ListenAddress, parse_listen, valid_host
from agent.core.print_windows import BusyPeriod, PrintWindow, WindowError, parse_window
from drivers.evolis.printer import RIBBONS
from drivers.link.base import DEFAULT_BAUD
from drivers.link.url import LinkAddress, parse_link

# The daemon's control socket (`printstation status` and friends); systemd's RuntimeDirectory.
DEFAULT_CONTROL_SOCKET = Path("/run/printstation/control.sock")


class ConfigError(Exception):
    """The configuration is missing or wrong; the message names the file, the key and a fix."""

    line: int | None = None  # the line it is about, when known


@dataclass(frozen=True)
class UpstreamConfig:
    url: str
    token: str
    authority_keys: dict[str, Path]
    prefetch: int = 20
    lease_max: int = 10
    wait_s: float = 20.0
    timeout_s: float = 10.0
    # Store and forward: hold enough jobs to print through an outage of this many hours.
    outage_hours: float = 0.0
    cards_per_hour: float = 150.0      # one printer's rate, to turn hours into jobs
    renew_margin_s: float = 900.0      # renew a lease when it has less than this left
    retry_max_s: float = 60.0          # longest wait between two tries to reach upstream
    ca_file: Path | None = None        # CA bundle for the server's certificate; None: the system store
    client_cert: Path | None = None    # TLS client certificate (PEM), instead of or beside the token
    client_key: Path | None = None
    max_answer_bytes: int = 64 * 1024 * 1024  # a bigger answer from upstream is refused unread
    exchange_deadline_s: float = 0.0   # one whole exchange, request to last byte; 0: 2 x timeout_s + wait_s
    outbox_batch: int = 200            # outbox messages sent upstream in one request (1..200)


@dataclass(frozen=True)
class PrinterConfig:
    name: str
    link: str
    reader: str
    ribbon: str = "ymcko"  # sent before every card (`Pr`), as the vendor driver does
    contrast: int = 10  # every colour (`Pc;a;=;N`), 0..20; the printer's default is 10


@dataclass(frozen=True)
class ChipConfig:
    profile: str
    trust_anchors: tuple[Path, ...]
    card_wait_s: float = 10.0
    card_budget_s: float = 20.0  # connect, encode and verify one card; longer is a slow chip


@dataclass(frozen=True)
class StockConfig:
    """[stock]: telemetry cadence and the thresholds that raise low and empty alerts."""

    report_every_s: float = 300.0
    blanks_low: int = 100              # per printer; "low" also when they run out within blanks_low_days
    blanks_low_days: float = 5.0       # kept for older files; the forecast's thresholds are in print days now
    office_low_print_days: float = 14.0  # storeroom + hoppers: warn this many print days before they run out
    ribbon_low: int = 50               # cards the ribbon can still print
    lookback_days: int = 7             # the recent rate is measured over this many days


@dataclass(frozen=True)
class WebConfig:
    """[web]: the operators' page, served by the daemon (loopback unless configured otherwise)."""

    listen: ListenAddress | None = ListenAddress("127.0.0.1", 8631)  # None: `listen = ""`, no page
    # The operator's PIN as `printstation web-pin` writes it (pbkdf2-sha256$rounds$salt$hash): without
    # it the page is read-only.
    operator_pin_hash: str | None = None


@dataclass(frozen=True)
class NotifyConfig:
    """[notify]: where alerts reach a person, beside the page and upstream."""

    webhook_url: str | None = None          # a JSON POST per alert, retried from the outbox
    smtp_host: str | None = None            # e-mail over SMTP (plain, or STARTTLS when offered)
    smtp_port: int = 25
    smtp_from: str = "printstation@localhost"
    smtp_to: tuple[str, ...] = ()
    desktop: bool = False                   # notify-send, where a desktop session runs
    upstream_offline_after_s: float = 900.0  # upstream unreachable this long is an alert
    repeat_after_s: float = 3600.0           # the same alert again only after this long


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
    retention_days: int = 400          # finished jobs' history kept this long (the ledger is kept whole)
    control_socket: Path = DEFAULT_CONTROL_SOCKET
    windows: tuple[PrintWindow, ...] = ()  # none: the station prints at any hour
    holidays: frozenset[date] = frozenset()  # [calendar] holidays: no printing, no use counted
    busy: tuple = ()  # [[calendar.busy]]: agent.upstream.stock_forecast.BusyPeriod, days of more demand than usual
    limits: JobLimits = DEFAULT_LIMITS
    stock: StockConfig = StockConfig()
    metrics: ListenAddress | None = None  # [metrics] listen; None: no metrics endpoint
    web: WebConfig = WebConfig()
    notify: NotifyConfig = NotifyConfig()
    source: Path | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)  # allowed but risky (`config check` shows them)


_PANEL_DEPTHS = (2, 32, 64, 128)


class _Reader:
    """Reads typed values out of a TOML table, naming the key and its line on error."""

    def __init__(self, path: Path, text: str, *, collect: bool = False) -> None:
        self.path = path
        self.lines = text.splitlines()
        # `config check` wants every mistake at once: problems are noted and checking goes on.
        self.collect = collect
        self.problems: list[ConfigError] = []
        self.warnings: list[str] = []  # allowed, but worth a person's look (`config check` shows them)
        self.reported: set[str] = set()  # one mistake a key: the first found (the schema's) is the one named

    def line_of(self, key: str) -> int | None:
        """The line where `key` (e.g. "upstream.token", "printers[1].link") is set, if it can be found."""
        table, _, leaf = key.rpartition(".")
        leaf = re.sub(r"\[\d+\]$", "", leaf)  # "smtp_to[1]": the line of smtp_to
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

    def fail(self, key: str, problem: str, fix: str) -> None:
        """Note a mistake: raise it at once, or (collecting) keep it and let checking go on."""
        if key in self.reported:
            return
        self.reported.add(key)
        line = self.line_of(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        error = ConfigError(f"{where}: {key} {problem}. Fix: {fix}")
        error.line = line
        if not self.collect:
            raise error
        self.problems.append(error)

    def warn(self, key: str, concern: str, fix: str) -> None:
        line = self.line_of(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        self.warnings.append(f"{where}: {key} {concern}. Fix: {fix}")

    def get(self, table: dict, key: str, where: str, kind: type | tuple[type, ...], *, default: Any = ...,
            fix: str = "") -> Any:
        full = f"{where}.{key}" if where else key
        if key not in table:
            if default is ...:
                self.fail(full, "is missing", fix or f"add `{key} = ...` to [{where}]")
                return _placeholder(kind)
            return default
        value = table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            wanted = " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,)))
            self.fail(full, f"is {_TYPE_WORDS.get(type(value), type(value).__name__)}, but must be {wanted}",
                      fix or "see systemd/station.example.toml")
            return default if default is not ... else _placeholder(kind)
        return value


_TYPE_WORDS: dict[type, str] = {str: "text", bool: "true or false", int: "a whole number", float: "a number",
                               list: "a list", dict: "a table"}


def _ribbon(r: _Reader, entry: dict, where: str) -> str:
    ribbon = r.get(entry, "ribbon", where, str, default="ymcko")
    if ribbon not in RIBBONS:
        r.fail(f"{where}.ribbon", f"is {ribbon!r}", f"use the fitted ribbon's type, one of {', '.join(RIBBONS)}")
        return "ymcko"
    return ribbon


def _contrast(r: _Reader, entry: dict, where: str) -> int:
    contrast = r.get(entry, "contrast", where, int, default=10)
    if not 0 <= contrast <= 20:
        r.fail(f"{where}.contrast", f"is {contrast}", "use a whole number from 0 to 20 (the printer's default is 10)")
        return 10
    return contrast


# The token from a systemd credential (LoadCredential=printstation-token:/etc/printstation/token).
TOKEN_CREDENTIAL = "printstation-token"


def _token(r: _Reader, upstream: dict, resolve: Callable[[str], Path], *, optional: bool) -> str:
    """The bearer token: `token` in the file, or read from `token_file`, or the systemd credential
    `printstation-token` (so the configuration itself need hold no secret)."""
    if "token" in upstream or "token_file" not in upstream:
        credential = Path(os.environ.get("CREDENTIALS_DIRECTORY", "/nonexistent")) / TOKEN_CREDENTIAL
        if "token" not in upstream and credential.is_file():
            return credential.read_text(encoding="utf-8").strip()
        return r.get(upstream, "token", "upstream", str,
                     fix="the station's bearer token from the centre (or token_file = \"/etc/printstation/token\", "
                         "or a systemd credential printstation-token)",
                     **({"default": ""} if optional else {}))
    path = resolve(r.get(upstream, "token_file", "upstream", str))
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        r.fail("upstream.token_file", f"cannot be read ({path}: {exc.strerror})",
               "put the station's token in that file (readable by the service only, mode 0600)")
        return ""
    if not token:
        r.fail("upstream.token_file", f"is empty ({path})", "put the station's token in that file")
    elif path.stat().st_mode & 0o077:
        r.warn("upstream.token_file", f"can be read by others ({path}, mode {oct(path.stat().st_mode & 0o777)})",
               f"chmod 600 {path}")
    return token


def _web_url(r: _Reader, key: str, url: str, fix: str) -> None:
    """An http(s) URL with a host name or address and, if given, a port from 1 to 65535."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        r.fail(key, f"is not an http(s) URL ({url!r})", fix)
        return
    try:
        port = parts.port
    except ValueError:
        r.fail(key, f"has a port outside 1 to 65535 ({url!r})", f"use the server's port, 1 to 65535; {fix}")
        return
    if port == 0:
        r.fail(key, f"has port 0 ({url!r})", f"use the server's port, 1 to 65535; {fix}")
    elif not valid_host(parts.hostname or ""):
        r.fail(key, f"has host {parts.hostname or ''!r}, which is neither an IP address nor a host name",
               f"write the server's name without spaces or other signs; {fix}")


def _link(r: _Reader, entry: dict, where: str) -> str:
    link = r.get(entry, "link", where, str, fix="e.g. link = \"serial:///dev/ttyUSB0?baud=115200\"")
    if link:
        try:
            parse_link(link)
        except ValueError as exc:
            fix = (f'link = "serial://{link}?baud={DEFAULT_BAUD}"' if link.startswith("/dev/") else
                   'write it as serial:///dev/ttyUSB0?baud=115200 or usb://VID:PID?serial=... (docs/PRINTERS.md)')
            r.fail(f"{where}.link", str(exc).removeprefix(f"{link}: ").join(("cannot be read (", ")")), fix)
    return link


def _present(r: _Reader, presence: Presence, where: str, printer: PrinterConfig) -> None:
    try:
        address = parse_link(printer.link)
    except ValueError:
        address = None  # named as a mistake already
    why = presence.link(address) if address is not None else None
    if why:
        r.warn(f"{where}.link", why, "plug the printer in and switch it on, or correct the link "
               "(`printstation diagnose` lists the printers this machine sees)")
    missing = presence.reader(printer.reader) if printer.reader else None
    if missing:
        r.warn(f"{where}.reader", *missing)


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _placeholder(kind: type | tuple[type, ...]) -> Any:
    """An empty value of the wanted type, so that collecting can go on past a missing key."""
    first = kind[0] if isinstance(kind, tuple) else kind
    return first()


class Presence(Protocol):
    """What is attached to this machine now (`config check` asks; `run` waits for devices instead)."""

    def link(self, address: LinkAddress) -> str | None:
        """Why the printer at `address` is not there ("names /dev/ttyUSB9, not on this machine"), or None."""

    def reader(self, name: str) -> tuple[str, str] | None:
        """Why PC/SC lists no reader `name` and what to do, or None."""


def load_config(path: Path | str) -> StationConfig:
    """Read and check a configuration file; raises ConfigError naming what is wrong and where."""
    return _load(Path(path), collect=False)[0]


def check_config(path: Path | str) -> list[ConfigError]:
    """Every mistake in a configuration file (each with its line and a fix); empty when it is good."""
    return check_config_report(path)[0]


def check_config_report(path: Path | str, presence: Presence | None = None) -> tuple[list[ConfigError], list[str]]:
    """Every mistake in a configuration file, and every warning (allowed, but risky); with `presence`,
    also each printer and reader that is not attached now (a warning: it may be plugged in later)."""
    try:
        _config, problems, warnings = _load(Path(path), collect=True, presence=presence)
    except ConfigError as exc:  # unreadable, or not TOML: nothing further can be checked
        return [exc], []
    return problems, warnings


def _load(path: Path, *, collect: bool, presence: Presence | None = None,
          ) -> tuple[StationConfig, list[ConfigError], list[str]]:
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
    r = _Reader(path, text, collect=collect)
    for found in schema_problems(data):
        r.fail(found.key, found.problem, found.fix)
    base = path.parent

    def resolve(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else base / p

    station = r.get(data, "station", "", dict, fix="add a [station] table with id and journal")
    upstream = r.get(data, "upstream", "", dict, fix="add an [upstream] table with url, token and authority_keys")
    chip = r.get(data, "chip", "", dict, default={})
    pipeline = r.get(data, "pipeline", "", dict, default={})
    printers_raw = r.get(data, "printers", "", list, fix="add one [[printers]] table per printer (name, link, reader)")
    if "printers" in data and not printers_raw:
        r.fail("printers", "is empty", "add one [[printers]] table per printer (name, link, reader)")

    url = r.get(upstream, "url", "upstream", str)
    if url:
        _web_url(r, "upstream.url", url, "write it as https://host:port, e.g. https://issuance.example.go.id")
    if isinstance(upstream.get("token"), str) and path.stat().st_mode & 0o077:
        r.warn("upstream.token", f"is in a file others can read (mode {oct(path.stat().st_mode & 0o777)})",
               f"chmod 600 {path}, or move the token to token_file or a systemd credential")
    if url.startswith("http://") and not _loopback(url):
        r.warn("upstream.url", "is plain http to another machine: the token and citizens' data would cross the "
               "network unencrypted", "use https:// (and upstream.ca_file for the centre's CA)")
    keys_raw = r.get(upstream, "authority_keys", "upstream", dict,
                     fix="add [upstream.authority_keys] with `key-id = \"path/to/key.pem\"`")
    if "authority_keys" in upstream and not keys_raw:
        r.fail("upstream.authority_keys", "is empty", "name at least one authority public key")
    authority_keys = {}
    for kid, value in keys_raw.items():
        if not isinstance(value, str):
            r.fail(f"upstream.authority_keys.{kid}", "must be a file path", "write it as a quoted path")
            continue
        authority_keys[kid] = resolve(value)
        if not authority_keys[kid].is_file():
            r.fail(f"upstream.authority_keys.{kid}", f"names a missing file ({authority_keys[kid]})",
                         "copy the authority's public key there or correct the path")

    anchors_raw = r.get(chip, "trust_anchors", "chip", list, default=[])
    if not all(isinstance(p, str) for p in anchors_raw):
        r.fail("chip.trust_anchors", "must be a list of file paths", "write it as [\"/etc/printstation/csca.pem\"]")
    anchors = tuple(resolve(p) for p in anchors_raw if isinstance(p, str))
    for anchor in anchors:
        if not anchor.is_file():
            r.fail("chip.trust_anchors", f"names a missing file ({anchor})", "copy the CSCA certificate there or correct the path")

    profile = r.get(chip, "profile", "chip", str, default="icao9303")
    if profile not in PROFILES:
        r.fail("chip.profile", f"names an unknown chip profile ({profile!r})",
               f"use one of the known profiles: {', '.join(PROFILES)} (docs/CHIP_PROFILES.md)")
    card_budget_s = float(r.get(chip, "card_budget_s", "chip", (int, float), default=20.0))
    if not 1.0 <= card_budget_s <= 600.0:
        r.fail("chip.card_budget_s", f"is {card_budget_s}", "use a number of seconds from 1 to 600 (20 suits most readers)")

    printers = []
    for i, entry in enumerate(printers_raw):
        where = f"printers[{i}]"
        if not isinstance(entry, dict):
            r.fail(where, "is not a table", "write it as [[printers]] with name, link and reader")
            continue
        printers.append(PrinterConfig(
            name=r.get(entry, "name", where, str),
            link=_link(r, entry, where),
            reader=r.get(entry, "reader", where, str, fix="the PC/SC name of the printer's encoder reader"),
            ribbon=_ribbon(r, entry, where),
            contrast=_contrast(r, entry, where),
        ))
    for i, printer in enumerate(printers):
        if presence is not None:
            _present(r, presence, f"printers[{i}]", printer)
    names = [p.name for p in printers]
    if len(set(names)) != len(names):
        r.fail("printers.name", "repeats a printer name", "give every printer its own name")

    depth = r.get(pipeline, "panel_depth", "pipeline", int, default=128)
    if depth not in _PANEL_DEPTHS:
        r.fail("pipeline.panel_depth", f"is {depth}", f"use one of {', '.join(map(str, _PANEL_DEPTHS))}")
    max_attempts = r.get(pipeline, "max_attempts", "pipeline", int, default=3)
    if not 1 <= max_attempts <= 10:
        r.fail("pipeline.max_attempts", f"is {max_attempts}", "use a number from 1 to 10")
    language = r.get(station, "language", "station", str, default="id")
    retention_days = r.get(station, "retention_days", "station", int, default=400)
    if retention_days < 1:
        r.fail("station.retention_days", f"is {retention_days}", "keep at least a day of history (default 400)")
    if language not in ("id", "en"):
        r.fail("station.language", f"is {language!r}", "use \"id\" (Bahasa Indonesia) or \"en\" (English)")
    control_socket = resolve(r.get(station, "control_socket", "station", str, default=str(DEFAULT_CONTROL_SOCKET)))
    windows = []
    for i, entry in enumerate(r.get(data, "windows", "", list, default=[])):
        try:
            windows.append(parse_window(entry))
        except WindowError as exc:
            r.fail(f"windows[{i}].{exc.field}", exc.problem, exc.fix)

    holidays = []
    calendar = r.get(data, "calendar", "", dict, default={})
    for i, text in enumerate(r.get(calendar, "holidays", "calendar", list, default=[])):
        try:
            holidays.append(text if isinstance(text, date) else date.fromisoformat(str(text)))
        except ValueError:
            r.fail(f"calendar.holidays[{i}]", f"is {text!r}", 'write each holiday as a date, e.g. "2026-12-25"')
    busy = []
    for i, entry in enumerate(r.get(calendar, "busy", "calendar", list, default=[])):
        where = f"calendar.busy[{i}]"
        fix = 'write it as {from = "2026-11-16", to = "2026-11-20", factor = 1.7}: the days and how many usual days of demand each brings'
        try:
            first, last = (entry[k] if isinstance(entry[k], date) else date.fromisoformat(str(entry[k])) for k in ("from", "to"))
            factor = float(entry.get("factor", 1.0))
        except (KeyError, TypeError, ValueError, AttributeError):
            r.fail(where, "is not a busy period", fix)
            continue
        if last < first or not 0.0 <= factor <= 10.0:
            r.fail(where, f"runs from {first} to {last} with factor {factor}", fix)
            continue
        busy.append(BusyPeriod(first, last, factor))

    limits = r.get(data, "limits", "", dict, default={})
    stock = r.get(data, "stock", "", dict, default={})
    metrics = None
    listen = r.get(r.get(data, "metrics", "", dict, default={}), "listen", "metrics", str, default="")
    if listen:
        try:
            metrics = parse_listen(listen)
        except ValueError as exc:
            r.fail("metrics.listen", str(exc), 'write it as listen = "127.0.0.1:9464" (a bare port listens on loopback only)')
    web_table = r.get(data, "web", "", dict, default={})
    web_listen: ListenAddress | None = WebConfig.listen
    web_text = r.get(web_table, "listen", "web", str, default="127.0.0.1:8631")
    if not web_text:
        web_listen = None
    else:
        try:
            web_listen = parse_listen(web_text)
        except ValueError as exc:
            r.fail("web.listen", str(exc), 'write it as listen = "127.0.0.1:8631" (or "" for no page)')
    pin_hash = r.get(web_table, "operator_pin_hash", "web", str, default="") or None
    if pin_hash is not None and len(pin_hash.split("$")) != 4:
        r.fail("web.operator_pin_hash", "is not a PIN hash", "make one with `printstation web-pin` and paste its line here")
    if web_listen is not None and web_listen.host not in ("127.0.0.1", "::1", "localhost"):
        r.warnings.append(f"web.listen: the operators' page answers beyond this machine ({web_listen.describe()})")
    notify_table = r.get(data, "notify", "", dict, default={})
    notify = NotifyConfig(
        webhook_url=r.get(notify_table, "webhook_url", "notify", str, default="") or None,
        smtp_host=r.get(notify_table, "smtp_host", "notify", str, default="") or None,
        smtp_port=r.get(notify_table, "smtp_port", "notify", int, default=25),
        smtp_from=r.get(notify_table, "smtp_from", "notify", str, default="printstation@localhost"),
        smtp_to=tuple(r.get(notify_table, "smtp_to", "notify", list, default=[])),
        desktop=r.get(notify_table, "desktop", "notify", bool, default=False),
        upstream_offline_after_s=float(r.get(notify_table, "upstream_offline_after_s", "notify", (int, float),
                                             default=900.0)),
        repeat_after_s=float(r.get(notify_table, "repeat_after_s", "notify", (int, float), default=3600.0)),
    )
    if not 0 < notify.smtp_port < 65536:
        r.fail("notify.smtp_port", f"is {notify.smtp_port}, outside 1 to 65535", "use the mail server's port, e.g. smtp_port = 25")
    if notify.webhook_url:
        _web_url(r, "notify.webhook_url", notify.webhook_url, "write it as https://host/path")
    if notify.smtp_host and not valid_host(notify.smtp_host):
        r.fail("notify.smtp_host", f"is {notify.smtp_host!r}, neither an IP address nor a host name",
               'write the mail server\'s name, e.g. smtp_host = "mail.example.go.id"')
    for i, address in enumerate(notify.smtp_to):
        if not isinstance(address, str) or address.count("@") != 1 or not valid_host(address.partition("@")[2]):
            r.fail(f"notify.smtp_to[{i}]", f"is {address!r}, not an e-mail address",
                   'write each as "name@example.go.id"')
    if notify.smtp_to and not notify.smtp_host:
        r.fail("notify.smtp_to", "has addresses but no smtp_host to send through", "add smtp_host (the mail server)")
    # TLS: the server's CA (else the system store) and the station's client certificate and key.
    tls_files: dict[str, Path | None] = {}
    for key in ("ca_file", "client_cert", "client_key"):
        value = r.get(upstream, key, "upstream", str, default="")
        named = resolve(value) if value else None
        tls_files[key] = named
        if named is not None and not named.is_file():
            r.fail(f"upstream.{key}", f"names a missing file ({named})", "copy the PEM file there or correct the path")
    if tls_files["client_cert"] and not tls_files["client_key"]:
        r.fail("upstream.client_key", "is missing", "name the private key of upstream.client_cert")
    outbox_batch = r.get(upstream, "outbox_batch", "upstream", int, default=200)
    if not 1 <= outbox_batch <= 200:
        r.fail("upstream.outbox_batch", "is out of range", "use 1 to 200 (upstream takes at most 200 a request)")
    for key in ("max_answer_mb", "max_image_kb", "max_chip_file_kb"):
        if not 0 < r.get(limits, key, "limits", (int, float), default=1) <= 1024 * 1024:
            r.fail(f"limits.{key}", "is out of range", "use a positive size, e.g. max_image_kb = 4096")
    config = StationConfig(
        station_id=r.get(station, "id", "station", str),
        journal=resolve(r.get(station, "journal", "station", str, fix="e.g. journal = \"/var/lib/printstation/journal.db\"")),
        upstream=UpstreamConfig(
            url=url.rstrip("/"),
            token=_token(r, upstream, resolve, optional=bool(tls_files["client_cert"])),
            authority_keys=authority_keys,
            prefetch=r.get(upstream, "prefetch", "upstream", int, default=20),
            lease_max=r.get(upstream, "lease_max", "upstream", int, default=10),
            wait_s=float(r.get(upstream, "wait_s", "upstream", (int, float), default=20.0)),
            timeout_s=float(r.get(upstream, "timeout_s", "upstream", (int, float), default=10.0)),
            outage_hours=float(r.get(upstream, "outage_hours", "upstream", (int, float), default=0.0)),
            cards_per_hour=float(r.get(upstream, "cards_per_hour", "upstream", (int, float), default=150.0)),
            renew_margin_s=float(r.get(upstream, "renew_margin_s", "upstream", (int, float), default=900.0)),
            retry_max_s=float(r.get(upstream, "retry_max_s", "upstream", (int, float), default=60.0)),
            exchange_deadline_s=float(r.get(upstream, "exchange_deadline_s", "upstream", (int, float), default=0.0)),
            outbox_batch=outbox_batch,
            **tls_files,
            max_answer_bytes=int(r.get(limits, "max_answer_mb", "limits", (int, float), default=64) * 1024 * 1024),
        ),
        chip=ChipConfig(
            profile=profile,
            trust_anchors=anchors,
            card_wait_s=float(r.get(chip, "card_wait_s", "chip", (int, float), default=10.0)),
            card_budget_s=card_budget_s,
        ),
        printers=tuple(printers),
        max_attempts=max_attempts,
        panel_depth=depth,
        language=language,
        retention_days=retention_days,
        control_socket=control_socket,
        windows=tuple(windows),
        limits=JobLimits(
            max_image_bytes=r.get(limits, "max_image_kb", "limits", int, default=DEFAULT_LIMITS.max_image_bytes // 1024) * 1024,
            max_chip_file_bytes=r.get(limits, "max_chip_file_kb", "limits", int,
                                      default=DEFAULT_LIMITS.max_chip_file_bytes // 1024) * 1024,
        ),
        stock=StockConfig(
            report_every_s=float(r.get(stock, "report_every_s", "stock", (int, float), default=300.0)),
            blanks_low=r.get(stock, "blanks_low", "stock", int, default=100),
            blanks_low_days=float(r.get(stock, "blanks_low_days", "stock", (int, float), default=5.0)),
            ribbon_low=r.get(stock, "ribbon_low", "stock", int, default=50),
            lookback_days=r.get(stock, "lookback_days", "stock", int, default=7),
            office_low_print_days=float(r.get(stock, "office_low_print_days", "stock", (int, float), default=14.0)),
        ),
        holidays=frozenset(holidays),
        busy=tuple(busy),
        metrics=metrics,
        web=WebConfig(web_listen, pin_hash),
        notify=notify,
        source=path,
    )
    return replace(config, warnings=tuple(r.warnings)), r.problems, r.warnings
