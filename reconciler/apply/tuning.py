"""The engine's knobs that the spec leaves to us (tests and a time-scaled sandbox make
them faster), shared by apply, settle and the drift reader.

Four of them bound what one target's destination may cost, and a target's ``limits``
may set them (:meth:`Tuning.for_target`; the keys are the field names): the deadline
of one request, the size of one answer, the longest ``Retry-After`` honoured and the
retry budget (:mod:`reconciler.apply.retry`)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from reconciler.apply.retry import RetryPolicy

if TYPE_CHECKING:
    from reconciler.manifest.models import Target

# The keys of a target's ``limits`` that set a Tuning field of the same name.
TARGET_BOUNDS = ("request_timeout_seconds", "max_response_bytes", "max_retry_after_seconds", "retry_budget_seconds")


@dataclass(frozen=True)
class Tuning:
    max_attempts: int = 8            # sends of one item (status calls of a job, reads of a page) before giving up
    backoff_base: float = 0.5        # seconds; the n-th retry waits U(0, min(cap, base * 2**(n-1)))
    backoff_cap: float = 30.0
    poll_initial: float = 0.25       # first poll of a job after this, then * poll_factor
    poll_factor: float = 1.5
    poll_cap: float = 30.0
    poll_timeout: float = 3600.0     # a job still running after this is left pending
    poll_concurrency: int = 2        # status requests in flight per target
    default_in_flight: int = 4       # when the provider documents no limit
    connect_timeout: float = 10.0    # within the request's deadline
    request_timeout_seconds: float = 60.0       # connect + send + the whole answer of one request
    max_response_bytes: int = 64 * 1024 * 1024  # of one answer's body: a larger one stops the target
    max_retry_after_seconds: float = 300.0      # a longer Retry-After stops the target
    retry_budget_seconds: float = 300.0         # how long a target may keep failing (retry.RetryBudget)
    record_chunk: int = 5000         # local outcomes per transaction
    window_scale: float = 1.0        # multiplies rate windows: only for a time-scaled sandbox
    head_start: float = 3.0          # at most, for targets that need several rate windows (scheduling)
    split_requests: int = 64         # requests a target may spend bisecting requests refused as a whole

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of writes, job polls and reads."""
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap,
                           self.max_retry_after_seconds, self.retry_budget_seconds)

    def for_target(self, target: "Target") -> "Tuning":
        """This tuning with the bounds ``target``'s ``limits`` sets."""
        if target.limits is None:
            return self
        return replace(self, **target.limits.model_dump(include=set(TARGET_BOUNDS), exclude_none=True))
