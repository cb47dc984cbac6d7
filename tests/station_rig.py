"""The one station rig of the tests: the whole station as separate processes on virtual hardware.

The virtual printer (`printstation simulate`), the reference upstream (`printstation
upstream-sim`) and the agent (`printstation run`) each run in their own process and session,
as in the field, so that killing one leaves the others as they were; every station-level test
(crashes, outages, printer and chip faults, control, metrics) starts them here, with overrides
for what it tests. `write_config` is the one writer of a station's TOML; `figures()` and
`assert_every_job_printed_once` the one witness checker, reading the printer's card log and saved
state, the upstream's own record, and the journal. The rig stops every process it started.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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


def station_toml(root: Path, station_id: str, upstream_info: dict, devices: dict, *, journal: Path | None = None,
                 transport: str = "serial", tables: dict[str, dict[str, object]] | None = None, extra: str = "") -> str:
    """The one writer of a station's TOML for the tests: [station] under `root`, upstream's url,
    token, authority keys and trust anchors from its upstream.json (`upstream_info`), a
    [[printers]] entry for each printer in the simulator's devices.json, and `tables`
    ({"stock": {"blanks_low": 9}}) over those; `extra` is TOML text added at the end."""
    settings: dict[str, dict[str, object]] = {
        "station": {"id": station_id, "journal": str(journal or root / "agent" / "journal.db"), "language": "en",
                    "control_socket": str(root / "control.sock")},
        "upstream": {"url": upstream_info["url"], "token": upstream_info["token"]},
        "upstream.authority_keys": dict(upstream_info["authority_keys"]),
        "chip": {"profile": "icao9303", "trust_anchors": upstream_info["trust_anchors"]},
        "web": {"listen": "127.0.0.1:0"},  # the page on a port of its own: stations never collide
    }
    for name, values in (tables or {}).items():
        settings[name] = {**settings.get(name, {}), **values}
    lines: list[str] = []
    for name, values in settings.items():
        lines += [f"[{name}]", *[f"{_toml_key(k)} = {_toml(v)}" for k, v in values.items()], ""]
    for printer in devices["printers"]:
        link = printer["usb"]["url"] if transport == "usb" else f"serial://{printer['serial']}?baud=115200"
        lines += ["[[printers]]", f'name = "{printer["name"]}"', f'link = "{link}"', f'reader = "{printer["reader"]}"', ""]
    return "\n".join(lines) + "\n" + extra


def closed_window() -> str:
    """A print window of one minute every day, two hours from now: closed for the whole test, so
    only a batch (or the test) makes the station print."""
    start = datetime.now() + timedelta(hours=2)
    return (f'\n[[windows]]\ndays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
            f'start = "{start:%H:%M}"\nend = "{start + timedelta(minutes=1):%H:%M}"\n')


def _toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, (str, list)) else str(value).lower() if isinstance(value, bool) else str(value)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


class StationRig:
    """One station on virtual hardware under `root`; a context manager, so every process stops."""

    def __init__(self, root: Path, *, jobs: int, blanks: int | None = None, speed: float = 200.0, printers: int = 1,
                 lease_s: float = 3600.0, prefetch: int = 4, upstream: dict[str, object] | None = None,
                 transport: str = "serial", sim_extra: list[str] | None = None, station_id: str = "crash-station",
                 pipeline: dict[str, object] | None = None, chip: dict[str, object] | None = None,
                 plain_upstream: bool = False, extra_config: str = "") -> None:
        """`blanks` per printer (default: the jobs and a fifth more, at least 5 spare, as the demo
        loads); `transport` serial or usb; `sim_extra` more options for `printstation simulate`;
        `upstream`, `pipeline`, `chip` keys over the rig's tables in the station's TOML
        (`plain_upstream`: only url, token and `upstream`, as the demo writes it); `extra_config`
        TOML text after it all (print windows, say)."""
        self.root = root
        self.jobs = jobs
        self.blanks = blanks if blanks is not None else -(-jobs // printers) + max(5, jobs // 5)
        self.speed = speed
        self.printers = printers
        self.lease_s = lease_s
        base = {} if plain_upstream else {"prefetch": prefetch, "lease_max": 10, "wait_s": 1, "timeout_s": 5,
                                          "retry_max_s": 2}
        self.upstream_settings = {**base, **(upstream or {})}
        self.transport = transport
        self.sim_extra = list(sim_extra or [])
        self.station_id = station_id
        self.pipeline_settings = {"panel_depth": 2, **(pipeline or {})}  # depth 2: the link's time is not under test
        self.chip_settings = {"card_wait_s": 5, **(chip or {})}
        self.extra_config = extra_config
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
        # A restart keeps the token; "--token=" so that one beginning with "-" is not read as an option.
        token = [f"--token={self.upstream_info['token']}"] if self.upstream_info else []
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
        usb = ["--usb"] if self.transport == "usb" else []
        proc = self._spawn("simulator", ["simulate", "--state-dir", str(self.sim_dir), "--printers", str(self.printers),
                                         "--cards", str(self.blanks), "--speed", str(self.speed), *usb, *self.sim_extra])
        wait_until(lambda: devices.exists() or proc.poll() is not None, 60, "the virtual printers")
        assert proc.poll() is None, (self.root / "simulator.log").read_text()[-2000:]
        self.devices = json.loads(devices.read_text())

    def power_cut_simulator(self) -> None:
        """The printer loses power: SIGKILL, no chance to save anything it had not saved."""
        self._stop("simulator", signal.SIGKILL)

    def write_config(self, **tables: dict[str, object]) -> None:
        """The station's TOML (see `station_toml`): the rig's settings, then `tables` over them."""
        up = self.upstream_info
        settings: dict[str, dict[str, object]] = {
            "pipeline": dict(self.pipeline_settings),
            "upstream": {"url": self.upstream_url or up["url"], "token": up["token"], **self.upstream_settings},
            "chip": dict(self.chip_settings),
        }
        for name, values in tables.items():
            settings[name] = {**settings.get(name, {}), **values}
        self.config_path.write_text(station_toml(
            self.root, self.station_id, up, self.devices, journal=self.journal_path, transport=self.transport,
            tables=settings, extra=self.extra_config))

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

        journal = Journal(self.journal_path, self.station_id)  # as `printstation hopper load` does (tests/test_hopper.py)
        try:
            for printer in self.devices["printers"]:
                journal.receive_blanks("LOT-1", self.blanks, who="test")
                journal.load_blanks(printer["name"], self.blanks, lot="LOT-1", who="test")
        finally:
            journal.close()

    def start_agent(self, crash_at: str = "", env: dict[str, str] | None = None) -> subprocess.Popen:
        """`printstation run` on the rig's configuration; `crash_at` arms a crash point, `env` adds to its environment."""
        return self._spawn("agent", ["run", "--config", str(self.config_path)],
                           env={"PRINTSTATION_CRASH_AT": crash_at, **(env or {})})

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
        return self.log("agent")

    def log(self, name: str) -> str:
        """The log of one of the rig's processes (agent, simulator, upstream)."""
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        """Until the agent's log says `text`; fails the test after `timeout` s or if the agent died."""
        def said() -> bool:
            assert self.agent_alive(), f"the agent stopped: {self.agent_log()[-2000:]}"
            return text in self.agent_log()

        wait_until(said, timeout, f"the agent to log {text!r} (see {self.root / 'agent.log'})")

    def web_url(self, timeout: float = 60.0) -> str:
        """The operators' page, once the agent says where it listens."""
        from agent.tools.demo import page_url_in_log

        def url() -> str | None:
            assert self.agent_alive(), f"the agent stopped: {self.agent_log()[-2000:]}"
            return page_url_in_log(self.agent_log())

        return str(wait_until(url, timeout, "the operators' page"))

    def stop_agent_and_printers(self) -> None:
        """Stop the agent, then the printers (their card pictures are written by then); upstream
        stays up, the witness of what it received, until the rig ends."""
        self._stop("agent")
        self._stop("simulator")

    # -- the simulator's control channel ----------------------------------------------------

    def ctl(self, printer: str, **request: object) -> dict:
        """One request on the simulator's control socket; fails the test when it is refused."""
        from simulators.printer.control import send_request

        reply = send_request(Path(self.devices["control"]), {"printer": printer, **request})
        assert reply["ok"], reply
        return reply

    def simulate_ctl(self, *args: str) -> dict:
        """`printstation simulate-ctl ARGS` against this simulator, as a technician types it."""
        run = subprocess.run([*AGENT, "simulate-ctl", "--state-dir", str(self.sim_dir), *args],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stdout + run.stderr
        return json.loads(run.stdout)

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

    def hopper_remaining(self, name: str = "p1") -> int:
        return self.printer_state(name)["hopper_remaining"]

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
        journal = Journal(self.journal_path, self.station_id)
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

    def assert_every_job_printed_once(self, outcomes: dict) -> dict:
        """The witnesses agree that every job printed once (call with the agent stopped): the
        invariants of `figures()`, every outcome upstream `printed`, each document out of the
        output exactly once, every reject with its reason upstream, and every printed card
        rebuilt as a picture by the simulator. Returns the rejects, spoiled attempts and printer state."""
        figures = self.figures()
        assert figures.clean, figures
        assert {o["status"] for o in outcomes.values()} == {"printed"}, outcomes
        cards = self.cards()
        output = Counter(c["document_number"] for c in cards if c["bin"] == "output")
        assert len(output) == self.jobs and set(output.values()) == {1}, output
        rejects = [c for c in cards if c["bin"] == "reject"]
        spoiled = [a for o in outcomes.values() for a in o["attempts"] if a["result"] == "spoiled"]
        assert len(spoiled) == len(rejects), (spoiled, rejects)  # the agent does not learn blank serials
        assert all(a["reason"] for a in spoiled), spoiled
        for card in cards:  # the simulator rebuilt every printed card as a picture (written by now: it stopped)
            if card["panels"]:
                assert card["png"] and (self.sim_dir / card["png"]).exists(), card
        state = self.printer_state()
        assert state["card"] is None
        assert state["blanks_loaded"] - state["blanks_unloaded"] == len(cards) + state["hopper_remaining"]
        return {"rejects": rejects, "spoiled": spoiled, "state": state}


def as_the_demo(*, pipeline: dict[str, object] | None = None, chip: dict[str, object] | None = None,
                **options: object) -> dict[str, object]:
    """Rig options for the station as the demo configures it (full panel depth, the default chip
    wait, upstream defaults but a 2 s long poll), with `pipeline` and `chip` keys over it: the
    printer- and chip-fault suites run on it, so the link carries real panels."""
    return {"plain_upstream": True, "upstream": {"wait_s": 2}, "station_id": "demo-station",
            "pipeline": {"panel_depth": 128, **(pipeline or {})}, "chip": {"card_wait_s": 10, **(chip or {})}, **options}


@contextmanager
def running_station(root: Path, *, start_agent: bool = True, **options: object) -> Iterator[StationRig]:
    """A StationRig (options as its constructor's) with upstream, printers, configuration and
    blanks in place and, unless `start_agent` is False, the agent running; all stopped on exit."""
    with StationRig(root, **options) as rig:  # type: ignore[arg-type]
        rig.start()
        if start_agent:
            rig.start_agent()
        yield rig
