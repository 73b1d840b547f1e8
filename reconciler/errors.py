"""The one exception hierarchy of reconciler.

Every error a user can cause or meet derives from :class:`ReconcilerError`; the CLI
turns it into one clear message and exit code 1 (a traceback only with ``-v``).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

from reconciler.display import printable, shorten


class ReconcilerError(Exception):
    """Base of every error reconciler reports to a user."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the manifests, located as precisely as we can."""

    file: str
    line: int
    sku: str | None
    message: str
    # the field it is about, as a key path (``("overrides", "meta-us", "nmae")``), so that
    # the line can be the field's own (see ``reconciler.manifest.loader.Location``)
    path: tuple = field(default=(), compare=False)

    def __str__(self) -> str:
        # Each part may come from the manifests (a file name, a sku): escaped, so that
        # none can forge a line of the report or drive the terminal.
        where = f"{self.file}:{self.line}" if self.line else self.file
        item = f" sku {shorten(self.sku)}:" if self.sku else ""
        return printable(f"{where}:{item} {self.message}")


def suggestion(word: object, choices: Iterable[str], listing: str = "expected one of", most: int = 12) -> str:
    """A hint for an unknown name: the closest of ``choices`` (``did you mean 'title'?``),
    else the first ``most`` of them (``expected one of a, b, c``)."""
    choices = list(choices)
    close = difflib.get_close_matches(str(word), choices, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    more = f" and {len(choices) - most} more" if len(choices) > most else ""
    return f"{listing} {', '.join(choices[:most])}{more}"


class ManifestError(ReconcilerError):
    """The manifests are invalid; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]):
        # a sku may be None beside a str on one line: ordered as ""
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.sku or "", p.message))
        super().__init__(self.render())

    def render(self) -> str:
        noun = "error" if len(self.problems) == 1 else "errors"
        lines = [f"{len(self.problems)} manifest {noun}:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class StateError(ReconcilerError):
    """The state cannot be used as asked (locked, newer schema, unknown item...)."""


class StalePlanError(StateError):
    """A saved plan is no longer what would be applied: the state, a target or the
    manifests changed since it was made (nothing was sent; make a new plan)."""


class PlanFileError(ReconcilerError):
    """A file given as a saved plan is not one reconciler wrote, as it wrote it
    (corrupted, edited, truncated, or not a plan at all)."""


class ConfigError(ReconcilerError):
    """A target cannot be used as configured (missing credential, bad setting...)."""


class TargetMovedError(ConfigError):
    """A target now names another destination (provider, base URL, catalog) than the
    one the state's items of it were confirmed at."""


class ApplyError(ReconcilerError):
    """Applying could not proceed (not confirmed, network unusable...)."""


class UnexpectedAnswer(ApplyError):
    """A destination answered with a success (2xx) whose body is not the shape its API
    documents (an HTML page from a proxy, broken JSON, another type, missing fields).
    It is no success: the engine sends the request again, as after a 5xx. A provider's
    decode raises it (``reconciler.providers._common.unexpected``)."""


class DestinationError(ReconcilerError):
    """A destination cannot be worked with now, or not as it answers: it asks to wait
    longer than the target allows, keeps failing past the target's retry budget,
    redirects, answers more than the target reads, or cannot be reached as configured
    (a TLS or protocol error). The target stops with this one message; what it did not
    confirm stays for the next run."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops a command the way Ctrl-C does (everything confirmed is recorded),
    with exit code 143 instead of 130."""
