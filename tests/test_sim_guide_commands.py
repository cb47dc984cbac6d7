"""The virtual printer against the Evolis Programming Guide (A5013 rev D2 and E), not against our driver.

The command names and example parameters below are copied from the guide's summary tables and
definitions (sections 5 to 20), not from the simulator's own table, so that a command the
simulator forgot shows up here as `ERROR CDE`.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drivers.evolis.printer import CommandRejected, EvolisPrinter
from drivers.faults import Fault
from drivers.link.url import open_link
from simulators.printer.machine import Equipment
from tests.evolis_guide_decoder import upright, unpack
from tests.sim_printer_rig import PANEL_K, Rig, running_printer

EVERYTHING = Equipment(contactless=True, smart=True, magnetic=True, feeder=True, dual_feeder=True, flip_over=True,
                       output_hopper=True, status_words=False)

# Section 6 (printer command summary), section 7 (command per printer), sections 5, 9, 11, 13,
# 15, 17, 19: every name, with a parameter form from its definition page.
GUIDE_FORMS = [
    # A
    "Ase;c;150",
    # D (downloads are checked with their data below); Dm: magnetic
    "Dm;1;TRACK ONE",
    # M
    "Mc;+;10", "Mf;+", "Mh;=", "Mr;i", "Mr;=;144",
    # P
    "Pbm;p", "Pc;m;+", "Pem;0", "Pfm;S2", "Piem;0;0", "Pkn;120123456", "Pl;y;=;10", "Pmi;F", "Pmk;s", "Pms;=;100",
    "Pnl;=;1016", "Pnw;648", "Ppk;s", "Ppn;0", "Pr;ymcko", "Prm;0", "Pro;552", "Prs;L;A", "Ps;k;=;10",
    "Psc", "Psm;0;u", "Psp;0", "Px;=;0", "Py;=;0", "Pwb;k", "Pwcs;0", "Pwj;l", "Pwm;s", "Pwr;0",
    "Pcom;1;115200;N;8;1", "Poc;=;0", "Pos;=;1158",
    "Pmbs;512", "Pmc;h", "Pmd;210", "Pml;1032", "Pmt;1;1", "Pmtc;1;37;63;ON", "Pmts;1;24",
    # R
    "Rbm", "Rc;y", "Rck", "Rco;p", "Rco;c", "Rco;a", "Rco;m", "Rco;n", "Rco;l", "Rcom;1", "Rcr", "Rcs", "Rem",
    "Rfm", "Rfn", "Rfv", "Riem", "Rkn", "Rks", "Rl;y", "Rlr;p", "Rlr;r", "Rmi", "Rmk", "Rms", "Rnl", "Rnw",
    "Rpk", "Rpn", "Rps;c", "Rr", "Rrm", "Rro", "Rrs", "Rs;k", "Rsc", "Rse;o", "Rsm", "Rsn", "Rsp", "Rtp", "Rx",
    "Ry", "Roc", "Ros", "Rmbs", "Rmc", "Rmd;1", "Rml", "Rmms", "Rmt;1", "Rmtc", "Rmts;1",
    # S (the ones that move a card are in the sequences below)
    "Sa", "Sa;p", "Scs", "Sdm;5", "Sdu;500", "Sk;f", "Sk;w", "Sk;s", "Sk;s;1", "Srs", "Sds;<v", "Sds;<A;1",
    "Sds;?v", "Sds;?i;1", "Scom;1;0;Rfv",
    # W
    "Wcb;k", "Wcb;a;0", "Wl;100;100;200;10;1", "Wt;100;300;0;40;Test", "Wb;300;300;c39;12;4;100;1;TEST",
]
# Commands that move cards, in an order that makes sense to the printer.
CARD_SEQUENCES = [
    ["Ss", "Sr", "Ssd;k", "Sv", "Sp;k", "Se"],
    ["Si", "Ser"], ["Sib", "Seb"], ["Sic", "Ser"], ["Sis", "Ser"], ["Sie"], ["Sc"], ["St"], ["Stt"],
    ["Scp"], ["Dm;1;TRACK ONE", "Si", "Smw", "Smr;1", "Se"],
]


def test_every_command_of_the_guide_is_recognised(tmp_path: Path) -> None:
    with running_printer(tmp_path, blanks=30, equipment=EVERYTHING) as rig:
        unknown = [form for form in GUIDE_FORMS if rig.cmd(form) in ("ERROR CDE", "ERROR PARAMETRES")]
        assert unknown == [], "refused although the guide defines them so"
        for sequence in CARD_SEQUENCES:
            replies = [rig.cmd(form) for form in sequence]
            assert replies[-1] != "ERROR CDE" and all(r.startswith(("OK", "TRACK")) for r in replies), (
                sequence, replies)
        assert {c["bin"] for c in rig.cards()} == {"output", "reject"}


def test_an_undocumented_command_is_answered_not_ignored(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert rig.cmd("Xyz") == "ERROR CDE"
        assert rig.cmd("Rco;q") == "ERROR PARAMETRES"


def test_an_option_the_printer_lacks_is_refused_by_name(tmp_path: Path) -> None:
    with running_printer(tmp_path, equipment=Equipment(magnetic=False)) as rig:
        assert rig.cmd("Dm;1;ABC") == "OPT NOT AVAILABLE"
        assert rig.cmd("Rmc") == "OPT NOT AVAILABLE"
        assert rig.cmd("Rst") == "ERROR CDE", "status words are not in the guide"
        assert rig.cmd("Rpst") == "ERROR CDE", "nor the vendor SDK's, unless the model has them"


# (set, read, what the read answers): a parameter is kept and read back where the guide has a read.
SET_AND_READ = [
    ("Pc;y;=;15", "Rc;y", "15"), ("Pc;m;+;3", "Rc;m", "13"), ("Pl;m;=;7", "Rl;m", "7"), ("Ps;o;=;9", "Rs;o", "9"),
    ("Pbm;b", "Rbm", "b"), ("Pkn;115000777", "Rkn", "115000777"), ("Pmi;B", "Rmi", "B"), ("Pmk;f;i", "Rmk", "f;i"),
    ("Pms;=;150", "Rms", "150"), ("Pnl;-;16", "Rnl", "1000"), ("Pnw;600", "Rnw", "600"), ("Ppk;f", "Rpk", "f"),
    ("Ppn;2", "Rpn", "2"), ("Pr;kr", "Rr", "kr"), ("Prm;3", "Rrm", "3"), ("Pro;560", "Rro", "560"),
    ("Prs;S;M", "Rrs", "S;M"), ("Psp;12", "Rsp", "12"), ("Px;=;7", "Rx", "7"), ("Py;+;3", "Ry", "3"),
    ("Ase;o;200", "Rps;o", "200"), ("Pcom;2;19200;E;8;2", "Rcom;2", "19200;E;8;2;NONE;E"), ("Pfm;K", "Rfm", "K"),
    ("Poc;=;33", "Roc", "33"), ("Pos;+;12", "Ros", "1170"), ("Psm;1;l", "Rsm", "1;l"), ("Piem;2;1", "Riem", "2;1"),
    ("Pmbs;500", "Rmbs", "500"), ("Pmc;l", "Rmc", "l"), ("Pmd;1;75", "Rmd;1", "75"), ("Pml;1000", "Rml", "1000"),
    ("Pmt;2;C1", "Rmt;2", "4"), ("Pmts;3;30", "Rmts;3", "30"), ("Pem;2;s", "Rem", "2;2"),
]


def test_parameters_are_read_back_and_kept_through_a_power_cycle(tmp_path: Path) -> None:
    with running_printer(tmp_path, equipment=EVERYTHING) as rig:
        for setting, read, _ in SET_AND_READ:
            assert rig.cmd(setting) == "OK", setting
        assert {read: rig.cmd(read) for _, read, _ in SET_AND_READ} == {read: value for _, read, value in SET_AND_READ}
        assert rig.cmd("Pem;1") == "OK", "a mode not saved"
        assert rig.cmd("Rem") == "1;2", "current mode 1, saved mode 2"
    with running_printer(tmp_path, equipment=EVERYTHING) as rig:
        assert {read: rig.cmd(read) for _, read, _ in SET_AND_READ} == {read: value for _, read, value in SET_AND_READ}


def test_the_vendor_drivers_parameters_are_taken_and_kept(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        for form in ("Pr;k", "Pmi;F;s", "Pc;k;=;10", "Pdt;DU", "Mr;s", "Ppws;1281755559"):
            assert rig.cmd(form) == "OK", form
        assert rig.cmd("Rr") == "kb", "Pr;k is the black monochrome ribbon"
        assert rig.saved_state()["settings"]["values"]["vendor.Ppws"] == "1281755559"


def test_the_start_character_may_be_left_out_after_a_cr_and_nul_padding_is_ignored(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.host.write(b"\x00\x00\x1bRfv\rRsn\r\x00\x00\x00Rtp\r\x00\x00")
        assert [rig.reply(), rig.reply(), rig.reply()] == [b"SIM-1.0.0", b"SIMP00001", b"Primacy (virtual)"]


def test_psc_changes_the_framing_characters_and_psc_alone_restores_them(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert rig.cmd("Psc;60;47;62") == "OK"  # the guide's example: <Pco/=/10>
        assert rig.ask(b"<Rco/c>") == b"0"
        assert rig.ask(b"<Rsc>") == b"60;47;62"
        assert rig.ask(b"<Psc>") == b"OK"
        assert rig.cmd("Rsc") == "27;59;13"


def test_in_ack_nack_mode_a_command_answers_ack_and_a_failure_nack_with_its_code(tmp_path: Path) -> None:
    with running_printer(tmp_path, blanks=0) as rig:
        rig.host.write(b"\x1bPem;4\r")  # "sets the ACK/NACK Mode", "as soon as" it is set
        assert rig.host.read(1) == b"\x06"
        rig.host.write(b"\x1bSs\r")
        assert rig.host.read(1) == b"\x06"
        rig.host.write(b"\x1bSic\r")
        assert rig.host.read(2) == b"\x15F", "feeder error: the feeder is empty"
        rig.host.write(b"\x1bXyz\r")
        assert rig.host.read(2) == b"\x151", "command error"
        rig.host.write(b"\x1bRfv\r")
        assert rig.host.read(10) == b"SIM-1.0.0\x06"
        assert rig.cmd("Pem;0") == "OK", "the answer is in the protocol the command sets"
        assert rig.cmd("Rfv") == "SIM-1.0.0", "back to text answers"


def test_ack_nack_set_without_saving_is_forgotten_at_power_off(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.host.write(b"\x1bPem;4\r")
        assert rig.host.read(1) == b"\x06"
    with running_printer(tmp_path) as rig:
        assert rig.cmd("Rfv") == "SIM-1.0.0"


def test_sc_prints_a_copy_of_the_last_sequence(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        for form in ("Ss", "Sr"):
            assert rig.cmd(form) == "OK"
        assert rig.cmd("Db;k;2", b"\xff" * PANEL_K) == "OK"
        assert rig.cmd("Se") == "OK"
        assert rig.cmd("Sc") == "OK"
        assert [c["panels"] for c in rig.cards()] == [["front:k"], ["front:k"]]


def test_sie_takes_a_blank_through_and_out(tmp_path: Path) -> None:
    with running_printer(tmp_path, blanks=2) as rig:
        assert rig.cmd("Sie") == "OK"
        [card] = rig.cards()
        assert card["bin"] == "output" and card["panels"] == []
        assert rig.cmd("Rco;c") == "1"


def test_magnetic_tracks_are_written_and_read_back(tmp_path: Path) -> None:
    with running_printer(tmp_path, equipment=EVERYTHING) as rig:
        assert rig.cmd("Smw") == "ERROR MAGN DATA", "nothing downloaded"
        assert rig.cmd("Dm;2;1234567890") == "OK"
        assert [rig.cmd("Ss"), rig.cmd("Smw"), rig.cmd("Smr;2"), rig.cmd("Se")] == ["OK", "OK", "1234567890", "OK"]


def card_picture(rig: Rig, folder: Path) -> np.ndarray:
    [line] = rig.cards()
    return np.asarray(Image.open(folder / line["png"]).convert("L"))


def test_write_commands_draw_in_card_coordinates(tmp_path: Path) -> None:
    with running_printer(tmp_path, pictures=True) as rig:
        for form in ("Wcb;k", "Ss", "Wl;100;50;200;10;1", "Sr", "Ssd;k", "Se"):
            assert rig.cmd(form) == "OK", form
    picture = card_picture(rig, tmp_path)
    ink = picture < 128
    assert ink[50:60, 100:300].all(), "a line 200 long and 10 wide at x 100, y 50 of the card"
    assert ink.sum() == 200 * 10


def test_a_partial_download_prints_only_its_lines(tmp_path: Path) -> None:
    lines = b"\xff" * (81 * 10)  # 10 black lines from line 100, at 2 levels... as 1-bit K
    with running_printer(tmp_path, pictures=True) as rig:
        assert [rig.cmd("Ss"), rig.cmd("Sr")] == ["OK", "OK"]
        assert rig.cmd("Dbp;y;32;100;10", bytes(648 * 5 * 10 // 8)) == "OK"
        assert rig.cmd("Dbc;k;2;100;10", b"\xff" * 10) == "OK", "compressed, from line 100: ten black lines"
        assert rig.cmd("Se") == "OK"
    ink = card_picture(rig, tmp_path) < 128
    # Panel lines 100..109 are card columns 100..109 (the card is turned clockwise into the panel).
    assert ink[:, 100:110].all() and ink.sum() == 648 * 10
    assert len(lines) == 810


def test_a_bmp_logo_is_pasted_where_dbmp_says(tmp_path: Path) -> None:
    logo = Image.new("1", (40, 20), 1)
    logo.paste(0, (0, 0, 40, 20))  # all black
    out = io.BytesIO()
    logo.save(out, "BMP")
    bmp = out.getvalue()
    assert struct.unpack_from("<I", bmp, 2)[0] == len(bmp)
    with running_printer(tmp_path, pictures=True) as rig:
        assert rig.cmd("Dbmp;k;500;300;0", bmp) == "OK"
        assert [rig.cmd("Ss"), rig.cmd("Sr"), rig.cmd("Ssd;k"), rig.cmd("Se")] == ["OK"] * 4
    ink = card_picture(rig, tmp_path) < 128
    assert ink[300:320, 500:540].all() and ink.sum() == 40 * 20


@pytest.mark.parametrize("levels,bits", [(32, 5), (64, 6), (128, 7)])
def test_a_raw_colour_panel_unpacks_as_the_guide_packs_it(levels: int, bits: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(levels)
    dots = rng.integers(0, 1 << bits, size=(1016, 648), dtype=np.uint8)
    planes = (dots[..., None] >> np.arange(bits - 1, -1, -1)) & 1
    data = np.packbits(planes.astype(np.uint8).ravel()).tobytes()
    assert (unpack(data, bits) == dots).all(), "the test's own packing agrees with the guide decoder"
    with running_printer(tmp_path, pictures=True) as rig:
        assert [rig.cmd("Ss"), rig.cmd("Sr"), rig.cmd(f"Db;c;{levels}", data), rig.cmd("Se")] == ["OK"] * 4
    picture = np.asarray(Image.open(tmp_path / rig.cards()[0]["png"]).convert("RGB")).astype(int)
    expected_red = np.rint((1 - upright(dots) / ((1 << bits) - 1)) * 255)
    assert (np.abs(picture[:, :, 0] - expected_red) <= 1).all()


def test_the_driver_works_a_printer_left_in_ack_nack_mode(tmp_path: Path) -> None:
    with running_printer(tmp_path, blanks=1) as rig:
        rig.host.write(b"\x1bPem;4;s\r")  # a technician's tool left it so, saved
        assert rig.host.read(1) == b"\x06"
        rig.host.close()
        with open_link(f"serial://{rig.host.port}") as link:
            printer = EvolisPrinter(link)
            assert printer.identity().serial == "SIMP00001"
            assert printer.detect_capabilities().ack_nack
            assert not printer.status().blocking
            printer.start_sequence()
            printer.feed_to_contactless()
            printer.reject()
            printer.start_sequence()
            with pytest.raises(CommandRejected) as caught:
                printer.feed_to_contactless()
            assert caught.value.fault is Fault.FEEDER_EMPTY and caught.value.reply == "NACK F"
