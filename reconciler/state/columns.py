"""How an item's small columns are stored, and read back as the words and times shown.

The ``items`` table holds a row per item of every target, so each byte of a row is
paid a million times: ``sku`` is null when it is the item's key (most providers key
items by sku); the last write's action and outcome are one small integer
(``last_write``: action × 4 + outcome); ``updated_at`` is whole seconds since the
epoch (UTC), shown as the ISO 8601 text it replaced.
"""
from __future__ import annotations

from datetime import datetime, timezone

ACTIONS = (None, "create", "update", "delete", "import")
OUTCOMES = (None, "confirmed", "accepted", "failed")
_ACTION_CODES = {word: code for code, word in enumerate(ACTIONS)}
OUTCOME_CODES = {word: code for code, word in enumerate(OUTCOMES)}


def with_outcome(outcome: str) -> str:
    """SQL for a row's ``last_write`` with its outcome set to ``outcome``, its action kept."""
    return f"coalesce(last_write, 0) - coalesce(last_write, 0) % {len(OUTCOMES)} + {OUTCOME_CODES[outcome]}"


def last_write(action: str | None, outcome: str | None) -> int | None:
    """The code of a write's action and outcome (None for neither). A word no
    version of reconciler wrote (a state edited by hand) is stored as unknown."""
    code = _ACTION_CODES.get(action, 0) * len(OUTCOMES) + OUTCOME_CODES.get(outcome, 0)
    return code or None


def words(code: int | None) -> tuple[str | None, str | None]:
    """``(last action, last outcome)`` of a ``last_write`` code."""
    if code is None:
        return None, None
    action, outcome = divmod(code, len(OUTCOMES))
    return (ACTIONS[action] if 0 <= action < len(ACTIONS) else None), OUTCOMES[outcome]


def seconds(stamp: str | None) -> int | None:
    """An ISO 8601 time as whole seconds since the epoch (None when it is not one)."""
    if stamp is None:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def iso(stamp: int | None) -> str | None:
    """Whole seconds since the epoch as the ISO 8601 text (UTC) the state shows."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")


def stored_sku(sku: str, key: str) -> str | None:
    return None if sku == key else sku
