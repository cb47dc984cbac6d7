"""The overnight run, scripted on virtual hardware: two printers, a batch started by the operator at closing
time, a chip that fails its read-back, a jam, a cover opened and closed, and an upstream outage. The
station finishes unattended and leaves a morning report that agrees with the witnesses: the virtual
printers' cards.jsonl and saved state, and the outcomes upstream received.

Outside the print window the station holds its jobs; `printstation batch` prints them all at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter

from agent.core.local_time import local_time
from agent.core.messages import fault_message
from agent.ops.reason_words import reason_words
from tests.station_rig import AGENT, StationRig, closed_window, wait_until

JOBS = 10
BLANKS = 12


class Night:
    """The operator's and technician's hands: the CLI against the daemon, simulate-ctl against the printers."""

    def __init__(self, rig: StationRig) -> None:
        self.rig = rig

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "LANG": "en_US.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
        return subprocess.run([*AGENT, *args, "--config", str(self.rig.config_path)], capture_output=True, text=True,
                              timeout=300, env=env)

    def status(self) -> dict:
        run = self.cli("status", "--json")
        assert run.returncode in (0, 1), run.stderr[-2000:]
        return json.loads(run.stdout)

    def printer(self, name: str) -> dict:
        return next(p for p in self.status()["printers"] if p["name"] == name)

    def ctl(self, printer: str, *action: str) -> None:
        run = subprocess.run([*AGENT, "simulate-ctl", "--state-dir", str(self.rig.sim_dir), printer, *action],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr

    def output(self, printer: str) -> int:
        return sum(1 for c in self.rig.cards() if c["bin"] == "output" and c["printer"] == printer)


def test_an_overnight_batch_through_a_jam_an_open_cover_and_an_outage_leaves_a_correct_morning_report(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=JOBS, blanks=BLANKS, printers=2, prefetch=JOBS, extra_config=closed_window()) as rig:
        rig.start()
        rig.start_agent()
        night = Night(rig)
        wait_until(lambda: rig.agent_alive() and night.status()["queue"]["waiting"] == JOBS, 90, "every job held")
        assert rig.cards() == [], "nothing prints outside the window"

        night.ctl("p2", "chip-fault", "flipped-byte")  # p2's first chip fails its read-back: a blank spoiled
        batch_log = tmp_path / "batch.stderr"
        with batch_log.open("w") as stderr:
            batch = subprocess.Popen([*AGENT, "batch", "--poll", "0.5", "--json", "--config", str(rig.config_path)],
                                     stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
        try:
            # A card jams in p1 after its first card; the other printer takes the jobs meanwhile.
            wait_until(lambda: night.output("p1") >= 1, 120, "p1's first card")
            night.ctl("p1", "jam")
            jammed = wait_until(lambda: (p := night.printer("p1")) and "jam" in p["faults"] and p, 60, "the jam seen")
            assert "media-jam-error" in jammed["reasons"]
            shown = night.cli("status")
            assert shown.returncode == 1 and "jammed" in shown.stdout and "what to do: " in shown.stdout, shown.stdout

            # The line to the centre goes down; printing goes on from the jobs held.
            port = rig.upstream_port
            rig.stop_upstream()
            outage_began = time.monotonic()
            wait_until(lambda: night.status()["upstream"] == "offline", 60, "the outage seen")
            printed_offline = night.output("p2")

            # Someone opens p2's cover and closes it again.
            night.ctl("p2", "cover-open")
            wait_until(lambda: "cover_open" in night.printer("p2")["faults"], 60, "the open cover seen")
            time.sleep(2.0)  # open a moment: the batch notes faults once a second (agent.ops.control_socket TICK_S)
            night.ctl("p2", "clear")
            wait_until(lambda: night.output("p2") > printed_offline, 120, "p2 printing offline after the cover closed")

            rig.start_upstream(port)
            outage_s = time.monotonic() - outage_began
            wait_until(lambda: night.status()["upstream"] == "online", 120, "upstream back")
            night.ctl("p1", "clear")  # the technician takes the jammed card out

            out, _ = batch.communicate(timeout=400)
        finally:
            if batch.poll() is None:
                os.killpg(batch.pid, signal.SIGTERM)
                batch.wait(timeout=30)
        assert batch.returncode == 0, batch_log.read_text()[-2000:]
        report = json.loads(out)
        assert "batch:" in batch_log.read_text(), "progress is shown while the batch runs"

        rig.wait_for_outcomes(timeout=120)
        wait_until(lambda: night.status()["outbox_backlog"] == 0, 120, "every report delivered, the morning report too")
        follow = night.cli("batch", "--follow")
        drained = night.cli("drain", "p1")
        resumed = night.cli("resume", "p1")
        bundle = night.cli("support-bundle", "--output", str(tmp_path / "bundle.tar.gz"))
        sim = {name: rig.printer_state(name) for name in ("p1", "p2")}
        assert rig.stop_agent() == 0
        figures = rig.figures()
        outcomes = rig.outcomes()
        delivered = [m for m in _outbox(rig) if m["kind"] == "morning-report"]

    # The station finished unattended, printed every job once, and lost no blank (cards.jsonl, upstream, ledger agree).
    assert figures.clean and figures.printed == JOBS, figures
    assert report["kind"] == "morning-report" and report["ended_because"] == "queue-empty"
    cards = rig.cards()
    rejects = [c for c in cards if c["bin"] == "reject"]
    attempts = [a for o in outcomes.values() for a in o["attempts"]]
    assert {o["status"] for o in outcomes.values()} == {"printed"} and len(outcomes) == JOBS

    # Printed and spoiled, with reasons, as the printers and upstream saw them.
    assert report["printed"] == JOBS == sum(c["bin"] == "output" for c in cards)
    assert report["spoiled"] == len(rejects) >= 1
    assert report["spoiled_reasons"] == dict(Counter(a["reason"] for a in attempts if a["result"] == "spoiled"))
    assert sum(report["spoiled_reasons"].values()) == report["spoiled"]
    for name in ("p1", "p2"):
        mine = [c for c in cards if c["printer"] == name]
        line = report["printers"][name]
        assert line["printed"] == sum(c["bin"] == "output" for c in mine) >= 1, (name, line)
        assert line["spoiled"] == sum(c["bin"] == "reject" for c in mine), (name, line)
        # Blanks and ribbon left: the ledger's figure is what the printer's hopper holds, the ribbon the printer's own.
        assert line["blanks_left"] == sim[name]["hopper_remaining"] == BLANKS - len(mine), (name, line)
        assert line["ribbon_left"] == sim[name]["ribbon_remaining"], (name, line)
        forecast = line["blanks_forecast"]
        assert forecast["remaining"] == line["blanks_left"] and forecast["per_print_hour"] > 0 and forecast["date"]

    # Each fault, with how long it lasted.
    faults = {(f["printer"], f["fault"]): f for f in report["faults"]}
    assert {("p1", "jam"), ("p2", "cover_open"), ("upstream", "upstream-offline")} <= set(faults), report["faults"]
    assert all(f["ended_at"] and f["seconds"] >= 0 for f in report["faults"])
    assert faults[("p1", "jam")]["seconds"] > faults[("p2", "cover_open")]["seconds"] > 0, \
        "the jam lasted from before the cover was opened until after it was closed"
    # The agent notices the outage at its next lease, and its return at the first retry that gets through.
    assert 1 <= faults[("upstream", "upstream-offline")]["seconds"] <= outage_s + 70

    # Kept next to the journal as JSON and text, and sent upstream.
    kept = sorted((rig.journal_path.parent / "reports").glob("morning-report-*"))
    assert [p.suffix for p in kept] == [".html", ".json", ".txt"]
    assert json.loads(kept[1].read_text()) == report
    text = kept[2].read_text()
    assert delivered and all(m["delivered_at"] for m in delivered)

    # The human report says the same: printed, spoiled by reason, each fault with its length, stock, forecast.
    assert follow.returncode == 0 and follow.stdout.strip() == text.strip()
    assert f"printed {JOBS}, spoiled {report['spoiled']}" in text
    for reason, n in report["spoiled_reasons"].items():  # in words, not codes
        assert f"{reason_words(reason, 'en')} {n}" in text and reason not in text
    for f in report["faults"]:
        assert f"{f['printer']}: {fault_message(f['fault'], 'en')[0]} {local_time(f['started_at'], 'en')} +{f['seconds']} s" in text
    for name, line in report["printers"].items():
        assert (f"printer {name}: printed {line['printed']}, spoiled {line['spoiled']}, blanks {line['blanks_left']}, "
                f"ribbon {line['ribbon_left']}, forecast {line['blanks_forecast']['date']}") in text

    # drain and resume, as the operator types them the next morning.
    assert drained.returncode == 0 and "p1: " in drained.stdout and "paused" in drained.stdout.lower(), drained.stdout
    assert resumed.returncode == 0 and "p1: resumed" in resumed.stdout, resumed.stdout
    assert bundle.returncode == 0 and bundle.stdout.strip() == str(tmp_path / "bundle.tar.gz"), bundle.stderr
    assert (tmp_path / "bundle.tar.gz").stat().st_size > 0


def _outbox(rig: StationRig) -> list[dict]:
    from agent.journal import Journal

    journal = Journal.read_only(rig.journal_path)
    try:
        return journal.outbox_summary()
    finally:
        journal.close()
