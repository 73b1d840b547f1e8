"""Schema migrations of the state database, applied in order on open.

``MIGRATIONS[i]`` takes a database at schema version ``i`` to ``i + 1``. Never edit a
released migration: append a new one. ``State`` refuses a database whose version is
newer than the code knows.
"""
from __future__ import annotations

import sqlite3


def _run(conn: sqlite3.Connection, script: str) -> None:
    # Statement by statement: executescript() would commit the open transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1_items(conn: sqlite3.Connection) -> None:
    _run(conn, 
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE items (
            target TEXT NOT NULL,
            record TEXT NOT NULL,
            key TEXT NOT NULL,
            sku TEXT NOT NULL,
            payload TEXT NOT NULL,
            hash TEXT NOT NULL,
            remote_id TEXT,
            last_action TEXT,
            last_outcome TEXT,
            updated_at TEXT,
            PRIMARY KEY (target, record, key)
        ) WITHOUT ROWID;
        CREATE INDEX items_sku ON items (sku);
        """
    )


def _v2_apply_bookkeeping(conn: sqlite3.Connection) -> None:
    _run(conn, 
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            handle TEXT NOT NULL,
            operations TEXT NOT NULL,
            created_at TEXT NOT NULL,
            apply_id INTEGER
        );
        CREATE INDEX jobs_target ON jobs (target);
        CREATE TABLE applies (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            serial INTEGER NOT NULL,
            targets TEXT NOT NULL,
            status TEXT NOT NULL,
            counts TEXT
        );
        CREATE TABLE failures (
            apply_id INTEGER,
            target TEXT NOT NULL,
            record TEXT NOT NULL,
            key TEXT NOT NULL,
            sku TEXT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT,
            at TEXT NOT NULL,
            PRIMARY KEY (target, record, key)
        );
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            sent_at REAL NOT NULL,
            status INTEGER,
            items INTEGER,
            bytes INTEGER
        );
        CREATE INDEX requests_window ON requests (target, sent_at);
        CREATE TABLE lock (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            owner TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            acquired_at TEXT NOT NULL
        );
        """
    )


def _v3_binary_digests(conn: sqlite3.Connection) -> None:
    # Digests were hex text; now the 16 raw bytes of the same blake2b (same input), so
    # a plan compares them without decoding. Unconverted, no item would plan unchanged
    # by its digest, and every one would take the slow path of a field diff.
    rows = conn.execute("SELECT hash, target, record, key FROM items WHERE typeof(hash) = 'text'").fetchall()
    conn.executemany("UPDATE items SET hash = ? WHERE target = ? AND record = ? AND key = ?",
                     [(bytes.fromhex(digest), *ident) for digest, *ident in rows])


MIGRATIONS = [_v1_items, _v2_apply_bookkeeping, _v3_binary_digests]
SCHEMA_VERSION = len(MIGRATIONS)
