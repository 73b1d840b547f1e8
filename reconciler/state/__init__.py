"""The state snapshot (SQLite or PostgreSQL): see :mod:`reconciler.state.store`."""
from reconciler.state.location import Location
from reconciler.state.locks import Holder, LockedError
from reconciler.state.schema import SCHEMA_VERSION
from reconciler.state.store import Item, PendingJob, State, payload_digest

__all__ = ["Holder", "Item", "Location", "LockedError", "PendingJob", "SCHEMA_VERSION", "State", "payload_digest"]
