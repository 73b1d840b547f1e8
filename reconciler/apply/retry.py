"""The retry policy: how many times a transient failure is tried, how long to wait
before each new attempt, and when a target stops trying at all.

One policy for everything the engine sends: writes (:mod:`reconciler.apply.target`),
status calls of asynchronous jobs (:mod:`reconciler.apply.polling`) and catalog reads
(:mod:`reconciler.drift.reader`). At most ``max_attempts`` attempts of one item, status
call or read; the n-th retry waits a delay drawn uniformly between 0 and
``min(backoff_cap, backoff_base * 2**(n-1))`` (exponential backoff with full jitter),
and never less than the destination asked for (``Retry-After``).

A target's :class:`RetryBudget` bounds the whole: its failures in a row (attempts
that got no usable answer, none answered in between) stop it with one message when

* the destination asks to wait longer than ``max_retry_after`` seconds;
* a retry would start more than ``budget`` seconds after the first of them;
* an item, job or read runs out of attempts while every attempt of the target fails
  (``max_attempts`` or more failures in a row): the destination is failing, not that
  item, so one message says so instead of a failure per item.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from reconciler.errors import DestinationError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8           # attempts of one item, status call or read
    backoff_base: float = 0.5       # seconds
    backoff_cap: float = 30.0
    max_retry_after: float = 300.0  # seconds; a destination asking for longer stops the target
    budget: float = 300.0           # seconds a target's failures in a row may last

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` attempts were all there may be."""
        return attempts >= self.max_attempts

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1``: full jitter over an exponential
        ceiling, never less than ``retry_after``."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return max(rng.uniform(0, ceiling), retry_after or 0.0)


class RetryBudget:
    """One target's failures in a row, shared by its writes, polls and reads (see the
    module doc). ``provider`` names the destination in the messages."""

    def __init__(self, policy: RetryPolicy, provider: str):
        self.policy = policy
        self.provider = provider
        self.in_row = 0
        self.since: float | None = None  # monotonic time of the first failure in a row
        self.last = ""

    def answered(self) -> None:
        """An attempt got a usable answer: the failures in a row are over."""
        self.in_row = 0
        self.since = None

    def failed(self, reason: str, retry_after: float | None = None) -> None:
        """Count a failed attempt; raises :class:`DestinationError` when the destination
        asks to wait longer than the policy honours."""
        cap = self.policy.max_retry_after
        if retry_after is not None and retry_after > cap:
            raise DestinationError(f"{self.provider} asks to wait {math.ceil(retry_after)} s; run again later "
                                   f"(limits.max_retry_after_seconds is {cap:g} s)")
        self.in_row += 1
        if self.since is None:
            self.since = time.monotonic()
        self.last = reason

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The policy's delay before attempt ``attempt + 1``; raises
        :class:`DestinationError` when that attempt would start past the budget."""
        delay = self.policy.delay(attempt, retry_after, rng)
        if self.since is not None and time.monotonic() + delay - self.since > self.policy.budget:
            raise self.spent()
        return delay

    def next_delay(self, attempt: int, reason: str, retry_after: float | None,
                   rng: random.Random) -> float | None:
        """Count the failed ``attempt``-th attempt of one read or status call
        (:meth:`failed`) and return the delay before the next one; None when that was
        its last attempt (after :meth:`give_up`). Raises :class:`DestinationError`
        when the target must stop."""
        self.failed(reason, retry_after)
        if self.policy.exhausted(attempt):
            self.give_up()
            return None
        return self.delay(attempt, retry_after, rng)

    def give_up(self) -> None:
        """Something ran out of attempts: raises :class:`DestinationError` if every
        attempt of the target fails, so that the target stops with one message."""
        if self.in_row >= self.policy.max_attempts:
            raise self.spent()

    def spent(self) -> DestinationError:
        lasted = time.monotonic() - self.since if self.since is not None else 0.0
        return DestinationError(
            f"{self.provider} kept failing: {self.in_row} attempts in a row in {lasted:.1f} s got no usable answer "
            f"(last: {self.last}); stopped (limits.retry_budget_seconds is {self.policy.budget:g} s); "
            "run again later")
