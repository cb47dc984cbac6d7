#!/usr/bin/env python3
"""Run the test suite as N shards at once, each in its own private namespaces
(scripts/private-pcscd.sh: its own pcscd, vpcd ports, loopback and PIDs), so stations in two
shards never share a reader slot or a port. Most of a station test is spent waiting on the
virtual printer's mechanics, so two shards on two cores take about half the time of one.

Test files are dealt to shards longest first by the durations in tests/durations.json (seconds
a file; a new file counts as 10 s). Each shard writes its output to build/test-shard-K.log and
a JUnit file beside it; the summary, and the whole log of any shard that failed, go to stdout.

Usage: scripts/test-shards.py [--shards N] [--python .venv/bin/python] [--update-durations]
Exit status: 0 when every shard passed, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATIONS = ROOT / "tests" / "durations.json"
NEW_FILE_S = 10.0


def deal(files: list[str], durations: dict[str, float], shards: int) -> list[list[str]]:
    """Longest first, each file to the shard with the least work so far."""
    loads = [0.0] * shards
    dealt: list[list[str]] = [[] for _ in range(shards)]
    for name in sorted(files, key=lambda f: -durations.get(f, NEW_FILE_S)):
        k = loads.index(min(loads))
        dealt[k].append(name)
        loads[k] += durations.get(name, NEW_FILE_S)
    return dealt


def file_durations(junit: Path) -> dict[str, float]:
    """Seconds spent in each test file, from a JUnit report."""
    spent: dict[str, float] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = "tests/" + case.get("classname", "").split(".")[1] + ".py" if "." in case.get("classname", "") else ""
        if name:
            spent[name] = spent.get(name, 0.0) + float(case.get("time", 0.0))
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--python", default=".venv/bin/python")
    parser.add_argument("--update-durations", action="store_true", help="write tests/durations.json from this run")
    args = parser.parse_args()
    os.chdir(ROOT)
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py"))
    durations = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    started = time.monotonic()
    procs = []
    for k, shard in enumerate(deal(files, durations, args.shards)):
        log = open(build / f"test-shard-{k}.log", "w")
        junit = build / f"test-shard-{k}.xml"
        argv = ["scripts/private-pcscd.sh", args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                f"--junitxml={junit}", *shard]
        env = {**os.environ, "PYTHON": args.python}
        procs.append((k, shard, junit, log, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)))
        print(f"shard {k}: {len(shard)} files, about {sum(durations.get(f, NEW_FILE_S) for f in shard):.0f} s", flush=True)
    failed = []
    spent: dict[str, float] = {}
    for k, shard, junit, log, proc in procs:
        code = proc.wait()
        log.close()
        text = (build / f"test-shard-{k}.log").read_text(errors="replace")
        summary = next((line for line in reversed(text.splitlines()) if " in " in line and ("passed" in line or "failed" in line or "error" in line)), "")
        print(f"shard {k}: exit {code}: {summary.strip('= ')}", flush=True)
        if code != 0:
            failed.append((k, text))
        if junit.exists():
            spent.update(file_durations(junit))
    for k, text in failed:
        print(f"\n===== shard {k} (build/test-shard-{k}.log) =====\n{text}")
    print(f"all shards: {time.monotonic() - started:.0f} s, {'FAILED' if failed else 'passed'}")
    if args.update_durations and not failed:
        DURATIONS.write_text(json.dumps({f: round(s, 1) for f, s in sorted(spent.items())}, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
