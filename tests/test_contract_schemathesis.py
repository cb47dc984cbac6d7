"""The reference upstream keeps its own contract, as a tool that did not write it checks:
schemathesis, seeded and bounded, against `upstream-sim` with docs/upstream.openapi.yaml. No
server error, every response valid against the document, invalid requests refused with 4xx,
valid ones accepted, undeclared methods 405 with `Allow`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from simulators.upstream.server import UpstreamConfig, UpstreamServer

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "upstream.openapi.yaml"


def test_schemathesis_finds_nothing_wrong_with_the_reference_upstream(tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency (pyproject: test)"
    # Plenty of jobs and a short long-poll cap: a lease never waits out the tool's timeout.
    server = UpstreamServer(UpstreamConfig(state_dir=tmp_path / "upstream", jobs=5000, lease_s=600, max_wait_s=1.0))
    server.start()
    try:
        run = subprocess.run(
            [st, "run", str(CONTRACT), "--url", server.url, "-H", f"Authorization: Bearer {server.token}",
             "--checks", "all", "--exclude-path-regex", "/v1/_sim/.*", "--generation-deterministic",
             "-n", "40", "--max-time", "150", "--request-timeout", "20", "--suppress-health-check", "all",
             "--no-color"],
            capture_output=True, text=True, timeout=600)
    finally:
        server.stop()
    report = run.stdout[-20000:]
    assert run.returncode == 0, report
    assert "passed" in report
