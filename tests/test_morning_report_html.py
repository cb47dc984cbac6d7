"""The morning report worth opening: a printable HTML page with its charts, reasons in plain words
(no codes), local times, no personal data, readable by the operators' group; and the text report's
wording fixed ("tercetak 1 dari target 2", "selesai karena target tercapai")."""

from __future__ import annotations

import re
import stat
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

from agent.core.printer_snapshot import PrinterSnapshot
from agent.journal import Journal
from agent.ops.batch import BatchRunner, latest_report, render_text

NIK, NAME = "3174011505900001", "BUDI SANTOSO"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.seen.add(tag)
        if tag not in ("meta", "br", "input"):
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):  # <rect ... />: opened and closed at once
        self.seen.add(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (self.open[-5:], tag)
        self.open.pop()


def finished_batch(tmp_path) -> dict:
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    journal = Journal(tmp_path / "journal.db", "st-1", max_attempts=3)
    journal.receive_blanks("LOT-1", 10)
    journal.load_blanks("p1", 10, lot="LOT-1")
    runner = BatchRunner(journal, "st-1", tmp_path / "reports", "id")
    runner.start(2, None, now=start)
    for job_id in ("J1", "J2"):
        journal.add_leased(job_id, {"job_id": job_id, "subject": {"nik": NIK, "name": NAME}},
                           not_after=start + timedelta(days=1), lease_expires_at=start + timedelta(hours=1), priority=0)
    c = journal.claim_next("p1")
    journal.fed(c.job_id, c.attempt, "p1")
    journal.spoiled(c.job_id, c.attempt, "chip-hash-mismatch")
    for _ in range(2):
        c = journal.claim_next("p1")
        journal.fed(c.job_id, c.attempt, "p1")
        journal.printed(c.job_id, c.attempt, 1)
    report = runner.finish("target-reached", [PrinterSnapshot("p1", "idle", ribbon_left=120)], {"p1": 7}).to_json()
    journal.close()
    return report


def test_the_html_report_has_its_charts_in_plain_indonesian_and_no_personal_data(tmp_path):
    report = finished_batch(tmp_path)
    page = latest_report(tmp_path / "reports")
    assert page is not None and page.suffix == ".html"
    html = page.read_text()
    parser = Tags()
    parser.feed(html)
    assert not parser.open, "every element closed"
    assert "svg" in parser.seen and html.count("<svg") >= 2, "cards per hour and spoiled by reason are drawn"
    assert "Laporan pagi" in html and "Kartu tercetak per jam" in html
    assert "isi chip tidak sesuai tanda tangannya" in html and "chip-hash-mismatch" not in html, "reasons in words"
    assert "target tercapai" in html and "target-reached" not in html
    assert "2 kartu tercetak dari target 2" in html
    assert NIK not in html and NAME not in html
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", html), "times in local words, not RFC 3339"
    assert stat.S_IMODE(page.stat().st_mode) == 0o640 and stat.S_IMODE(page.parent.stat().st_mode) == 0o750
    assert sum(report["cards_per_hour"].values()) == 2


def test_the_text_report_says_it_in_words(tmp_path):
    text = render_text(finished_batch(tmp_path), "id")
    assert "tercetak 2 dari target 2, rusak 1" in text
    assert "selesai karena target tercapai" in text and "target-reached" not in text
    assert "isi chip tidak sesuai tanda tangannya 1" in text
    english = render_text(finished_batch(tmp_path / "en"), "en")
    assert "printed 2 of a target of 2, spoiled 1" in english and "the target was reached" in english
