"""The blank ledger: append-only rows for blanks received, loaded, fed, spoiled and adjusted, per lot
and printer, so that loaded = printed + spoiled + remaining can always be shown; and the
discrepancies found when the printer disagrees with it.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from agent.journal.db import JournalDb, stamp, utcnow


class StoreroomShort(ValueError):
    """A load larger than the storeroom holds of that lot; nothing was moved."""

    def __init__(self, lot: str, wanted: int, held: int) -> None:
        super().__init__(f"the storeroom holds {held} blanks of lot {lot}, fewer than the {wanted} to load; "
                         f"record the delivery first (printstation stock receive --lot {lot} --count N)")
        self.lot, self.wanted, self.held = lot, wanted, held



class Ledger(JournalDb):
    """Where every blank is: storeroom, hopper, printed, spoiled."""

    def receive_blanks(self, lot: str, quantity: int, first_serial: str | None = None, last_serial: str | None = None,
                       who: str = "operator", at: datetime | None = None) -> int:
        """A delivery from the centre goes into the storeroom; returns what the storeroom holds of `lot` now.

        Raises ValueError for a quantity below 1 or an empty lot name.
        """
        if quantity < 1 or not lot.strip():
            raise ValueError("a delivery needs a lot name and at least one blank")
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "INSERT INTO storeroom(at, lot, movement, quantity, first_serial, last_serial, who)"
                " VALUES (?, ?, 'receive', ?, ?, ?, ?)", (now, lot, quantity, first_serial, last_serial, who))
            return self._storeroom_of(db, lot)

    def _storeroom_of(self, db: sqlite3.Connection, lot: str) -> int:
        return db.execute("SELECT COALESCE(SUM(quantity), 0) FROM storeroom WHERE lot = ?", (lot,)).fetchone()[0]

    def storeroom_remaining(self, lot: str | None = None) -> int:
        """Blanks in the storeroom: of one lot, or of all."""
        with self._lock:
            if lot is not None:
                return self._storeroom_of(self._db, lot)
            return self._db.execute("SELECT COALESCE(SUM(quantity), 0) FROM storeroom").fetchone()[0]

    def storeroom_lots(self) -> list[dict]:
        """Per lot: received, moved into hoppers, adjusted, and what the storeroom still holds."""
        with self._lock:
            rows = self._db.execute(
                "SELECT lot,"
                " SUM(CASE WHEN movement = 'receive' THEN quantity ELSE 0 END),"
                " -SUM(CASE WHEN movement = 'to-hopper' THEN quantity ELSE 0 END),"
                " SUM(CASE WHEN movement = 'adjust' THEN quantity ELSE 0 END),"
                " SUM(quantity) FROM storeroom GROUP BY lot ORDER BY MIN(id)").fetchall()
        return [{"lot": lot, "received": received, "to_hoppers": moved, "adjusted": adjusted, "remaining": remaining}
                for lot, received, moved, adjusted, remaining in rows]

    def load_blanks(self, printer: str, quantity: int, lot: str, first_serial: str | None = None,
                    last_serial: str | None = None, who: str = "operator", at: datetime | None = None) -> None:
        """Move `quantity` blanks of `lot` from the storeroom into `printer`'s hopper.

        Raises StoreroomShort (a ValueError) when the storeroom holds fewer of that lot, with the
        numbers; nothing moves then. A load also settles the printer's open ledger discrepancies.
        """
        now = stamp(at or utcnow())
        with self._tx() as db:
            held = self._storeroom_of(db, lot)
            if quantity > held:
                raise StoreroomShort(lot, quantity, held)
            db.execute(
                "INSERT INTO storeroom(at, lot, movement, quantity, printer, first_serial, last_serial, who)"
                " VALUES (?, ?, 'to-hopper', ?, ?, ?, ?, ?)", (now, lot, -quantity, printer, first_serial, last_serial, who))
            db.execute(
                "INSERT INTO ledger(at, printer, lot, movement, quantity, first_serial, last_serial, who)"
                " VALUES (?, ?, ?, 'load', ?, ?, ?, ?)",
                (now, printer, lot, quantity, first_serial, last_serial, who),
            )
            self._resolve(db, printer, f"{quantity} blanks loaded by {who}", now)

    def adjust_blanks(self, printer: str, quantity: int, reason: str, who: str, lot: str | None = None,
                      at: datetime | None = None) -> None:
        """Correct the count by hand (+/-N), with the reason and the person, e.g. a blank found bent.

        Raises ValueError for a zero quantity or a missing reason or person: an adjustment must be explained.
        """
        if quantity == 0 or not reason.strip() or not who.strip():
            raise ValueError("an adjustment needs a quantity other than 0, a reason and who made it")
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "INSERT INTO ledger(at, printer, lot, movement, quantity, reason, who) VALUES (?, ?, ?, 'adjust', ?, ?, ?)",
                (now, printer, lot or self._lot_in_feeder(db, printer), quantity, reason, who),
            )
            self._resolve(db, printer, f"adjusted by {quantity:+d} by {who}: {reason}", now)

    def record_discrepancy(self, printer: str, kind: str, ledger_count: int, printer_said: str,
                           at: datetime | None = None) -> int | None:
        """Note that the ledger and the printer disagree; None when the same one is already open."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            if db.execute("SELECT 1 FROM discrepancies WHERE printer = ? AND kind = ? AND resolved_at IS NULL",
                          (printer, kind)).fetchone():
                return None
            cursor = db.execute(
                "INSERT INTO discrepancies(at, printer, lot, kind, ledger_count, printer_said) VALUES (?, ?, ?, ?, ?, ?)",
                (now, printer, self._lot_in_feeder(db, printer), kind, ledger_count, printer_said))
            return cursor.lastrowid

    def open_discrepancies(self, printer: str | None = None) -> list[dict]:
        """Disagreements not yet settled by a count (`hopper adjust`) or a load, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, printer, lot, kind, ledger_count, printer_said FROM discrepancies"
                " WHERE resolved_at IS NULL AND (? IS NULL OR printer = ?) ORDER BY id", (printer, printer)).fetchall()
        keys = ("id", "at", "printer", "lot", "kind", "ledger_count", "printer_said")
        return [dict(zip(keys, row)) for row in rows]

    def _resolve(self, db: sqlite3.Connection, printer: str, resolution: str, now: str) -> None:
        db.execute("UPDATE discrepancies SET resolved_at = ?, resolution = ? WHERE printer = ? AND resolved_at IS NULL",
                   (now, resolution, printer))

    def feeds_between(self, since: str, until: str, printer: str | None = None) -> int:
        """Blanks fed (printed, spoiled or in the printer) in [since, until), by one printer or all."""
        with self._lock:
            if printer is None:
                return self._db.execute("SELECT COUNT(*) FROM ledger WHERE movement = 'feed' AND at >= ? AND at < ?",
                                        (since, until)).fetchone()[0]
            return self._db.execute(
                "SELECT COUNT(*) FROM ledger WHERE printer = ? AND movement = 'feed' AND at >= ? AND at < ?",
                (printer, since, until)).fetchone()[0]

    def stock_balance(self) -> list[dict]:
        """Per lot, at this moment: received = storeroom + hoppers + in the printer + printed + spoiled - adjusted.

        `adjusted` is the net of every adjustment (storeroom and hoppers; negative: blanks found
        missing). `balanced` says the equation holds with printed, spoiled and in-printer counted
        from the card attempts, not from the ledger's own sums.
        """
        store = {row["lot"]: row for row in self.storeroom_lots()}
        per_lot: dict[str, dict] = {}
        for row in self.ledger_balance():
            lot = row["lot"] or ""
            entry = per_lot.setdefault(lot, {"lot": lot, "hoppers": 0, "in_printer": 0, "printed": 0, "spoiled": 0,
                                             "hopper_adjusted": 0})
            entry["hoppers"] += row["remaining"]
            entry["in_printer"] += row["in_printer"]
            entry["printed"] += row["printed"]
            entry["spoiled"] += row["spoiled"]
            entry["hopper_adjusted"] += row["adjusted"]
        out = []
        for lot in dict.fromkeys([*store, *per_lot]):
            s = store.get(lot, {"received": 0, "adjusted": 0, "remaining": 0})
            h = per_lot.get(lot, {"hoppers": 0, "in_printer": 0, "printed": 0, "spoiled": 0, "hopper_adjusted": 0})
            adjusted = s["adjusted"] + h["hopper_adjusted"]
            accounted = s["remaining"] + h["hoppers"] + h["in_printer"] + h["printed"] + h["spoiled"] - adjusted
            out.append({"lot": lot, "received": s["received"], "storeroom": s["remaining"], "hoppers": h["hoppers"],
                        "in_printer": h["in_printer"], "printed": h["printed"], "spoiled": h["spoiled"],
                        "adjusted": adjusted, "balanced": accounted == s["received"]})
        return out

    def _lot_in_feeder(self, db: sqlite3.Connection, printer: str) -> str | None:
        """The oldest lot of `printer` with blanks left: feeders take blanks first in, first out."""
        lots = [(lot or None, remaining) for lot, remaining in db.execute(
            "SELECT lot, remaining FROM hopper_lots WHERE printer = ? ORDER BY first_id", (printer,)).fetchall()]
        for lot, remaining in lots:
            if remaining > 0:
                return lot
        return lots[-1][0] if lots else None

    def ledger_balance(self) -> list[dict]:
        """Per printer and lot: loaded, adjusted, printed, spoiled, in the printer, remaining.

        `balanced` is loaded + adjusted == printed + spoiled + in_printer + remaining, where printed,
        spoiled and in_printer are counted from the card attempts the feeds belong to, not from the ledger sum.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT l.printer, l.lot,"
                " SUM(CASE WHEN l.movement = 'load' THEN l.quantity ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'adjust' THEN l.quantity ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'feed' AND a.result = 'printed' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'feed' AND a.result = 'spoiled' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'feed' AND a.result IS NULL THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'spoil' THEN 1 ELSE 0 END),"
                " SUM(l.quantity)"
                " FROM ledger l LEFT JOIN attempts a ON a.job_id = l.job_id AND a.n = l.attempt"
                " GROUP BY l.printer, l.lot ORDER BY l.printer, MIN(l.id)"
            ).fetchall()
        balance = []
        for printer, lot, loaded, adjusted, printed, spoiled, in_printer, spoil_rows, remaining in rows:
            balance.append({
                "printer": printer, "lot": lot, "loaded": loaded, "adjusted": adjusted, "printed": printed,
                "spoiled": spoiled, "in_printer": in_printer, "remaining": remaining,
                "balanced": loaded + adjusted == printed + spoiled + in_printer + remaining and spoil_rows == spoiled,
            })
        return balance

    def expected_card_counter(self, printer: str) -> int | None:
        """The printer's card counter after the last feed the journal knows of; None before any feed."""
        with self._lock:
            row = self._db.execute(
                "SELECT card_counter_before FROM attempts WHERE printer = ? AND fed = 1 AND card_counter_before IS NOT NULL"
                " ORDER BY started_at DESC, rowid DESC LIMIT 1", (printer,),
            ).fetchone()
        return row[0] + 1 if row else None

    def blanks_remaining(self, printer: str) -> int:
        """The ledger's count of blanks in `printer`'s hopper (its running total by lot, schema 5)."""
        with self._lock:
            return self._db.execute("SELECT COALESCE(SUM(remaining), 0) FROM hopper_lots WHERE printer = ?",
                                    (printer,)).fetchone()[0]
