"""Progress of an apply: a :class:`Reporter` receives events; two implementations.

* :class:`RichReporter`: a progress bar per target (items done/total, requests sent,
  time spent waiting for a rate window), for a terminal;
* :class:`PlainReporter`: one line per event, for logs and CI (progress lines at most
  once per ``interval`` seconds per target);

and a closing summary per target from both. Events carry counts, endpoint names and
reasons only; a reason is redacted of the target's credentials before it gets here, and
escaped here (a server's reason may hold newlines, escape sequences or rich markup).
Callbacks run on the apply's event loop: they must be quick. An exception raised by a
callback (KeyboardInterrupt included) stops the apply as an interrupt would.
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
        """A batch of outcomes was committed: ``{applied, rejected, pending, local}``
        deltas (``pending`` goes negative when jobs settle)."""
    def waiting(self, target: str, seconds: float, why: str) -> None: ...
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

    def waiting(self, target: str, seconds: float, why: str) -> None:
        pass

    def retrying(self, target: str, items: int, reason: str, delay: float) -> None:
        pass

    def message(self, target: str, text: str) -> None:
        pass

    def target_finished(self, target: str, result: "TargetResult") -> None:
        pass

    def finished(self, result: "ApplyResult") -> None:
        pass


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary_line(result: "TargetResult") -> str:
    parts = [f"{result.applied} applied"]
    if result.local:
        parts.append(f"{result.local} recorded locally")
    parts.append(f"{result.rejected} failed")
    if result.pending:
        parts.append(f"{result.pending} pending")
    if result.not_sent:
        parts.append(f"{result.not_sent} not sent")
    parts.append(_count(result.requests, "request"))
    if result.wait_seconds >= 0.05:
        parts.append(f"{result.wait_seconds:.1f}s waiting for rate windows")
    parts.append(f"in {result.seconds:.1f}s")
    text = f"{result.name} ({result.provider}): " + ", ".join(parts)
    if result.error:
        text += f"; stopped: {printable(result.error)}"
    elif result.interrupted:
        text += "; interrupted"
    return text


def _failure_lines(result: "ApplyResult", limit: int = 20) -> list[str]:
    lines = []
    for failure in result.failures[:limit]:
        lines.append(printable(f"  {failure.target}: {failure.action} {failure.record} {failure.sku}: {failure.reason}"))
    if len(result.failures) > limit:
        lines.append(f"  ... and {len(result.failures) - limit} more (see `reconciler status`)")
    return lines


class PlainReporter(NullReporter):
    def __init__(self, stream: IO[str] | None = None, interval: float = 2.0):
        self.stream = stream or sys.stderr
        self.interval = interval
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
            counts.get(k, 0) for k in ("applied", "rejected", "local"))
        now = time.monotonic()
        if now - self._last.get(target, 0.0) >= self.interval:
            self._last[target] = now
            self._line(f"{target}: {self._done[target]}/{self._totals.get(target, '?')} done")

    def waiting(self, target: str, seconds: float, why: str) -> None:
        if seconds >= 1.0:
            self._line(f"{target}: waiting {seconds:.1f}s ({why})")

    def retrying(self, target: str, items: int, reason: str, delay: float) -> None:
        self._line(f"{target}: {items} items to send again in {delay:.1f}s: {printable(reason)}")

    def message(self, target: str, text: str) -> None:
        self._line(f"{target}: {printable(text)}")

    def target_finished(self, target: str, result: "TargetResult") -> None:
        self._line(summary_line(result))

    def finished(self, result: "ApplyResult") -> None:
        totals = result.totals()
        self._line(
            f"Apply {'complete' if result.ok else 'finished with failures' if not result.interrupted else 'interrupted'}: "
            f"{totals['applied']} applied, {totals['rejected']} failed, {totals['pending']} pending, "
            f"{_count(totals['requests'], 'request')} in {result.seconds:.1f}s."
        )
        for line in _failure_lines(result):
            self._line(line)


class RichReporter(NullReporter):
    """A progress bar per target on stderr (rich)."""

    def __init__(self, console=None, color: bool = True):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True, no_color=None if color else True)  # None: NO_COLOR decides
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[requests]} req"),
            TextColumn("{task.fields[waited]}"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, int] = {}
        self._requests: dict[str, int] = {}
        self._waited: dict[str, float] = {}
        self._started = False

    def _task(self, target: str) -> int:
        if not self._started:
            self.progress.start()
            self._started = True
        if target not in self._tasks:
            self._tasks[target] = self.progress.add_task(target, total=None, requests=0, waited="", note="")
        return self._tasks[target]

    def target_started(self, target: str, provider: str, total: int) -> None:
        task = self._task(target)
        self.progress.update(task, total=total, description=f"{target} ({provider})")

    def request_sent(self, target: str, endpoint: str, items: int) -> None:
        self._requests[target] = self._requests.get(target, 0) + 1
        self.progress.update(self._task(target), requests=self._requests[target])

    def recorded(self, target: str, counts: Mapping[str, int]) -> None:
        done = sum(counts.get(k, 0) for k in ("applied", "rejected", "local"))
        if done:
            self.progress.advance(self._task(target), done)

    def waiting(self, target: str, seconds: float, why: str) -> None:
        self._waited[target] = self._waited.get(target, 0.0) + seconds
        self.progress.update(self._task(target), waited=f"waited {self._waited[target]:.1f}s")

    def retrying(self, target: str, items: int, reason: str, delay: float) -> None:
        self.progress.update(self._task(target), note=f"retrying {items}")

    def message(self, target: str, text: str) -> None:
        from rich.markup import escape

        self.progress.console.print(f"[yellow]{escape(target)}[/]: {escape(printable(text))}", markup=True,
                                    highlight=False)

    def target_finished(self, target: str, result: "TargetResult") -> None:
        self.progress.update(self._task(target), note="done" if result.ok else
                             ("stopped" if result.error else "failures"))

    def finished(self, result: "ApplyResult") -> None:
        if self._started:
            self.progress.stop()
        for target in result.targets.values():
            self.console.print(summary_line(target), markup=False, highlight=False)
        for line in _failure_lines(result):
            self.console.print(line, markup=False, highlight=False)


def default_reporter(stream: IO[str] | None = None, color: bool = True) -> Reporter:
    """Rich progress bars when ``stream`` (stderr) is a terminal, plain lines otherwise;
    without ``color`` (``--no-color``), the bars are not coloured."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        return RichReporter(color=color)
    return PlainReporter(stream)
