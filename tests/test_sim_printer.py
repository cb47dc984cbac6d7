"""The virtual printer's mechanics and memory, driven over its pty as a host would."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

from simulators.chip.image import ChipSubject, td1_mrz, tlv
from simulators.printer.machine import Fault, Timings
from tests.sim_printer_rig import PANEL_K, RecordingReader, Rig, running_printer, volts

PANEL = b"\x00" * PANEL_K


def print_front_ymcko(rig: Rig) -> None:
    assert rig.cmd("Sr") == "OK"
    for panel in "ymcko":
        assert rig.cmd(f"Db;{panel};2", PANEL) == "OK"


def write_dg1(rig: Rig, document_number: str) -> None:
    """Write a DG1 onto the chip at the encoder station, as the host does through the reader."""
    subject = ChipSubject(document_number, "3174011505900001", "BUDI SANTOSO", date(1990, 5, 15), "M", None)
    dg1 = tlv(0x61, tlv(0x5F1F, td1_mrz(subject).encode("ascii")))
    chip = rig.reader.chip
    assert chip is not None, "no chip on the reader"
    assert chip.process_apdu(bytes.fromhex("00A4040C07A0000002471001"))[-2:] == b"\x90\x00"
    assert chip.process_apdu(bytes.fromhex("00A4020C020101"))[-2:] == b"\x90\x00"
    assert chip.process_apdu(bytes([0x00, 0xD6, 0, 0, len(dg1)]) + dg1)[-2:] == b"\x90\x00"


def test_a_full_sequence_leaves_one_output_line_with_the_blank_serial(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert [rig.cmd("Ss"), rig.cmd("Sic")] == ["OK", "OK"]
        print_front_ymcko(rig)
        assert rig.cmd("Sv") == "OK"
        assert rig.cmd("Db;k;2", PANEL) == "OK"
        assert rig.cmd("Se") == "OK"
        [line] = rig.cards()
        assert line["printer"] == "p1"
        assert line["bin"] == "output"
        assert line["blank_serial"] == "BLK-p1-000001"
        assert line["document_number"] is None
        assert line["panels"] == ["front:y", "front:m", "front:c", "front:k", "front:o", "back:k"]
        assert line["at"].endswith("Z")
        assert [rig.cmd("Rco;c"), rig.cmd("Rco;p"), rig.cmd("Rco;l")] == ["1", "6", "499"]
        assert rig.cmd("Rlr;p") == "OK", "no card inside"


def test_a_rejected_card_leaves_a_reject_line(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Sic")
        assert rig.cmd("Ser") == "OK"
        [line] = rig.cards()
        assert (line["bin"], line["blank_serial"], line["panels"]) == ("reject", "BLK-p1-000001", [])
        assert rig.saved_state()["reject_count"] == 1
        assert rig.cmd("Rco;l") == "500", "a card never printed used no ribbon"


def test_the_document_number_on_the_chip_goes_into_the_card_line(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Sic")
        write_dg1(rig, "KTP000001")
        print_front_ymcko(rig)
        rig.cmd("Se")
        assert rig.cards()[0]["document_number"] == "KTP000001"


def test_an_empty_hopper_refuses_to_feed_and_the_feeder_says_empty(tmp_path: Path) -> None:
    with running_printer(tmp_path, blanks=1) as rig:
        assert rig.cmd("Sk;f") == "0"
        rig.cmd("Ss")
        rig.cmd("Sic")
        rig.cmd("Ser")
        assert rig.cmd("Sk;f") == "3"
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "FEEDER EMPTY"
        assert rig.cmd("Rlr;p") == "OK", "no card inside"
        assert rig.cmd("Rco;c") == "1"


def test_the_chip_is_on_the_reader_only_while_the_card_is_at_the_contactless_station(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Sic")
        assert rig.reader.names() == ["insert"]
        rig.cmd("Sr")
        assert rig.reader.names() == ["insert", "remove"]
        rig.cmd("Se")
        rig.cmd("Ss")
        rig.cmd("Si")  # straight to the print position: the chip never meets the reader
        rig.cmd("Se")
        assert rig.reader.names() == ["insert", "remove"]


def test_the_chip_is_off_the_reader_before_the_printer_answers(tmp_path: Path) -> None:
    with running_printer(tmp_path, reader=RecordingReader(remove_delay=0.3)) as rig:
        for leaving in ("Sr", "Sv", "Db;k;2", "Se", "Ser"):
            rig.cmd("Ss")
            rig.cmd("Sic")
            if leaving == "Sr" or leaving == "Sv":
                rig.cmd(leaving)
            else:
                rig.cmd(leaving, PANEL if leaving.startswith("Db") else None)
            answered = time.monotonic()
            _, removed = rig.reader.events[-1]
            assert rig.reader.names()[-1] == "remove"
            assert removed <= answered
            if rig.cmd("Rlr;p") != "OK":
                rig.cmd("Ser")


def test_movements_take_their_time_divided_by_the_speed(tmp_path: Path) -> None:
    timings = Timings(feed=3.0, move_to_print=1.0, k_panel=2.0, eject=1.5)
    with running_printer(tmp_path, speed=10.0, timings=timings) as rig:
        rig.cmd("Ss")
        started = time.monotonic()
        rig.cmd("Sic")
        fed = time.monotonic()
        rig.cmd("Db;k;2", PANEL)  # moves to print (0.1 s), then answers as k starts printing (0.2 s)
        downloaded = time.monotonic()
        rig.cmd("Se")  # waits for k to finish, then ejects (0.15 s)
        ejected = time.monotonic()
        # Lower bounds: the time is really spent. Upper bounds: divided by the speed, i.e. below
        # what speed 1 would take (3.0, 1.0 and 2.0 + 1.5 s): a loaded machine only adds time,
        # and a machine stalled for whole seconds is not the simulator's doing.
        assert 0.3 <= fed - started < 3.0
        assert 0.1 <= downloaded - fed < 1.0
        # Measured from `fed`, which the test's clock reads before the Db is sent: from
        # `downloaded` (read after the reply, once k has begun) the latency of that reply would
        # come off the 0.35 s and the bound would race the machine's load.
        assert 0.45 <= ejected - fed and ejected - downloaded < 3.5


def test_the_next_panel_downloads_while_the_previous_one_prints(tmp_path: Path) -> None:
    timings = Timings(move_to_print=0.0, k_panel=2.0, o_panel=2.0, eject=0.0)
    with running_printer(tmp_path, speed=10.0, timings=timings) as rig:
        rig.cmd("Ss")
        rig.cmd("Sic")
        rig.cmd("Sr")
        started = time.monotonic()
        rig.cmd("Db;k;2", PANEL)  # answered at once: k starts printing (0.2 s)
        first = time.monotonic()
        rig.cmd("Db;o;2", PANEL)  # answered once k is done: o starts printing
        second = time.monotonic()
        rig.cmd("Se")
        ejected = time.monotonic()
        # The first download is answered as k starts, the second only once k is done (0.2 s):
        # compared with each other, not with the machine's clock, so load cannot flip them.
        assert first - started < second - first, "a panel download is answered when the panel starts printing"
        assert 0.15 <= second - started < 2.0  # below speed 1's 2 s: divided by the speed
        assert 0.35 <= ejected - started < 4.0, "the card leaves only when the last panel is printed"


def test_a_new_printer_on_the_same_state_continues_its_counters_and_serials(tmp_path: Path) -> None:
    with running_printer(tmp_path, blanks=5) as rig:
        rig.cmd("Ss")
        rig.cmd("Sic")
        print_front_ymcko(rig)
        rig.cmd("Se")
    with running_printer(tmp_path, blanks=100) as rig:
        assert [rig.cmd("Rco;c"), rig.cmd("Rco;p"), rig.cmd("Rco;l")] == ["1", "5", "499"]
        assert rig.saved_state()["hopper_remaining"] == 4
        rig.cmd("Ss")
        rig.cmd("Sic")
        rig.cmd("Ser")
        assert [c["blank_serial"] for c in rig.cards()] == ["BLK-p1-000001", "BLK-p1-000002"]


def test_a_card_left_at_the_station_is_back_on_the_reader_after_a_restart(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Sic")
        write_dg1(rig, "KTP000042")
    saved = json.loads((tmp_path / "printers" / "p1" / "state.json").read_text())
    assert saved["card"]["blank_serial"] == "BLK-p1-000001"
    with running_printer(tmp_path) as rig:
        assert rig.reader.names() == ["insert"]
        assert rig.cmd("Rlr;p") == "CONTACTLESS CARD"
        assert rig.cmd("Ss") == "ERR CARD INSIDE"
        assert rig.cmd("Ser") == "OK"
        [line] = rig.cards()
        assert (line["blank_serial"], line["document_number"]) == ("BLK-p1-000001", "KTP000042")


def test_commands_that_cannot_be_done_are_refused_without_moving_anything(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert rig.cmd("Se") == "ERR NO CARD"
        assert rig.cmd("Ser") == "ERR NO CARD"
        assert rig.cmd("Sic") == "OK", "a bare Sic takes a card to the contactless station (guide: Sic)"
        assert rig.cmd("Sic") == "ERR CARD INSIDE"
        assert rig.cmd("Si") == "ERR CARD INSIDE"
        assert rig.cmd("Scp") == "ERR CARD INSIDE"
        assert rig.cmd("Rco;c") == "1"
        assert rig.cards() == []


def test_after_ss_the_printer_takes_the_card_itself_at_the_first_side_command(tmp_path: Path) -> None:
    """The guide's programming example and the vendor's streams: Ss, Sr, panels, Se, no Si."""
    with running_printer(tmp_path) as rig:
        assert rig.cmd("Ss") == "OK"
        assert rig.cmd("Rco;c") == "0", "Ss alone moves nothing"
        assert rig.cmd("Sr") == "OK"
        assert rig.cmd("Rlr;p") == "CARD"
        assert rig.cmd("Db;k;2", PANEL) == "OK"
        assert rig.cmd("Se") == "OK"
        [line] = rig.cards()
        assert line["bin"] == "output" and line["panels"] == ["front:k"]


def test_after_ss_a_panel_alone_brings_the_card(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert [rig.cmd("Ss"), rig.cmd("Db;k;2", PANEL), rig.cmd("Se")] == ["OK", "OK", "OK"]
        [line] = rig.cards()
        assert line["panels"] == ["front:k"]


def test_a_download_outside_a_sequence_only_fills_the_bitmap(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert rig.cmd("Db;k;2", PANEL) == "OK"
        assert rig.cmd("Rco;c") == "0" and rig.cmd("Rco;p") == "0"
        # ...and Ss, Ssd;k prints it from memory without a new download (guide: Ssd).
        assert [rig.cmd("Ss"), rig.cmd("Ssd;k"), rig.cmd("Se")] == ["OK", "OK", "OK"]
        [line] = rig.cards()
        assert line["panels"] == ["front:k"]


def test_an_open_cover_stops_the_mechanics_and_shows_in_the_sensors(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.printer.call(lambda: rig.printer.set_fault(Fault.COVER_OPEN, True))
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "COVER OPEN"
        assert volts(rig.cmd("Rse;o")) < 1.0, "the cover sensor reads about 0 V with the cover open"
        rig.printer.call(lambda: rig.printer.set_fault(Fault.COVER_OPEN, False))
        assert rig.cmd("Sic") == "OK"
        assert volts(rig.cmd("Rse;o")) > 4.0, "and about 5 V with it closed"


def test_a_ribbon_ending_mid_card_refuses_the_first_panel_but_the_card_can_be_rejected(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Sic")
        rig.printer.call(rig.printer.end_ribbon)
        assert rig.cmd("Sr") == "OK"
        assert rig.cmd("Db;y;2", PANEL) == "ERROR RIBBON"
        assert rig.cmd("Rcr") == "ERROR RIBBON", "the ribbon is at its black mark"
        assert rig.cmd("Rco;l") == "0"
        assert rig.cmd("Ser") == "OK"


def test_a_spent_ribbon_refuses_a_new_card_until_a_ribbon_is_loaded(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.printer.call(rig.printer.end_ribbon)
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "ERROR RIBBON"
        assert rig.cmd("Rco;c") == "0", "no blank left the feeder"
        rig.printer.call(lambda: rig.printer.load_ribbon(200))
        assert rig.cmd("Rco;l") == "200"
        assert rig.cmd("Sic") == "OK"


def test_a_test_card_uses_a_blank_and_is_logged(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert rig.cmd("St") == "OK"
        [line] = rig.cards()
        assert line["bin"] == "output"
        assert line["panels"] == ["front:y", "front:m", "front:c", "front:k", "front:o"]
        assert rig.saved_state()["hopper_remaining"] == 4
