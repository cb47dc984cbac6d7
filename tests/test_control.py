"""The operators' commands against the real daemon: two virtual printers on ptys, chips through the real
pcscd, the reference upstream over loopback HTTP, the CLI as a separate process on the control socket.

The station is configured with a print window that is closed now, so it holds its jobs until a
batch (or a test) says otherwise. The tests run in file order on one station.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.station_rig import StationRig, closed_window, wait_until

AGENT = [sys.executable, "-m", "agent"]
JOBS = 6
BLANKS = 10


def morning_report_delivered(journal_path: Path) -> bool:
    from agent.journal import Journal

    journal = Journal.read_only(journal_path)
    try:
        return any(m["kind"] == "morning-report" and m["delivered_at"] for m in journal.outbox_summary())
    finally:
        journal.close()


class Station:
    def __init__(self, rig: StationRig, notify: socket.socket) -> None:
        self.rig = rig
        self.notify = notify
        self.socket_path = rig.root / "control.sock"

    def cli(self, *args: str, lang: str = "en_US.UTF-8", timeout: float = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "LANG": lang, "LC_ALL": "", "LC_MESSAGES": ""}
        return subprocess.run([*AGENT, *args, "--config", str(self.rig.config_path)], capture_output=True, text=True,
                              timeout=timeout, env=env)

    def json(self, *args: str) -> dict:
        run = self.cli(*args, "--json")
        assert run.returncode in (0, 1), run.stderr[-2000:]
        return json.loads(run.stdout)


@pytest.fixture(scope="module")
def station(pcscd, tmp_path_factory):
    root = tmp_path_factory.mktemp("control")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(root / "notify.sock"))
    notify.settimeout(30)
    with StationRig(root, jobs=JOBS, blanks=BLANKS, printers=2, speed=100, station_id="control-station",
                    plain_upstream=True, upstream={"prefetch": JOBS, "wait_s": 1}, pipeline={"panel_depth": 128},
                    extra_config=closed_window()) as rig:
        rig.start()
        rig.start_agent(env={"NOTIFY_SOCKET": str(root / "notify.sock"), "WATCHDOG_USEC": "2000000"})
        st = Station(rig, notify)
        wait_until(lambda: st.socket_path.exists() or not rig.agent_alive(), 60, "the control socket")
        assert rig.agent_alive(), rig.agent_log()[-2000:]
        try:
            yield st
        finally:
            notify.close()


def test_daemon_sends_ready_then_feeds_the_watchdog(station):
    messages = []
    while not any(m.startswith(b"WATCHDOG=1") for m in messages) and len(messages) < 20:
        messages.append(station.notify.recv(4096))
    assert messages[0].startswith(b"READY=1\nSTATUS=")
    assert any(m == b"WATCHDOG=1" for m in messages)


def test_status_shows_both_printers_holding_jobs_outside_the_window(station):
    status = wait_until(lambda: (s := station.json("status")) and s["queue"]["waiting"] == JOBS
                        and all(p["state"] == "stopped" for p in s["printers"]) and s, 60, "jobs held")
    assert status["source"] == "daemon" and status["window"]["open"] is False
    assert [p["name"] for p in status["printers"]] == ["p1", "p2"]
    assert all(p["reasons"] == ["outside-print-window"] for p in status["printers"])
    assert all(p["blanks"] == BLANKS and p["ribbon_left"] is not None for p in status["printers"])
    assert station.rig.cards() == [], "nothing printed outside the window"

    english = station.cli("status")
    assert english.returncode == 0, english.stderr
    assert "printer p1: stopped" in english.stdout and "outside-print-window" not in english.stdout, "words, not codes"
    assert "Outside the print hours" in english.stdout
    indonesian = station.cli("status", lang="id_ID.UTF-8")
    assert "printer p1: berhenti" in indonesian.stdout and "Di luar jam cetak" in indonesian.stdout


def test_pause_shows_in_status_and_resume_clears_it(station):
    paused = station.json("pause", "p2")
    assert paused == {"printer": "p2", "paused": True, "state": paused["state"], "job_id": None}
    text = station.cli("status").stdout
    wait_until(lambda: station.json("status")["printers"][1]["reasons"] == ["paused"], 30, "p2 paused")
    assert "p2" in text
    human = station.cli("pause", "p2")
    assert human.returncode == 0 and "paused by staff" in human.stdout


def test_batch_prints_on_the_free_printer_and_leaves_a_morning_report(station):
    run = station.cli("batch", "--cards", "3", "--poll", "0.5", "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["kind"] == "morning-report" and report["ended_because"] == "target-reached"
    assert report["printed"] >= 3 and report["printers"]["p2"]["printed"] == 0, "the paused printer took no card"
    assert report["printers"]["p1"]["blanks_left"] == BLANKS - report["printers"]["p1"]["printed"] - report["printers"]["p1"]["spoiled"]
    assert report["printers"]["p1"]["ribbon_left"] is not None
    assert "batch:" in run.stderr, "progress is shown while the batch runs"
    output = [c for c in station.rig.cards() if c["bin"] == "output"]
    assert {c["printer"] for c in output} == {"p1"} and len(output) == report["printed"]

    reports = sorted((station.rig.journal_path.parent / "reports").glob("morning-report-*"))
    assert [p.suffix for p in reports] == [".html", ".json", ".txt"]
    assert "Morning report" in reports[2].read_text() or "Laporan pagi" in reports[2].read_text()
    wait_until(lambda: morning_report_delivered(station.rig.journal_path), 60, "the report delivered upstream")

    follow = station.cli("batch", "--follow")
    assert follow.returncode == 0 and "printed" in follow.stdout, "the last report can be shown again"


def test_resume_lets_the_paused_printer_take_cards_again(station):
    resumed = station.json("resume", "p2")
    assert resumed["paused"] is False
    human = station.cli("resume", "p2")
    assert human.returncode == 0 and "resumed" in human.stdout
    status = station.json("status")
    assert status["printers"][1]["paused"] is False and status["printers"][1]["reasons"] == ["outside-print-window"]


def test_drain_returns_once_no_card_is_in_the_printer(station):
    drained = station.json("drain", "p1")
    assert drained["paused"] is True and drained["state"] != "processing"
    assert station.cli("drain", "p1").returncode == 0
    station.json("resume", "p1")


def test_pause_of_an_unknown_printer_names_the_ones_there_are(station):
    run = station.cli("pause", "p9")
    assert run.returncode == 1 and "p1, p2" in run.stderr


def test_diagnose_asks_the_daemon_and_shows_every_byte_with_trace(station):
    report = station.json("diagnose", "--printer", "p1", "--trace")
    [p1] = report["printers"]
    assert p1["via"] == "daemon" and p1["reachable"] and p1["model"] and p1["serial"]
    assert p1["counters"]["cards"] >= 3 and p1["ribbon"]["cards_left"] > 0
    assert set(p1["sensors"]) >= {"cover_open", "card_inside", "feeder_empty"} and p1["faults"] == []
    sent = [t["text"] for t in p1["trace"] if t["dir"] == "tx"]
    assert "\\x1bRfv\\r" in sent and any(t["dir"] == "rx" for t in p1["trace"])
    human = station.cli("diagnose")
    assert human.returncode == 0, human.stdout + human.stderr
    assert "== p1" in human.stdout and "== p2" in human.stdout and "no faults" in human.stdout


def test_events_list_and_follow(station):
    events = [json.loads(line) for line in station.cli("events", "--json").stdout.splitlines()]
    assert {"leased", "feeding", "printed"} <= {e["state"] for e in events}
    last = events[-1]["id"]
    later = station.cli("events", "--since", str(last - 1)).stdout.splitlines()
    assert len(later) == 1 and later[0].split()[0] == str(last)
    assert station.cli("events", "--since", "1h", "--json").stdout.count("\n") == len(events)

    follow = subprocess.Popen([*AGENT, "events", "--follow", "--config", str(station.rig.config_path)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = follow.stdout.readline()
        assert first.split()[0] == str(events[0]["id"])
    finally:
        os.killpg(follow.pid, signal.SIGTERM)
        follow.wait(timeout=10)


def test_support_bundle_has_everything_and_no_personal_data(station, tmp_path):
    from agent.journal import Journal

    journal = Journal.read_only(station.rig.journal_path)
    subjects = journal.subjects_held()
    journal.close()
    assert subjects, "jobs still waiting hold personal data the bundle must leave out"
    log = tmp_path / "extra.log"
    secrets = [subjects[0]["nik"], subjects[0]["name"], subjects[0]["document_number"]]
    log.write_text(f"operator note: card for {secrets[1]} ({secrets[0]}), document {secrets[2]}\n")
    out = tmp_path / "bundle.tar.gz"
    run = station.cli("support-bundle", "--output", str(out), "--log-file", str(log), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"bundle": str(out)}
    with tarfile.open(out) as tar:
        texts = {m.name.split("/")[-1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert set(texts) == {"README.txt", "config.toml", "status.json", "journal.json", "logs.txt", "versions.json"}
    assert "operator note" in texts["logs.txt"] and '"events"' in texts["journal.json"]
    assert station.rig.upstream_info["token"] not in texts["config.toml"]
    everything = "\n".join(texts.values())
    for subject in subjects:
        for value in (subject["nik"], subject["name"], subject["document_number"]):
            assert value.lower() not in everything.lower(), "personal data in the support bundle"


def test_with_the_daemon_down_status_and_events_read_the_journal(station):
    assert station.rig.stop_agent() == 0
    assert not station.socket_path.exists(), "the daemon removes its socket on the way out"
    status = station.json("status")
    assert status["source"] == "journal" and [p["name"] for p in status["printers"]] == ["p1", "p2"]
    assert status["queue"]["waiting"] + sum(p["printed_today"] for p in status["printers"]) >= JOBS
    human = station.cli("status")
    assert human.returncode == 1 and "service is not running" in human.stdout
    assert station.cli("events", "--json").stdout.count("\n") > 0
    refused = station.cli("pause", "p1")
    assert refused.returncode == 3 and "systemctl start printstation" in refused.stderr
