"""What an apply (or a settle) did: counts per target and the items that failed."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Failure:
    """One item the destination refused, or that could not be sent within the attempts."""

    target: str
    sku: str
    record: str
    action: str
    reason: str
    key: str = ""


@dataclass
class TargetResult:
    """Counts of one target. ``total`` is the number of planned operations;
    ``confirmed`` / ``accepted`` / ``failed`` / ``local`` are final (``accepted``: the
    destination only acknowledged receipt), ``pending`` are items of asynchronous jobs
    not finished yet (``settle`` finishes them)."""

    name: str
    provider: str
    total: int = 0
    confirmed: int = 0        # the destination said it applied them
    accepted: int = 0         # the destination only acknowledged receipt (no final per-item result)
    failed: int = 0           # refused, or out of attempts: kept in the state's failures
    pending: int = 0          # in asynchronous jobs not settled yet
    local: int = 0            # recorded without a request (a delete the API cannot do)
    requests: int = 0         # write requests sent, retries included
    items_sent: int = 0       # operations in those requests
    polls: int = 0            # status requests of asynchronous jobs
    retried: int = 0          # operations sent again after a transient failure
    split: int = 0            # requests bisected
    wait_seconds: float = 0.0  # wall time its requests waited for a rate window or a pause
    seconds: float = 0.0      # wall time of the target
    error: str | None = None  # the target stopped (bad credentials, bad settings...)
    interrupted: bool = False

    @property
    def done(self) -> int:
        return self.confirmed + self.accepted + self.failed + self.local

    @property
    def not_sent(self) -> int:
        """Operations neither finished nor pending (a stopped or interrupted target)."""
        return max(0, self.total - self.done - self.pending)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.error is None and not self.interrupted

    def counts(self) -> dict:
        return {
            "total": self.total, "confirmed": self.confirmed, "accepted": self.accepted, "failed": self.failed,
            "pending": self.pending, "local": self.local, "requests": self.requests, "items_sent": self.items_sent,
            "polls": self.polls, "retried": self.retried, "wait_seconds": round(self.wait_seconds, 3),
            "seconds": round(self.seconds, 3), "error": self.error,
        }


@dataclass
class ApplyResult:
    targets: dict[str, TargetResult] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    wait_seconds: float = 0.0  # wall time during which a target waited (not the sum over targets)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """No item failed, no target stopped, not interrupted (pending items are not
        failures: they are confirmed later)."""
        return not self.failures and not self.interrupted and all(t.ok for t in self.targets.values())

    @property
    def errors(self) -> dict[str, str]:
        return {name: t.error for name, t in self.targets.items() if t.error}

    def totals(self) -> dict[str, int]:
        keys = ("total", "confirmed", "accepted", "failed", "pending", "local", "requests")
        return {k: sum(getattr(t, k) for t in self.targets.values()) for k in keys}

    def counts(self) -> dict:
        return {name: t.counts() for name, t in self.targets.items()}
