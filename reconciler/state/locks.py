"""Locks on a state: per target, or on the whole state (scope ``*``).

Every command that writes takes one: ``apply`` and ``status`` lock their targets,
``import`` its targets, ``state rm`` the targets it forgets from, a schema migration
and ``state migrate`` the whole state. A target lock conflicts with the same target's
and with the whole-state lock; the whole-state lock conflicts with every lock. So
``apply -t A`` and ``apply -t B`` run at once, from any machines.

Each held scope has a row in ``locks`` naming its holder (lock id, command, pid,
host, since), which is what a refused command and ``state unlock`` show. What makes a
lock held differs by backend:

* SQLite (:class:`RowLocks`): the row itself, written in a ``BEGIN IMMEDIATE``
  transaction that first checks the others. A holder whose process is gone *on this
  host* is dead and its rows are taken over; a holder on another host is never judged
  dead by its pid (another machine's pids mean nothing here).
* PostgreSQL (:class:`AdvisoryLocks`): a session advisory lock on a connection kept
  for the lock's lifetime (target scopes also take ``*`` shared). A killed runner's
  session ends and its locks go with it at once; its row is then stale and ignored.
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reconciler.errors import StateError
from reconciler.state.dialect import Connection, Postgres, advisory_key

WHOLE = "*"
UNNAMED = "?"  # the lock id of a holder no lock row names (described from the database's own records)
SETTLE_SECONDS = 2.0  # how long a refused attempt waits for its holder's row to appear (or its lock to go)
RESERVE = 64 * 1024  # bytes kept beside a SQLite state by a lock holder, given back on a full disk
COLUMNS = "scope, lock_id, command, pid, host, acquired_at, session"


@dataclass(frozen=True)
class Holder:
    scope: str
    lock_id: str
    command: str
    pid: int
    host: str
    acquired_at: str
    session: int | None = None

    @property
    def what(self) -> str:
        return "the whole state" if self.scope == WHOLE else f"target {self.scope}"

    def who(self) -> str:
        if self.lock_id == UNNAMED:
            return f"{self.command} (since {self.acquired_at})"
        return f"{self.command} (pid {self.pid} on {self.host}, since {self.acquired_at}, lock id {self.lock_id})"

    def describe(self) -> str:
        return f"{self.what} is locked by {self.who()}"


class LockedError(StateError):
    """A lock is held by someone else."""

    def __init__(self, location: str, holders: Sequence[Holder], wanted: str):
        self.holders = list(holders)
        lines = "\n  ".join(h.describe() for h in self.holders)
        super().__init__(
            f"cannot lock {wanted} of the state {location}:\n  {lines}\n"
            "Wait for it to finish (or use --lock-timeout). If it is certainly not running, "
            "`reconciler state unlock` removes a dead holder's lock and "
            "`reconciler state unlock --force LOCK_ID` any other.")


def conflicts(scope: str, wanted: Sequence[str]) -> bool:
    return WHOLE in wanted or scope == WHOLE or scope in wanted


def new_holder(scopes: Sequence[str], command: str, stamp: str, session: int | None = None) -> list[Holder]:
    lock_id = uuid.uuid4().hex[:12]
    host, pid = socket.gethostname(), os.getpid()
    return [Holder(scope, lock_id, command, pid, host, stamp, session) for scope in scopes]


def read_holders(conn: Connection) -> list[Holder]:
    return [Holder(*row) for row in conn.execute(f"SELECT {COLUMNS} FROM locks ORDER BY scope")]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_wanted(scopes: Sequence[str]) -> str:
    return "the whole state" if WHOLE in scopes else "target " + ", ".join(scopes)


class RowLocks:
    """SQLite: a lock is its rows; a dead holder on this host is taken over."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def alive(self, holder: Holder) -> bool | None:
        """True, False, or None when it cannot be known from here (another host)."""
        if holder.host != socket.gethostname():
            return None
        return pid_alive(holder.pid)

    def try_acquire(self, holders: list[Holder]) -> list[Holder]:
        """Take ``holders``' scopes; returns the live holders in the way (nothing taken then)."""
        wanted = [h.scope for h in holders]
        with self.conn.transaction():
            blocking = []
            for held in read_holders(self.conn):
                if not conflicts(held.scope, wanted):
                    continue
                if self.alive(held) is False:
                    self.conn.execute("DELETE FROM locks WHERE scope = ? AND lock_id = ?", (held.scope, held.lock_id))
                else:
                    blocking.append(held)
            if not blocking:
                self.conn.executemany(f"INSERT INTO locks ({COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                                      [_row(h) for h in holders])
        if not blocking:
            self.keep_reserve()
        return blocking

    def release(self, holders: list[Holder]) -> None:
        try:
            self._delete(holders)
        except StateError:
            # A full disk: even a deletion needs room in the log. The reserve file
            # made when the lock was taken gives that room back; try once more.
            self._reserve().unlink(missing_ok=True)
            self._delete(holders)

    def _reserve(self) -> Path:
        path = self.conn.location.path
        return path.with_name(path.name + "-reserve")

    def keep_reserve(self) -> None:
        """Room on the disk for releasing the lock when a full disk stops the holder."""
        try:
            reserve = self._reserve()
            if not reserve.exists():
                reserve.write_bytes(bytes(RESERVE))
        except OSError:
            pass  # no room even for that: the lock is released when this process has ended

    def _delete(self, holders: list[Holder]) -> None:
        with self.conn.transaction():
            self.conn.execute("DELETE FROM locks WHERE lock_id = ?", (holders[0].lock_id,))

    def session_id(self) -> None:
        return None

    def end(self, holder: Holder) -> None:
        """Nothing holds a row lock but its row."""

    def close(self) -> None:
        pass


class AdvisoryLocks:
    """PostgreSQL: session advisory locks on a connection of their own."""

    def __init__(self, conn: Postgres):
        self.conn = conn
        self.session: Postgres | None = None
        self.keys: list[tuple[int, bool]] = []

    def _key(self, scope: str) -> int:
        return advisory_key(self.conn.location.schema, scope)

    def alive(self, holder: Holder) -> bool | None:
        return (holder.session, self._key(holder.scope)) in self._granted()

    def _granted(self) -> list[tuple[int, int]]:
        """``(backend pid, key)`` of every advisory lock granted in this database."""
        rows = self.conn.execute(
            "SELECT pid, classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
        return [(pid, _signed((high << 32) | low)) for pid, high, low in rows]

    def session_id(self) -> int:
        if self.session is None:
            self.session = Postgres.open(self.conn.location, read_only=False)
        return self.session.execute("SELECT pg_backend_pid()").fetchone()[0]

    def try_acquire(self, holders: list[Holder]) -> list[Holder]:
        wanted = [h.scope for h in holders]
        keys = [(self._key(WHOLE), False)] if WHOLE in wanted else \
            [(self._key(WHOLE), True)] + [(self._key(scope), False) for scope in wanted]
        deadline = time.monotonic() + SETTLE_SECONDS
        while not self._take(keys):
            blocking = [h for h in read_holders(self.conn) if conflicts(h.scope, wanted) and self.alive(h)]
            if blocking:
                return blocking
            # Refused, yet no live holder's row names it: a holder between taking its
            # advisory lock and writing its row, or one releasing it (or whose ended
            # session is going). A moment settles which; then it is named, or free.
            if time.monotonic() >= deadline:
                return self._unnamed(wanted)
            time.sleep(0.02)
        with self.conn.transaction():
            self.conn.executemany(
                f"INSERT INTO locks ({COLUMNS}) VALUES (?,?,?,?,?,?,?) ON CONFLICT (scope) DO UPDATE SET "
                "lock_id = excluded.lock_id, command = excluded.command, pid = excluded.pid, "
                "host = excluded.host, acquired_at = excluded.acquired_at, session = excluded.session",
                [_row(h) for h in holders])
        return []

    def _take(self, keys: list[tuple[int, bool]]) -> bool:
        """Take every key (all or none)."""
        taken: list[tuple[int, bool]] = []
        for key, shared in keys:
            function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
            if not self.session.execute(f"SELECT {function}(?)", (key,)).fetchone()[0]:
                self._unlock(taken)
                return False
            taken.append((key, shared))
        self.keys = taken
        return True

    def _unnamed(self, wanted: list[str]) -> list[Holder]:
        """The sessions holding what ``wanted`` needs that no lock row names (a row
        removed by hand, a foreign program), described from PostgreSQL's records."""
        mine = self.session.execute("SELECT pg_backend_pid()").fetchone()[0]
        needed = {self._key(WHOLE), *(self._key(scope) for scope in wanted)}
        pids = sorted({pid for pid, key in self._granted() if key in needed and pid != mine})
        rows = self.conn.execute(
            "SELECT pid, application_name, coalesce(host(client_addr), 'a local socket'), backend_start "
            "FROM pg_stat_activity WHERE pid = ANY(?)", (pids,)).fetchall() if pids else []
        scope = WHOLE if WHOLE in wanted else wanted[0]
        return [Holder(scope, UNNAMED, f"a PostgreSQL session of {application or 'an unnamed program'} (backend pid "
                                       f"{pid}, from {client}) that no lock row names", 0, client,
                       str(started), pid)
                for pid, application, client, started in rows] or \
            [Holder(scope, UNNAMED, "a PostgreSQL session that held the lock a moment ago", 0, "?", "just now")]

    def _unlock(self, keys: list[tuple[int, bool]]) -> None:
        for key, shared in reversed(keys):
            function = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
            self.session.execute(f"SELECT {function}(?)", (key,))

    def release(self, holders: list[Holder]) -> None:
        # Unlocked before its row goes (a lock never held without its row but while
        # being taken), and before the session closes (a closed connection's backend
        # may linger a moment, still holding it). A next holder's row replaces this
        # one's, which is deleted by its lock id only.
        try:
            try:
                self._unlock(self.keys)
            except StateError:
                pass
            with self.conn.transaction():
                self.conn.execute("DELETE FROM locks WHERE lock_id = ?", (holders[0].lock_id,))
        finally:
            self.close()

    def end(self, holder: Holder) -> None:
        """End the holder's database session, which releases its advisory locks, and
        wait (bounded) until it has: ending a session only asks it to go."""
        if holder.session is not None and self.alive(holder):
            self.conn.execute("SELECT pg_terminate_backend(?)", (holder.session,))
            wait_for(lambda: [holder] if self.alive(holder) else [], timeout=10.0, interval=0.02)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()  # its advisory locks go with the session
            self.session, self.keys = None, []


def _row(holder: Holder) -> tuple:
    return (holder.scope, holder.lock_id, holder.command, holder.pid, holder.host, holder.acquired_at,
            holder.session)


def _signed(key: int) -> int:
    return key - (1 << 64) if key >= 1 << 63 else key


def lock_strategy(conn: Connection) -> RowLocks | AdvisoryLocks:
    return AdvisoryLocks(conn) if isinstance(conn, Postgres) else RowLocks(conn)


def wait_for(try_once, timeout: float, interval: float = 0.5):
    """``try_once()`` until it returns no blockers or ``timeout`` seconds passed;
    returns the last blockers (empty: acquired)."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        blocking = try_once()
        if not blocking or time.monotonic() >= deadline:
            return blocking
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
