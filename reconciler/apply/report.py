"""Progress of an apply: a :class:`Reporter` receives events; two implementations.

* :class:`~reconciler.apply.bars.RichReporter`: a progress bar per target, for a
  terminal (:mod:`reconciler.apply.bars`);
* :class:`PlainReporter`: one line per event, for logs and CI (progress lines at most
  once per ``interval`` seconds per target; a wait is said when it starts, with the
  time of the next slot, and when it ends);

and from both a closing summary per target, then one overall line and the failed
items (unless ``overall`` is off: ``status`` says what it did itself). Events carry
counts, endpoint names and reasons only; a reason is redacted of the target's
credentials before it gets here, and escaped here (a server's reason may hold newlines,
escape sequences or rich markup). Callbacks run on the apply's event loop: they must be
quick. An exception raised by a callback (KeyboardInterrupt included) stops the apply
as an interrupt would.
"""
from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Mapping, Protocol, runtime_checkable

from reconciler.display import printable

if TYPE_CHECKING:
    from reconciler.apply.result import ApplyResult, TargetResult


@runtime_checkable
class Reporter(Protocol):
    def target_started(self, target: str, provider: str, total: int) -> None: ...
    def request_sent(self, target: str, endpoint: str, items: int) -> None: ...
    def recorded(self, target: str, counts: Mapping[str, int]) -> None:
        """A batch of outcomes was committed: ``{confirmed, accepted, failed, pending, local}``
        deltas (``pending`` goes negative when jobs settle)."""
    def waiting(self, target: str, until: float | None, why: str) -> None:
        """Requests of ``target`` wait for ``why`` (``"<provider>'s window"``) until
        ``until`` (wall clock; None: until a request in flight is answered). Said when
        the wait begins and again when the next slot moves."""
    def waited(self, target: str, seconds: float) -> None:
        """The wait ended: ``seconds`` of wall time."""
    def retrying(self, target: str, items: int, reason: str, delay: float) -> None: ...
    def message(self, target: str, text: str) -> None: ...
    def target_finished(self, target: str, result: "TargetResult") -> None: ...
    def finished(self, result: "ApplyResult") -> None: ...


class NullReporter:
    """Reports nothing; a base class for reporters that want a few events only."""

    def target_started(self, target: str, provider: str, total: int) -> None:
        pass

    def request_sent(self, target: str, endpoint: str, items: int) -> None:
        pass

    def recorded(self, target: str, counts: Mapping[str, int]) -> None:
        pass

    def waiting(self, target: str, until: float | None, why: str) -> None:
        pass

    def waited(self, target: str, seconds: float) -> None:
        pass

    def retrying(self, target: str, items: int, reason: str, delay: float) -> None:
        pass

    def message(self, target: str, text: str) -> None:
        pass

    def target_finished(self, target: str, result: "TargetResult") -> None:
        pass

    def finished(self, result: "ApplyResult") -> None:
        pass


DONE = ("confirmed", "accepted", "failed", "local")  # the counts of finished items


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary_line(result: "TargetResult") -> str:
    parts = [f"{result.confirmed} confirmed"]
    if result.accepted:
        parts.append(f"{result.accepted} only accepted")
    if result.local:
        parts.append(f"{result.local} recorded locally")
    parts.append(f"{result.failed} failed")
    if result.pending:
        parts.append(f"{result.pending} pending")
    if result.not_sent:
        parts.append(f"{result.not_sent} not sent")
    if result.requests or not result.polls:
        parts.append(_count(result.requests, "request"))
    else:  # a settle: only status requests
        parts.append(_count(result.polls, "status request"))
    if result.wait_seconds >= 0.05:
        parts.append(f"{result.wait_seconds:.1f}s waiting for rate windows")
    parts.append(f"in {result.seconds:.1f}s")
    text = f"{result.name} ({result.provider}): " + ", ".join(parts)
    if result.error:
        text += f"; stopped: {printable(result.error)}"
    elif result.interrupted:
        text += "; interrupted"
    return text


def result_line(result: "ApplyResult") -> str:
    """The apply as a whole, in one line."""
    totals = result.totals()
    waited = f", {result.wait_seconds:.1f}s waiting for rate windows" if result.wait_seconds >= 0.05 else ""
    outcome = "interrupted" if result.interrupted else "complete" if result.ok else "finished with failures"
    return (f"Apply {outcome}: {totals['confirmed']} confirmed, {totals['accepted']} only accepted, "
            f"{totals['failed']} failed, {totals['pending']} pending, "
            f"{_count(totals['requests'], 'request')}{waited} in {result.seconds:.1f}s.")


def wait_text(until: float | None, why: str) -> str:
    """``waiting for <provider>'s window, next slot 12:04:31``."""
    if until is None:
        return f"waiting for {why} (a slot frees when a request in flight is answered)"
    return f"waiting for {why}, next slot {time.strftime('%H:%M:%S', time.localtime(until))}"


def failure_lines(result: "ApplyResult", limit: int = 20) -> list[str]:
    """What the closing line is followed by: the only-accepted items said once, then
    the failed items."""
    lines = []
    accepted = result.totals()["accepted"]
    if accepted:
        lines.append(f"{_count(accepted, 'item')} only accepted: the destination acknowledged receipt and gives no "
                     "final result per item (`reconciler status` lists them; `status --verify` reads back those "
                     "that can be read).")
    for failure in result.failures[:limit]:
        lines.append(printable(f"  {failure.target}: {failure.action} {failure.record} {failure.sku}: {failure.reason}"))
    if len(result.failures) > limit:
        lines.append(f"  ... and {len(result.failures) - limit} more (see `reconciler status`)")
    return lines


class PlainReporter(NullReporter):
    def __init__(self, stream: IO[str] | None = None, interval: float = 2.0, overall: bool = True,
                 min_wait: float = 1.0):
        self.stream = stream or sys.stderr
        self.interval = interval
        self.overall = overall
        self.min_wait = min_wait  # a shorter wait is no news
        self._totals: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def target_started(self, target: str, provider: str, total: int) -> None:
        self._totals[target] = total
        self._done[target] = 0
        self._last[target] = time.monotonic()
        self._line(f"{target}: applying {total} changes ({provider})")

    def recorded(self, target: str, counts: Mapping[str, int]) -> None:
        self._done[target] = self._done.get(target, 0) + sum(
            counts.get(k, 0) for k in DONE)
        now = time.monotonic()
        if now - self._last.get(target, 0.0) >= self.interval:
            self._last[target] = now
            self._line(f"{target}: {self._done[target]}/{self._totals.get(target, '?')} done")

    def waiting(self, target: str, until: float | None, why: str) -> None:
        # a wait of unknown end is one for answers to requests in flight: short, and said when it ends
        if until is not None and until - time.time() >= self.min_wait:
            self._line(f"{target}: {wait_text(until, why)}")

    def waited(self, target: str, seconds: float) -> None:
        if seconds >= self.min_wait:
            self._line(f"{target}: waited {seconds:.1f}s; sending")

    def retrying(self, target: str, items: int, reason: str, delay: float) -> None:
        self._line(f"{target}: {items} items to send again in {delay:.1f}s: {printable(reason)}")

    def message(self, target: str, text: str) -> None:
        self._line(f"{target}: {printable(text)}")

    def target_finished(self, target: str, result: "TargetResult") -> None:
        self._line(summary_line(result))

    def finished(self, result: "ApplyResult") -> None:
        if self.overall:
            for line in (result_line(result), *failure_lines(result)):
                self._line(line)


def default_reporter(stream: IO[str] | None = None, color: bool = True, overall: bool = True) -> Reporter:
    """Rich progress bars when ``stream`` (stderr) is a terminal, plain lines otherwise;
    without ``color`` (``--no-color``), the bars are not coloured; without ``overall``,
    no overall line and no list of failed items at the end."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        from reconciler.apply.bars import RichReporter

        return RichReporter(color=color, overall=overall)
    return PlainReporter(stream, overall=overall)
