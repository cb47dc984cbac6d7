"""The disk under the journal fills up: the agent stops feeding cards, says why, and loses nothing it
had committed; once there is room again it carries on. Needs root in a private mount namespace
(scripts/private-pcscd.sh) to put the journal on a small tmpfs of its own."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from tests.station_rig import StationRig, wait_until


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    # Not a skip: a skipped test proves nothing, and `make test` runs as root anyway (unshare).
    assert os.geteuid() == 0, "needs root to mount a tmpfs: run it as make test does, under scripts/private-pcscd.sh"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"as root a small tmpfs must mount for this test: {mounted.stderr}"
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


JOBS = 16


def fill(disk) -> None:
    """Write until the disk refuses. Unbuffered: a buffered file keeps the part of its last write that
    did not fit and raises ENOSPC again when it is closed (which failed this test in CI)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def held_upstream(rig: StationRig) -> list[str]:
    """The jobs upstream counts as leased to the station (the contract's held-leases list)."""
    import httpx

    info = rig.upstream_info
    with httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"}, timeout=10) as http:
        answer = http.get("/v1/stations/crash-station/leases")
    assert answer.status_code == 200, answer.text
    return [j["job_id"] for j in answer.json()["jobs"]]


def test_full_journal_disk_stops_feeding_alerts_and_loses_nothing(pcscd, tmp_path, small_disk):
    """Filled mid-run, then freed without a restart: no blank fed while nothing can be recorded,
    every job printed once, none left leased to the station upstream (the witness: the printer's
    card log and what upstream received)."""
    # Enough jobs that printing is still under way when the disk fills, and few held at a time, so
    # intake must find room for new jobs (free pages of purged payloads cannot hide the full disk).
    with StationRig(tmp_path, jobs=JOBS, blanks=JOBS + 3, prefetch=2) as rig:
        rig.journal_path = small_disk / "journal.db"
        rig.start()
        rig.start_agent()
        wait_until(lambda: rig.output_count() >= 1, 60, "a first card")
        fill(small_disk)
        def printer_paused() -> int:
            return sum("printer-paused" in line and "journal-unwritable" in line for line in rig.agent_log().splitlines())

        def unwritable() -> int:
            return rig.agent_log().count("journal-unwritable")

        # Settled: the printer's loop has paused on the journal, or it has no card in hand while
        # intake keeps failing to record new jobs (then it has nothing left to claim).
        wait_until(lambda: printer_paused() or (unwritable() >= 3 and rig.printer_state()["card"] is None), 120,
                   "the station to settle on the unwritable journal")
        # From then on no new blank may be fed (a card already under way waits in the printer, to be
        # settled when the journal can record it) while the station keeps finding the journal
        # unwritable: three more times, by its own log.
        inserted = rig.printer_state()["cards_inserted"]
        seen = unwritable()
        wait_until(lambda: unwritable() >= seen + 3, 60, "the station to keep finding the journal unwritable")
        assert rig.printer_state()["cards_inserted"] == inserted, "no blank was fed while the journal could not record it"
        assert rig.agent_alive()
        (small_disk / "filler").unlink()  # the operator frees the disk; the station carries on by itself
        rig.wait_for_outcomes(timeout=240)
        stranded = held_upstream(rig)
        assert rig.agent_alive(), "no restart was needed"
        rig.stop_agent()
        figures = rig.figures()
    assert figures.clean, figures
    assert figures.printed == JOBS
    assert stranded == [], f"jobs leased to the station upstream and not printed: {stranded}"
