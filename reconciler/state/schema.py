"""The state's schema: one definition for both backends, and its migrations.

``BASELINE`` is schema version 4 as data (tables, columns in logical types, keys and
indexes), which each backend's dialect renders into its own DDL: a new state, SQLite
or PostgreSQL, is created from it. Changes after version 4 are appended to
``MIGRATIONS`` as functions of a :class:`~reconciler.state.dialect.Connection`,
written once in the SQL both backends accept (the dialect renders types and
placeholders), so a state of either backend follows the same steps.

Versions 1 to 3 predate PostgreSQL: only SQLite files can be that old, and
``LEGACY`` (frozen, SQLite only) takes them to version 4. Never edit a released
step: append one. A state newer than the code knows is refused.

Tables (version 4):

* ``meta``: ``lineage`` (random, fixed at creation), ``serial`` (bumped by every
  command that changes anything), ``schema_version``;
* ``targets``: each target's own ``serial``, bumped by every command that changes its
  items: a saved plan is stale only when one of its targets' serials moved;
* ``items``: per (target, record, key) the payload the destination last confirmed,
  its 16-byte digest, remote id and last outcome;
* ``jobs`` (outstanding asynchronous jobs), ``applies`` (history), ``failures`` (the
  last failure per item), ``requests`` (the write requests rate windows count, across
  runs and processes: ``scope`` is the window's, ``answered_at`` null while in flight);
* ``locks``: one row per held lock scope (a target name, or ``*`` for the whole
  state) naming its holder.

Added by migrations: ``identities`` (version 5), each target's identity as its first
write recorded it (see :mod:`reconciler.plan.binding`); ``accepted`` (version 6), the
items whose last write a destination only acknowledged (``status`` lists them,
``status --verify`` reads them back), while ``items.last_outcome`` says ``confirmed``,
``accepted`` or ``failed``. Version 7 makes ``items`` compact (see
:mod:`reconciler.state.payloads` and :mod:`reconciler.state.columns`): the payload
deflated with a dictionary of its target and record kind (``dictionary`` names it, in the new table
``dictionaries``), ``sku`` null when it is the key (``items_sku`` indexes only the
others), ``last_action`` and ``last_outcome`` one code (``last_write``), ``updated_at``
whole seconds. ``CURRENT`` lists the tables of ``SCHEMA_VERSION``: the baseline's, as
later steps changed them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TYPE_CHECKING

from reconciler.state import columns
from reconciler.state.payloads import Payloads

if TYPE_CHECKING:
    from reconciler.state.dialect import Connection


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str, str], ...]  # (name, logical type, constraint text)
    primary_key: tuple[str, ...] = ()
    indexes: tuple[tuple, ...] = ()  # (name, columns) or (name, columns, predicate of a partial index)
    clustered: bool = False  # rows kept in primary-key order (SQLite: WITHOUT ROWID)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.columns)


def _t(name, columns, primary_key=(), indexes=(), clustered=False):
    return Table(name, tuple(columns), tuple(primary_key), tuple(indexes), clustered)


BASELINE_VERSION = 4
BASELINE = (
    _t("meta", [("key", "text", "NOT NULL"), ("value", "text", "NOT NULL")], ["key"]),
    _t("targets", [("name", "text", "NOT NULL"), ("serial", "int", "NOT NULL")], ["name"]),
    _t("items", [
        ("target", "text", "NOT NULL"), ("record", "text", "NOT NULL"), ("key", "text", "NOT NULL"),
        ("sku", "text", "NOT NULL"), ("payload", "text", "NOT NULL"), ("hash", "bytes", "NOT NULL"),
        ("remote_id", "text", ""), ("last_action", "text", ""), ("last_outcome", "text", ""),
        ("updated_at", "text", ""),
    ], ["target", "record", "key"], [("items_sku", ("sku",))], clustered=True),
    _t("jobs", [
        ("id", "id", ""), ("target", "text", "NOT NULL"), ("handle", "text", "NOT NULL"),
        ("operations", "text", "NOT NULL"), ("created_at", "text", "NOT NULL"), ("apply_id", "int", ""),
    ], (), [("jobs_target", ("target",))]),
    _t("applies", [
        ("id", "id", ""), ("started_at", "text", "NOT NULL"), ("finished_at", "text", ""),
        ("serial", "int", "NOT NULL"), ("targets", "text", "NOT NULL"), ("status", "text", "NOT NULL"),
        ("counts", "text", ""),
    ]),
    _t("failures", [
        ("apply_id", "int", ""), ("target", "text", "NOT NULL"), ("record", "text", "NOT NULL"),
        ("key", "text", "NOT NULL"), ("sku", "text", "NOT NULL"), ("action", "text", "NOT NULL"),
        ("reason", "text", ""), ("at", "text", "NOT NULL"),
    ], ["target", "record", "key"]),
    _t("requests", [
        ("id", "id", ""), ("target", "text", "NOT NULL"), ("endpoint", "text", "NOT NULL"),
        ("sent_at", "real", "NOT NULL"), ("status", "int", ""), ("items", "int", ""), ("bytes", "int", ""),
        ("scope", "text", ""), ("answered_at", "real", ""),
    ], (), [("requests_window", ("target", "sent_at")), ("requests_scope", ("scope", "sent_at"))]),
    _t("locks", [
        ("scope", "text", "NOT NULL"), ("lock_id", "text", "NOT NULL"), ("command", "text", "NOT NULL"),
        ("pid", "int", "NOT NULL"), ("host", "text", "NOT NULL"), ("acquired_at", "text", "NOT NULL"),
        ("session", "int", ""),
    ], ["scope"]),
)
TABLES = {table.name: table for table in BASELINE}

# Steps after the baseline: MIGRATIONS[i] takes version BASELINE_VERSION + i to the next.
IDENTITIES = _t("identities", [
    ("target", "text", "NOT NULL"), ("identity", "text", "NOT NULL"), ("recorded_at", "text", "NOT NULL"),
], ["target"])


def _v5_target_identities(conn: "Connection") -> None:
    # Each target's identity (provider, base URL, the settings naming its remote
    # catalog): a plan is refused for a target the manifests now point elsewhere than
    # where its items were confirmed. Older states have none: their next write records it.
    conn.create(IDENTITIES)


ACCEPTED = _t("accepted", [
    ("target", "text", "NOT NULL"), ("record", "text", "NOT NULL"), ("key", "text", "NOT NULL"),
    ("sku", "text", "NOT NULL"), ("action", "text", "NOT NULL"), ("apply_id", "int", ""), ("at", "text", "NOT NULL"),
], ["target", "record", "key"])


def _v6_outcome_vocabulary(conn: "Connection") -> None:
    # Outcomes say what the destination said: confirmed (it applied the item),
    # accepted (it only acknowledged receipt, e.g. a queue), failed. Rows written
    # before said applied or rejected; which of the applied ones were only
    # acknowledged, the state cannot tell: they are taken as confirmed.
    conn.execute("UPDATE items SET last_outcome = 'confirmed' WHERE last_outcome = 'applied'")
    conn.execute("UPDATE items SET last_outcome = 'failed' WHERE last_outcome = 'rejected'")
    conn.create(ACCEPTED)


COMPACT_ITEMS = _t("items", [
    ("target", "text", "NOT NULL"), ("record", "text", "NOT NULL"), ("key", "text", "NOT NULL"),
    ("sku", "text", ""), ("payload", "bytes", "NOT NULL"), ("dictionary", "int", ""), ("hash", "bytes", "NOT NULL"),
    ("remote_id", "text", ""), ("last_write", "int", ""), ("updated_at", "int", ""),
], ["target", "record", "key"], [("items_sku", ("sku",), "sku IS NOT NULL")], clustered=True)
DICTIONARIES = _t("dictionaries", [
    ("target", "text", "NOT NULL"), ("record", "text", "NOT NULL"), ("id", "int", "NOT NULL"),
    ("data", "bytes", "NOT NULL"),
], ["target", "record", "id"])
MIGRATION_PAGE = 5000


def _v7_compact_items(conn: "Connection") -> None:
    # items is rebuilt (a column's type changes): the old table aside, the new one
    # filled a page at a time in key order (bounded memory on either backend), each
    # target's payloads packed as a writer packs them. A time that is not ISO 8601, or
    # an action or outcome word no version wrote (only a state edited by hand holds
    # one), becomes null: the item itself is kept.
    conn.execute("DROP INDEX items_sku")
    conn.rename_table("items", "items_v6")
    conn.create(DICTIONARIES)
    conn.create(COMPACT_ITEMS)
    names = "target, record, key, sku, payload, hash, remote_id, last_action, last_outcome, updated_at"
    insert = f"INSERT INTO items ({', '.join(COMPACT_ITEMS.column_names)}) VALUES ({','.join('?' * 10)})"
    payloads, after = Payloads(), None
    while True:
        where = "WHERE (target, record, key) > (?, ?, ?) " if after else ""
        rows = conn.execute(f"SELECT {names} FROM items_v6 {where}ORDER BY target, record, key LIMIT {MIGRATION_PAGE}",
                            after or ()).fetchall()
        if not rows:
            break
        conn.executemany(insert, payloads.pack_rows(conn, [
            (target, record, key, columns.stored_sku(sku, key), _bytes(payload), bytes(digest), remote_id,
             columns.last_write(action, outcome), columns.seconds(updated))
            for target, record, key, sku, payload, digest, remote_id, action, outcome, updated in rows], at=4))
        after = rows[-1][:3]
    conn.execute("DROP TABLE items_v6")


def _bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else bytes(text)


MIGRATIONS: list[Callable[["Connection"], None]] = [_v5_target_identities, _v6_outcome_vocabulary,
                                                    _v7_compact_items]
SCHEMA_VERSION = BASELINE_VERSION + len(MIGRATIONS)
CURRENT = (*(COMPACT_ITEMS if table.name == "items" else table for table in BASELINE), IDENTITIES, ACCEPTED,
           DICTIONARIES)


def build(conn: "Connection", version: int = SCHEMA_VERSION) -> None:
    """The tables of schema ``version`` (the baseline or later) in an empty database:
    the baseline, then the migrations up to ``version``."""
    for table in BASELINE:
        conn.create(table)
    for migration in MIGRATIONS[:version - BASELINE_VERSION]:
        migration(conn)


# -- SQLite files older than the baseline (frozen) ----------------------------------------------
def _run(conn, script: str) -> None:
    # Statement by statement: executescript() would commit the open transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1_items(conn) -> None:
    _run(conn, """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE items (
            target TEXT NOT NULL, record TEXT NOT NULL, key TEXT NOT NULL, sku TEXT NOT NULL,
            payload TEXT NOT NULL, hash TEXT NOT NULL, remote_id TEXT, last_action TEXT,
            last_outcome TEXT, updated_at TEXT, PRIMARY KEY (target, record, key)
        ) WITHOUT ROWID;
        CREATE INDEX items_sku ON items (sku);
    """)


def _v2_apply_bookkeeping(conn) -> None:
    _run(conn, """
        CREATE TABLE jobs (id INTEGER PRIMARY KEY, target TEXT NOT NULL, handle TEXT NOT NULL,
            operations TEXT NOT NULL, created_at TEXT NOT NULL, apply_id INTEGER);
        CREATE INDEX jobs_target ON jobs (target);
        CREATE TABLE applies (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,
            serial INTEGER NOT NULL, targets TEXT NOT NULL, status TEXT NOT NULL, counts TEXT);
        CREATE TABLE failures (apply_id INTEGER, target TEXT NOT NULL, record TEXT NOT NULL,
            key TEXT NOT NULL, sku TEXT NOT NULL, action TEXT NOT NULL, reason TEXT, at TEXT NOT NULL,
            PRIMARY KEY (target, record, key));
        CREATE TABLE requests (id INTEGER PRIMARY KEY, target TEXT NOT NULL, endpoint TEXT NOT NULL,
            sent_at REAL NOT NULL, status INTEGER, items INTEGER, bytes INTEGER);
        CREATE INDEX requests_window ON requests (target, sent_at);
        CREATE TABLE lock (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL,
            pid INTEGER NOT NULL, host TEXT NOT NULL, acquired_at TEXT NOT NULL);
    """)


def _v3_binary_digests(conn) -> None:
    # Digests were hex text; now the 16 raw bytes of the same blake2b (same input), so
    # a plan compares them without decoding.
    rows = conn.execute("SELECT hash, target, record, key FROM items WHERE typeof(hash) = 'text'").fetchall()
    conn.executemany("UPDATE items SET hash = ? WHERE target = ? AND record = ? AND key = ?",
                     [(bytes.fromhex(digest), *ident) for digest, *ident in rows])


def _v4_target_serials_and_locks(conn) -> None:
    # Per-target serials start at the state's serial (a plan made before knows only
    # that one); per-scope lock rows replace the single lock row; request rows learn
    # their window's scope and when they were answered.
    _run(conn, """
        CREATE TABLE targets (name TEXT NOT NULL, serial INTEGER NOT NULL, PRIMARY KEY (name));
        CREATE TABLE locks (scope TEXT NOT NULL, lock_id TEXT NOT NULL, command TEXT NOT NULL,
            pid INTEGER NOT NULL, host TEXT NOT NULL, acquired_at TEXT NOT NULL, session INTEGER,
            PRIMARY KEY (scope));
        ALTER TABLE requests ADD COLUMN scope TEXT;
        ALTER TABLE requests ADD COLUMN answered_at REAL;
        CREATE INDEX requests_scope ON requests (scope, sent_at);
        DROP TABLE lock
    """)
    conn.execute("INSERT INTO targets (name, serial) SELECT DISTINCT target, "
                 "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'serial') FROM items")


LEGACY = [_v1_items, _v2_apply_bookkeeping, _v3_binary_digests, _v4_target_serials_and_locks]
assert len(LEGACY) == BASELINE_VERSION
