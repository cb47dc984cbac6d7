"""The whole station as separate processes that a test kills and restarts, for the crash and outage suites.

The virtual printer (`printstation simulate`), the reference upstream (`printstation
upstream-sim`) and the agent (`printstation run`) each run in their own process and session,
as in the field, so that killing one leaves the others as they were. (tests/station_harness.py
runs the same three through the demo for the printer-fault suite; here each is started,
killed and restarted on its own.) The rig stops every process it started. `figures()` checks
the invariants against the witnesses: the printer's card log and saved state, the upstream's
own record, and the journal.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

AGENT = [sys.executable, "-m", "agent"]
FINAL_STATES = ("printed", "failed", "rejected", "released", "expired")


@dataclass
class Figures:
    """What the crash suite reports: every list empty and duplicates 0 when the invariants hold."""

    kills: int = 0
    printed: int = 0
    duplicates: int = 0
    lost_results: list[str] = field(default_factory=list)        # final in the journal, not so upstream
    unfinished: list[str] = field(default_factory=list)          # neither final nor held
    held: list[str] = field(default_factory=list)
    ledger_differences: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.lost_results or self.unfinished or self.held or self.ledger_differences)


def wait_until(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.1) -> object:
    """Poll `predicate` until it is truthy; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


class StationRig:
    """One station on virtual hardware under `root`; a context manager, so every process stops."""

    def __init__(self, root: Path, *, jobs: int, blanks: int, speed: float = 200.0, printers: int = 1,
                 lease_s: float = 3600.0, prefetch: int = 4, upstream: dict[str, object] | None = None) -> None:
        self.root = root
        self.jobs = jobs
        self.blanks = blanks
        self.speed = speed
        self.printers = printers
        self.lease_s = lease_s
        self.upstream_settings = {"prefetch": prefetch, "lease_max": 10, "wait_s": 1, "timeout_s": 5, "retry_max_s": 2,
                                  **(upstream or {})}
        self.sim_dir = root / "simulator"
        self.up_dir = root / "upstream"
        self.journal_path = root / "agent" / "journal.db"
        self.config_path = root / "station.toml"
        self.upstream_info: dict = {}
        self.upstream_url: str | None = None  # where the agent reaches upstream (a proxy, say); default direct
        self.devices: dict = {}
        self.kills = 0
        self._procs: dict[str, subprocess.Popen] = {}

    # -- processes --------------------------------------------------------------------------

    def __enter__(self) -> "StationRig":
        return self

    def __exit__(self, *exc: object) -> None:
        for name in list(self._procs):
            self._stop(name)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen([*AGENT, *argv], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
        log.close()
        self._procs[name] = proc
        return proc

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> int | None:
        proc = self._procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def start_upstream(self, port: int = 0) -> None:
        """Start (or restart on the same port) the reference upstream; it keeps its outcomes on disk."""
        self.up_dir.mkdir(parents=True, exist_ok=True)
        (self.up_dir / "upstream.json").unlink(missing_ok=True)
        token = ["--token", self.upstream_info["token"]] if self.upstream_info else []  # a restart keeps the token
        proc = self._spawn("upstream", ["upstream-sim", "--state-dir", str(self.up_dir), "--listen", f"127.0.0.1:{port}",
                                        "--jobs", str(self.jobs), "--lease-s", str(self.lease_s), *token])
        wait_until(lambda: (self.up_dir / "upstream.json").exists() or proc.poll() is not None, 60, "the upstream")
        assert proc.poll() is None, (self.root / "upstream.log").read_text()[-2000:]
        self.upstream_info = json.loads((self.up_dir / "upstream.json").read_text())

    def stop_upstream(self) -> None:
        self._stop("upstream")

    @property
    def upstream_port(self) -> int:
        return int(self.upstream_info["url"].rsplit(":", 1)[1])

    def start_simulator(self) -> None:
        """Start the virtual printers; after a power cut they continue from their saved state."""
        self.sim_dir.mkdir(parents=True, exist_ok=True)
        devices = self.sim_dir / "devices.json"
        devices.unlink(missing_ok=True)
        proc = self._spawn("simulator", ["simulate", "--state-dir", str(self.sim_dir), "--printers", str(self.printers),
                                         "--cards", str(self.blanks), "--speed", str(self.speed)])
        wait_until(lambda: devices.exists() or proc.poll() is not None, 60, "the virtual printers")
        assert proc.poll() is None, (self.root / "simulator.log").read_text()[-2000:]
        self.devices = json.loads(devices.read_text())

    def power_cut_simulator(self) -> None:
        """The printer loses power: SIGKILL, no chance to save anything it had not saved."""
        self._stop("simulator", signal.SIGKILL)

    def write_config(self) -> None:
        up = self.upstream_info
        lines = ["[station]", 'id = "crash-station"', f'journal = "{self.journal_path}"', 'language = "en"',
                 f'control_socket = "{self.root / "control.sock"}"', "",
                 "[pipeline]", "panel_depth = 2", "",  # a fifth of the bytes: the link's time is not under test here
                 "[upstream]", f'url = "{self.upstream_url or up["url"]}"', f'token = "{up["token"]}"',
                 *[f"{k} = {v}" for k, v in self.upstream_settings.items()], "",
                 "[upstream.authority_keys]", *[f'"{kid}" = "{path}"' for kid, path in up["authority_keys"].items()], "",
                 "[chip]", f"trust_anchors = {json.dumps(up['trust_anchors'])}", "card_wait_s = 5", ""]
        for printer in self.devices["printers"]:
            lines += ["[[printers]]", f'name = "{printer["name"]}"', f'link = "serial://{printer["serial"]}?baud=115200"',
                      f'reader = "{printer["reader"]}"', ""]
        self.config_path.write_text("\n".join(lines))

    def hopper(self, *args: str) -> subprocess.CompletedProcess:
        """`printstation hopper ARGS --config ...`, as the operator would type it."""
        return subprocess.run([*AGENT, "hopper", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, timeout=60)

    def stock(self, *args: str) -> subprocess.CompletedProcess:
        """`printstation stock ARGS --config ...`."""
        return subprocess.run([*AGENT, "stock", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        """Upstream and printers up, the configuration written, every hopper's blanks recorded as loaded."""
        self.start_upstream()
        self.start_simulator()
        self.write_config()
        self.load_blanks()

    def load_blanks(self) -> None:
        """Record every hopper's blanks as loaded, lot LOT-1."""
        from agent.journal import Journal

        journal = Journal(self.journal_path, "crash-station")  # as `printstation hopper load` does (tests/test_hopper.py)
        try:
            for printer in self.devices["printers"]:
                journal.receive_blanks("LOT-1", self.blanks, who="test")
                journal.load_blanks(printer["name"], self.blanks, lot="LOT-1", who="test")
        finally:
            journal.close()

    def start_agent(self, crash_at: str = "") -> subprocess.Popen:
        return self._spawn("agent", ["run", "--config", str(self.config_path)], env={"PRINTSTATION_CRASH_AT": crash_at})

    def agent_killed_at(self, crash_at: str, timeout: float = 90) -> None:
        """Run the agent armed to SIGKILL itself at `crash_at`; return once it has died there."""
        proc = self.start_agent(crash_at)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the agent never reached {crash_at}; see {self.root / 'agent.log'}") from None
        assert proc.returncode == -signal.SIGKILL, f"agent exit {proc.returncode}: {self.agent_log()[-2000:]}"
        self._procs.pop("agent")
        self.kills += 1

    def kill_agent(self) -> None:
        """SIGKILL the agent wherever it is."""
        if self._stop("agent", signal.SIGKILL) == -signal.SIGKILL:
            self.kills += 1

    def stop_agent(self) -> int | None:
        return self._stop("agent")

    def agent_alive(self) -> bool:
        proc = self._procs.get("agent")
        return proc is not None and proc.poll() is None

    def agent_log(self) -> str:
        path = self.root / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- witnesses --------------------------------------------------------------------------

    def upstream_state(self) -> dict:
        with httpx.Client(base_url=self.upstream_info["url"], timeout=10,
                          headers={"Authorization": f"Bearer {self.upstream_info['token']}"}) as http:
            return http.get("/v1/_sim/state").json()

    def outcomes(self) -> dict:
        return self.upstream_state()["outcomes"]

    def wait_for_outcomes(self, count: int | None = None, timeout: float = 120) -> dict:
        """Wait until upstream holds an outcome for `count` jobs (default: every job); fail if the agent dies."""
        count = self.jobs if count is None else count

        def done() -> dict | None:
            assert self.agent_alive(), f"the agent stopped: {self.agent_log()[-2000:]}"
            outcomes = self.outcomes()
            return outcomes if len(outcomes) >= count else None

        return wait_until(done, timeout, f"{count} outcomes upstream", step=0.25)

    def output_count(self) -> int:
        """Cards that left through the output so far; fails the test if the agent died."""
        assert self.agent_alive(), f"the agent stopped: {self.agent_log()[-2000:]}"
        return sum(1 for c in self.cards() if c["bin"] == "output")

    def cards(self) -> list[dict]:
        path = self.sim_dir / "cards.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def printer_state(self, name: str = "p1") -> dict:
        return json.loads((self.sim_dir / "printers" / name / "state.json").read_text())

    def journal_query(self, sql: str, params: tuple = ()) -> list[tuple]:
        db = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def figures(self) -> Figures:
        """Check every invariant against the witnesses (call with the agent stopped)."""
        from agent.journal import Journal

        cards = self.cards()
        output = Counter(c["document_number"] for c in cards if c["bin"] == "output")
        figures = Figures(kills=self.kills, printed=sum(output.values()),
                          duplicates=sum(1 for doc, n in output.items() if doc is not None and n > 1))
        states = dict(self.journal_query("SELECT job_id, state FROM jobs"))
        figures.held = sorted(j for j, s in states.items() if s == "held")
        figures.unfinished = sorted(j for j, s in states.items() if s not in FINAL_STATES and s != "held")
        outcomes = self.outcomes()
        for job_id, state in states.items():
            if state in ("printed", "failed", "rejected") and outcomes.get(job_id, {}).get("status") != state:
                figures.lost_results.append(job_id)
        for job_id, body in outcomes.items():
            if states.get(job_id) != body["status"]:
                figures.lost_results.append(f"{job_id}: upstream {body['status']}, journal {states.get(job_id)}")
        printed_upstream = sum(1 for o in outcomes.values() if o["status"] == "printed")
        if printed_upstream != figures.printed:
            figures.ledger_differences.append(f"{printed_upstream} printed outcomes upstream, {figures.printed} cards output")
        journal = Journal(self.journal_path, "crash-station")
        try:
            balance = journal.ledger_balance()
        finally:
            journal.close()
        for printer in self.devices["printers"]:
            name = printer["name"]
            sim = self.printer_state(name)
            lots = [lot for lot in balance if lot["printer"] == name]
            mine = [c for c in cards if c["printer"] == name]
            ledger = {k: sum(lot[k] for lot in lots) for k in ("printed", "spoiled", "in_printer", "remaining")}
            witness = {"printed": sum(c["bin"] == "output" for c in mine), "spoiled": sum(c["bin"] == "reject" for c in mine),
                       "in_printer": int(sim["card"] is not None), "remaining": sim["hopper_remaining"]}
            for key, seen in witness.items():
                if ledger[key] != seen:
                    figures.ledger_differences.append(f"{name} {key}: ledger {ledger[key]}, printer {seen}")
            if (sim["output_count"], sim["reject_count"]) != (witness["printed"], witness["spoiled"]):
                figures.ledger_differences.append(f"{name}: printer counters {sim['output_count']}/{sim['reject_count']}"
                                                  f" disagree with cards.jsonl {witness['printed']}/{witness['spoiled']}")
            figures.ledger_differences += [f"{name} lot {lot['lot']} does not balance: {lot}" for lot in lots
                                           if not lot["balanced"]]
        return figures
