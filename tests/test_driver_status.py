"""Decoding the printer's `Rst` status words (docs/PROTOCOLS.md section 1, "Status")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.faults import Fault
from drivers.printer_errors import ProtocolError
from drivers.evolis.status import PrinterStatus, parse_status

CLEAR = "00000000"


def words(info: int = 0, warning: int = 0, error: int = 0) -> str:
    return f"{info:08X};{warning:08X};{error:08X}"


def test_all_clear_has_no_faults_and_does_not_block() -> None:
    status = parse_status(words())
    assert status == PrinterStatus()
    assert not status.blocking


@pytest.mark.parametrize(
    ("bit", "flag"),
    [
        (0x01, "card_inside"),
        (0x02, "card_at_contactless"),
        (0x04, "card_at_print"),
        (0x08, "ribbon_low"),
        (0x10, "cleaning_recommended"),
        (0x20, "busy"),
        (0x40, "sequence_open"),
    ],
)
def test_each_information_bit_sets_its_flag_alone(bit: int, flag: str) -> None:
    status = parse_status(words(info=bit))
    set_flags = {name for name in vars(PrinterStatus()) if getattr(status, name) is True}
    assert set_flags == {flag}
    assert not status.blocking


@pytest.mark.parametrize(
    ("bit", "fault"),
    [
        (0x01, Fault.FEEDER_EMPTY),
        (0x02, Fault.HOPPER_FULL),
        (0x04, Fault.REJECT_FULL),
        (0x08, Fault.RIBBON_ENDED),
        (0x10, Fault.RIBBON_MISSING),
        (0x20, Fault.COVER_OPEN),
        (0x40, Fault.HEAD_HOT),
        (0x80, Fault.CLEANING_REQUIRED),
    ],
)
def test_each_warning_bit_is_a_fault_that_blocks_the_next_card(bit: int, fault: Fault) -> None:
    status = parse_status(words(warning=bit))
    assert status.faults == {fault}
    assert status.blocking
    assert not status.job_interrupted


@pytest.mark.parametrize(
    ("bit", "fault"),
    [
        (0x01, Fault.JAM),
        (0x02, Fault.FEEDER_ERROR),
        (0x04, Fault.RIBBON_WRONG),
        (0x08, Fault.COVER_OPEN),
        (0x10, Fault.HEAD_HOT),
        (0x20, Fault.REJECT_FULL),
    ],
)
def test_each_error_bit_is_a_fault_that_interrupted_the_card(bit: int, fault: Fault) -> None:
    status = parse_status(words(error=bit))
    assert status.faults == {fault}
    assert status.blocking
    assert status.job_interrupted


def test_several_conditions_at_once_are_all_reported() -> None:
    status = parse_status(words(info=0x41, warning=0x21, error=0x01))
    assert status.card_inside and status.sequence_open
    assert status.faults == {Fault.FEEDER_EMPTY, Fault.COVER_OPEN, Fault.JAM}


def test_a_warning_bit_without_a_name_still_blocks() -> None:
    status = parse_status(words(warning=0x100))
    assert status.faults == frozenset()
    assert status.unknown_warnings == 0x100
    assert status.blocking


def test_lower_case_and_short_words_are_read() -> None:
    assert parse_status("4a;0;0") == parse_status(words(info=0x4A))


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "OK",
        "00000000;00000000",
        "00000000;00000000;00000000;00000000",
        "0000000G;00000000;00000000",
        "0x000001;00000000;00000000",
        " 0000001;00000000;00000000",
        "+0000001;00000000;00000000",
        "0000_001;00000000;00000000",
        "123456789;00000000;00000000",
        ";00000000;00000000",
        "\u0661;0;0",
    ],
)
def test_garbage_status_is_a_protocol_error(reply: str) -> None:
    with pytest.raises(ProtocolError):
        parse_status(reply)


@given(st.text(max_size=80))
def test_any_text_gives_a_status_or_a_protocol_error(reply: str) -> None:
    try:
        status = parse_status(reply)
    except ProtocolError:
        return
    assert isinstance(status, PrinterStatus)


@given(
    st.tuples(*[st.integers(min_value=0, max_value=0xFFFFFFFF)] * 3),
)
def test_any_three_words_decode_and_faults_follow_the_bits(values: tuple[int, int, int]) -> None:
    info, warning, error = values
    status = parse_status(words(info, warning, error))
    assert status.blocking == bool(warning or error)
    assert status.job_interrupted == bool(error)
