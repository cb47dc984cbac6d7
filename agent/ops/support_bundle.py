"""`printstation support-bundle`: one file a technician can send to support, with no personal data in it.

It holds the configuration (secrets removed), the station's status, an extract of the journal
(job events, card attempts, blank ledger, outbox delivery state: never a job's payload), the
service's recent logs and the software versions. Every text in it goes through the same
scrubber: any NIK, and every name, NIK and document number the journal still holds for a
job, is replaced before it is written.
"""

from __future__ import annotations

import io
import json
import platform
import re
import subprocess
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from agent.upstream.client import route
from agent.journal import Journal
from agent.core.logs import mask_nik

# Keys in the configuration whose values are secrets.
_SECRET = re.compile(r"^(\s*(token|password|client_key|secret)\s*=\s*).*$", re.MULTILINE | re.IGNORECASE)
EXTRACT_EVENTS = 5000
LOG_SINCE = "-48h"
PACKAGES = ("printstation", "pyserial", "pyscard", "pyusb", "structlog", "httpx", "cryptography")


class Scrubber:
    """Removes personal data from text: NIKs by their shape, names and numbers the journal knows."""

    def __init__(self, terms: Iterable[str] = ()) -> None:
        # Longest first, so that "BUDI SANTOSO" goes before "BUDI" would leave "SANTOSO".
        words = sorted({t for t in terms if t and len(t) >= 3}, key=len, reverse=True)
        self._terms = re.compile("|".join(re.escape(t) for t in words), re.IGNORECASE) if words else None

    def __call__(self, text: str) -> str:
        if self._terms is not None:
            text = self._terms.sub("<personal data>", text)
        return mask_nik(text)


def personal_terms(journal: Journal) -> set[str]:
    """Names, NIKs and document numbers of the jobs whose payload the journal still holds."""
    terms: set[str] = set()
    for subject in journal.subjects_held():
        for key in ("nik", "name", "document_number"):
            value = subject.get(key)
            if isinstance(value, str):
                terms.add(value)
                if key == "name":
                    terms.update(part for part in value.split() if len(part) >= 3)
    return terms


def _path_of(message: dict, station: str) -> str | None:
    """Where the upstream client sends this message (None for a kind it has no route for)."""
    try:
        return route(message["kind"], station, message["job_id"])[1]
    except ValueError:
        return None


def journal_extract(journal: Journal) -> dict:
    """Job events, attempts, ledger and outbox state (no payloads), personal data scrubbed."""
    scrub = Scrubber(personal_terms(journal))
    since = journal.last_event_id() - EXTRACT_EVENTS
    extract = {
        "counts": journal.count_by_state(),
        "events": journal.events(max(since, 0), EXTRACT_EVENTS),
        "attempts": journal.attempts_since(""),
        "ledger": journal.ledger_entries(),
        "outbox": [{**m, "path": _path_of(m, journal.station)} for m in journal.outbox_summary()],
        "privacy": journal.privacy_report(),
    }
    return json.loads(scrub(json.dumps(extract)))


def redact_config(text: str) -> str:
    """The configuration with secret values replaced."""
    return _SECRET.sub(lambda m: m.group(1) + '"<removed>"', text)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def service_logs() -> str:
    """The service's recent journald lines, or a note why there are none."""
    try:
        run = subprocess.run(["journalctl", "-u", "printstation", "--since", LOG_SINCE, "--no-pager", "-o", "cat"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(journalctl not usable here: {exc})\n"
    return run.stdout if run.returncode == 0 else f"(journalctl failed: {run.stderr.strip()})\n"


@dataclass
class BundleParts:
    config_path: Path
    status: dict
    extract: dict
    logs: str
    terms: set[str]


def write_bundle(parts: BundleParts, output: Path) -> Path:
    """Write the bundle as a .tar.gz at `output`; every member scrubbed. Raises OSError if it cannot be written."""
    scrub = Scrubber(parts.terms)
    try:
        config_text = parts.config_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        config_text = f"(cannot read {parts.config_path}: {exc.strerror})\n"
    members = {
        "README.txt": "printstation support bundle: configuration (secrets removed), status, journal extract,\n"
                      "service logs and versions. Personal data (NIK, names, document numbers) was removed.\n",
        "config.toml": redact_config(config_text),
        "status.json": json.dumps(parts.status, indent=2, default=str),
        "journal.json": json.dumps(parts.extract, indent=2, default=str),
        "logs.txt": parts.logs,
        "versions.json": json.dumps(versions(), indent=2),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(output, "w:gz") as tar:
        for name, text in members.items():
            data = scrub(text).encode()
            info = tarfile.TarInfo(f"printstation-support/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
    output.chmod(0o600)
    return output
