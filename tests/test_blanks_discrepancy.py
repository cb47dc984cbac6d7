"""Blanks that match the world: the feeder is emptied by hand while the ledger still counts
blanks. The printer is the witness: the station records the discrepancy, shows it in `status`,
reports it upstream, `hopper reconcile` disagrees, no job is lost, and a count by the operator
(`hopper adjust`) plus a recorded load sets the ledger right again."""

from __future__ import annotations

import json
import subprocess

from tests.station_rig import AGENT, StationRig, wait_until


def cli(rig: StationRig, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*AGENT, *args, "--config", str(rig.config_path)], capture_output=True, text=True, timeout=120)


def ctl(rig: StationRig, *args: str) -> dict:
    done = subprocess.run([*AGENT, "simulate-ctl", "--state-dir", str(rig.sim_dir), "p1", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_feeder_emptied_behind_the_ledgers_back_is_a_discrepancy_everywhere_and_nothing_is_lost(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=4, blanks=6, prefetch=4) as rig:
        rig.start()
        rig.start_agent()
        rig.wait_for_outcomes(count=1)
        taken = ctl(rig, "hopper-empty")["result"]["blanks_taken_out"]  # someone takes the blanks out
        assert taken > 0

        def status() -> dict:
            return json.loads(cli(rig, "status", "--json").stdout)

        found = wait_until(lambda: status()["printers"][0]["discrepancies"], 60, "the discrepancy in status")
        [d] = found
        ledger = rig.journal_query("SELECT SUM(quantity) FROM ledger WHERE printer = 'p1'")[0][0]
        assert d["kind"] == "feeder-empty-ledger-not" and d["ledger_count"] == ledger > 0
        assert d["lot"] == "LOT-1" and "empty" in d["printer_said"]
        human = cli(rig, "status").stdout
        assert "hopper adjust" in human, human

        def reported() -> dict | None:
            body = rig.upstream_state()["telemetry"].get("crash-station", {})
            return body if body.get("discrepancies") else None

        body = wait_until(reported, 60, "the discrepancy upstream")
        assert body["discrepancies"][0]["ledger_count"] == ledger
        assert any(a["kind"] == "ledger-discrepancy" and a["printer"] == "p1" for a in body["alerts"])

        reconcile = cli(rig, "hopper", "reconcile", "--json")
        report = json.loads(reconcile.stdout)
        [p1] = report["printers"]
        assert reconcile.returncode != 0 and report["agree"] is False
        assert p1["checked"] and p1["agree"] is False and p1["printer_says"]["feeder_empty"] is True
        assert "feeder is empty" in p1["reason"] and p1["ledger_remaining"] == ledger

        # The operator counts the hopper (empty), records it, and loads new blanks from the storeroom.
        assert cli(rig, "hopper", "adjust", "--printer", "p1", "--quantity", str(-ledger),
                   "--reason", "counted: hopper empty", "--who", "siti").returncode == 0
        ctl(rig, "hopper-load", "5")
        assert cli(rig, "stock", "receive", "--lot", "LOT-2", "--count", "5").returncode == 0
        assert cli(rig, "hopper", "load", "--printer", "p1", "--quantity", "5", "--lot", "LOT-2",
                   "--who", "siti").returncode == 0
        rig.wait_for_outcomes(timeout=120)
        assert status()["printers"][0]["discrepancies"] == [], "the count settled it"
        rig.stop_agent()
        figures = rig.figures()
        again = cli(rig, "hopper", "reconcile", "--json")
    assert figures.clean, figures
    assert again.returncode == 0 and json.loads(again.stdout)["agree"], again.stdout
