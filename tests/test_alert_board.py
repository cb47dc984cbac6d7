"""The alert board: a condition is an alert once (and again only after the repeat time), upstream
offline only after its time, acknowledged alerts stay until they clear; texts in the station's
language, with the remedy, from the same tables the status screen uses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.core.printer_snapshot import PrinterSnapshot
from agent.ops.alerts import AlertBoard, conditions_of

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def board_with_listener(repeat_after_s: float = 3600.0) -> tuple[AlertBoard, list]:
    heard: list = []
    board = AlertBoard(repeat_after_s=repeat_after_s)
    board.listeners.append(heard.append)
    return board, heard


def jammed(name: str = "p1") -> PrinterSnapshot:
    return PrinterSnapshot(name, "stopped", ("media-jam-error",), ("jam",))


def test_a_stopped_printer_is_one_alert_in_indonesian_with_its_remedy_until_it_clears():
    board, heard = board_with_listener()
    for second in range(5):
        board.update(conditions_of([jammed()], None, upstream_online=True, held_jobs=0, upstream_offline_after_s=60),
                     T0 + timedelta(seconds=second))
    assert [a.code for a in heard] == ["jam"], "raised once, however often it is seen"
    [shown] = [a.as_json("id") for a in board.current()]
    assert shown["printer"] == "p1" and shown["severity"] == "error"
    assert "macet" in shown["message"].lower() or "macet" in shown["remedy"].lower(), shown
    board.update([], T0 + timedelta(seconds=6))
    assert board.current() == []


def test_an_alert_that_comes_back_soon_is_collapsed_and_later_raised_again():
    board, heard = board_with_listener(repeat_after_s=600)
    conditions = conditions_of([jammed()], None, upstream_online=True, held_jobs=0, upstream_offline_after_s=60)
    board.update(conditions, T0)
    board.update([], T0 + timedelta(seconds=30))
    board.update(conditions, T0 + timedelta(seconds=60))
    assert len(heard) == 1 and len(board.current()) == 1  # on the board again, not sent again
    board.update([], T0 + timedelta(seconds=90))
    board.update(conditions, T0 + timedelta(seconds=700))
    assert len(heard) == 2


def test_upstream_offline_is_an_alert_only_after_its_time_and_since_when_it_began():
    board, heard = board_with_listener()
    for second in (0, 30, 59):
        board.update(conditions_of([], None, upstream_online=False, held_jobs=0, upstream_offline_after_s=60),
                     T0 + timedelta(seconds=second))
    assert heard == [] and board.current() == []
    board.update(conditions_of([], None, upstream_online=False, held_jobs=0, upstream_offline_after_s=60),
                 T0 + timedelta(seconds=61))
    [alert] = heard
    assert alert.code == "upstream-offline" and alert.since == T0


def test_an_acknowledged_alert_stays_marked_until_it_clears():
    board, _ = board_with_listener()
    conditions = conditions_of([], None, upstream_online=True, held_jobs=2, upstream_offline_after_s=60)
    board.update(conditions, T0)
    [alert] = board.current()
    version = board.version
    assert board.acknowledge(alert.key) and board.version > version
    board.update(conditions, T0 + timedelta(seconds=1))
    assert board.current()[0].acknowledged and board.current()[0].count == 2
    assert not board.acknowledge("no-such-alert")


def test_a_listener_that_fails_does_not_stop_the_board():
    board = AlertBoard()

    def broken(alert):
        raise RuntimeError("the mail server is down")

    board.listeners.append(broken)
    board.update(conditions_of([jammed()], None, upstream_online=True, held_jobs=0, upstream_offline_after_s=60), T0)
    assert len(board.current()) == 1
