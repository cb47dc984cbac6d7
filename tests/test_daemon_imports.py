"""The running daemon carries no library it never uses (docs/BENCHMARKS.md, RSS), and its threads
carry their names to the kernel.

Some packages load others only because they are installed: structlog loads rich for console
tracebacks, httpcore loads trio for trio event loops, uvicorn a websocket library; the test tools
install all three, and httpx's command-line client loads pygments. The witness is the
interpreter's own import log (PYTHONPROFILEIMPORTTIME) of a daemon that has printed, reported and
served its page. The log names every import tried, a refused one too (one line, no submodule): a
package counts as loaded when a module inside it was.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.station_rig import StationRig

NEVER_USED = {"rich", "pygments", "trio", "jsonschema", "referencing", "wsproto", "websockets", "fastapi", "pydantic"}


def test_a_daemon_that_has_printed_reported_and_served_its_page_never_loaded_them(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=2, blanks=4, prefetch=2) as rig:
        rig.start()
        agent = rig.start_agent(env={"PYTHONPROFILEIMPORTTIME": "1"})
        outcomes = rig.wait_for_outcomes()
        assert len(outcomes) == 2
        page = httpx.get(rig.web_url(), timeout=10)
        assert page.status_code == 200, page.status_code
        threads = {(task / "comm").read_text().strip() for task in Path(f"/proc/{agent.pid}/task").iterdir()}
        assert rig.stop_agent() == 0
        imported = {line.rpartition("|")[2].strip() for line in rig.agent_log().splitlines()
                    if line.startswith("import time:")}
        packages = {name.split(".")[0] for name in imported if "." in name}
        # The log is a witness only if it heard the imports the daemon does need.
        assert {"agent", "httpx", "httpcore", "uvicorn", "numpy", "smartcard"} <= packages
        assert not packages & NEVER_USED, sorted(packages & NEVER_USED)
    # What `top -H` shows a technician, and what `printstation bench` reads the threads' costs by.
    assert {"printer-p1", "render-ahead_0", "intake", "outbox", "telemetry", "control-tick", "control-socket",
            "web"} <= threads, sorted(threads)
