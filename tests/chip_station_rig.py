"""A whole station as separate processes: virtual printer, reference upstream and the agent.

For the chip batch tests: what physically happened is read from the simulator's cards.jsonl,
what upstream heard from its /v1/_sim/state. Every process started here is stopped on exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent.journal import Journal


@dataclass
class StationRig:
    root: Path
    upstream: dict[str, Any]
    config: Path | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def sim_dir(self) -> Path:
        return self.root / "simulator"

    def cards(self) -> list[dict[str, Any]]:
        """Every card that left the printer, from cards.jsonl."""
        path = self.sim_dir / "cards.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def hopper_remaining(self, printer: str = "p1") -> int:
        return json.loads((self.sim_dir / "printers" / printer / "state.json").read_text())["hopper_remaining"]

    def ctl(self, *args: str) -> dict[str, Any]:
        """`printstation simulate-ctl` against this simulator; fails the test if it is refused."""
        run = subprocess.run([sys.executable, "-m", "agent", "simulate-ctl", "--state-dir", str(self.sim_dir), *args],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stdout + run.stderr
        return json.loads(run.stdout)

    def outcomes(self) -> dict[str, Any]:
        with httpx.Client(base_url=self.upstream["url"], timeout=5,
                          headers={"Authorization": f"Bearer {self.upstream['token']}"}) as http:
            return http.get("/v1/_sim/state").json()["outcomes"]

    def wait_for_outcomes(self, count: int, timeout: float) -> dict[str, Any]:
        """Upstream's outcomes once it has `count` of them; fails the test after `timeout` s or if the agent died."""
        deadline = time.monotonic() + timeout
        while True:
            outcomes = self.outcomes()
            if len(outcomes) >= count:
                return outcomes
            assert self.procs["agent"].poll() is None, f"the agent stopped: {self.log('agent')[-3000:]}"
            assert time.monotonic() < deadline, f"{len(outcomes)} of {count} outcomes after {timeout} s: {self.log('agent')[-3000:]}"
            time.sleep(0.25)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _start(rig: StationRig, name: str, argv: list[str]) -> subprocess.Popen:
    with open(rig.root / f"{name}.log", "ab") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "agent", *argv], stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    rig.procs[name] = proc
    return proc


def _wait_for_file(rig: StationRig, name: str, path: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert rig.procs[name].poll() is None, f"{name} stopped at start: {rig.log(name)[-2000:]}"
        assert time.monotonic() < deadline, f"{name} not ready after {timeout} s"
        time.sleep(0.1)
    return json.loads(path.read_text())


@contextmanager
def running_station(root: Path, *, jobs: int, blanks: int, speed: float, chip: dict[str, float] | None = None,
                    max_attempts: int = 3, start_agent: bool = True) -> Iterator[StationRig]:
    """One virtual printer (vpcd slot 0) with `blanks`, an upstream with `jobs`, and the agent.

    `chip` adds keys to the agent's [chip] table (e.g. card_wait_s). With start_agent False the
    agent is started by `start_agent_now`, so faults can be armed before the first card.
    """
    rig = StationRig(root, {})
    try:
        rig.sim_dir.mkdir(parents=True)
        _start(rig, "simulator", ["simulate", "--state-dir", str(rig.sim_dir), "--printers", "1",
                                  "--cards", str(blanks), "--speed", str(speed)])
        devices = _wait_for_file(rig, "simulator", rig.sim_dir / "devices.json", 30)
        (root / "upstream").mkdir()
        _start(rig, "upstream", ["upstream-sim", "--state-dir", str(root / "upstream"), "--listen", "127.0.0.1:0",
                                 "--jobs", str(jobs)])
        rig.upstream = _wait_for_file(rig, "upstream", root / "upstream" / "upstream.json", 120)
        config = _write_config(root, devices, rig.upstream, chip or {}, max_attempts)
        journal = Journal(root / "agent" / "journal.db", "chip-station")
        journal.receive_blanks("TEST-LOT", blanks, who="test")
        journal.load_blanks("p1", blanks, lot="TEST-LOT", who="test")
        journal.close()
        rig.config = config
        if start_agent:
            start_agent_now(rig)
        yield rig
    finally:
        for proc in reversed(list(rig.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(list(rig.procs.values())):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def start_agent_now(rig: StationRig) -> None:
    """Start the agent of a rig made with start_agent=False."""
    _start(rig, "agent", ["run", "--config", str(rig.config)])


def _write_config(root: Path, devices: dict, upstream: dict, chip: dict[str, float], max_attempts: int) -> Path:
    (root / "agent").mkdir(exist_ok=True)
    lines = [
        "[station]", 'id = "chip-station"', f'journal = "{root / "agent" / "journal.db"}"', 'language = "en"',
        f'control_socket = "{root / "agent" / "control.sock"}"', "",
        "[upstream]", f'url = "{upstream["url"]}"', f'token = "{upstream["token"]}"', "wait_s = 2", "",
        "[upstream.authority_keys]", *[f'"{kid}" = "{path}"' for kid, path in upstream["authority_keys"].items()], "",
        "[chip]", 'profile = "icao9303"', f"trust_anchors = {json.dumps(upstream['trust_anchors'])}",
        *[f"{key} = {value}" for key, value in chip.items()], "",
        "[pipeline]", f"max_attempts = {max_attempts}", "",
    ]
    for printer in devices["printers"]:
        lines += ["[[printers]]", f'name = "{printer["name"]}"', f'link = "serial://{printer["serial"]}?baud=115200"',
                  f'reader = "{printer["reader"]}"', ""]
    path = root / "station.toml"
    path.write_text("\n".join(lines))
    return path
