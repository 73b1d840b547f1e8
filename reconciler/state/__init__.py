"""The state snapshot: see :mod:`reconciler.state.store`."""
from reconciler.state.migrations import SCHEMA_VERSION
from reconciler.state.store import Item, PendingJob, State, payload_digest

__all__ = ["Item", "PendingJob", "SCHEMA_VERSION", "State", "payload_digest"]
