"""The engine's knobs that the spec leaves to us (tests and a time-scaled sandbox make
them faster), shared by apply, settle and the drift reader."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.apply.retry import RetryPolicy


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
    connect_timeout: float = 10.0
    timeout: float = 120.0           # read/write/pool timeout of one request
    record_chunk: int = 5000         # local outcomes per transaction
    window_scale: float = 1.0        # multiplies rate windows: only for a time-scaled sandbox
    head_start: float = 3.0          # at most, for targets that need several rate windows (scheduling)
    split_requests: int = 64         # requests a target may spend bisecting requests refused as a whole

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of writes, job polls and reads."""
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap)
