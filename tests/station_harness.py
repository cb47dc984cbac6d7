"""The whole station for fault tests: the real simulator, upstream and agent processes.

Built on agent/tools/demo.py's Demo (same processes, same configuration) with two additions: extra
options for `printstation simulate` (a fault schedule, capacities) and the simulator's control
channel. Every process is stopped when the `station` context ends.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent.tools.demo import Demo
from simulators.printer.control import send_request


class _FaultDemo(Demo):
    def __init__(self, args: argparse.Namespace, sim_extra: list[str]) -> None:
        super().__init__(args)
        self.sim_extra = sim_extra

    def _start(self, name: str, argv: list[str], log_path: Path) -> subprocess.Popen:
        return super()._start(name, argv + self.sim_extra if name == "simulator" else argv, log_path)


@dataclass
class Station:
    root: Path
    jobs: int
    demo: _FaultDemo
    upstream: dict[str, Any]
    devices: dict[str, Any]

    @property
    def sim_dir(self) -> Path:
        return self.root / "simulator"

    def ctl(self, printer: str, **request: Any) -> dict[str, Any]:
        """One control request; fails the test when the simulator refuses it."""
        reply = send_request(Path(self.devices["control"]), {"printer": printer, **request})
        assert reply["ok"], reply
        return reply

    def outcomes(self) -> dict[str, Any]:
        with httpx.Client(base_url=self.upstream["url"], timeout=5,
                          headers={"Authorization": f"Bearer {self.upstream['token']}"}) as http:
            return http.get("/v1/_sim/state").json()["outcomes"]

    def wait_for_outcomes(self, timeout: float = 60.0) -> dict[str, Any]:
        """Every job's outcome, once upstream has them all; fails the test after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            outcomes = self.outcomes()
            if len(outcomes) >= self.jobs:
                return outcomes
            assert time.monotonic() < deadline, f"{len(outcomes)} of {self.jobs} outcomes after {timeout} s; see {self.root}"
            self._agent_alive()
            time.sleep(0.25)

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        """Until the agent's log says `text`; fails the test after `timeout` s."""
        deadline = time.monotonic() + timeout
        while text not in (self.root / "agent.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, f"the agent never logged {text!r}; see {self.root / 'agent.log'}"
            self._agent_alive()
            time.sleep(0.1)

    def cards(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.sim_dir / "cards.jsonl").read_text().splitlines() if line]

    def printer_state(self, name: str = "p1") -> dict[str, Any]:
        return json.loads((self.sim_dir / "printers" / name / "state.json").read_text())

    def stop(self) -> None:
        self.demo._stop_all()

    def _agent_alive(self) -> None:
        agent = next(p for n, p in self.demo.procs if n == "agent")
        assert agent.poll() is None, f"the agent stopped (exit {agent.returncode}); see {self.root / 'agent.log'}"


@contextmanager
def station(root: Path, *, jobs: int = 3, speed: float = 200.0, transport: str = "serial",
            sim_extra: list[str] | None = None) -> Iterator[Station]:
    """Start simulator (one printer), upstream with `jobs` jobs, and the agent; stop them all on exit."""
    args = argparse.Namespace(cards=jobs, printers=1, speed=speed, json=False, state_dir=root, timeout=120.0,
                              transport=transport)
    demo = _FaultDemo(args, sim_extra or [])
    try:
        devices = demo._start_simulator()
        upstream = demo._start_upstream()
        config = demo._write_config(devices, upstream)
        demo._start("agent", ["run", "--config", str(config)], demo.root / "agent.log")
        yield Station(demo.root, jobs, demo, upstream, devices)
    finally:
        demo._stop_all()


def assert_every_job_printed_once_and_every_blank_accounted(st: Station, outcomes: dict[str, Any]) -> dict[str, Any]:
    """The witnesses agree: upstream has `printed` for every job, cards.jsonl shows each document
    leaving through the output exactly once, every reject has its reason upstream, and the blanks
    balance (loaded - taken out = output + reject + still in the feeder). Call after `stop`."""
    assert {o["status"] for o in outcomes.values()} == {"printed"}, outcomes
    cards = st.cards()
    output = Counter(c["document_number"] for c in cards if c["bin"] == "output")
    assert len(output) == st.jobs and set(output.values()) == {1}, output
    rejects = [c for c in cards if c["bin"] == "reject"]
    spoiled = [a for o in outcomes.values() for a in o["attempts"] if a["result"] == "spoiled"]
    assert len(spoiled) == len(rejects), (spoiled, rejects)  # the agent does not learn blank serials
    assert all(a["reason"] for a in spoiled), spoiled
    for card in cards:  # the simulator rebuilt every printed card as a picture (written by now: it stopped)
        if card["panels"]:
            assert card["png"] and (st.sim_dir / card["png"]).exists(), card
    state = st.printer_state()
    assert state["card"] is None
    assert state["blanks_loaded"] - state["blanks_unloaded"] == len(cards) + state["hopper_remaining"]
    return {"rejects": rejects, "spoiled": spoiled, "state": state}
