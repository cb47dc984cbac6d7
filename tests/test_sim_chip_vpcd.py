"""VpcdCard speaks vpcd's framing, tested against a loopback stand-in for the vpcd driver."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from simulators.chip.emulator import VirtualChip
from simulators.chip.vpcd import DEFAULT_ATR, VpcdCard, VpcdUnavailable


@pytest.fixture
def vpcd() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    yield server
    server.close()


def receive_frame(conn: socket.socket) -> bytes:
    header = conn.recv(2, socket.MSG_WAITALL)
    return conn.recv(int.from_bytes(header, "big"), socket.MSG_WAITALL)


def test_frames_split_across_reads_are_reassembled(vpcd: socket.socket) -> None:
    card = VpcdCard(vpcd.getsockname()[1])
    card.insert(VirtualChip())
    conn, _ = vpcd.accept()
    try:
        conn.settimeout(5)
        conn.sendall(b"\x00")  # the ATR request arrives one byte at a time
        time.sleep(0.05)
        conn.sendall(b"\x01\x04")
        assert receive_frame(conn) == DEFAULT_ATR
        apdu = bytes.fromhex("00A4040C07A0000002471001")
        frame = len(apdu).to_bytes(2, "big") + apdu
        conn.sendall(frame[:5])
        time.sleep(0.05)
        conn.sendall(frame[5:])
        assert receive_frame(conn) == b"\x90\x00"
    finally:
        card.remove()
        conn.close()


def test_removing_the_card_closes_the_connection(vpcd: socket.socket) -> None:
    card = VpcdCard(vpcd.getsockname()[1])
    card.insert(VirtualChip())
    conn, _ = vpcd.accept()
    try:
        conn.settimeout(5)
        card.remove()
        assert conn.recv(1) == b""  # vpcd sees end of stream: the card is gone
    finally:
        conn.close()


def test_power_on_resets_the_chip_selection(vpcd: socket.socket) -> None:
    chip = VirtualChip()
    chip.process_apdu(bytes.fromhex("00A4040C07A0000002471001"))
    chip.process_apdu(bytes.fromhex("00A4020C020101"))
    card = VpcdCard(vpcd.getsockname()[1])
    card.insert(chip)
    conn, _ = vpcd.accept()
    try:
        conn.settimeout(5)
        conn.sendall(b"\x00\x01\x01")  # power on
        read = bytes.fromhex("00B0000004")
        conn.sendall(len(read).to_bytes(2, "big") + read)
        assert receive_frame(conn) == b"\x69\x86"  # nothing selected after power-up
    finally:
        card.remove()
        conn.close()


def test_inserting_with_no_vpcd_listening_is_refused(vpcd: socket.socket) -> None:
    port = vpcd.getsockname()[1]
    vpcd.close()
    with pytest.raises(VpcdUnavailable, match=str(port)):
        VpcdCard(port).insert(VirtualChip())
