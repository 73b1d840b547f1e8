"""The state: a SQLite snapshot of what each destination confirmed.

One row per (target, record kind, item key) holds the payload the destination last
confirmed, its digest, any remote id and the last outcome. Around it: the lineage (a
random id fixed at creation) and a serial bumped by every apply, which together bind a
saved plan to the state it was made from; outstanding asynchronous jobs; the apply
history; the failures of the last attempt per item; the request history that rate
windows need across runs; and a lock held during apply.

Rule: an item's row changes only for an outcome the destination confirmed. Every
batch of outcomes is written in one transaction, so a crash loses at most the batch
in flight, which the next apply sends again.
"""
from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import orjson
import sqlite_utils

from reconciler.errors import StateError
from reconciler.mapping import canonical
from reconciler.providers.base import Job, Operation, Outcome
from reconciler.state.migrations import MIGRATIONS, SCHEMA_VERSION


def payload_digest(payload: dict, ignore: Sequence[str] = ()) -> bytes:
    """Digest of a payload, blind to ``ignore`` fields (a target's ``ignore_fields``).
    16 raw bytes: a million of them are compared, held and stored by every plan."""
    return digest_of(payload, canonical(payload), ignore)


def digest_of(payload: dict, body: bytes, ignore: Sequence[str] = ()) -> bytes:
    """:func:`payload_digest` when the canonical (sorted-key) JSON is already at hand."""
    if ignore and any(field in payload for field in ignore):  # else ``body`` is the right input
        body = canonical({k: v for k, v in payload.items() if k not in ignore})
    return hashlib.blake2b(body, digest_size=16).digest()


def stored(payload: dict, ignore: Sequence[str] = ()) -> tuple[str, bytes]:
    """A payload as the ``items`` table keeps it: canonical JSON and its digest."""
    body = canonical(payload)
    return body.decode(), digest_of(payload, body, ignore)


def item_row(target: str, record: str, key: str, sku: str, payload: dict, ignore: Sequence[str],
             remote_id: str | None, action: str, stamp: str) -> tuple:
    """A row of ``items`` for an item the destination confirmed."""
    return (target, record, key, sku, *stored(payload, ignore), remote_id, action, "applied", stamp)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def operation_to_json(op: Operation) -> dict:
    # Not dataclasses.asdict: it deep-copies every payload (seconds for 100k operations).
    return {"action": op.action, "record": op.record, "key": op.key, "sku": op.sku,
            "before": op.before, "after": op.after, "remote_id": op.remote_id}


def operation_from_json(data: dict) -> Operation:
    return Operation(**data)


@dataclass(frozen=True)
class Item:
    target: str
    record: str
    key: str
    sku: str
    payload: dict
    hash: bytes
    remote_id: str | None
    last_action: str | None
    last_outcome: str | None
    updated_at: str | None


@dataclass(frozen=True)
class PendingJob:
    id: int
    target: str
    job: Job
    created_at: str


def _item(row: sqlite3.Row) -> Item:
    data = dict(row)
    data["payload"] = orjson.loads(data["payload"])
    return Item(**data)


class State:
    """Open with ``State(path)``; a missing file is created only when ``create``.

    Without ``create`` a missing state reads as empty (no lineage, serial 0), which is
    what ``plan`` sees before the first apply. Thread-safe: one connection, one lock.
    """

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path)
        exists = self.path.exists()
        if not exists and create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = str(self.path) if exists or create else ":memory:"
        self.conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.db = sqlite_utils.Database(self.conn)
        self._lock = threading.RLock()
        self.persistent = exists or create
        if self.persistent:
            self.db.enable_wal()
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    # -- schema ------------------------------------------------------------------
    def _version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        with self._lock:
            version = self._version()
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path} has state schema version {version}, newer than this "
                    f"reconciler knows ({SCHEMA_VERSION}); upgrade reconciler"
                )
            if version == SCHEMA_VERSION:
                return
            with self.transaction():
                for migration in MIGRATIONS[version:]:
                    migration(self.conn)
                if version == 0 and self.persistent:
                    self._set("lineage", str(uuid.uuid4()))
                    self._set("serial", "0")
                self._set("schema_version", str(SCHEMA_VERSION))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def _set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @property
    def schema_version(self) -> int:
        return self._version()

    @property
    def lineage(self) -> str | None:
        return self._get("lineage")

    @property
    def serial(self) -> int:
        return int(self._get("serial") or 0)

    # -- items -------------------------------------------------------------------
    def hashes(self, target: str) -> dict[tuple[str, str], bytes]:
        """``{(record, key): digest}`` of every item of a target: all a plan needs
        to decide that an item is unchanged."""
        rows = self.conn.execute("SELECT record, key, hash FROM items WHERE target = ?", (target,))
        return {(record, key): digest for record, key, digest in rows}

    def item(self, target: str, record: str, key: str) -> Item | None:
        row = self.conn.execute(
            "SELECT * FROM items WHERE target = ? AND record = ? AND key = ?", (target, record, key)
        ).fetchone()
        return _item(row) if row else None

    def items(self, target: str | None = None) -> Iterator[Item]:
        if target is None:
            rows = self.conn.execute("SELECT * FROM items ORDER BY target, key, record")
        else:
            rows = self.conn.execute("SELECT * FROM items WHERE target = ? ORDER BY key, record", (target,))
        return (_item(row) for row in rows)

    def items_of_sku(self, sku: str) -> list[Item]:
        rows = self.conn.execute("SELECT * FROM items WHERE sku = ? ORDER BY target, record", (sku,))
        return [_item(row) for row in rows]

    def targets(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT target, count(*) FROM items GROUP BY target ORDER BY target")
        return dict(rows.fetchall())

    def remove_sku(self, sku: str, target: str | None = None) -> int:
        """Forget an item (the destination is not told); returns rows removed."""
        query, args = "DELETE FROM items WHERE sku = ?", [sku]
        if target:
            query, args = query + " AND target = ?", args + [target]
        with self.transaction() as conn:
            removed = conn.execute(query, args).rowcount
            if removed:
                self._bump_serial()
        return removed

    def adopt(self, target: str, items: Iterable[tuple[str, str, str, dict]], ignore: Sequence[str] = ()) -> int:
        """Record ``(record, key, sku, payload)`` read from a destination as confirmed."""
        stamp = now_iso()
        rows = [item_row(target, record, key, sku, payload, ignore, None, "import", stamp)
                for record, key, sku, payload in items]
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            self._bump_serial()
        return len(rows)

    def overwrite(self, target: str, payloads: Iterable[tuple[str, str, dict]],
                  removed: Iterable[tuple[str, str]], ignore: Sequence[str] = ()) -> None:
        """Replace the payloads of ``(record, key, payload)`` items and drop ``removed``
        ``(record, key)`` items, with no serial bump: only for a throwaway copy of the
        state (``plan --refresh`` plans against what drift read)."""
        rows = [(*stored(payload, ignore), target, record, key) for record, key, payload in payloads]
        with self.transaction() as conn:
            conn.executemany("UPDATE items SET payload = ?, hash = ? WHERE target = ? AND record = ? AND key = ?", rows)
            conn.executemany("DELETE FROM items WHERE target = ? AND record = ? AND key = ?",
                             [(target, record, key) for record, key in removed])

    # -- recording outcomes ---------------------------------------------------------
    def record(self, target: str, outcomes: Iterable[Outcome], apply_id: int | None = None,
               ignore: Sequence[str] = (), settled_job: int | None = None) -> dict[str, int]:
        """Write a batch of outcomes in one transaction (and drop ``settled_job``).
        Returns ``{handle: job id}`` of the jobs it added.

        applied → the item's row takes ``after`` (or goes, for a delete); rejected →
        the row keeps its payload, the failure is kept for ``status`` and the summary;
        pending → a job to poll. retry and split outcomes are the executor's business.
        """
        stamp = now_iso()
        upserts, deletes, failures, cleared, jobs = [], [], [], [], {}
        for outcome in outcomes:
            op = outcome.operation
            ident = (target, op.record, op.key)
            if outcome.status == "applied":
                cleared.append(ident)
                if op.action == "delete":
                    deletes.append(ident)
                else:
                    upserts.append(item_row(target, op.record, op.key, op.sku, op.after, ignore,
                                            outcome.remote_id or op.remote_id, op.action, stamp))
            elif outcome.status == "rejected":
                failures.append((apply_id, target, op.record, op.key, op.sku, op.action, outcome.reason, stamp))
            elif outcome.status == "pending" and outcome.job is not None:
                jobs.setdefault(outcome.job.handle, outcome.job)
        with self.transaction() as conn:
            if upserts:
                conn.executemany("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?,?,?)", upserts)
            if deletes:
                conn.executemany("DELETE FROM items WHERE target = ? AND record = ? AND key = ?", deletes)
            if cleared and self._has_failures(target):
                conn.executemany("DELETE FROM failures WHERE target = ? AND record = ? AND key = ?", cleared)
            if failures:
                conn.executemany("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?,?,?)", failures)
                conn.executemany(
                    "UPDATE items SET last_outcome = 'rejected', updated_at = ? "
                    "WHERE target = ? AND record = ? AND key = ?",
                    [(stamp, f[1], f[2], f[3]) for f in failures],
                )
            job_ids: dict[str, int] = {}
            for job in jobs.values():
                job_ids[job.handle] = conn.execute(
                    "INSERT INTO jobs (target, handle, operations, created_at, apply_id) VALUES (?,?,?,?,?)",
                    (target, job.handle, orjson.dumps([operation_to_json(op) for op in job.operations]).decode(),
                     stamp, apply_id),
                ).lastrowid
            if settled_job is not None:
                conn.execute("DELETE FROM jobs WHERE id = ?", (settled_job,))
        return job_ids

    def _has_failures(self, target: str) -> bool:
        # Most batches of most applies follow no failure: skip a DELETE per item then.
        return self.conn.execute("SELECT 1 FROM failures WHERE target = ? LIMIT 1", (target,)).fetchone() is not None

    def pending_jobs(self, target: str | None = None) -> list[PendingJob]:
        query, args = "SELECT * FROM jobs", ()
        if target:
            query, args = query + " WHERE target = ?", (target,)
        return [
            PendingJob(
                id=row["id"], target=row["target"], created_at=row["created_at"],
                job=Job(row["handle"], tuple(operation_from_json(o) for o in orjson.loads(row["operations"]))),
            )
            for row in self.conn.execute(query + " ORDER BY id", args)
        ]

    def failures(self, target: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM failures", ()
        if target:
            query, args = query + " WHERE target = ?", (target,)
        return [dict(row) for row in self.conn.execute(query + " ORDER BY target, key, record", args)]

    # -- request history (rate windows across runs) --------------------------------
    def log_request(self, target: str, endpoint: str, sent_at: float, status: int | None,
                    items: int, size: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO requests (target, endpoint, sent_at, status, items, bytes) VALUES (?,?,?,?,?,?)",
                (target, endpoint, sent_at, status, items, size),
            )

    def prune_requests(self, target: str, before: float) -> int:
        """Forget a target's requests sent before ``before``; returns how many."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM requests WHERE target = ? AND sent_at < ?", (target, before)).rowcount

    def request_times(self, targets: str | Sequence[str], since: float) -> list[float]:
        """Wall-clock times of the write requests sent to ``targets`` (one name or
        several) since ``since``."""
        names = [targets] if isinstance(targets, str) else list(targets)
        marks = ",".join("?" * len(names))
        rows = self.conn.execute(
            f"SELECT sent_at FROM requests WHERE target IN ({marks}) AND sent_at >= ? ORDER BY sent_at",
            (*names, since),
        )
        return [row[0] for row in rows]

    # -- applies and the lock -------------------------------------------------------
    def _bump_serial(self) -> int:
        serial = self.serial + 1
        self._set("serial", str(serial))
        return serial

    def begin_apply(self, targets: Sequence[str]) -> int:
        """Start an apply: bump the serial (so plans made before are stale) and open
        a history row. Returns the apply id."""
        with self.transaction() as conn:
            serial = self._bump_serial()
            cursor = conn.execute(
                "INSERT INTO applies (started_at, serial, targets, status) VALUES (?,?,?,?)",
                (now_iso(), serial, orjson.dumps(list(targets)).decode(), "running"),
            )
            return cursor.lastrowid

    def finish_apply(self, apply_id: int, status: str, counts: dict) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE applies SET finished_at = ?, status = ?, counts = ? WHERE id = ?",
                (now_iso(), status, orjson.dumps(counts).decode(), apply_id),
            )

    def applies(self) -> list[dict]:
        return [dict(row) for row in self.conn.execute("SELECT * FROM applies ORDER BY id")]

    @contextmanager
    def locked(self, owner: str) -> Iterator[None]:
        """Hold the apply lock. A lock left by a dead process on this host is taken
        over; a live one is refused with who holds it."""
        host, pid = socket.gethostname(), os.getpid()
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM lock WHERE id = 1").fetchone()
            if row and not (row["host"] == host and not _alive(row["pid"])):
                raise StateError(
                    f"the state {self.path} is locked by {row['owner']} (pid {row['pid']} on "
                    f"{row['host']} since {row['acquired_at']}); another apply is running. "
                    "If it is not, remove the lock with `reconciler state unlock`."
                )
            conn.execute(
                "INSERT OR REPLACE INTO lock VALUES (1, ?, ?, ?, ?)", (owner, pid, host, now_iso())
            )
        try:
            yield
        finally:
            with self.transaction() as conn:
                conn.execute("DELETE FROM lock WHERE id = 1 AND pid = ?", (pid,))

    def unlock(self) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM lock").rowcount > 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
