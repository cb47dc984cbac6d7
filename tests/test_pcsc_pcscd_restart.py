"""pcscd killed and restarted in the middle of a batch: the batch completes, no document twice,
no blank lost (counted from the simulator's cards.jsonl and its hopper).

Needs the private pcscd of scripts/private-pcscd.sh: restarting the machine's own pcscd would
pull the reader from under everyone else's runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.station_rig import as_the_demo, running_station, wait_until
from tests.conftest import _vpcd_readers

PID_FILE = Path("/run/pcscd/pcscd.pid")
JOBS = 8


def _in_private_pid_namespace() -> bool:
    # scripts/private-pcscd.sh says so; else NSpid lists one pid per nested pid namespace (seen
    # from the host's /proc): more than one means unshare --pid.
    if os.environ.get("PRINTSTATION_PRIVATE_NAMESPACES") == "1":
        return True
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return len(line.split()) > 2
    return False


def restart_pcscd() -> None:
    """Stop this namespace's pcscd (by its pid file) and start a new one; wait until vpcd is back."""
    pid = int(PID_FILE.read_text().strip("\x00 \n"))  # pcscd ends it with a NUL
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while PID_FILE.exists():
        assert time.monotonic() < deadline, "pcscd did not stop"
        time.sleep(0.05)
    subprocess.run(["pcscd"], check=True, timeout=10)
    while not _vpcd_readers():
        assert time.monotonic() < deadline + 10, "pcscd did not come back with the vpcd readers"
        time.sleep(0.1)


@pytest.mark.skipif(not _in_private_pid_namespace() or not PID_FILE.exists(),
                    reason="restarts pcscd: run under scripts/private-pcscd.sh")
def test_a_batch_rides_through_a_pcscd_restart_without_duplicates_or_lost_blanks(pcscd: list[str], tmp_path: Path) -> None:
    blanks = JOBS + 6
    with running_station(tmp_path, jobs=JOBS, blanks=blanks, speed=50, **as_the_demo(chip={"card_wait_s": 3})) as rig:
        wait_until(lambda: sum(c["bin"] == "output" for c in rig.cards()) >= 2, 120,
                   f"two cards printed before the restart (see {rig.root / 'agent.log'})")
        restart_pcscd()
        printed_before = sum(c["bin"] == "output" for c in rig.cards())
        outcomes = rig.wait_for_outcomes(JOBS, timeout=300)
        rig.stop_agent_and_printers()
        figures = rig.figures()
        cards, remaining = rig.cards(), rig.hopper_remaining()
    assert figures.clean, figures  # the journal, upstream and the printer's card log and state agree

    assert printed_before < JOBS, "the restart came after the batch: it proved nothing"
    assert all(o["status"] == "printed" for o in outcomes.values()), outcomes
    output = Counter(c["document_number"] for c in cards if c["bin"] == "output")
    assert len(output) == JOBS and set(output.values()) == {1}, output
    assert len({c["blank_serial"] for c in cards}) == len(cards)
    assert len(cards) + remaining == blanks  # every blank fed left through a bin or is still in the hopper
