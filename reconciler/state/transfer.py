"""Copying a state between backends (``reconciler state migrate --to``), verified.

Every table of the schema but ``locks`` is copied row for row, a batch of rows a
transaction-sized ``executemany``, ids included (the destination's id sequences then
continue after them), lineage and serials included: a plan saved against the source
applies to the copy. Both states are locked whole during the copy. Success is
reported only once each table's row count and an order-independent digest of its
rows match on both sides (the backends sort text differently, so the digest is a sum
of per-row digests, not a digest of a sorted listing).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

from reconciler.errors import StateError
from reconciler.state.dialect import Connection
from reconciler.state.location import Location
from reconciler.state.schema import CURRENT, Table, build
from reconciler.state.store import State

COPIED = tuple(table for table in CURRENT if table.name != "locks")
BATCH = 5000


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    digest: int


def rows_of(state: State, table: Table) -> Iterator[list[tuple]]:
    return batches(state.conn, state.conn.execute(f"SELECT {', '.join(table.column_names)} FROM {table.name}"))


def batches(conn: Connection, cursor, batch: int = BATCH) -> Iterator[list[tuple]]:
    """The rows of ``cursor``, ``batch`` at a time, bytes as bytes on either backend."""
    while True:
        with conn.translated("read"):
            rows = cursor.fetchmany(batch)
        if not rows:
            return
        yield [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def copy_version(source: Connection, destination: Connection, version: int) -> None:
    """Every table of the PostgreSQL state in ``source``, at schema ``version``, into
    the empty ``destination`` as that version (an older state read through a copy in
    memory), all of it as of one moment."""
    with source.transaction(), destination.transaction():
        source.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        build(destination, version)
        for name in sorted(destination.tables()):
            cursor = source.execute(f"SELECT * FROM {name}")
            columns = [column[0] for column in cursor.description]
            insert = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})"
            for rows in batches(source, cursor):
                destination.executemany(insert, rows)


def fingerprint(state: State, table: Table) -> Fingerprint:
    count, total = 0, 0
    for rows in rows_of(state, table):
        for row in rows:
            count += 1
            canonical = repr(tuple(float(v) if isinstance(v, float) else v for v in row)).encode()
            total += int.from_bytes(hashlib.blake2b(canonical, digest_size=16).digest(), "big")
    return Fingerprint(count, total % (1 << 128))


def copy_rows(source: State, destination: State, tables: Sequence[Table] = COPIED) -> dict[str, int]:
    """Replace ``tables`` of ``destination`` with ``source``'s rows (one transaction);
    returns rows copied per table."""
    copied = {}
    with destination._lock, destination.conn.transaction():
        for table in tables:
            destination.conn.execute(f"DELETE FROM {table.name}")
            marks = ",".join("?" * len(table.columns))
            insert = f"INSERT INTO {table.name} ({', '.join(table.column_names)}) VALUES ({marks})"
            copied[table.name] = 0
            for rows in rows_of(source, table):
                destination.conn.executemany(insert, rows)
                copied[table.name] += len(rows)
            if any(kind == "id" for _, kind, _ in table.columns):
                destination.conn.reset_ids(table.name)
    return copied


def migrate(source: State, to: Location, lock_timeout: float = 0.0) -> dict[str, int]:
    """Copy ``source`` into a new state at ``to`` (made once the source is locked;
    refused if it already holds one), both locked whole, and verify the copy; returns
    rows copied per table."""
    command = f"reconciler state migrate (pid {os.getpid()})"
    with source.locked(command, timeout=lock_timeout):
        destination = State(to, create=True)
        try:
            with destination.locked(command, timeout=lock_timeout):
                return _copy_verified(source, destination)
        finally:
            destination.close()


def _copy_verified(source: State, destination: State) -> dict[str, int]:
    shown = destination.location.display()
    if destination.targets() or destination.pending_jobs() or destination.serial:
        raise StateError(f"{shown} already holds a state (lineage {destination.lineage}, serial "
                         f"{destination.serial}): migrate only into a new, empty state")
    copied = copy_rows(source, destination)
    for table in COPIED:
        mine, theirs = fingerprint(source, table), fingerprint(destination, table)
        if mine != theirs:
            raise StateError(f"the copy in {shown} does not match: table {table.name} has {theirs.rows} rows "
                             f"(source {mine.rows}) or different contents; do not use it")
    return copied
