"""Fault texts for the operator, in Indonesian and English, and their IPP words."""

from __future__ import annotations

import re

import pytest

from drivers.faults import Fault


@pytest.mark.parametrize("fault", list(Fault))
@pytest.mark.parametrize("lang", ["id", "en"])
def test_every_fault_has_a_message_and_a_remedy_that_are_sentences(fault: Fault, lang: str) -> None:
    for text in (fault.message(lang), fault.remedy(lang)):
        assert text[0].isupper() and text.endswith(".")
        assert fault.name not in text and "_" not in text


@pytest.mark.parametrize("fault", list(Fault))
def test_indonesian_and_english_texts_differ(fault: Fault) -> None:
    assert fault.message("id") != fault.message("en")
    assert fault.remedy("id") != fault.remedy("en")


def test_no_two_faults_share_a_message() -> None:
    for lang in ("id", "en"):
        messages = [fault.message(lang) for fault in Fault]
        assert len(set(messages)) == len(messages)


def test_jam_tells_the_operator_to_open_the_cover_and_take_the_card_out() -> None:
    assert "keluarkan kartu yang macet" in Fault.JAM.remedy("id")
    assert "jammed card" in Fault.JAM.remedy("en")


@pytest.mark.parametrize("fault", list(Fault))
def test_ipp_reason_is_a_keyword_with_a_severity(fault: Fault) -> None:
    assert re.fullmatch(r"[a-z]+(-[a-z]+)*-(report|warning|error)", fault.ipp_reason)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault.JAM, "media-jam-error"),
        (Fault.COVER_OPEN, "cover-open-error"),
        (Fault.FEEDER_EMPTY, "media-empty-error"),
        (Fault.RIBBON_ENDED, "marker-supply-empty-error"),
        (Fault.HOPPER_FULL, "output-area-full-error"),
    ],
)
def test_common_faults_use_the_ipp_words_print_servers_know(fault: Fault, reason: str) -> None:
    assert fault.ipp_reason == reason


def test_an_unsupported_language_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'fr'"):
        Fault.JAM.message("fr")
