"""`printstation bench` as others script against it: `--json` leaves one JSON object on stdout and
nothing else (the table and any log lines go to stderr), `--only` takes the figures named and
refuses an unknown one by name."""

from __future__ import annotations

import json
import subprocess
import sys


def bench(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "bench", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_json_leaves_stdout_one_object_even_from_a_figure_taken_in_process(pcscd, tmp_path):
    # The outbox drain runs the outbox sender in the bench's own process: its log lines once went
    # to stdout, ahead of the JSON.
    run = bench("--quick", "--only", "outbox_drain", "--json", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 1, f"stdout holds more than the JSON object: {lines[:3]}"
    figures = json.loads(lines[0])
    assert set(figures) == {"outbox_drain_per_s"}
    assert figures["outbox_drain_per_s"] > 0
    assert "outbox_drain_per_s" in run.stderr, "the table is for people, on stderr"


def test_only_refuses_an_unknown_figure_by_name(tmp_path):
    run = bench("--only", "utilisation,utilization", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "no figure utilization" in run.stderr
    assert "utilisation_speed50" in run.stderr, "the message lists the figures there are"
