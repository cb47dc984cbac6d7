"""Each chip fault, injected during a batch through the simulator's control channel, ends with
that card in the reject box, its own reason upstream, and the job printed on a fresh blank.

Real processes (virtual printer, upstream, agent) and the real pcscd; cards.jsonl is the witness.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.station_rig import as_the_demo, running_station

# Fault armed on the simulator -> the spoil reason the agent must report for that card.
FAULTS = {
    "no-atr": "chip-mute",
    "mute": "chip-mute",
    "wrong-sw": "chip-unreadable-file",
    "flipped-byte": "chip-hash-mismatch",
    "untrusted-sod": "chip-untrusted-signer",
    "slow": "chip-slow",
    "removed-mid-read": "chip-removed",
}
JOBS = 3


def test_each_chip_fault_in_a_batch_spoils_its_card_with_its_reason_and_the_job_prints_on_a_fresh_blank(
    pcscd: list[str], tmp_path: Path
) -> None:
    blanks = JOBS + len(FAULTS) + 2
    with running_station(tmp_path, jobs=JOBS, blanks=blanks, speed=50, start_agent=False,
                         **as_the_demo(chip={"card_wait_s": 2}, pipeline={"max_attempts": 10})) as rig:
        for fault in FAULTS:  # they strike the next cards, one each, in this order
            rig.simulate_ctl("p1", "chip-fault", fault, "--cards", "1")
        rig.start_agent()
        outcomes = rig.wait_for_outcomes(JOBS, timeout=300)
        rig.stop_agent_and_printers()
        figures = rig.figures()
        cards, remaining = rig.cards(), rig.hopper_remaining()
    assert figures.clean, figures  # the journal, upstream and the printer's card log and state agree

    rejected = [c for c in cards if c["bin"] == "reject"]
    output = [c for c in cards if c["bin"] == "output"]
    assert [c["blank_serial"] for c in rejected] == [f"BLK-p1-{n:06d}" for n in range(1, len(FAULTS) + 1)]
    assert all(o["status"] == "printed" for o in outcomes.values()), outcomes
    assert Counter(c["document_number"] for c in output) == Counter({d: 1 for d in {c["document_number"] for c in output}})
    assert len(output) == JOBS
    assert len(cards) + remaining == blanks  # no blank lost

    spoiled = [a for o in outcomes.values() for a in o["attempts"] if a["result"] == "spoiled"]
    assert Counter(a["reason"] for a in spoiled) == Counter(FAULTS.values())
    assert all(a["checks"] for a in spoiled), "every spoiled card carries the checks that condemned it"
    by_reason = {a["reason"]: {c["name"]: c["verdict"] for c in a["checks"]} for a in spoiled}
    assert by_reason["chip-hash-mismatch"]["dg2"] == "bad"
    assert by_reason["chip-untrusted-signer"]["chain"] == "bad"
    assert by_reason["chip-untrusted-signer"]["signature"] == "good"
