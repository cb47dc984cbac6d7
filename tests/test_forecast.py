"""Run-out dates from known consumption histories, over the office's print windows."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from agent.upstream.forecast import DEFAULT_SCHEDULE, PrintSchedule, Use, forecast, schedule_for
from agent.core.print_windows import DAYS, PrintWindow

MONDAY_OPENING = datetime(2026, 6, 1, 7, 30)  # 1 June 2026 is a Monday


def weekday_history(start: date, end: date, per_day) -> list[Use]:
    """One use record at noon of each weekday from `start` to `end` (inclusive), `per_day(day)` cards."""
    uses, day = [], start
    while day <= end:
        if day.weekday() < 5:
            uses.append(Use(datetime.combine(day, time(12)), per_day(day)))
        day += timedelta(days=1)
    return uses


def test_a_steady_office_runs_out_after_as_many_print_days_as_the_stock_lasts():
    uses = weekday_history(date(2026, 5, 4), date(2026, 5, 29), lambda d: 150)
    run_out = forecast(1500, uses, MONDAY_OPENING)
    # 1,500 blanks at 150 a day: ten print days, Monday 1 June to Friday 12 June, closing time.
    assert run_out.date == date(2026, 6, 12)
    assert run_out.per_print_hour == 150 / 12.5
    assert 11.5 < run_out.days < 11.55


def test_the_after_graduation_rush_brings_the_run_out_date_forward():
    uses = weekday_history(date(2026, 5, 4), date(2026, 5, 22), lambda d: 150)
    uses += weekday_history(date(2026, 5, 25), date(2026, 5, 29), lambda d: 250)
    run_out = forecast(1000, uses, MONDAY_OPENING)
    # The last week ran at 250 a day: 1,000 blanks last four print days, not the 6.7 of the old rate.
    assert run_out.date == date(2026, 6, 4)
    assert run_out.per_print_hour == 250 / 12.5


def test_idle_weekends_neither_dilute_the_rate_nor_use_blanks():
    uses = weekday_history(date(2026, 5, 4), date(2026, 5, 29), lambda d: 150)
    friday_closing = datetime(2026, 5, 29, 20, 0)
    run_out = forecast(300, uses, friday_closing)
    # Two print days left: Monday and Tuesday. Not Sunday, as 150 a calendar day would say.
    assert run_out.date == date(2026, 6, 2)
    assert run_out.per_print_hour == 150 / 12.5


def test_no_recent_use_means_no_run_out_in_sight():
    run_out = forecast(500, [Use(datetime(2026, 3, 2, 12), 100)], MONDAY_OPENING)
    assert run_out.date is None and run_out.days is None


def test_an_empty_hopper_has_run_out_today():
    run_out = forecast(0, [], MONDAY_OPENING)
    assert run_out.date == MONDAY_OPENING.date() and run_out.days == 0


def test_a_night_window_counts_its_hours_after_midnight():
    night = PrintSchedule.from_windows([PrintWindow(("mon",), time(22, 0), time(6, 0))])
    assert night.hours_between(datetime(2026, 6, 1, 0, 0), datetime(2026, 6, 3, 0, 0)) == 8
    assert night.after_print_hours(datetime(2026, 6, 1, 12, 0), 4) == datetime(2026, 6, 2, 2, 0)


def test_overtime_outside_the_windows_still_counts_as_use():
    uses = weekday_history(date(2026, 5, 25), date(2026, 5, 29), lambda d: 150)
    uses.append(Use(datetime(2026, 5, 30, 10, 0), 100))  # a Saturday overtime shift
    run_out = forecast(1000, uses, MONDAY_OPENING, DEFAULT_SCHEDULE)
    assert run_out.per_print_hour == 850 / 62.5


def test_the_station_forecasts_over_its_configured_windows_and_office_hours_without_any():
    assert schedule_for(()) is DEFAULT_SCHEDULE
    nights = schedule_for((PrintWindow(DAYS, time(22, 0), time(6, 0)),))
    uses = [Use(datetime(2026, 5, 25 + n, 23, 0), 80) for n in range(7)]  # 80 cards a night
    run_out = forecast(200, uses, datetime(2026, 6, 1, 12, 0), nights)
    # 560 cards over 7 nights of 8 hours: 10 an hour; 200 blanks last 20 night hours: 02:00 on the third night.
    assert run_out.per_print_hour == 10
    assert run_out.date == date(2026, 6, 4) and run_out.days == 2 + 14 / 24
