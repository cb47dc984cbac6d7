"""The USB link through pyusb and the relay backend, against the virtual printer's USB port."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import usb.core
import usb.util

from drivers.evolis.printer import EvolisPrinter
from drivers.link.base import Link, LinkError, ReplyTimeout
from drivers.link.url import open_link
from drivers.link.relay import RELAY_ENV, RelayBackend
from tests.usb_printer_rig import SERIAL, usb_printer


def test_pyusb_finds_the_printer_interface_and_its_bulk_endpoints_through_the_relay(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig:
        dev = usb.core.find(backend=RelayBackend([rig.port.path]), idVendor=0x0F49)
        assert dev is not None
        assert dev.serial_number == SERIAL
        assert usb.util.get_string(dev, dev.iManufacturer) == "Evolis"
        interface = usb.util.find_descriptor(dev.get_active_configuration(), bInterfaceClass=7)
        directions = sorted(usb.util.endpoint_direction(e.bEndpointAddress) for e in interface)
        assert directions == [usb.util.ENDPOINT_OUT, usb.util.ENDPOINT_IN]
        usb.util.dispose_resources(dev)


def test_the_link_talks_to_the_printer_found_by_vendor_and_serial(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig, open_link(rig.url()) as link:
        assert EvolisPrinter(link).identity().serial == SERIAL


def test_a_printer_with_another_serial_number_is_not_found(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig:
        with pytest.raises(LinkError, match="no USB printer"):
            open_link(rig.url(serial="SIMP99999"))


def test_the_relay_socket_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with usb_printer(tmp_path) as rig:
        monkeypatch.setenv(RELAY_ENV, f"{tmp_path / 'nothing.sock'}:{rig.port.path}")
        with open_link(f"usb://0x0f49?serial={SERIAL}") as link:
            assert EvolisPrinter(link).counters().cards == 0


def test_kernel_printer_driver_is_detached_while_open_and_bound_again_on_close(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig:
        assert rig.port.kernel_driver_active
        with open_link(rig.url()) as link:
            EvolisPrinter(link).status()
            assert not rig.port.kernel_driver_active
        assert rig.port.kernel_driver_active
        assert rig.port.events == ["detach", "claim", "release", "attach"]


def test_a_second_program_cannot_take_the_printer_in_use(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig, open_link(rig.url()):
        with pytest.raises(LinkError, match="in use by another program"):
            open_link(rig.url())


def test_unplugging_is_a_link_error_and_reopening_finds_the_printer_again(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig:
        link = open_link(rig.url())
        printer = EvolisPrinter(link)
        printer.start_sequence()
        printer.feed_to_contactless()
        rig.port.unplug()
        with pytest.raises(LinkError, match="unplugged"):
            printer.card_present()
        with pytest.raises(LinkError, match="no USB printer"):
            open_link(rig.url())
        printer.close()

        rig.port.plug()
        with open_link(rig.url()) as again:
            assert EvolisPrinter(again).card_present()  # the card stayed inside, as in a real printer
        assert rig.port.address == 2  # a new enumeration


def test_a_handle_from_before_the_replug_does_not_reach_the_new_device(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig:
        dev = usb.core.find(backend=RelayBackend([rig.port.path]), idVendor=0x0F49)
        rig.port.unplug()
        rig.port.plug()
        with pytest.raises(usb.core.USBError) as caught:
            dev.is_kernel_driver_active(0)
        assert caught.value.backend_error_code == -4  # LIBUSB_ERROR_NO_DEVICE
        usb.util.dispose_resources(dev)


def test_unplug_for_a_while_plugs_back_in_by_itself(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig:
        first_address = rig.port.address
        rig.port.unplug(for_s=0.2)
        for _ in range(200):  # bounded: the cable goes back in after 0.2 s, as a new enumeration
            if rig.port.plugged and rig.port.address > first_address:
                break
            time.sleep(0.05)
        assert rig.port.address == first_address + 1, "plugged back in once, at a new address"
        with open_link(rig.url()) as link:
            assert EvolisPrinter(link).identity().serial == SERIAL


class _Packets(Link):
    """A packet transport the test feeds by hand: what the printer has sent and not yet been read."""

    DRAIN_ONLY_AFTER_TROUBLE = True

    def __init__(self) -> None:
        super().__init__("packets", None)
        self.inbox: list[bytes] = []
        self.drained: list[bytes] = []

    def send(self, data: bytes) -> None:
        pass

    def _read_some(self, timeout: float) -> bytes:
        return self.inbox.pop(0) if self.inbox else b""

    def _discard_input(self) -> None:
        self.drained += self.inbox
        self.inbox.clear()

    def close(self) -> None:
        pass


def test_a_usb_link_drains_input_before_a_command_unless_the_last_answer_came_whole() -> None:
    link = _Packets()
    link.inbox.append(b"OK\r")  # left by a host that died: drained before the first command
    link.reset_input()
    assert link.drained == [b"OK\r"]
    link.inbox.append(b"A\r")
    assert link.read_reply(0.1) == "A"
    link.inbox.append(b"B\r")  # a whole answer came and nothing after it: no drain before the next
    link.reset_input()
    assert link.read_reply(0.1) == "B" and link.drained == [b"OK\r"]
    link.reset_input()  # a command whose answer does not come in time ...
    with pytest.raises(ReplyTimeout):
        link.read_reply(0.01)
    link.inbox.append(b"LATE\r")  # ... answers late: drained, never taken for the next answer
    link.reset_input()
    assert link.drained == [b"OK\r", b"LATE\r"]
    link.inbox.append(b"C\rD\r")  # an answer with more after it: the rest is drained next time
    assert link.read_reply(0.1) == "C"
    link.reset_input()
    link.inbox.append(b"E\r")
    assert link.read_reply(0.1) == "E"
