"""`printstation demo`: virtual printers, the reference upstream and the agent, as three processes.

Prints a batch end to end and summarises what physically happened, counted from the
simulator's card log (cards.jsonl), not from the agent's own opinion.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from agent.journal import Journal
from agent.core.private_file import write_private

PROGRESS_POLL_S = 0.25


class DemoError(Exception):
    """The demo could not run; the message says what to do."""


@dataclass
class DemoSummary:
    jobs: int
    printed: int
    spoiled: int
    failed: int
    duplicates: int
    wall_s: float
    cards_per_hour: float
    state_dir: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cards", type=int, default=20, help="jobs to print (default 20)")
    parser.add_argument("--printers", type=int, default=1, help="virtual printers (default 1, at most 4)")
    parser.add_argument("--speed", type=float, default=20.0, help="mechanics this many times faster than real (default 20)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--state-dir", type=Path, help="keep the run's files here (default: a new temporary folder)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    # USB by default: at 115200 baud a colour panel takes 50 s of line time, as in the field,
    # where card printers doing colour are on USB; serial remains for the technicians' path.
    parser.add_argument("--transport", choices=("serial", "usb"), default="usb",
                        help="how the agent reaches the virtual printers: USB (default) or a serial port (pty)")


def run(args: argparse.Namespace) -> int:
    if args.cards < 1 or not 1 <= args.printers <= 4 or args.speed <= 0:
        print("printstation demo: --cards must be at least 1, --printers 1 to 4, --speed above 0", file=sys.stderr)
        return 2
    try:
        summary = Demo(args).run()
    except DemoError as exc:
        print(f"printstation demo: {exc}", file=sys.stderr)
        return 1
    _show(summary)
    if args.json:
        print(json.dumps(asdict(summary)))
    return 0 if summary.printed == summary.jobs and summary.duplicates == 0 else 1


def _show(summary: DemoSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="printstation demo", show_header=False)
    for key, value in asdict(summary).items():
        table.add_row(key.replace("_", " "), str(value))
    Console(stderr=True).print(table)


def _check_pcscd() -> None:
    from smartcard.System import readers

    try:
        names = [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises its own types for "service not running"
        raise DemoError(f"pcscd is not reachable ({exc}). Start it with `sudo pcscd` or run `make demo`.") from None
    if not any(n.startswith("Virtual PCD") for n in names):
        raise DemoError("pcscd shows no 'Virtual PCD' reader: install vsmartcard-vpcd "
                        "(`sudo apt-get install vsmartcard-vpcd`) and restart pcscd.")


def page_url_in_log(text: str) -> str | None:
    """The operators' page the agent announced (`web-ready`), in either of its log forms: JSON
    lines (`--log-json`, as the bench runs it, and under systemd) or the console's readable lines."""
    for line in text.splitlines():
        if "web-ready" not in line:
            continue
        if line.lstrip().startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "web-ready" and isinstance(event.get("url"), str):
                return event["url"]
            continue
        found = re.search(r"web-ready\s+url=(\S+)", line)
        if found:
            return found.group(1)
    return None


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(args.state_dir or tempfile.mkdtemp(prefix="printstation-demo-")).resolve()
        self.procs: list[tuple[str, subprocess.Popen]] = []
        # Seams for `printstation bench`: extra agent options and a look at the agent process.
        self.agent_args: list[str] = []
        self.on_agent_started: Callable[[int], None] | None = None
        self.before_stop: Callable[[], None] | None = None
        self.page_url: str | None = None

    def run(self) -> DemoSummary:
        _check_pcscd()
        started = time.monotonic()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            devices = self._start_simulator()
            upstream = self._start_upstream()
            config = self._write_config(devices, upstream)
            agent = self._start("agent", ["run", "--config", str(config), *self.agent_args], self.root / "agent.log")
            if self.on_agent_started:
                self.on_agent_started(agent.pid)
            self.page_url = self._page_url(agent)
            if self.page_url and not self.args.json:
                print(f"Halaman operator / operator page: {self.page_url}", file=sys.stderr, flush=True)
            outcomes = self._follow(upstream, started)
            wall_s = time.monotonic() - started
            if self.before_stop:
                self.before_stop()
        finally:
            self._stop_all()
            signal.signal(signal.SIGTERM, previous)
        return summarise_cards(self.root / "simulator" / "cards.jsonl", outcomes, self.args.cards, wall_s, self.root)

    def _page_url(self, agent: subprocess.Popen, timeout: float = 15.0) -> str | None:
        """Where the agent serves the operators' page, from its log (None if it says nothing in time)."""
        deadline = time.monotonic() + timeout
        log_path = self.root / "agent.log"
        while time.monotonic() < deadline and agent.poll() is None:
            found = page_url_in_log(log_path.read_text(errors="replace") if log_path.exists() else "")
            if found:
                return found
            time.sleep(0.1)
        return None

    # -- processes ------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str], log_path: Path) -> subprocess.Popen:
        log_file = open(log_path, "ab")
        proc = subprocess.Popen([sys.executable, "-m", "agent", *argv], stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log_file.close()
        self.procs.append((name, proc))
        return proc

    def _wait_for_file(self, name: str, proc: subprocess.Popen, path: Path, log_path: Path, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return json.loads(path.read_text())
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-800:] if log_path.exists() else ""
                raise DemoError(f"the {name} stopped at start (exit {proc.returncode}):\n{tail}")
            time.sleep(0.1)
        raise DemoError(f"the {name} did not become ready within {timeout:.0f} s (see {log_path})")

    def _start_simulator(self) -> dict:
        sim_dir = self.root / "simulator"
        sim_dir.mkdir(parents=True, exist_ok=True)
        spare = max(5, self.args.cards // 5)  # blanks for retries after a spoiled card
        per_printer = -(-self.args.cards // self.args.printers) + spare
        log_path = self.root / "simulator.log"
        usb = ["--usb"] if self.args.transport == "usb" else []
        proc = self._start("simulator", ["simulate", "--state-dir", str(sim_dir), "--printers", str(self.args.printers),
                                         "--cards", str(per_printer), "--speed", str(self.args.speed), *usb], log_path)
        devices = self._wait_for_file("virtual printer", proc, sim_dir / "devices.json", log_path)
        devices["cards_per_printer"] = per_printer
        return devices

    def _start_upstream(self) -> dict:
        up_dir = self.root / "upstream"
        up_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.root / "upstream.log"
        proc = self._start("upstream", ["upstream-sim", "--state-dir", str(up_dir), "--listen", "127.0.0.1:0",
                                        "--jobs", str(self.args.cards)], log_path)
        return self._wait_for_file("reference upstream", proc, up_dir / "upstream.json", log_path, timeout=120.0)

    def _write_config(self, devices: dict, upstream: dict) -> Path:
        lines = [
            "[station]", 'id = "demo-station"', f'journal = "{self.root / "agent" / "journal.db"}"', 'language = "en"',
            f'control_socket = "{self.root / "agent" / "control.sock"}"', "",
            "[upstream]", f'url = "{upstream["url"]}"', f'token = "{upstream["token"]}"', "wait_s = 2", "",
            "[upstream.authority_keys]",
            *[f'"{kid}" = "{path}"' for kid, path in upstream["authority_keys"].items()], "",
            "[chip]", 'profile = "icao9303"', f"trust_anchors = {json.dumps(upstream['trust_anchors'])}", "",
            "[web]", 'listen = "127.0.0.1:0"', "",  # the operators' page, on a free port (printed at start)
        ]
        for printer in devices["printers"]:
            link = printer["usb"]["url"] if self.args.transport == "usb" else f"serial://{printer['serial']}?baud=115200"
            lines += ["[[printers]]", f'name = "{printer["name"]}"', f'link = "{link}"',
                      f'reader = "{printer["reader"]}"', ""]
        path = self.root / "station.toml"
        write_private(path, "\n".join(lines).encode())  # it holds the upstream token
        # The operator loads the blanks into the hopper and records the load in the ledger.
        journal = Journal(self.root / "agent" / "journal.db", "demo-station")
        for printer in devices["printers"]:
            journal.receive_blanks("DEMO-LOT", devices["cards_per_printer"], who="demo")
            journal.load_blanks(printer["name"], devices["cards_per_printer"], lot="DEMO-LOT", who="demo")
        journal.close()
        return path

    def _stop_all(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    # -- progress and summary ------------------------------------------------------------------

    def _follow(self, upstream: dict, started: float) -> dict:
        """Show progress until upstream holds an outcome for every job; return the outcomes."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        deadline = started + self.args.timeout
        agent = next(p for n, p in self.procs if n == "agent")
        with httpx.Client(base_url=upstream["url"], headers={"Authorization": f"Bearer {upstream['token']}"}, timeout=5) as http, \
                Progress(TextColumn("printing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                         TextColumn("eta"), TimeRemainingColumn(), transient=False,
                         console=_stderr_console()) as progress:
            task = progress.add_task("cards", total=self.args.cards)
            while time.monotonic() < deadline:
                outcomes = http.get("/v1/_sim/state").json()["outcomes"]
                progress.update(task, completed=len(outcomes))
                if len(outcomes) >= self.args.cards:
                    return outcomes
                if agent.poll() is not None:
                    raise DemoError(f"the agent stopped (exit {agent.returncode}); see {self.root / 'agent.log'}")
                time.sleep(PROGRESS_POLL_S)
        raise DemoError(f"not all cards were done within {self.args.timeout:.0f} s; see {self.root}")


def summarise_cards(cards_log: Path, outcomes: dict, jobs: int, wall_s: float, root: Path) -> DemoSummary:
    """Count from the printer's own card log: what left through which bin, and any document twice."""
    cards = [json.loads(line) for line in cards_log.read_text().splitlines() if line.strip()] if cards_log.exists() else []
    output = Counter(c["document_number"] for c in cards if c["bin"] == "output")
    statuses = Counter(o.get("status") for o in outcomes.values())
    printed = statuses.get("printed", 0)
    return DemoSummary(
        jobs=jobs,
        printed=printed,
        spoiled=sum(1 for c in cards if c["bin"] == "reject"),
        failed=jobs - printed,
        duplicates=sum(1 for doc, n in output.items() if doc is not None and n > 1),
        wall_s=round(wall_s, 2),
        cards_per_hour=round(printed / wall_s * 3600, 1) if wall_s else 0.0,
        state_dir=str(root),
    )


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _raise_interrupt(*_args: object) -> None:
    raise KeyboardInterrupt
