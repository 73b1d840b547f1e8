"""The state: what each destination confirmed, in SQLite or PostgreSQL.

One row per (target, record kind, item key) holds the payload the destination last
confirmed or accepted, its digest, any remote id and the last outcome (``confirmed``:
the destination said it applied it; ``accepted``: it only acknowledged receipt, and
the item is also listed in ``accepted`` until ``status --verify`` reads it back;
``failed``: the last write was refused, the row keeps its payload). Around it: the lineage (a
random id fixed at creation), a serial per target and one for the whole state (a
saved plan records its targets' serials and is stale once one moved), outstanding
asynchronous jobs, the apply history, the failures of the last attempt per item, the
request history rate windows need across runs and processes, and the locks.

Rules: an item's row changes only for an outcome the destination confirmed or
accepted (or for what ``status --verify`` read back); every
batch of outcomes is written in one transaction, so a crash loses at most the batch
in flight, which the next apply sends again; every command that changes a target's
rows bumps its serial (once per lock it holds); every writer holds a lock.

Opening: ``State(location)`` opens for writing (creating a missing state, migrating
an older schema under the whole-state lock); ``State(location, create=False)`` opens
read-only and never writes, creates, migrates or switches journal modes: a missing
state reads as empty, an older schema is upgraded in a copy in memory. Anything that
is not a reconciler state (a 0-byte file, another program's database, random bytes)
is refused as such, never taken for a new state.
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import orjson

from reconciler.display import printable
from reconciler.errors import StateError
from reconciler.mapping import canonical
from reconciler.providers.base import Job, Operation, Outcome
from reconciler.state import columns, schema
from reconciler.state.dialect import Connection, NotAState, SQLite, connect
from reconciler.state.location import Location
from reconciler.state.locks import (
    WHOLE, Holder, LockedError, describe_wanted, lock_strategy, new_holder, read_holders, wait_for,
)
from reconciler.state.payloads import Payloads

ITEM_COLUMNS = "target, record, key, sku, payload, dictionary, hash, remote_id, last_write, updated_at"
READ_ITEM = ("SELECT target, record, key, coalesce(sku, key), payload, dictionary, hash, remote_id, last_write, "
             "updated_at FROM items")
UPSERT_ITEM = (f"INSERT INTO items ({ITEM_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) "
               "ON CONFLICT (target, record, key) DO UPDATE SET sku = excluded.sku, payload = excluded.payload, "
               "dictionary = excluded.dictionary, hash = excluded.hash, remote_id = excluded.remote_id, "
               "last_write = excluded.last_write, updated_at = excluded.updated_at")
FAILURE_COLUMNS = "apply_id, target, record, key, sku, action, reason, at"
UPSERT_FAILURE = (f"INSERT INTO failures ({FAILURE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?) "
                  "ON CONFLICT (target, record, key) DO UPDATE SET apply_id = excluded.apply_id, "
                  "sku = excluded.sku, action = excluded.action, reason = excluded.reason, at = excluded.at")
ACCEPTED_COLUMNS = "apply_id, target, record, key, sku, action, at"
UPSERT_ACCEPTED = (f"INSERT INTO accepted ({ACCEPTED_COLUMNS}) VALUES (?,?,?,?,?,?,?) "
                   "ON CONFLICT (target, record, key) DO UPDATE SET apply_id = excluded.apply_id, "
                   "sku = excluded.sku, action = excluded.action, at = excluded.at")
LOG_REQUEST = "INSERT INTO requests (target, endpoint, sent_at, status, items, bytes) VALUES (?,?,?,?,?,?)"
SET_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


def payload_digest(payload: dict, ignore: Sequence[str] = ()) -> bytes:
    """Digest of a payload, blind to ``ignore`` fields (a target's ``ignore_fields``).
    16 raw bytes: a million of them are compared, held and stored by every plan."""
    return digest_of(payload, canonical(payload), ignore)


def digest_of(payload: dict, body: bytes, ignore: Sequence[str] = ()) -> bytes:
    """:func:`payload_digest` when the canonical (sorted-key) JSON is already at hand."""
    if ignore and any(field in payload for field in ignore):  # else ``body`` is the right input
        body = canonical({k: v for k, v in payload.items() if k not in ignore})
    return hashlib.blake2b(body, digest_size=16).digest()


def stored(payload: dict, ignore: Sequence[str] = ()) -> tuple[bytes, bytes]:
    """A payload as the ``items`` table keeps it, before it is packed: canonical JSON and its digest."""
    body = canonical(payload)
    return body, digest_of(payload, body, ignore)


def item_row(target: str, record: str, key: str, sku: str, payload: dict, ignore: Sequence[str],
             remote_id: str | None, action: str | None, stamp: str | None, outcome: str | None = "confirmed") -> tuple:
    """A row of ``items`` for an item the destination confirmed (or ``outcome``), its
    payload canonical JSON not yet packed (:meth:`State._upsert` packs it)."""
    return (target, record, key, columns.stored_sku(sku, key), *stored(payload, ignore), remote_id,
            columns.last_write(action, outcome), columns.seconds(stamp))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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

    def to_row(self) -> tuple:
        """Its row of ``items``, its payload not yet packed (as :func:`item_row`)."""
        return (self.target, self.record, self.key, columns.stored_sku(self.sku, self.key),
                canonical(self.payload), self.hash, self.remote_id,
                columns.last_write(self.last_action, self.last_outcome), columns.seconds(self.updated_at))


@dataclass(frozen=True)
class OutcomeBatch:
    """A batch of one target's outcomes, as :meth:`State.record_batches` takes them."""

    target: str
    outcomes: Sequence[Outcome]
    apply_id: int | None = None
    ignore: Sequence[str] = ()
    settled_job: int | None = None


@dataclass(frozen=True)
class PendingJob:
    id: int
    target: str
    job: Job
    created_at: str


class State:
    """``State(location)`` opens for writing (creating it if missing); with
    ``create=False`` read-only (a missing state reads as empty). ``location``: a path,
    a ``postgresql://`` URL (``schema`` names its PostgreSQL schema) or a
    :class:`Location`. Thread-safe: one connection, one lock."""

    def __init__(self, location: str | os.PathLike | Location, create: bool = True, *, schema: str | None = None):
        self.location = location if isinstance(location, Location) else Location.parse(location, schema)
        memory = self.location.path is not None and str(self.location.path) == ":memory:"
        self.read_only = not create and not memory  # an in-memory state is a throwaway: writable
        self._lock = threading.RLock()
        self._bumped: set[str] = set()   # targets whose serial this lock span (or this object) bumped
        self._held: list[Holder] = []
        self._locks = None
        self.payloads = Payloads()
        conn = None
        if memory:
            conn = None
        elif create and self.location.path is not None and not self.location.path.exists():
            _create_file(self.location)
            conn = connect(self.location, read_only=False)
        else:
            conn = connect(self.location, read_only=self.read_only)
        self.persistent = conn is not None
        self.conn: Connection = conn if conn is not None else _empty_database()
        try:
            self._open()
            if self.persistent and not self.read_only:
                self.conn.prepare_writes()
        except BaseException:
            self.conn.close()
            raise

    @classmethod
    def empty(cls) -> "State":
        """A state with nothing in it, in memory (what a plan sees before the first apply)."""
        return cls(":memory:", create=False)

    @property
    def path(self) -> Path | None:
        return self.location.path

    def reopen(self) -> "State":
        """Another connection to the same state (same mode), for a second thread."""
        if not self.persistent:
            return self
        return State(self.location, create=not self.read_only)

    def snapshot(self) -> "State":
        """A copy of this state in memory, same lineage and serials; changing it
        never touches this one (``plan --refresh`` plans against such a copy)."""
        copy = State.empty()
        if isinstance(self.conn, SQLite):
            self.conn.backup_to(copy.conn)
        else:
            from reconciler.state.transfer import copy_rows

            copy_rows(self, copy)
        copy.persistent = False
        return copy

    def close(self) -> None:
        if self._locks is not None:
            self._locks.close()
        self.conn.close()

    # -- schema --------------------------------------------------------------------------
    def _open(self) -> None:
        shown = self.location.display()
        tables = self.conn.tables()
        if not tables:
            if not self.persistent:
                _create_schema(self.conn, lineage=None)
                return
            if self.location.is_postgres and not self.read_only:
                with self.conn.transaction():
                    self.conn.exclusive("create")
                    if not self.conn.tables():
                        _create_schema(self.conn, lineage=str(uuid.uuid4()))
                return
            if self.location.is_postgres:  # an empty schema: nothing applied yet
                self._replace_with_empty()
                return
            raise NotAState(f"{shown} is not a reconciler state: it is a SQLite database with no tables")
        if "meta" not in tables:
            raise NotAState(f"{shown} is not a reconciler state: it holds tables ({', '.join(sorted(tables))}) "
                            "but no reconciler meta table")
        version = self._stored_version(shown)
        if version > schema.SCHEMA_VERSION:
            raise StateError(f"{shown} has state schema version {version}, newer than this reconciler knows "
                             f"({schema.SCHEMA_VERSION}); upgrade reconciler")
        if version == schema.SCHEMA_VERSION:
            return
        if self.read_only:
            self._upgrade_a_copy(version)
        else:
            self._migrate(version)

    def _upgrade_a_copy(self, version: int) -> None:
        """Read an older schema through a copy in memory, upgraded there: a reader
        never writes (nor migrates), and the first writer upgrades the state itself."""
        copy = _empty_database()
        if isinstance(self.conn, SQLite):
            self.conn.backup_to(copy)
        else:
            from reconciler.state.transfer import copy_version

            copy_version(self.conn, copy, version)
        self.conn.close()
        self.conn = copy
        with self.conn.transaction():
            _upgrade(self.conn, version)

    def _replace_with_empty(self) -> None:
        self.conn.close()
        self.conn = _empty_database()
        self.persistent = False
        _create_schema(self.conn, lineage=None)

    def _stored_version(self, shown: str) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise NotAState(f"{shown} is not a reconciler state: its meta table has no schema_version")
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise NotAState(f"{shown} is not a reconciler state: unknown schema_version {row[0]!r}") from None

    def _migrate(self, version: int) -> None:
        """Upgrade from ``version``, holding the whole-state lock (in the same
        transaction on SQLite; an advisory lock on PostgreSQL)."""
        strategy = None
        if self.location.is_postgres:
            strategy = lock_strategy(self.conn)
            holders = new_holder([WHOLE], "reconciler (schema migration)", now_iso(), strategy.session_id())
            blocking = strategy.try_acquire(holders)
            if blocking:
                strategy.close()
                raise LockedError(self.location.display(), blocking, "the whole state to upgrade its schema")
        try:
            with self.conn.transaction():
                upgrading = self._stored_version(self.location.display()) == version  # nobody did it meanwhile
                if upgrading:
                    if not self.location.is_postgres:
                        self._refuse_live_holders(version)
                    _upgrade(self.conn, version)
        finally:
            if strategy is not None:
                strategy.release(holders)
        if upgrading:
            self.conn.reclaim()  # version 7 rewrote every item: the old rows' pages are free

    def _refuse_live_holders(self, version: int) -> None:
        shown = self.location.display()
        if version < schema.BASELINE_VERSION:
            if version >= 2:  # the single lock row of versions 2 and 3
                row = self.conn.execute("SELECT owner, pid, host, acquired_at FROM lock").fetchone()
                if row is not None:
                    holder = Holder(WHOLE, "(schema 3)", row[0], row[1], row[2], row[3])
                    if lock_strategy(self.conn).alive(holder) is not False:
                        raise LockedError(shown, [holder], "the whole state to upgrade its schema")
            return
        live = [h for h in read_holders(self.conn) if lock_strategy(self.conn).alive(h) is not False]
        if live:
            raise LockedError(shown, live, "the whole state to upgrade its schema")

    def _set(self, key: str, value: str) -> None:
        self.conn.execute(SET_META, (key, value))

    def _get(self, key: str) -> str | None:
        with self._lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @property
    def schema_version(self) -> int:
        return int(self._get("schema_version") or 0)

    @property
    def lineage(self) -> str | None:
        return self._get("lineage")

    @property
    def serial(self) -> int:
        """The whole state's serial: bumped by every command that changed anything."""
        return int(self._get("serial") or 0)

    def target_serials(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Each target's serial (0 for a target never changed)."""
        with self._lock:
            rows = dict(self.conn.execute("SELECT name, serial FROM targets").fetchall())
        if names is None:
            return rows
        return {name: rows.get(name, 0) for name in names}

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        if self.read_only:
            raise StateError(f"the state {self.location.display()} was opened read-only")
        with self._lock:
            bumped = set(self._bumped)
            try:
                with self.conn.transaction():
                    yield self.conn
            except BaseException:
                self.payloads.forget()  # a dictionary made in it is gone
                self._bumped = bumped   # and so is a serial it bumped
                raise

    # -- items -------------------------------------------------------------------------------
    def hashes(self, target: str) -> dict[tuple[str, str], bytes]:
        """``{(record, key): digest}`` of every item of a target: all a plan needs
        to decide that an item is unchanged (one query, read in bulk)."""
        with self._lock:
            rows = self.conn.execute("SELECT record, key, hash FROM items WHERE target = ?", (target,)).fetchall()
        return {(record, key): bytes(digest) for record, key, digest in rows}

    def item(self, target: str, record: str, key: str) -> Item | None:
        with self._lock:
            row = self.conn.execute(f"{READ_ITEM} WHERE target = ? AND record = ? AND key = ?",
                                    (target, record, key)).fetchone()
            return self._item(row) if row else None

    def items(self, target: str | None = None) -> Iterator[Item]:
        with self._lock:
            if target is None:
                rows = self.conn.execute(f"{READ_ITEM} ORDER BY target, key, record")
            else:
                rows = self.conn.execute(f"{READ_ITEM} WHERE target = ? ORDER BY key, record", (target,))
        return self._read_all(rows)

    def _read_all(self, rows) -> Iterator[Item]:
        with self.conn.translated("read"):  # a damaged file fails while the rows are read
            for row in rows:
                yield self._item(row)

    def _item(self, row: Sequence) -> Item:
        target, record, key, sku, payload, dictionary, digest, remote_id, last_write, updated_at = row
        try:
            with self._lock:  # may read its dictionary
                body = self.payloads.unpack(self.conn, target, record, payload, dictionary)
            loaded = orjson.loads(body)
        except (orjson.JSONDecodeError, zlib.error, TypeError) as exc:  # edited or damaged by hand: name the row
            raise StateError(f"the state's item {key!r} ({record}) at target {target} holds a payload that is not "
                             f"JSON ({exc}); `reconciler state rm {printable(sku)} -t {target}` forgets it, and the "
                             "next plan creates it again") from None
        return Item(target, record, key, sku, loaded, bytes(digest), remote_id, *columns.words(last_write),
                    columns.iso(updated_at))

    def items_of_sku(self, sku: str) -> list[Item]:
        """The items of ``sku`` at every target: those whose key is another word
        through the index of skus, the others (sku null: the key) by primary key,
        once for each (target, record kind) of the state."""
        with self._lock:
            rows = self.conn.execute(f"{READ_ITEM} WHERE sku = ?", (sku,)).fetchall()
            for target, record in self._kinds():
                rows += self.conn.execute(f"{READ_ITEM} WHERE target = ? AND record = ? AND key = ? AND sku IS NULL",
                                          (target, record, sku)).fetchall()
            return [self._item(row) for row in sorted(rows, key=lambda row: row[:3])]

    def _kinds(self) -> list[tuple[str, str]]:
        # Each (target, record) of items: a seek per kind along the primary key, not a scan.
        kinds = [self.conn.execute("SELECT target, record FROM items ORDER BY target, record LIMIT 1").fetchone()]
        while kinds[-1] is not None:
            kinds.append(self.conn.execute("SELECT target, record FROM items WHERE (target, record) > (?, ?) "
                                           "ORDER BY target, record LIMIT 1", kinds[-1]).fetchone())
        return [tuple(kind) for kind in kinds[:-1]]

    def targets(self) -> dict[str, int]:
        """``{target: item count}`` of the targets with items in the state."""
        with self._lock:
            rows = self.conn.execute("SELECT target, count(*) FROM items GROUP BY target ORDER BY target")
            return dict(rows.fetchall())

    def _bump(self, targets: Iterable[str]) -> int:
        """Bump the serials of ``targets`` (each once per lock span) and the state's."""
        fresh = [name for name in dict.fromkeys(targets) if name not in self._bumped]
        if not fresh:
            return self.serial
        self.conn.executemany("INSERT INTO targets (name, serial) VALUES (?, 1) "
                              "ON CONFLICT (name) DO UPDATE SET serial = targets.serial + 1", [(n,) for n in fresh])
        # One statement, so two writers bumping at once both count (no read-then-write)
        serial = self.conn.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                                   "WHERE key = 'serial' RETURNING value").fetchone()[0]
        self._bumped.update(fresh)
        return int(serial)

    def remove(self, items: Sequence[Item]) -> int:
        """Forget ``items`` (the destination is not told); returns rows removed."""
        with self.transaction() as conn:
            for table in ("items", "failures", "accepted"):
                conn.executemany(f"DELETE FROM {table} WHERE target = ? AND record = ? AND key = ?",
                                 [(i.target, i.record, i.key) for i in items])
            if items:
                self._bump(i.target for i in items)
        return len(items)

    def remove_sku(self, sku: str, target: str | None = None) -> int:
        """Forget a sku (everywhere, or at ``target``); returns rows removed."""
        return self.remove([i for i in self.items_of_sku(sku) if target is None or i.target == target])

    def restore(self, items: Sequence[Item]) -> int:
        """Put back ``items`` as they were (the undo of :meth:`remove`)."""
        with self.transaction():
            self._upsert([item.to_row() for item in items])
            if items:
                self._bump(i.target for i in items)
        return len(items)

    def adopt(self, target: str, items: Iterable[tuple[str, str, str, dict]], ignore: Sequence[str] = ()) -> int:
        """Record ``(record, key, sku, payload)`` read from a destination as confirmed."""
        stamp = now_iso()
        rows = [item_row(target, record, key, sku, payload, ignore, None, "import", stamp)
                for record, key, sku, payload in items]
        with self.transaction() as conn:
            self._upsert(rows)
            conn.executemany("DELETE FROM accepted WHERE target = ? AND record = ? AND key = ?",
                             [row[:3] for row in rows])
            self._bump([target])
        return len(rows)

    def overwrite(self, target: str, payloads: Iterable[tuple[str, str, dict]],
                  removed: Iterable[tuple[str, str]], ignore: Sequence[str] = ()) -> None:
        """Replace the payloads of ``(record, key, payload)`` items and drop ``removed``
        ``(record, key)`` items, with no serial bump: only for a throwaway copy of the
        state (``plan --refresh`` plans against what drift read)."""
        if self.persistent:
            raise StateError("overwrite() is for an in-memory copy of the state only")
        changed = [(target, record, *stored(payload, ignore), key) for record, key, payload in payloads]
        with self.transaction() as conn:
            conn.executemany("UPDATE items SET payload = ?, dictionary = ?, hash = ? "
                             "WHERE target = ? AND record = ? AND key = ?",
                             [(payload, dictionary, digest, target, record, key) for _, record, payload,
                              dictionary, digest, key in self.payloads.pack_rows(conn, changed, at=2)])
            conn.executemany("DELETE FROM items WHERE target = ? AND record = ? AND key = ?",
                             [(target, record, key) for record, key in removed])

    # -- target identities -------------------------------------------------------------
    def identities(self) -> dict[str, dict[str, str]]:
        """Each target's identity (the remote catalog its items are confirmed at), as
        the first write to it recorded it (see :mod:`reconciler.plan.binding`)."""
        with self._lock:
            rows = self.conn.execute("SELECT target, identity FROM identities").fetchall()
        return {target: orjson.loads(identity) for target, identity in rows}

    def record_identity(self, target: str, identity: dict[str, str]) -> None:
        """Record ``identity`` as ``target``'s (a writer, under its lock)."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO identities (target, identity, recorded_at) VALUES (?,?,?) "
                         "ON CONFLICT (target) DO UPDATE SET identity = excluded.identity, "
                         "recorded_at = excluded.recorded_at", (target, orjson.dumps(identity).decode(), now_iso()))
            self._bump([target])

    # -- recording outcomes ---------------------------------------------------------------
    def record(self, target: str, outcomes: Iterable[Outcome], apply_id: int | None = None,
               ignore: Sequence[str] = (), settled_job: int | None = None) -> dict[str, int]:
        """Write a batch of outcomes in one transaction (and drop ``settled_job``).
        Returns ``{handle: job id}`` of the jobs it added.

        confirmed or accepted → the item's row takes ``after`` (or goes, for a delete),
        and an accepted item is listed in ``accepted`` (a confirmed one no longer is);
        failed → the row keeps its payload, the failure is kept for ``status`` and the
        summary; pending → a job to poll. retry and split outcomes are the executor's
        business. The target's serial is bumped by the first change of a lock span.
        """
        return self.record_batches([OutcomeBatch(target, tuple(outcomes), apply_id, tuple(ignore), settled_job)])[0]

    def record_batches(self, batches: Sequence["OutcomeBatch"], requests: Sequence[tuple] = ()) -> list[dict[str, int]]:
        """:meth:`record` of several batches, in order, and :meth:`log_request` of each
        of ``requests`` (its arguments), in one transaction (what an apply's state
        thread found waiting: one commit and one statement per table for all of
        them). Returns each batch's ``{handle: job id}``."""
        stamp = now_iso()
        job_ids: list[dict[str, int]] = []
        with self.transaction() as conn:
            if requests:
                conn.executemany(LOG_REQUEST, requests)
            # Batches naming none of the same items are written together; an item named
            # again starts a new group, so that the later outcome is written last.
            group: list[OutcomeBatch] = []
            named: set[tuple[str, str, str]] = set()
            for batch in batches:
                idents = {(batch.target, o.operation.record, o.operation.key) for o in batch.outcomes}
                if not named.isdisjoint(idents):
                    job_ids += self._record_group(conn, group, stamp)
                    group, named = [], set()
                group.append(batch)
                named |= idents
            job_ids += self._record_group(conn, group, stamp)
        return job_ids

    def _record_group(self, conn: Connection, batches: Sequence["OutcomeBatch"], stamp: str) -> list[dict[str, int]]:
        upserts, deletes, failures, cleared, accepted, confirmed = [], [], [], [], [], []
        changed: set[str] = set()
        jobs_of: list[dict[str, Job]] = []  # each batch's jobs to poll, by handle
        for batch in batches:
            target, apply_id = batch.target, batch.apply_id
            jobs = {}
            jobs_of.append(jobs)
            for outcome in batch.outcomes:
                op = outcome.operation
                ident = (target, op.record, op.key)
                status = outcome.status
                if status == "confirmed" or status == "accepted":
                    cleared.append(ident)
                    if status == "accepted":
                        accepted.append((apply_id, *ident, op.sku, op.action, stamp))
                    else:
                        confirmed.append(ident)
                    if op.action == "delete":
                        deletes.append(ident)
                    else:
                        upserts.append(item_row(target, op.record, op.key, op.sku,
                                                op.after if outcome.kept is None else outcome.kept, batch.ignore,
                                                outcome.remote_id or op.remote_id, op.action, stamp, status))
                    changed.add(target)
                elif status == "failed":
                    failures.append((apply_id, target, op.record, op.key, op.sku, op.action, outcome.reason, stamp))
                    changed.add(target)
                elif status == "pending" and outcome.job is not None:
                    jobs.setdefault(outcome.job.handle, outcome.job)
        if upserts:
            self._upsert(upserts)
        if deletes:
            conn.executemany("DELETE FROM items WHERE target = ? AND record = ? AND key = ?", deletes)
        cleared = self._of_targets_with_rows("failures", cleared)
        if cleared:
            conn.executemany("DELETE FROM failures WHERE target = ? AND record = ? AND key = ?", cleared)
        if accepted:
            conn.executemany(UPSERT_ACCEPTED, accepted)
        confirmed = self._of_targets_with_rows("accepted", confirmed)
        if confirmed:
            conn.executemany("DELETE FROM accepted WHERE target = ? AND record = ? AND key = ?", confirmed)
        if failures:
            conn.executemany(UPSERT_FAILURE, failures)
            conn.executemany(f"UPDATE items SET last_write = {columns.with_outcome('failed')}, updated_at = ? "
                             "WHERE target = ? AND record = ? AND key = ?",
                             [(columns.seconds(stamp), f[1], f[2], f[3]) for f in failures])
        job_ids = []
        for batch, jobs in zip(batches, jobs_of):
            job_ids.append({handle: conn.execute(
                "INSERT INTO jobs (target, handle, operations, created_at, apply_id) VALUES (?,?,?,?,?) RETURNING id",
                (batch.target, handle, orjson.dumps(job.operations).decode(), stamp, batch.apply_id),  # dataclasses
            ).fetchone()[0] for handle, job in jobs.items()})
            if batch.settled_job is not None:
                conn.execute("DELETE FROM jobs WHERE id = ?", (batch.settled_job,))
            if jobs or batch.settled_job is not None:
                changed.add(batch.target)
        if changed:
            self._bump(sorted(changed))
        return job_ids

    def _upsert(self, rows: Sequence[tuple]) -> None:
        """Write rows of :func:`item_row`'s shape, their payloads packed (in the
        caller's transaction)."""
        self.conn.executemany(UPSERT_ITEM, self.payloads.pack_rows(self.conn, rows, at=4))

    def _of_targets_with_rows(self, table: str, idents: list[tuple]) -> list[tuple]:
        """The ``(target, record, key)`` of ``idents`` whose target has rows in ``table``:
        most batches of most applies follow no failure, and most targets confirm what
        they take, so a DELETE an item is skipped then."""
        targets = {ident[0] for ident in idents}
        kept = {t for t in targets
                if self.conn.execute(f"SELECT 1 FROM {table} WHERE target = ? LIMIT 1", (t,)).fetchone() is not None}
        return idents if kept == targets else [ident for ident in idents if ident[0] in kept]

    def verified(self, target: str, confirmed: Sequence[tuple[str, str]], failed: Sequence[tuple],
                 ignore: Sequence[str] = ()) -> None:
        """Record what ``status --verify`` read back of ``target``'s accepted items:
        the ``(record, key)`` items of ``confirmed`` are confirmed; each
        ``(record, key, sku, action, reason, payload, remote_id)`` of ``failed`` failed,
        and its row takes what was read (``payload``; None: the item is absent), so
        that the next plan proposes it again."""
        stamp = now_iso()
        done = [(target, record, key) for record, key in confirmed] + [(target, *f[:2]) for f in failed]
        with self.transaction() as conn:
            conn.executemany("DELETE FROM accepted WHERE target = ? AND record = ? AND key = ?", done)
            conn.executemany(f"UPDATE items SET last_write = {columns.with_outcome('confirmed')}, updated_at = ? "
                             "WHERE target = ? AND record = ? AND key = ?",
                             [(columns.seconds(stamp), target, record, key) for record, key in confirmed])
            conn.executemany("DELETE FROM items WHERE target = ? AND record = ? AND key = ?",
                             [(target, *f[:2]) for f in failed if f[5] is None])
            self._upsert([item_row(target, record, key, sku, payload, ignore, remote_id, action, stamp, "failed")
                          for record, key, sku, action, _, payload, remote_id in failed if payload is not None])
            conn.executemany(UPSERT_FAILURE, [(None, target, record, key, sku, action, reason, stamp)
                                              for record, key, sku, action, reason, *_ in failed])
            if done:
                self._bump([target])

    def pending_jobs(self, target: str | None = None) -> list[PendingJob]:
        query, args = "SELECT id, target, handle, operations, created_at FROM jobs", ()
        if target:
            query, args = query + " WHERE target = ?", (target,)
        with self._lock:
            rows = self.conn.execute(query + " ORDER BY id", args).fetchall()
        return [PendingJob(id=job_id, target=name, created_at=created,
                           job=Job(handle, tuple(operation_from_json(o) for o in orjson.loads(operations))))
                for job_id, name, handle, operations, created in rows]

    def failures(self, target: str | None = None) -> list[dict]:
        """The last failure of each item that failed, by target and key."""
        return self._rows("failures", FAILURE_COLUMNS, target)

    def accepted(self, target: str | None = None) -> list[dict]:
        """The items whose last write their destination only acknowledged, by target and key."""
        return self._rows("accepted", ACCEPTED_COLUMNS, target)

    def _rows(self, table: str, columns: str, target: str | None) -> list[dict]:
        query, args = f"SELECT {columns} FROM {table}", ()
        if target:
            query, args = query + " WHERE target = ?", (target,)
        names = columns.split(", ")
        with self._lock:
            rows = self.conn.execute(query + " ORDER BY target, key, record", args).fetchall()
        return [dict(zip(names, row)) for row in rows]

    # -- request history (rate windows across runs) -------------------------------------------
    def log_request(self, target: str, endpoint: str, sent_at: float, status: int | None,
                    items: int, size: int) -> None:
        """Add a write request sent outside any rate window to the request history."""
        self.record_batches((), [(target, endpoint, sent_at, status, items, size)])

    def prune_requests(self, target: str, before: float) -> int:
        """Forget a target's requests sent and answered (if ever) before ``before``;
        returns how many."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM requests WHERE target = ? AND sent_at < ? AND "
                                "(answered_at IS NULL OR answered_at < ?)", (target, before, before)).rowcount

    def take_slot(self, scope: str, target: str, limit: int, window: float, in_flight_for: float,
                  now: float) -> tuple[int | None, float]:
        """Take a slot of the strict sliding window ``scope`` for a request of
        ``target`` sent at ``now``: at most ``limit`` requests occupy any ``window``
        seconds, a request from its send until ``window`` seconds after its answer. One
        never answered (cut off by an interrupt, or a dead run's) may reach the server
        until its deadline, ``in_flight_for`` seconds after its send: it occupies the
        window until ``window`` seconds after that. One transaction serialised across
        processes and machines. Returns ``(request id, 0)`` when taken, else ``(None,
        seconds until a slot may free; 0 when only requests that may be in flight hold
        them)``."""
        with self.transaction() as conn:
            conn.exclusive(f"window {scope}")
            # an answer may come later than in_flight_for after the send time recorded
            rows = conn.execute("SELECT sent_at, answered_at FROM requests WHERE scope = ? AND "
                                "(answered_at > ? OR (answered_at IS NULL AND sent_at > ?))",
                                (scope, now - window, now - window - in_flight_for)).fetchall()
            frees = [answered + window if answered is not None
                     else None if sent + in_flight_for > now  # in flight, for all we know
                     else sent + in_flight_for + window
                     for sent, answered in rows]
            if len(frees) < limit:
                slot = conn.execute("INSERT INTO requests (target, endpoint, sent_at, scope) VALUES (?,?,?,?) "
                                    "RETURNING id", (target, "(rate window slot)", now, scope)).fetchone()[0]
                return slot, 0.0
        known = [free for free in frees if free is not None]
        return None, (min(known) - now if known else 0.0)

    def answer_slot(self, request_id: int, at: float) -> None:
        """The request of a window slot got its answer (or failed) at ``at``."""
        with self.transaction() as conn:
            conn.execute("UPDATE requests SET answered_at = ? WHERE id = ?", (at, request_id))

    def request_times(self, targets: str | Sequence[str], since: float) -> list[float]:
        """Wall-clock times of the write requests sent to ``targets`` (one name or
        several) since ``since``."""
        names = [targets] if isinstance(targets, str) else list(targets)
        marks = ",".join("?" * len(names))
        with self._lock:
            rows = self.conn.execute(
                f"SELECT sent_at FROM requests WHERE target IN ({marks}) AND sent_at >= ? ORDER BY sent_at",
                (*names, since)).fetchall()
        return [row[0] for row in rows]

    # -- applies ---------------------------------------------------------------------------
    def begin_apply(self, targets: Sequence[str]) -> int:
        """Start an apply: bump the serials of its targets (so plans made before are
        stale) and open a history row. Returns the apply id."""
        with self.transaction() as conn:
            serial = self._bump(targets)
            return conn.execute(
                "INSERT INTO applies (started_at, serial, targets, status) VALUES (?,?,?,?) RETURNING id",
                (now_iso(), serial, orjson.dumps(list(targets)).decode(), "running")).fetchone()[0]

    def finish_apply(self, apply_id: int, status: str, counts: dict) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE applies SET finished_at = ?, status = ?, counts = ? WHERE id = ?",
                         (now_iso(), status, orjson.dumps(counts).decode(), apply_id))

    def applies(self) -> list[dict]:
        names = ("id", "started_at", "finished_at", "serial", "targets", "status", "counts")
        with self._lock:
            rows = self.conn.execute(f"SELECT {', '.join(names)} FROM applies ORDER BY id").fetchall()
        return [dict(zip(names, row)) for row in rows]

    # -- locks ----------------------------------------------------------------------------
    @contextmanager
    def locked(self, command: str | None = None, targets: Sequence[str] | None = None,
               timeout: float = 0.0) -> Iterator[None]:
        """Hold the lock of ``targets`` (default: the whole state) for ``command``,
        waiting up to ``timeout`` seconds for its holders; refused naming them. A lock
        left by a dead process on this host (SQLite) or by an ended session
        (PostgreSQL) is taken over."""
        if self.read_only or not self.persistent:
            raise StateError(f"the state {self.location.display()} cannot be locked: it was opened read-only")
        scopes = sorted(set(targets)) if targets else [WHOLE]
        command = command or f"reconciler (pid {os.getpid()})"
        strategy = lock_strategy(self.conn)
        holders = new_holder(scopes, command, now_iso(), strategy.session_id())
        with self._lock:
            blocking = wait_for(lambda: strategy.try_acquire(holders), timeout)
        if blocking:
            strategy.close()
            raise LockedError(self.location.display(), blocking, describe_wanted(scopes))
        outer = self._held
        self._held, self._bumped, self._locks = outer + holders, set(), strategy
        try:
            yield
        finally:
            self._held, self._bumped = outer, set()
            try:
                with self._lock:
                    strategy.release(holders)
            except StateError:
                pass  # a full disk: the rows name this process, dead once it exits, so they are taken over

    def holders(self) -> list[tuple[Holder, bool | None]]:
        """Every lock row with whether its holder is alive (None: cannot be known
        from here, a process on another host)."""
        strategy = lock_strategy(self.conn)
        with self._lock:
            return [(holder, strategy.alive(holder)) for holder in read_holders(self.conn)]

    def unlock(self, lock_id: str | None = None) -> list[Holder]:
        """Without ``lock_id``: remove the locks of dead holders, refusing (naming
        them) while one is alive or cannot be judged. With ``lock_id``: remove that
        lock whoever holds it (on PostgreSQL its holder's session is ended).
        Returns the holders removed."""
        shown = self.location.display()
        found = self.holders()
        if lock_id is None:
            live = [(holder, alive) for holder, alive in found if alive is not False]
            if live:
                raise StateError(
                    "refusing to unlock:\n  " + "\n  ".join(
                        holder.describe() + (": its holder is alive" if alive else
                                             f": held from host {holder.host}, whose processes cannot be "
                                             f"checked from {socket.gethostname()}")
                        for holder, alive in live)
                    + "\nIf you have checked that it is not running: "
                    + " or ".join(f"`reconciler state unlock --force {i}`"
                                  for i in dict.fromkeys(holder.lock_id for holder, _ in live)))
            removed = [holder for holder, _ in found]
        else:
            removed = [holder for holder, _ in found if holder.lock_id == lock_id]
            if not removed:
                raise StateError(f"no lock with id {lock_id} in the state {shown} "
                                 f"(held: {', '.join(sorted({h.lock_id for h, _ in found})) or 'none'})")
            lock_strategy(self.conn).end(removed[0])
        with self.transaction() as conn:
            conn.executemany("DELETE FROM locks WHERE scope = ? AND lock_id = ?",
                             [(holder.scope, holder.lock_id) for holder in removed])
        return removed


# -- creating ------------------------------------------------------------------------------
def _empty_database() -> SQLite:
    return SQLite.memory()


def _create_schema(conn: Connection, lineage: str | None) -> None:
    """The current schema in an empty database (inside the caller's transaction, if any)."""
    schema.build(conn)
    rows = [("schema_version", str(schema.SCHEMA_VERSION))]
    if lineage is not None:
        rows += [("lineage", lineage), ("serial", "0")]
    conn.executemany(SET_META, rows)


def _upgrade(conn: Connection, version: int) -> None:
    """From ``version`` to the current schema (in the caller's transaction)."""
    for step in schema.LEGACY[version:]:
        step(conn)
    start = max(version, schema.BASELINE_VERSION) - schema.BASELINE_VERSION
    for migration in schema.MIGRATIONS[start:]:
        migration(conn)
    conn.execute(SET_META, ("schema_version", str(schema.SCHEMA_VERSION)))


def _create_file(location: Location) -> None:
    """A new SQLite state at ``location.path``, made whole beside it and then linked
    into place: a crash never leaves a half-made state, and of two processes creating
    it at once one wins and the other opens it."""
    path = location.path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create the state {path}: {exc.strerror or exc}") from None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    try:
        conn = SQLite.open(Location(path=temporary), read_only=False)
        try:
            with conn.transaction():
                _create_schema(conn, lineage=str(uuid.uuid4()))
            conn.raw.execute("PRAGMA journal_mode=DELETE")  # no -wal file to carry along
        finally:
            conn.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(temporary, path)
    except OSError as exc:
        raise StateError(f"cannot create the state {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)

