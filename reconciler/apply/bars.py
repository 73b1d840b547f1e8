"""Progress bars for a terminal: one per target, with items done of total, items per
second, the time left at that rate, requests sent, and what it waits for and until
when (or how long it waited); at the end, the same closing lines as the plain reporter
(:mod:`reconciler.apply.report`). Imported only where bars are drawn (it loads rich).
"""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Callable, Mapping

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from reconciler.apply.report import DONE, NullReporter, failure_lines, result_line, summary_line, wait_text
from reconciler.display import printable

if TYPE_CHECKING:
    from reconciler.apply.result import ApplyResult, TargetResult


def _rate(task: Task) -> float | None:
    """Items per second since the target started: its average, windows and waits
    included (the last seconds' rate of a windowed target swings between bursts)."""
    elapsed = task.elapsed
    return task.completed / elapsed if elapsed and task.completed else None


def _rate_text(task: Task) -> str:
    rate = _rate(task)
    return "" if rate is None else f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s"


def _eta_text(task: Task) -> str:
    rate = _rate(task)
    if task.finished or task.stop_time is not None or task.total is None:  # done, or the target stopped
        return ""
    return "ETA -:--:--" if rate is None else f"ETA {timedelta(seconds=round((task.total - task.completed) / rate))}"


class Computed(ProgressColumn):
    """A column of ``text(task)``, computed at each refresh (rates and times move
    between events)."""

    def __init__(self, text: Callable[[Task], str]):
        super().__init__()
        self.text = text

    def render(self, task: Task) -> Text:
        return Text(self.text(task))


class RichReporter(NullReporter):
    """A progress bar per target on stderr (rich)."""

    def __init__(self, console=None, color: bool = True, overall: bool = True):
        self.console = console or Console(stderr=True, no_color=None if color else True)  # None: NO_COLOR decides
        self.overall = overall
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            Computed(_rate_text),
            Computed(_eta_text),
            TextColumn("{task.fields[requests]} req"),
            # what it waits for while it waits (or retries), else how long it waited
            Computed(lambda task: task.fields["note"] or task.fields["waited"]),
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
        self.progress.update(self._task(target), total=total)  # the provider: in its summary line and its waits

    def request_sent(self, target: str, endpoint: str, items: int) -> None:
        self._requests[target] = self._requests.get(target, 0) + 1
        self.progress.update(self._task(target), requests=self._requests[target])

    def recorded(self, target: str, counts: Mapping[str, int]) -> None:
        done = sum(counts.get(k, 0) for k in DONE)
        if done:
            self.progress.advance(self._task(target), done)

    def waiting(self, target: str, until: float | None, why: str) -> None:
        self.progress.update(self._task(target), note=wait_text(until, why))

    def waited(self, target: str, seconds: float) -> None:
        self._waited[target] = self._waited.get(target, 0.0) + seconds
        self.progress.update(self._task(target), waited=f"waited {self._waited[target]:.1f}s", note="")

    def retrying(self, target: str, items: int, reason: str, delay: float) -> None:
        self.progress.update(self._task(target), note=f"retrying {items}")

    def message(self, target: str, text: str) -> None:
        self.progress.console.print(f"[yellow]{escape(target)}[/]: {escape(printable(text))}", markup=True,
                                    highlight=False)

    def target_finished(self, target: str, result: "TargetResult") -> None:
        task = self._task(target)
        self.progress.update(task, note="done" if result.ok else ("stopped" if result.error else "failures"))
        self.progress.stop_task(task)  # its rate stays what it was

    def finished(self, result: "ApplyResult") -> None:
        if self._started:
            self.progress.stop()
        lines = [summary_line(target) for target in result.targets.values()]
        if self.overall:
            lines += [result_line(result), *failure_lines(result)]
        for line in lines:
            self.console.print(line, markup=False, highlight=False)
