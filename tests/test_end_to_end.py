"""The whole station on virtual hardware: agent, virtual printer (pty) and upstream as separate
processes, chips written and verified through the real pcscd. The printer's card log is the witness."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter


def test_demo_over_serial_prints_every_job_once_through_the_real_pcscd(pcscd, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--cards", "6", "--speed", "100", "--transport", "serial", "--json",
         "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["jobs"] == 6 and summary["printed"] == 6 and summary["failed"] == 0
    assert summary["duplicates"] == 0

    cards = [json.loads(line) for line in (tmp_path / "simulator" / "cards.jsonl").read_text().splitlines()]
    output = [c for c in cards if c["bin"] == "output"]
    documents = Counter(c["document_number"] for c in output)
    assert len(output) == 6 and len(documents) == 6, "each job's chip left through the output exactly once"
    assert all(doc and doc.startswith("KTP") for doc in documents)
    assert all({"front:y", "front:m", "front:c", "front:k", "front:o"} <= set(c["panels"]) for c in output)
