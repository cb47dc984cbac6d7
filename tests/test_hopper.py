"""`printstation hopper load|adjust|reconcile`: the blank ledger from the operator's side, with the
printer's own sensors and counters as the other witness."""

from __future__ import annotations

import json

from tests.station_rig import StationRig


def test_load_and_adjust_are_recorded_with_lot_reason_and_who(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=1, blanks=5) as rig:
        rig.start_upstream()
        rig.start_simulator()
        rig.write_config()
        assert rig.stock("receive", "--lot", "LOT-7", "--count", "20", "--who", "siti").returncode == 0
        loaded = rig.hopper("load", "--printer", "p1", "--quantity", "5", "--lot", "LOT-7", "--first-serial", "B001",
                            "--last-serial", "B005", "--who", "siti")
        adjusted = rig.hopper("adjust", "--printer", "p1", "--quantity", "-1", "--reason", "blank found bent",
                              "--who", "siti")
        rows = rig.journal_query("SELECT movement, quantity, lot, first_serial, last_serial, reason, who FROM ledger ORDER BY id")
    assert loaded.returncode == 0 and "5 blanks of lot LOT-7 loaded" in loaded.stdout, loaded.stderr
    assert adjusted.returncode == 0 and "4 in the hopper" in adjusted.stdout, adjusted.stderr
    assert rows == [("load", 5, "LOT-7", "B001", "B005", None, "siti"),
                    ("adjust", -1, "LOT-7", None, None, "blank found bent", "siti")]


def test_load_and_adjust_answer_in_json_for_scripts(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=1, blanks=5) as rig:
        rig.start_upstream()
        rig.start_simulator()
        rig.write_config()
        received = rig.stock("receive", "--lot", "LOT-7", "--count", "20", "--first-serial", "B001", "--json")
        loaded = rig.hopper("load", "--printer", "p1", "--quantity", "5", "--lot", "LOT-7", "--who", "siti", "--json")
        adjusted = rig.hopper("adjust", "--printer", "p1", "--quantity", "-2", "--reason", "two bent", "--who", "siti",
                              "--json")
    assert json.loads(received.stdout) == {"movement": "receive", "lot": "LOT-7", "count": 20, "first_serial": "B001",
                                           "last_serial": None, "who": "operator", "storeroom_lot": 20, "storeroom": 20}
    assert json.loads(loaded.stdout) == {"printer": "p1", "movement": "load", "quantity": 5, "lot": "LOT-7",
                                         "who": "siti", "remaining": 5, "storeroom": 15}
    assert json.loads(adjusted.stdout) == {"printer": "p1", "movement": "adjust", "quantity": -2, "lot": None,
                                           "who": "siti", "remaining": 3, "storeroom": 15, "reason": "two bent"}


def test_adjust_without_a_reason_or_for_an_unknown_printer_is_refused(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=1, blanks=5) as rig:
        rig.start_upstream()
        rig.start_simulator()
        rig.write_config()
        no_reason = rig.hopper("adjust", "--printer", "p1", "--quantity", "2", "--reason", " ", "--who", "siti")
        unknown = rig.hopper("load", "--printer", "p9", "--quantity", "2", "--lot", "L", "--who", "siti")
    assert no_reason.returncode == 2 and "reason" in no_reason.stderr
    assert unknown.returncode == 2 and "no printer 'p9'" in unknown.stderr


def test_reconcile_agrees_after_printing_and_names_an_unrecorded_difference(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=2, blanks=5, prefetch=2) as rig:
        rig.start()
        rig.start_agent()
        rig.wait_for_outcomes()
        rig.stop_agent()
        agrees = rig.hopper("reconcile", "--json")
        rig.hopper("adjust", "--printer", "p1", "--quantity", "-3", "--reason", "counted short", "--who", "siti")
        disagrees = rig.hopper("reconcile")
        rig.write_config(station={"language": "id"})
        in_indonesian = rig.hopper("reconcile")
    good = json.loads(agrees.stdout)
    assert agrees.returncode == 0 and good["agrees"], agrees.stdout
    assert good["printers"][0]["asked"] and good["printers"][0]["card_counter"] == 2
    assert good["lots"][0] | {"balanced": True} == good["lots"][0] and good["lots"][0]["remaining"] == 3
    assert disagrees.returncode == 1, disagrees.stdout
    assert "lot LOT-1: loaded 5, adjusted -3, printed 2, spoiled 0, in the printer 0, remaining 0" in disagrees.stdout
    assert "DISAGREES p1: the feeder holds blanks the ledger does not count" in disagrees.stdout
    assert in_indonesian.returncode == 1, in_indonesian.stdout
    assert "lot LOT-1: dimasukkan 5, dikoreksi -3, tercetak 2, rusak 0" in in_indonesian.stdout
    assert "TIDAK COCOK p1: feeder berisi blangko yang tidak ada di catatan. Lakukan: hitung blangko" in in_indonesian.stdout
    assert "the" not in in_indonesian.stdout.split(), "no English word on an Indonesian station's screen"


def test_reconcile_while_the_service_runs_asks_the_printers_through_it(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=1, blanks=3, prefetch=1) as rig:
        rig.start()
        rig.start_agent()
        rig.wait_for_outcomes()
        through = rig.hopper("reconcile", "--json")
        rig.stop_agent()
    report = json.loads(through.stdout)
    [p1] = report["printers"]
    assert through.returncode == 0, through.stdout + through.stderr
    assert report["agree"] and p1["checked"] and p1["agree"] and p1["reason"] is None
    assert p1["ledger_remaining"] == 2 and p1["printer_says"] == {"feeder_empty": False, "card_counter": 1,
                                                                  "card_inside": False}


def test_reconcile_never_agrees_for_a_printer_it_could_not_ask(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=1, blanks=3, prefetch=1) as rig:
        rig.start()
        rig.power_cut_simulator()  # the printer is off: nobody can ask it
        unasked = rig.hopper("reconcile", "--json")
        text = rig.hopper("reconcile")
    report = json.loads(unasked.stdout)
    [p1] = report["printers"]
    assert unasked.returncode == 1 and report["agree"] is False
    assert p1["checked"] is False and p1["agree"] is None and p1["reason"]
    assert "cannot be called in agreement" in text.stdout and "agree\n" not in text.stdout


def test_a_load_larger_than_the_storeroom_holds_is_refused_with_the_numbers(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=1, blanks=5) as rig:
        rig.start_upstream()
        rig.start_simulator()
        rig.write_config()
        rig.stock("receive", "--lot", "LOT-9", "--count", "30")
        too_many = rig.hopper("load", "--printer", "p1", "--quantity", "31", "--lot", "LOT-9", "--who", "siti", "--json")
        rows = rig.journal_query("SELECT COUNT(*) FROM ledger")
    assert too_many.returncode == 2
    assert json.loads(too_many.stdout) | {"message": ""} == {"error": "storeroom-short", "message": "", "lot": "LOT-9",
                                                             "wanted": 31, "storeroom": 30}
    assert "holds 30 blanks of lot LOT-9, fewer than the 31" in too_many.stderr
    assert rows == [(0,)], "nothing moved"
