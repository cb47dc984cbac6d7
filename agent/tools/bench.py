"""`printstation bench`: does the agent keep the printers at their mechanical limit, and what does it cost?

Every figure is a ratio or a cost measured in this run, on the virtual hardware: the simulator
reports, per card, the time it spent being a printer (mechanics, link transfer, reader and
chip), so the printer's own limit and the agent's achievement come from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


from agent.tools.demo import Demo, DemoError


@dataclass(frozen=True)
class BatchFigures:
    cards: int
    printers: int
    span_s: float            # first feed to last card out, per the printer's own card log
    limit_s: float           # the printers' own time for these cards (mechanics + link + reader + chip)
    agent_cpu_s: float
    stages_ms: dict[str, float]
    rss_mb: float
    threads_cpu_s: dict[str, float]  # the agent's CPU by thread name (agent/core/os_thread.py)

    @property
    def utilisation(self) -> float:
        """Achieved rate over the printers' own limit (1.0 = the printers never waited for the agent)."""
        return self.limit_s / (self.span_s * self.printers) if self.span_s else 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--quick", action="store_true", help="fewer cards per figure (a smoke run, noisier)")
    parser.add_argument("--state-dir", type=Path, help="keep the runs' files here")
    parser.add_argument("--only", metavar="FIGURE[,FIGURE]",
                        help=f"only these figures, of: {', '.join(FIGURES)} (default: all but office_month)")
    parser.add_argument("--office-month", action="store_true",
                        help="only the month of an office: stock warnings ahead of stock-outs, and the ledger at the end"
                             " (the same as --only office_month)")


def _utilisation(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    return {"utilisation": round(batch(root / "util10", cards=n(40), printers=1, speed=10).utilisation, 3)}


def _utilisation_speed50(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    return {"utilisation_speed50": round(batch(root / "util50", cards=n(60), printers=1, speed=50).utilisation, 3)}


def _scaling(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    scaling = {"1": round(batch(root / "scale1", cards=n(40), printers=1, speed=10).utilisation, 3)}
    for k in (2, 4):
        scaling[str(k)] = round(k * batch(root / f"scale{k}", cards=n(40) * k, printers=k, speed=10).utilisation, 3)
    return {"scaling": scaling}


def _cost(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    cost = batch(root / "cost", cards=n(100), printers=1, speed=100000)
    return {"cost_ms_per_card": {
        "wall": round(cost.span_s / cost.cards * 1000, 1),
        "cpu": round(cost.agent_cpu_s / cost.cards * 1000, 1),
        "threads": {name: round(s / cost.cards * 1000, 1) for name, s in cost.threads_cpu_s.items()},
        "stages": cost.stages_ms,
    }}


def _rss(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    # Memory after 100 and after 2,000 cards, on the same station (four printers): growth would show.
    return {"rss_mb_100": batch(root / "rss100", cards=n(100), printers=4, speed=100000).rss_mb,
            "rss_mb_2000": batch(root / "rss2000", cards=n(2000), printers=4, speed=100000).rss_mb}


def _idle(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    return dict(idle_and_ready(root / "idle", idle_s=60.0 * n(100) / 100))


def _drain(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    return {"outbox_drain_per_s": outbox_drain_rate(root / "drain", n(2000))}


def _recovery(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    return {"recovery_s": recovery_after_kill(root / "recovery")}


def _journal(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    return dict(journal_at_scale(root / "journal", n(1_000_000)))


def _parts(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    from agent.tools.bench_parts import part_costs

    return {"parts_ms": part_costs(root / "parts", repeat=n(50))}


def _office_month(root: Path, n: Callable[[int], int]) -> dict[str, object]:
    from agent.tools.office_month import run_office_month

    return {"office_month": run_office_month(root / "office-month").as_json()}


# Each figure by name (`--only`), in the order a whole run takes them.
FIGURES: dict[str, Callable[[Path, Callable[[int], int]], dict[str, object]]] = {
    "utilisation": _utilisation,
    "utilisation_speed50": _utilisation_speed50,
    "scaling": _scaling,
    "cost": _cost,
    "rss": _rss,
    "idle": _idle,
    "outbox_drain": _drain,
    "recovery": _recovery,
    "journal": _journal,
    "parts": _parts,
    "office_month": _office_month,
}
NOT_BY_DEFAULT = ("office_month",)


def chosen_figures(only: str | None, office_month: bool) -> list[str]:
    """The figures asked for; raises ValueError naming an unknown one."""
    if office_month:
        return ["office_month"]
    if not only:
        return [name for name in FIGURES if name not in NOT_BY_DEFAULT]
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in FIGURES]
    if unknown or not wanted:
        raise ValueError(f"no figure {', '.join(unknown) or repr(only)}; the figures are: {', '.join(FIGURES)}")
    return wanted


def run(args: argparse.Namespace) -> int:
    try:
        names = chosen_figures(args.only, args.office_month)
    except ValueError as exc:
        print(f"printstation bench: {exc}", file=sys.stderr)
        return 2
    root = Path(args.state_dir or tempfile.mkdtemp(prefix="printstation-bench-")).resolve()
    scale = 0.25 if args.quick else 1.0

    def n(count: int) -> int:
        return max(4, int(count * scale))

    # Figures taken in this process (the outbox drain) log through structlog: to stderr, at info,
    # so that stdout holds the JSON line alone for those who script against it.
    from agent.core import logs

    logs.configure(json_output=False, level="info")
    results: dict[str, object] = {}
    try:
        for name in names:
            results.update(FIGURES[name](root, n))
    except DemoError as exc:
        print(f"printstation bench: {exc}", file=sys.stderr)
        return 1
    print_table(results)
    if args.json:
        print(json.dumps(results))
    return 0


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="printstation bench", show_header=True)
    table.add_column("figure")
    table.add_column("value")
    for key, value in results.items():
        table.add_row(key, json.dumps(value))
    Console(stderr=True).print(table)


class _Args(argparse.Namespace):
    pass


def batch(root: Path, *, cards: int, printers: int, speed: float) -> BatchFigures:
    """Print `cards` jobs on `printers` virtual printers at `speed`; measure from the card log."""
    args = _Args(cards=cards, printers=printers, speed=speed, json=False, state_dir=root, timeout=3600.0,
                 transport="usb")
    # The files the run before wrote (journal, card log, pictures) go to disk now: left to the
    # kernel's writeback (30 s), they would land on this run's first cards, queueing its fsyncs.
    os.sync()
    demo = Demo(args)
    demo.agent_args = ["--log-json"]
    sampler = _AgentSampler()
    demo.on_agent_started = sampler.start
    demo.before_stop = lambda: sampler.finish(demo.page_url)
    demo.run()
    cards_log = [json.loads(line) for line in (root / "simulator" / "cards.jsonl").read_text().splitlines() if line]
    printed = [c for c in cards_log if c.get("modelled_s")]
    if not printed:
        raise DemoError(f"the simulator's card log in {root} has no timing: is the simulator current?")
    span = max(_ts(c["at"]) for c in printed) - min(_ts(c["fed_at"]) for c in printed)
    limit = sum(sum(c["modelled_s"].values()) for c in printed)
    return BatchFigures(cards=len(printed), printers=printers, span_s=span, limit_s=limit,
                        agent_cpu_s=sampler.cpu_s, stages_ms=_stage_costs(root / "agent.log"), rss_mb=sampler.rss_mb,
                        threads_cpu_s=sampler.threads_cpu_s)


def _ts(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _stage_costs(agent_log: Path) -> dict[str, float]:
    """Mean milliseconds per stage, from the agent's `card-printed` events (JSON log lines)."""
    totals: dict[str, float] = {}
    count = 0
    for line in agent_log.read_text(errors="replace").splitlines():
        if '"card-printed"' not in line:
            continue
        event = json.loads(line)
        count += 1
        for stage, ms in event.get("stages_ms", {}).items():
            totals[stage] = totals.get(stage, 0.0) + ms
    return {stage: round(total / count, 1) for stage, total in totals.items()} if count else {}


class _AgentSampler:
    """CPU time (whole, and by thread) and resident memory of the agent process, read from /proc."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.cpu_s = 0.0
        self.rss_mb = 0.0
        self.threads_cpu_s: dict[str, float] = {}
        self._cpu_at_start = 0.0

    def start(self, pid: int) -> None:
        self.pid = pid
        self._cpu_at_start = _cpu_seconds(pid)

    def finish(self, page_url: str | None) -> None:
        """CPU as upstream holds the last outcome; resident memory once the station says every
        printer is idle (a worker hands freed memory back as it finds nothing to print), so that
        the reading does not depend on how far the last cards' buffers had been given back."""
        if self.pid is None:
            return
        self.cpu_s = _cpu_seconds(self.pid) - self._cpu_at_start
        self.threads_cpu_s = _threads_cpu_seconds(self.pid, self._cpu_at_start + self.cpu_s)
        if page_url is None:
            raise DemoError("the agent announced no operators' page: the bench cannot see when its printers are idle")
        _wait_until_printers_idle(page_url)
        self.rss_mb = _rss_mb(self.pid)


def _wait_until_printers_idle(page_url: str, timeout: float = 60.0) -> None:
    """Until the station's own status (GET /api/status) shows every printer idle."""
    import urllib.request

    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(page_url.rstrip("/") + "/api/status", timeout=10) as answer:
                states = [p["state"] for p in json.load(answer)["printers"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DemoError(f"the station's status at {page_url} did not answer as documented: {exc!r}") from None
        if states and all(state == "idle" for state in states):
            return
        time.sleep(0.2)
    raise DemoError(f"the printers were not all idle within {timeout:.0f} s of the last outcome: {states}")


def _cpu_seconds(pid: int, task: int | None = None) -> float:
    path = f"/proc/{pid}/task/{task}/stat" if task is not None else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _threads_cpu_seconds(pid: int, whole_s: float) -> dict[str, float]:
    """CPU seconds by thread name, the busiest first ("main": start-up and the watchdog's tick);
    threads that have ended (a control socket's request, say) are what the process counts beyond
    its live threads."""
    by_name: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
            by_name[name] = by_name.get(name, 0.0) + _cpu_seconds(pid, int(task.name))
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended while being read
    ended = whole_s - sum(by_name.values())
    if ended > 0:
        by_name["(ended threads)"] = ended
    return dict(sorted(by_name.items(), key=lambda item: -item[1]))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class _Station(Demo):
    """The three processes as the demo starts them, held open so that a figure can be taken."""

    def __init__(self, root: Path, *, cards: int, printers: int = 1, speed: float = 10000.0) -> None:
        super().__init__(_Args(cards=cards, printers=printers, speed=speed, json=False, state_dir=root,
                               timeout=600.0, transport="usb"))
        self.agent_args = ["--log-json"]

    def __enter__(self) -> "_Station":
        from agent.tools.demo import _check_pcscd

        _check_pcscd()
        self.devices = self._start_simulator()
        self.upstream = self._start_upstream()
        self.config = self._write_config(self.devices, self.upstream)
        return self

    def start_agent(self) -> tuple[subprocess.Popen, float]:
        started = time.time()
        return self._start("agent", ["run", "--config", str(self.config), *self.agent_args], self.root / "agent.log"), started

    def kill_agent(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def __exit__(self, *exc: object) -> None:
        self._stop_all()

    def journal_events(self) -> list[tuple[str, str]]:
        db = sqlite3.connect(f"file:{self.root / 'agent' / 'journal.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT at, state FROM job_events ORDER BY id").fetchall()
        finally:
            db.close()


def _log_event_time(log: Path, event: str, after: float, timeout: float) -> float:
    """When the agent logged `event` (JSON lines), waiting up to `timeout` seconds for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if f'"{event}"' in line:
                stamp = _ts(json.loads(line)["timestamp"])
                if stamp >= after:
                    return stamp
        time.sleep(0.05)
    raise DemoError(f"the agent did not log {event} within {timeout:.0f} s (see {log})")


def idle_and_ready(root: Path, idle_s: float = 60.0) -> dict[str, float]:
    """Start-up time to ready, and the agent's CPU use while idle (nothing to print) for `idle_s`."""
    with _Station(root, cards=1) as station:
        # Take the one job out of the way first, so that the agent is truly idle afterwards.
        proc, started = station.start_agent()
        ready = _log_event_time(station.root / "agent.log", "station-ready", started, 60) - started
        _log_event_time(station.root / "agent.log", "card-printed", started, 120)
        time.sleep(2)
        cpu_before = _cpu_seconds(proc.pid)
        time.sleep(idle_s)
        idle_pct = (_cpu_seconds(proc.pid) - cpu_before) / idle_s * 100
    return {"ready_s": round(ready, 2), "idle_cpu_pct": round(idle_pct, 2)}


def recovery_after_kill(root: Path) -> float:
    """Seconds from restarting a SIGKILLed agent (mid-batch) to its first card fed."""
    with _Station(root, cards=6, speed=20) as station:
        proc, started = station.start_agent()
        _log_event_time(station.root / "agent.log", "card-printed", started, 120)
        station.kill_agent(proc)
        _proc, restarted = station.start_agent()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            fed = [_ts(at) for at, state in station.journal_events() if state == "encoding" and _ts(at) >= restarted]
            if fed:
                return round(min(fed) - restarted, 2)
            time.sleep(0.05)
    raise DemoError("the restarted agent fed no card within 120 s")


def outbox_drain_rate(root: Path, messages: int) -> float:
    """Outcomes delivered per second once upstream is back after an outage that queued `messages`."""
    from agent.core.config import UpstreamConfig
    from agent.journal import Journal
    from agent.upstream.sender import OutboxSender
    from agent.upstream.client import UpstreamClient
    import threading
    from datetime import datetime, timedelta, timezone

    with _Station(root, cards=messages) as station:
        journal = Journal(station.root / "agent" / "drain.db", "demo-station")
        now = datetime.now(timezone.utc)
        for i in range(1, messages + 1):
            job_id = f"J-{i:06d}"
            journal.add_leased(job_id, {"job_id": job_id}, not_after=now + timedelta(days=1),
                               lease_expires_at=now + timedelta(hours=1), priority=0)
            claimed = journal.claim_next("p1")
            assert claimed is not None
            journal.fed(claimed.job_id, claimed.attempt, "p1")
            journal.printed(claimed.job_id, claimed.attempt, i)
        client = UpstreamClient(UpstreamConfig(url=station.upstream["url"], token=station.upstream["token"],
                                               authority_keys={}), "demo-station")
        stop = threading.Event()
        sender = threading.Thread(target=OutboxSender(journal, client).run, args=(stop,), daemon=True)
        started = time.monotonic()
        sender.start()
        while journal.outbox_backlog() and time.monotonic() - started < 300:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        stop.set()
        journal.outbox_ready.set()
        sender.join(timeout=10)
        left = journal.outbox_backlog()
        client.close()
        journal.close()
    if left:
        raise DemoError(f"{left} messages still queued after 300 s")
    return round(messages / elapsed, 1)


def journal_at_scale(root: Path, jobs: int) -> dict[str, float]:
    """`status` and `events` against a journal holding `jobs` finished jobs (wall seconds, CLI included)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.journal import Journal
    from simulators.pki import TestPki

    root.mkdir(parents=True, exist_ok=True)
    path = root / "journal.db"
    if not path.exists():
        Journal(path, "bench-station").close()
        _fill_journal(path, jobs)
    key = root / "authority.pem"
    key.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    pki = TestPki.create(root / "pki")
    config = root / "station.toml"
    config.write_text(
        f'[station]\nid = "bench-station"\njournal = "{path}"\ncontrol_socket = "{root / "none.sock"}"\n'
        f'[upstream]\nurl = "http://127.0.0.1:9"\ntoken = "t"\n[upstream.authority_keys]\n"a" = "{key}"\n'
        f'[chip]\ntrust_anchors = ["{pki.csca_pem_path}"]\n'
        '[[printers]]\nname = "p1"\nlink = "serial:///dev/null"\nreader = "Virtual PCD 00 00"\n')
    figures = {}
    for name, argv in (("status_s_1m_jobs", ["status", "--json"]), ("events_s_1m_jobs", ["events", "--since", "1h", "--json"])):
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "agent", *argv, "--config", str(config)],
                                capture_output=True, text=True, timeout=120)
        # Exit 1 says "read from the journal, the daemon is down": the answer is still whole.
        if result.returncode not in (0, 1) or not result.stdout.strip():
            raise DemoError(f"`printstation {' '.join(argv)}` failed on the big journal: {result.stderr[-500:]}")
        figures[name] = round(time.monotonic() - started, 3)
    figures["journal_mb_1m_jobs"] = round(path.stat().st_size / 2**20, 1)
    return figures


def _fill_journal(path: Path, jobs: int) -> None:
    """History as a year of printing leaves it: finished jobs, their events and attempts, delivered outcomes."""
    from datetime import datetime, timedelta, timezone

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    start = datetime.now(timezone.utc) - timedelta(days=365)
    step = timedelta(days=365) / jobs
    batch_rows = 50_000
    for base in range(0, jobs, batch_rows):
        job_rows, event_rows, attempt_rows = [], [], []
        for i in range(base, min(base + batch_rows, jobs)):
            at = (start + step * i).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            job_id = f"H-{i:08d}"
            job_rows.append((job_id, "printed", 0, at, at, "p1", None, at, at))
            event_rows += [(job_id, at, "leased", None), (job_id, at, "encoding", None), (job_id, at, "printed", None)]
            attempt_rows.append((job_id, 1, "p1", 1, i, i + 1, "printed", None, None, at, at))
        db.executemany("INSERT INTO jobs(job_id, state, priority, not_after, lease_expires_at, printer, reason,"
                       " received_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)", job_rows)
        db.executemany("INSERT INTO job_events(job_id, at, state, detail) VALUES (?,?,?,?)", event_rows)
        db.executemany("INSERT INTO attempts(job_id, n, printer, fed, card_counter_before, card_counter_after, result,"
                       " reason, checks, started_at, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", attempt_rows)
    db.execute("COMMIT")
    db.close()
