"""The virtual printer's side of the Evolis wire: framing, payloads by length, recovery."""

from __future__ import annotations

import time
from pathlib import Path

import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.printer.server import Command, FrameReader, Malformed
from simulators.printer.machine import Equipment, Refusal
from tests.sim_printer_rig import PANEL_K, running_printer


def panel_with_cr_and_semicolons() -> bytes:
    # Every byte value, so the payload holds CR, ';', ESC and NUL many times over.
    data = bytes(range(256)) * (PANEL_K // 256 + 1)
    return data[:PANEL_K]


def test_nul_padding_before_esc_is_ignored(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert rig.ask(b"\x00\x00\x00\x00\x1bRfv\r") == b"SIM-1.0.0"


def test_a_command_split_across_writes_is_answered_once_complete(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        for piece in (b"\x00\x1b", b"Rc", b"o;", b"c"):
            rig.host.write(piece)
            rig.host.flush()
            time.sleep(0.05)
        assert rig.host.in_waiting == 0, "answered before the CR"
        assert rig.ask(b"\r") == b"0"


def test_several_commands_in_one_write_are_answered_in_order(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.host.write(b"\x1bRfv\r\x00\x1bRsn\r\x1bRtp\r")
        assert [rig.reply(), rig.reply(), rig.reply()] == [b"SIM-1.0.0", b"SIMP00001", b"Primacy (virtual)"]


def test_db_payload_containing_cr_and_semicolons_is_taken_by_length(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert [rig.cmd("Ss"), rig.cmd("Sic"), rig.cmd("Sr")] == ["OK", "OK", "OK"]
        payload = panel_with_cr_and_semicolons()
        assert payload.count(b"\r") > 100 and payload.count(b";") > 100
        assert rig.cmd("Db;k;2", payload) == "OK"
        assert rig.cmd("Rco;p") == "1"
        assert rig.host.in_waiting == 0, "parts of the payload were answered as commands"


def test_db_payload_split_in_many_writes_is_one_panel(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Si")
        frame = b"\x1bDb;k;2;" + panel_with_cr_and_semicolons() + b"\r"
        for start in range(0, len(frame), 7000):
            rig.host.write(frame[start : start + 7000])
        assert rig.reply() == b"OK"
        assert rig.cmd("Rco;p") == "1"


def test_short_db_payload_answers_data_length_and_the_next_command_works(tmp_path: Path) -> None:
    with running_printer(tmp_path, frames=FrameReader(payload_timeout=0.3)) as rig:
        rig.cmd("Ss")
        rig.cmd("Si")
        started = time.monotonic()
        assert rig.cmd("Db;k;2", panel_with_cr_and_semicolons()[:1000]) == "ERR DATA LENGTH"
        assert time.monotonic() - started >= 0.25, "answered before the payload deadline"
        assert rig.cmd("Rco;p") == "0"
        assert rig.cmd("Db;k;2", panel_with_cr_and_semicolons()) == "OK"


def test_long_db_payload_answers_data_length_and_the_next_command_works(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Si")
        # The surplus holds ESC and CR, which must not be taken for commands.
        too_long = panel_with_cr_and_semicolons() + b"\x1bRfv\r" + bytes(range(256))
        assert rig.cmd("Db;k;2", too_long) == "ERR DATA LENGTH"
        assert rig.cmd("Rfv") == "SIM-1.0.0"
        assert rig.host.in_waiting == 0
        assert rig.cmd("Rco;p") == "0"


def test_db_with_an_unknown_depth_answers_parameter_and_the_next_command_works(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Si")
        assert rig.cmd("Db;k;3", b"\x1b\r;" * 100) == "ERROR PARAMETRES"
        assert rig.cmd("Rfv") == "SIM-1.0.0"


def test_db_for_an_unknown_panel_answers_parameter(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Si")
        assert rig.cmd("Db;x;2", panel_with_cr_and_semicolons()) == "ERROR PARAMETRES"
        assert rig.cmd("Rco;p") == "0"


def test_unknown_commands_and_parameters_are_refused_by_name(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert rig.cmd("Xyz") == "ERROR CDE"
        assert rig.cmd("Rco;q") == "ERROR PARAMETRES"
        assert rig.cmd("Rco") == "ERROR PARAMETRES"
        assert rig.cmd("Ss;1") == "ERROR PARAMETRES"


def test_garbage_outside_commands_is_dropped_until_the_next_esc(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        assert rig.ask(b"noise\r\n;;\xff\x00\x1bRfv\r") == b"SIM-1.0.0"
        # an unfinished command is dropped when the next one starts
        assert rig.ask(b"\x1bRco;\x1bRsn\r") == b"SIMP00001"
        assert rig.host.in_waiting == 0


def test_status_words_show_the_card_at_the_contactless_station_in_an_open_sequence(tmp_path: Path) -> None:
    with running_printer(tmp_path, equipment=Equipment(status_words=True)) as rig:
        assert rig.cmd("Rst") == "00000000;00000000;00000000"
        rig.cmd("Ss")
        rig.cmd("Sic")
        info, warning, error = (int(word, 16) for word in rig.cmd("Rst").split(";"))
        assert info == 0x01 | 0x02 | 0x40
        assert (warning, error) == (0, 0)


def test_a_host_that_opens_and_closes_the_port_repeatedly_keeps_working(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        path = rig.host.port
        rig.host.close()
        for _ in range(5):
            with serial.Serial(path, timeout=5) as host:
                host.write(b"\x1bRfv\r")
                assert host.read_until(b"\r") == b"SIM-1.0.0\r"
        # a host that leaves without reading its reply does not disturb the next one
        with serial.Serial(path, timeout=5) as host:
            host.write(b"\x1bRsn\r")
        time.sleep(0.1)
        with serial.Serial(path, timeout=5) as host:
            host.write(b"\x1bRtp\r")
            assert host.read_until(b"\r") == b"Primacy (virtual)\r"
        rig.host.open()


_COMMANDS = {
    b"\x1bRfv\r": "Rfv",
    b"\x00\x00\x1bRco;c\r": "Rco",
    b"\x1bSs\r": "Ss",
    b"\x1bDb;o;2;" + b"\r;\x1b" * (PANEL_K // 3) + b"\r": "Db",
}


@settings(max_examples=50, deadline=None)
@given(
    stream=st.lists(st.sampled_from(sorted(_COMMANDS)), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_frames_do_not_depend_on_how_the_stream_is_cut(stream: list[bytes], cuts: list[int]) -> None:
    data = b"".join(stream)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    reader = FrameReader()
    frames = []
    for a, b in zip(points, points[1:]):
        frames += reader.feed(data[a:b], now=0.0)
    assert all(isinstance(f, Command) for f in frames)
    assert [f.name for f in frames] == [_COMMANDS[c] for c in stream]
    assert all(len(f.data or b"") == PANEL_K for f in frames if f.name == "Db")


def test_a_stalled_payload_is_answered_at_its_deadline_and_not_before() -> None:
    reader = FrameReader(payload_timeout=1.0)
    assert reader.feed(b"\x1bDb;k;2;" + b"\x00" * 10, now=100.0) == []
    assert reader.deadline() == 101.0
    assert reader.expire(100.9) == []
    assert reader.expire(101.0) == [Malformed(Refusal.DATA_LENGTH)]
    assert reader.feed(b"\x1bRfv\r", now=101.1) == [Command("Rfv", ())]
