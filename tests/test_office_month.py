"""The month of an office (agent/tools/office_month.py, `printstation bench --office-month`) keeps its
promises: a warning at least 14 print days ahead of every stock-out it causes, the miscount
found by the printer's empty feeder and reconcile, and the ledger where the blanks are at the end.
Deterministic (a fixed seed and a simulated clock): no timing in it."""

from __future__ import annotations

from agent.tools.office_month import run_office_month


def test_a_month_warns_14_print_days_ahead_and_ends_with_the_ledger_where_the_blanks_are(tmp_path):
    figures = run_office_month(tmp_path)
    assert figures.events, "the late delivery brings the office to (near) running out"
    assert all(e.warning_print_days is not None and e.warning_print_days >= 14 for e in figures.events), figures.events
    assert figures.discrepancies_found >= 1
    assert figures.ledger_difference == 0 and figures.reconcile_agreed_at_end and figures.balanced
