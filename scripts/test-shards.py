#!/usr/bin/env python3
"""Run the test suite as N shards at once, each in its own private namespaces
(scripts/private-pcscd.sh: its own pcscd, vpcd ports, loopback and PIDs), so stations in two
shards never share a reader slot or a port. Most of a station test is spent waiting on the
virtual printer's mechanics, so four shards on two cores take about a third of the time of one.

Work is dealt to shards longest first by the durations in tests/durations.json (seconds a test,
by node id; a test not there counts as 2 s). A file with a module-scoped fixture goes whole to one
shard, so its fixture is built once; any other file is dealt test by test, so one long file does
not hold the whole run. Each shard writes its output to build/test-shard-K.log and
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
NEW_TEST_S = 2.0


def units_of(python: str, files: list[str]) -> list[list[str]]:
    """The units to deal: a whole file where it has a module-scoped fixture, else each of its tests."""
    listed = subprocess.run([python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                            capture_output=True, text=True, cwd=ROOT)
    by_file: dict[str, list[str]] = {}
    for line in listed.stdout.splitlines():
        if "::" in line:
            by_file.setdefault(line.split("::", 1)[0], []).append(line.strip())
    units: list[list[str]] = []
    for name in files:
        text = (ROOT / name).read_text()
        tests = by_file.get(name, [])
        if not tests or 'scope="module"' in text:
            units.append([name] + tests)  # the file, then its tests (for their durations)
        else:
            units.extend([test] for test in tests)
    return units


def deal(units: list[list[str]], durations: dict[str, float], shards: int) -> list[list[str]]:
    """Longest first, each unit to the shard with the least work so far; a unit is run by its first name."""
    def cost(unit: list[str]) -> float:
        tests = unit[1:] if len(unit) > 1 else unit
        return sum(durations.get(test, NEW_TEST_S) for test in tests)

    loads = [0.0] * shards
    dealt: list[list[str]] = [[] for _ in range(shards)]
    for unit in sorted(units, key=lambda u: -cost(u)):
        k = loads.index(min(loads))
        dealt[k].append(unit[0])
        loads[k] += cost(unit)
    return dealt


def test_durations(junit: Path) -> dict[str, float]:
    """Seconds spent in each test (by node id), from a JUnit report."""
    spent: dict[str, float] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "")
        if module.startswith("tests."):
            node = module.replace(".", "/") + ".py::" + case.get("name", "")
            spent[node] = spent.get(node, 0.0) + float(case.get("time", 0.0))
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
    units = units_of(args.python, files)
    for k, shard in enumerate(deal(units, durations, args.shards)):
        log = open(build / f"test-shard-{k}.log", "w")
        junit = build / f"test-shard-{k}.xml"
        argv = ["scripts/private-pcscd.sh", args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                f"--junitxml={junit}", *shard]
        env = {**os.environ, "PYTHON": args.python}
        procs.append((k, shard, junit, log, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)))
        print(f"shard {k}: {len(shard)} files or tests", flush=True)
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
            spent.update(test_durations(junit))
    for k, text in failed:
        print(f"\n===== shard {k} (build/test-shard-{k}.log) =====\n{text}")
    print(f"all shards: {time.monotonic() - started:.0f} s, {'FAILED' if failed else 'passed'}")
    if args.update_durations and not failed:
        DURATIONS.write_text(json.dumps({f: round(s, 1) for f, s in sorted(spent.items())}, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
