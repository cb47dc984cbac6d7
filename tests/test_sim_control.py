"""The control channel: JSON lines on a Unix socket, actions on the printer's own thread."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import serial

from simulators.printer.control import ControlError, ControlServer, PrinterTarget, parse_action, send_request
from simulators.printer.pty_port import StablePort
from simulators.simulate_ctl import build_request
from tests.sim_printer_rig import Rig, running_printer


class ArmedChipFaults:
    """The reader's arming, kept in memory (the chip faults themselves are the chip engineer's)."""

    def __init__(self) -> None:
        self.faults: dict[str, int] = {}

    def arm(self, fault: str, cards: int) -> None:
        self.faults[fault] = cards

    def armed(self) -> dict[str, int]:
        return dict(self.faults)


@contextmanager
def controlled(tmp_path: Path) -> Iterator[tuple[Rig, Path, StablePort]]:
    with running_printer(tmp_path, blanks=3) as rig:
        port = StablePort(tmp_path / "spare-port")
        stop = threading.Event()
        server = ControlServer(tmp_path / "control.sock", {"p1": PrinterTarget(rig.printer, port, rig.line,
                                                                                 ArmedChipFaults())}, stop)
        server.start()
        try:
            yield rig, server.path, port
        finally:
            stop.set()
            server.close()
            port.close()


def test_a_jam_through_the_socket_stops_the_printer_and_clear_frees_it(tmp_path: Path) -> None:
    with controlled(tmp_path) as (rig, sock, _):
        reply = send_request(sock, {"printer": "p1", "action": "jam"})
        assert reply["ok"] and reply["status"]["faults"] == ["jam"]
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "CARD JAM"
        assert send_request(sock, {"printer": "p1", "action": "clear"})["status"]["faults"] == []
        assert rig.cmd("Sic") == "OK"


def test_a_cover_opened_for_a_while_closes_by_itself(tmp_path: Path) -> None:
    with controlled(tmp_path) as (rig, sock, _):
        send_request(sock, {"printer": "p1", "action": "cover-open", "for_s": 0.3})
        assert rig.cmd("Rse;o") == "0,00 Volts", "the cover sensor reads nothing: the cover is open"
        deadline = time.monotonic() + 5
        while rig.cmd("Rse;o") == "0,00 Volts":
            assert time.monotonic() < deadline, "the cover never closed"
            time.sleep(0.05)


def test_garbage_comes_before_the_next_reply_only(tmp_path: Path) -> None:
    with controlled(tmp_path) as (rig, sock, _):
        send_request(sock, {"printer": "p1", "action": "garbage", "count": 5})
        rig.host.write(b"\x1bRco;c\r")
        raw = rig.host.read(5 + 2)
        assert raw[-2:] == b"0\r" and len(raw) == 7
        assert rig.cmd("Rco;c") == "0"


def test_a_command_error_answers_err_without_moving_anything(tmp_path: Path) -> None:
    with controlled(tmp_path) as (rig, sock, _):
        send_request(sock, {"printer": "p1", "action": "command-error", "command": "Sic", "count": 1})
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "ERR COMMAND FAILED"
        assert rig.cmd("Rco;c") == "0"
        assert rig.cmd("Sic") == "OK", "armed for one time only"


def test_slow_replies_are_held_back_for_the_time_asked(tmp_path: Path) -> None:
    with controlled(tmp_path) as (rig, sock, _):
        send_request(sock, {"printer": "p1", "action": "slow", "for_s": 5, "delay_s": 0.3})
        started = time.monotonic()
        assert rig.cmd("Rco;c") == "0"
        assert time.monotonic() - started >= 0.3


def test_supplies_and_bins_change_through_the_socket(tmp_path: Path) -> None:
    with controlled(tmp_path) as (rig, sock, _):
        assert send_request(sock, {"printer": "p1", "action": "ribbon-load", "count": 42})["status"]["ribbon_remaining"] == 42
        assert send_request(sock, {"printer": "p1", "action": "ribbon-end"})["status"]["ribbon_remaining"] == 0
        assert send_request(sock, {"printer": "p1", "action": "hopper-empty"})["result"] == {"blanks_taken_out": 3}
        assert send_request(sock, {"printer": "p1", "action": "hopper-load", "count": 2})["status"]["hopper_remaining"] == 2
        assert send_request(sock, {"printer": "p1", "action": "overheat"})["status"]["cooling"] is True
        assert send_request(sock, {"printer": "p1", "action": "chip-fault", "fault": "mute", "cards": 2}
                            )["status"]["chip_faults"] == {"mute": 2}
        assert send_request(sock, {"printer": "p1", "action": "empty-bins"})["ok"]


def test_link_drop_unplugs_the_port_and_it_comes_back_under_the_same_name(tmp_path: Path) -> None:
    with controlled(tmp_path) as (_rig, sock, port):
        with serial.Serial(port.path, timeout=1) as host:
            first = port.pty_path
            send_request(sock, {"printer": "p1", "action": "link-drop", "for_s": 0.2})
            assert not Path(port.path).exists(), "the device name is gone while unplugged"
            with pytest.raises(serial.SerialException):
                host.read(1)
        deadline = time.monotonic() + 5
        while port.read(0.05) == b"" and not Path(port.path).exists():  # the printer's loop plugs it back
            assert time.monotonic() < deadline
        assert Path(port.path).resolve() != Path(first) or port.pty_path is not None
        with serial.Serial(port.path, timeout=1) as host:
            host.write(b"x")
            assert port.read(1.0) == b"x"


def test_bad_requests_get_a_plain_error_and_the_connection_stays_usable(tmp_path: Path) -> None:
    with controlled(tmp_path) as (_rig, sock, _):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            f = s.makefile("rwb")
            for line in (b"not json\n", b'{"printer": "p9", "action": "jam"}\n',
                         b'{"printer": "p1", "action": "melt"}\n', b'{"printer": "p1", "action": "hopper-load"}\n',
                         b'{"printer": "p1", "action": "status"}\n'):
                f.write(line)
                f.flush()
                answers = f.readline()
            assert b'"ok": true' in answers
        assert "no printer 'p9'" in send_request(sock, {"printer": "p9", "action": "jam"})["error"]
        assert "unknown action 'melt'" in send_request(sock, {"printer": "p1", "action": "melt"})["error"]
        assert "needs count" in send_request(sock, {"printer": "p1", "action": "hopper-load"})["error"]


def test_a_long_state_folder_path_still_gets_a_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    with controlled(deep) as (_rig, sock, _):
        assert len(str(sock)) > 108
        assert send_request(sock, {"printer": "p1", "action": "status"})["ok"]


@pytest.mark.parametrize("argv, request_", [
    (["p1", "cover-open", "--for", "5"], {"printer": "p1", "action": "cover-open", "for_s": 5.0}),
    (["p1", "ribbon-load", "300"], {"printer": "p1", "action": "ribbon-load", "count": 300}),
    (["p1", "slow", "--for", "3", "--delay", "2"], {"printer": "p1", "action": "slow", "for_s": 3.0, "delay_s": 2.0}),
    (["p1", "command-error", "Se"], {"printer": "p1", "action": "command-error", "command": "Se"}),
    (["p1", "chip-fault", "mute", "--cards", "2"], {"printer": "p1", "action": "chip-fault", "fault": "mute", "cards": 2}),
])
def test_the_command_line_becomes_the_documented_request(argv, request_) -> None:
    from simulators.simulate_ctl import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert build_request(parser.parse_args(["--state-dir", "/x", *argv])) == request_


@pytest.mark.parametrize("bad", [
    {"action": "garbage"}, {"action": "garbage", "count": -1}, {"action": "slow", "for_s": 1},
    {"action": "jam", "for_s": 1}, {"action": "cover-open", "for_s": "long"}, {"action": "command-error", "command": ""},
])
def test_wrong_actions_are_refused_before_anything_happens(bad) -> None:
    with pytest.raises(ControlError):
        parse_action(bad)
