"""The journal's schema, versioned from the first release: each migration runs once, in order."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: jobs, their events and card attempts, the blank ledger, the outbox.
    """
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        not_after TEXT NOT NULL,
        lease_expires_at TEXT NOT NULL,
        printer TEXT,
        reason TEXT,
        payload TEXT,            -- the signed job, personal data included; NULL once purged
        received_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX jobs_by_state ON jobs(state, priority, received_at);
    CREATE TABLE job_events (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL,
        at TEXT NOT NULL,
        state TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX job_events_by_job ON job_events(job_id);
    CREATE INDEX job_events_by_time ON job_events(at);
    CREATE TABLE attempts (
        job_id TEXT NOT NULL REFERENCES jobs(job_id),
        n INTEGER NOT NULL,
        printer TEXT NOT NULL,
        fed INTEGER NOT NULL DEFAULT 0,
        card_counter_before INTEGER,
        card_counter_after INTEGER,
        result TEXT,             -- printed | spoiled | NULL while under way
        reason TEXT,
        checks TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        PRIMARY KEY (job_id, n)
    );
    CREATE INDEX attempts_by_end ON attempts(ended_at);
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        printer TEXT NOT NULL,
        lot TEXT,
        movement TEXT NOT NULL,  -- load +N | feed -1 | spoil 0 (a fed card went to the reject box) | adjust +/-N
        quantity INTEGER NOT NULL,
        first_serial TEXT,
        last_serial TEXT,
        job_id TEXT,
        attempt INTEGER,         -- feed and spoil: the card attempt of job_id
        reason TEXT,
        who TEXT
    );
    CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the blank ledger is append-only'); END;
    CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the blank ledger is append-only'); END;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered_at TEXT,
        refused_at TEXT          -- upstream refused it for good (4xx): kept, not resent
    );
    CREATE INDEX outbox_pending ON outbox(delivered_at, id);
    """,
    # 2: the storeroom (deliveries from the centre, moved into hoppers), ledger discrepancies
    # found against the printers, and an index for rates over the whole history.
    """
    CREATE TABLE storeroom (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        lot TEXT NOT NULL,
        movement TEXT NOT NULL,  -- receive +N | to-hopper -N (printer) | adjust +/-N
        quantity INTEGER NOT NULL,
        printer TEXT,
        first_serial TEXT,
        last_serial TEXT,
        reason TEXT,
        who TEXT
    );
    CREATE INDEX storeroom_by_lot ON storeroom(lot);
    CREATE TRIGGER storeroom_append_only_update BEFORE UPDATE ON storeroom
        BEGIN SELECT RAISE(ABORT, 'the storeroom ledger is append-only'); END;
    CREATE TRIGGER storeroom_append_only_delete BEFORE DELETE ON storeroom
        BEGIN SELECT RAISE(ABORT, 'the storeroom ledger is append-only'); END;
    -- Loads recorded before the storeroom existed came from a delivery nobody recorded: received and moved at once.
    INSERT INTO storeroom(at, lot, movement, quantity, first_serial, last_serial, who, reason)
        SELECT at, COALESCE(lot, ''), 'receive', quantity, first_serial, last_serial, who, 'recorded with the load'
        FROM ledger WHERE movement = 'load' ORDER BY id;
    INSERT INTO storeroom(at, lot, movement, quantity, printer, who)
        SELECT at, COALESCE(lot, ''), 'to-hopper', -quantity, printer, who FROM ledger WHERE movement = 'load' ORDER BY id;
    CREATE INDEX ledger_by_printer ON ledger(printer, movement, at);
    CREATE INDEX ledger_by_time ON ledger(movement, at);
    CREATE TABLE discrepancies (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        printer TEXT NOT NULL,
        lot TEXT,
        kind TEXT NOT NULL,       -- feeder-empty-ledger-not | fed-ledger-empty | reconcile
        ledger_count INTEGER NOT NULL,
        printer_said TEXT NOT NULL,
        resolved_at TEXT,
        resolution TEXT
    );
    CREATE INDEX discrepancies_open ON discrepancies(printer, resolved_at);
    """,
    # 3: the outbox names the job a message is about, so nothing parses it back out of a URL.
    """
    ALTER TABLE outbox ADD COLUMN job_id TEXT;
    UPDATE outbox SET job_id = replace(replace(path, '/v1/jobs/', ''), '/outcome', '') WHERE kind = 'outcome';
    CREATE INDEX outbox_by_job ON outbox(job_id, kind);
    """,
    # 4: the outbox says what a message is (kind, job) and the upstream client says where it goes:
    # the journal holds no URL. Every row is kept, in its order, with its key.
    """
    CREATE TABLE outbox_v4 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        job_id TEXT,
        idempotency_key TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered_at TEXT,
        refused_at TEXT          -- upstream refused it for good (4xx): kept, not resent
    );
    INSERT INTO outbox_v4(id, kind, job_id, idempotency_key, body, created_at, tries, last_error, delivered_at, refused_at)
        SELECT id, kind, job_id, idempotency_key, body, created_at, tries, last_error, delivered_at, refused_at FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v4 RENAME TO outbox;
    CREATE INDEX outbox_pending ON outbox(delivered_at, id);
    CREATE INDEX outbox_by_job ON outbox(job_id, kind);
    """,
    # 5: each printer's hopper balance by lot, kept by the ledger itself: every movement adds to it in
    # the same statement, so how many blanks are left, and of which lot the next is, cost a few rows
    # rather than a sum over every card ever fed. The ledger stays the record; this is its running
    # total (lot '' stands for movements without a lot).
    """
    CREATE TABLE hopper_lots (
        printer TEXT NOT NULL,
        lot TEXT NOT NULL,
        remaining INTEGER NOT NULL,
        first_id INTEGER NOT NULL,   -- the lot's first ledger row: feeders take the oldest lot first
        PRIMARY KEY (printer, lot)
    );
    INSERT INTO hopper_lots(printer, lot, remaining, first_id)
        SELECT printer, COALESCE(lot, ''), SUM(quantity), MIN(id) FROM ledger GROUP BY printer, COALESCE(lot, '');
    CREATE TRIGGER ledger_keeps_the_balance AFTER INSERT ON ledger
        BEGIN
            INSERT INTO hopper_lots(printer, lot, remaining, first_id)
                VALUES (NEW.printer, COALESCE(NEW.lot, ''), NEW.quantity, NEW.id)
                ON CONFLICT(printer, lot) DO UPDATE SET remaining = remaining + excluded.remaining;
        END;
    """,
    # 6: the signed job in a table of its own. SQLite writes a row whole: with the job (~350 KB of
    # card faces and chip image) in `jobs`, each of a card's five state changes wrote it again,
    # and waited for the disk to take it. Purging personal data deletes the job's row here.
    """
    CREATE TABLE job_payloads (
        job_id TEXT PRIMARY KEY REFERENCES jobs(job_id),
        payload TEXT NOT NULL    -- the signed job, personal data included; deleted once purged
    );
    INSERT INTO job_payloads(job_id, payload) SELECT job_id, payload FROM jobs WHERE payload IS NOT NULL;
    ALTER TABLE jobs DROP COLUMN payload;
    """,
]


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to the newest version inside the caller's transaction; return it."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT version FROM schema_version").fetchone()
    version = row[0] if row else 0
    if version > len(MIGRATIONS):
        raise sqlite3.DatabaseError(
            f"the journal is schema version {version}, newer than this agent knows ({len(MIGRATIONS)}): upgrade the agent"
        )
    for script in MIGRATIONS[version:]:
        for statement in _statements(script):
            db.execute(statement)
    if row is None:
        db.execute("INSERT INTO schema_version(version) VALUES (?)", (len(MIGRATIONS),))
    else:
        db.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit the caller's transaction)."""
    statements, current = [], []
    for line in script.splitlines():
        current.append(line)
        joined = "\n".join(current)
        if sqlite3.complete_statement(joined):
            statements.append(joined.strip())
            current = []
    return [s for s in statements if s]
