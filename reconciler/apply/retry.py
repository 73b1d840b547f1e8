"""The retry policy: how many times a transient failure is tried, and how long to wait
before each new attempt.

One policy for everything the engine sends: writes (:mod:`reconciler.apply.target`),
status calls of asynchronous jobs (:mod:`reconciler.apply.polling`) and catalog reads
(:mod:`reconciler.drift.reader`). At most ``max_attempts`` attempts; the n-th retry
waits a delay drawn uniformly between 0 and ``min(backoff_cap, backoff_base * 2**(n-1))``
(exponential backoff with full jitter), and never less than the destination asked for
(``Retry-After``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8           # attempts of one item, status call or read
    backoff_base: float = 0.5       # seconds
    backoff_cap: float = 30.0

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` attempts were all there may be."""
        return attempts >= self.max_attempts

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1``: full jitter over an exponential
        ceiling, never less than ``retry_after``."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return max(rng.uniform(0, ceiling), retry_after or 0.0)
