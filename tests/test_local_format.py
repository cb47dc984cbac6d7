"""Dates, times and numbers as the station's people write them. The oracle is the convention
itself (CLDR, as Indonesian is written): the month as an Indonesian word ("Des"), a dot between
hours and minutes ("22.00") and between thousands ("1.234"), a comma before decimals; English
with its own words and separators. The station's zone is the process's (TZ), as on a station."""

from __future__ import annotations

import os
import time

import pytest

from agent.core.local_time import local_date, local_number, local_time


@pytest.fixture
def jakarta():
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Jakarta"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_a_utc_stamp_reads_in_local_time_in_each_language(jakarta):
    # 15:00 UTC is 22:00 in Jakarta (WIB, UTC+7)
    assert local_time("2026-12-02T15:00:00.000Z", "id") == "2 Des 2026 22.00 WIB"
    assert local_time("2026-12-02T15:00:00Z", "en") == "2 Dec 2026 10:00\u202fPM WIB"  # CLDR's narrow space
    assert local_time("2026-12-31T17:30:00Z", "id") == "1 Jan 2027 00.30 WIB", "the day turns at local midnight"


def test_dates_and_numbers_in_each_language():
    assert local_date("2027-03-05", "id") == "5 Mar 2027"
    assert local_date("2027-08-17", "id") == "17 Agu 2027"
    assert local_date("2027-08-17", "en") == "17 Aug 2027"
    assert local_number(12345, "id") == "12.345" and local_number(12345, "en") == "12,345"
    assert local_number(2.5, "id") == "2,5" and local_number(2.5, "en") == "2.5"
    assert local_number(None, "id") == "?"


def test_nothing_odd_breaks_a_screen():
    assert local_time(None) == "" and local_time("") == "" and local_time("not a time") == ""
    assert local_date("soon") == "soon"
    assert local_number(7, "xx") == "7", "an unknown language falls back to English"
