"""Print windows: outside them the station holds its jobs; a window may run past midnight."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from agent.core.print_windows import PrintWindow, WindowError, check_windows, parse_window

OFFICE = PrintWindow(("mon", "tue", "wed", "thu", "fri"), time(7, 30), time(20, 0))
NIGHT = PrintWindow(("mon", "tue", "wed", "thu"), time(22, 0), time(6, 0))
MONDAY = datetime(2026, 11, 30)  # a Monday


def at(day_offset: int, hour: int, minute: int = 0) -> datetime:
    return (MONDAY + timedelta(days=day_offset)).replace(hour=hour, minute=minute)


def test_office_hours_open_at_half_past_seven_and_close_at_eight():
    assert not OFFICE.contains(at(0, 7, 29)) and OFFICE.contains(at(0, 7, 30))
    assert OFFICE.contains(at(0, 19, 59)) and not OFFICE.contains(at(0, 20, 0))


def test_night_window_runs_into_the_next_morning():
    assert NIGHT.contains(at(0, 23)) and NIGHT.contains(at(1, 5, 59)) and not NIGHT.contains(at(1, 6, 0))
    assert NIGHT.contains(at(4, 3)), "Thursday's night ends on Friday morning"
    assert not NIGHT.contains(at(4, 23)), "no night run on Friday"


def test_closed_station_says_when_it_opens_next():
    verdict = check_windows((OFFICE, NIGHT), at(4, 21))  # Friday 21:00
    assert not verdict.open and verdict.opens_at == at(7, 7, 30)  # Monday 07:30
    assert check_windows((), at(5, 3)).open, "no windows: always open"


def test_window_errors_name_the_field_and_a_fix():
    with pytest.raises(WindowError) as caught:
        parse_window({"days": ["mon"], "start": "7:30", "end": "20:00"})
    assert caught.value.field == "start" and "07:30" in caught.value.fix
    with pytest.raises(WindowError, match="days"):
        parse_window({"days": ["monday"], "start": "07:30", "end": "20:00"})
    assert parse_window({"start": "22:00", "end": "06:00"}).days == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
