"""Saved plans (``plan -o FILE``): JSON lines, written and read a change at a time,
and checked before anything trusts them.

Line 1 is the plan without its changes (``Plan.to_json(changes=False)``: format
version, lineage, the serials of the state and of each target, whether it was made
with ``--allow-mass-delete`` or ``--refresh``, and per target its provider, fingerprint
and summary).
Each further line is one change, ``{"target": name, ...Change.to_json()}``, in plan
order. The last line is ``{"end_of_plan": {"changes": N, "blake2b": HEX}}``: the
number of change lines and the BLAKE2b-256 digest of every byte before that line.

:func:`read` checks a file in one pass and holds no change: every line is JSON; the header is a plan's; every change names a target of the header, a
known action, a record kind of that target's provider and the shape its action
needs; the end line is present, last, with the right count and digest; each target's
summary counts its lines; a target's lines come one after the other. Problems are :class:`~reconciler.errors.PlanFileError`s
saying whether the file is corrupted (not JSON), edited (its digest does not match),
incomplete (no end line) or not a plan. It returns the header and, per target, the
digest of its change lines, which :mod:`reconciler.plan.verify` compares with the
plan made again, and where each target's lines start. :func:`load` gives the plan
(``show``) with each target's changes read from the file a change at a time
(:class:`FileChanges`), never all held; it also takes a plan as one JSON document
(``plan --format json``), which has no digest and is parsed whole: it is for reading.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Iterator

import orjson

from reconciler.errors import ConfigError, PlanFileError
from reconciler.plan.model import ACTIONS, FORMAT_VERSION, Change, Changes, Plan
from reconciler.providers import get_provider

END = "end_of_plan"
CHANGE_KEYS = frozenset({"target", "sku", "action", "record", "key", "before", "after", "fields", "remote_id"})
# What each action carries: (before, after) as a payload (True) or null (False).
SIDES = {"create": (False, True), "update": (True, True), "delete": (True, False)}


def saved_lines(name: str, changes: Changes) -> Iterator[bytes]:
    """A target's changes as lines of a saved plan, ``{"target": name,
    ...Change.to_json()}``: what :func:`save` writes and what a plan made again is
    compared with, byte for byte. Each is the change's compact JSON with the target
    put in front (no :class:`Change` made)."""
    prefix = b'{"target":' + orjson.dumps(name) + b","
    for compact in changes.lines():
        yield prefix + compact[1:] + b"\n"


def target_digest() -> "hashlib._Hash":
    """The hash of a target's change lines, in plan order."""
    return hashlib.blake2b(digest_size=16)


def save(plan: Plan, path: str | os.PathLike) -> None:
    whole = hashlib.blake2b(digest_size=32)
    count = 0
    with open(path, "wb") as file:
        head = orjson.dumps(plan.to_json(changes=False)) + b"\n"
        whole.update(head)
        file.write(head)
        for name, target in plan.targets.items():
            for line in saved_lines(name, target.changes):
                whole.update(line)
                file.write(line)
                count += 1
        file.write(orjson.dumps({END: {"changes": count, "blake2b": whole.hexdigest()}}) + b"\n")


@dataclass
class Saved:
    """A saved plan as :func:`read` found it: its header (a plan without changes,
    each target's summary as the header states it) and, per target, the digest of
    its change lines and ``(byte offset, line number)`` of its first one."""

    path: str
    plan: Plan
    summaries: dict[str, dict[str, int]]
    digests: dict[str, bytes]
    starts: dict[str, tuple[int, int]]
    lines: int = 0

    def changes(self, name: str) -> "FileChanges":
        """One target's changes, read from the file a change at a time."""
        counts = {action: self.summaries[name][action] for action in ACTIONS}
        return FileChanges(self.path, name, *self.starts.get(name, (0, 0)), counts)

    def target_changes(self, name: str) -> Iterator[tuple[int, Change]]:
        """``(line number, change)`` of one target, read again from the file (the
        changes were checked by :func:`read`)."""
        return self.changes(name).numbered()


def read(path: str | os.PathLike) -> Saved:
    """Check the saved plan at ``path`` (see the module doc). A
    :class:`PlanFileError` says what is wrong."""
    shown = os.fspath(path)
    try:
        with open(path, "rb") as file:
            return _Reader(shown).read(file)
    except OSError as exc:
        raise PlanFileError(f"cannot read the plan {shown}: {exc.strerror or exc}") from None


def load(path: str | os.PathLike) -> Plan:
    """The plan saved at ``path``, checked as :func:`read` does (its changes then
    read from the file as they are used), or a plan as one JSON document (``plan
    --format json`` output, which carries no digest)."""
    data = document(path)
    if data is None:
        saved = read(path)
        return Plan.from_json(saved.plan.to_json(changes=False), {name: saved.changes(name) for name in saved.plan.targets})
    shown = os.fspath(path)
    problem = _header_problem(data, whole=True)
    if problem:
        raise PlanFileError(f"{shown} is not a reconciler plan: {problem}")
    changes = {}
    for name, target in data["targets"].items():
        changes[name] = []
        for number, change in enumerate(target["changes"], 1):
            problem = _change_problem({"target": name, **change} if isinstance(change, dict) else change,
                                      data["targets"])
            if problem:
                raise PlanFileError(f"{shown} is not a valid plan: target {name}, change {number}: {problem}")
            changes[name].append(_change(change))
    return Plan.from_json(data, changes)


def document(path: str | os.PathLike) -> dict | None:
    """The JSON of a plan as one document (``plan --format json``, indented or on one
    line); None for anything else (a saved plan's JSON lines)."""
    try:
        with open(path, "rb") as file:
            first = file.readline()
            if first.strip() == b"{":
                data = orjson.loads(first + file.read())
            else:
                try:
                    data = orjson.loads(first)
                except orjson.JSONDecodeError:
                    return None
                whole = isinstance(data, dict) and isinstance(data.get("targets"), dict) and any(
                    isinstance(t, dict) and "changes" in t for t in data["targets"].values())
                if not whole or file.read(1):
                    return None
    except OSError as exc:
        raise PlanFileError(f"cannot read the plan {os.fspath(path)}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise PlanFileError(f"{os.fspath(path)} is not a reconciler plan: it is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else None


class _Reader:
    def __init__(self, shown: str):
        self.shown = shown
        self.whole = hashlib.blake2b(digest_size=32)
        # The first problem of the content: the file is "edited" if its digest does
        # not match, else (a digest made again by hand) "not a valid plan".
        self.first_problem: str | None = None

    def read(self, file) -> Saved:
        head_line = file.readline()
        if not head_line:
            raise PlanFileError(f"{self.shown} is not a reconciler plan: it is empty")
        head = self._json(head_line, 1)
        self.whole.update(head_line)
        header_problem = _header_problem(head, whole=False)
        if header_problem:
            self.first_problem = f"its header: {header_problem}"
        targets = head["targets"] if not header_problem else {}
        digests = {name: target_digest() for name in targets}
        counts = {name: dict.fromkeys(ACTIONS, 0) for name in targets}
        starts: dict[str, tuple[int, int]] = {}
        end, number, offset, previous = None, 1, len(head_line), None
        for line in file:
            number += 1
            offset += len(line)
            if end is not None:
                raise PlanFileError(f"{self.shown} was edited since it was saved: line {number} comes after its "
                                    f"end line (line {number - 1}); nothing after it is part of the plan")
            data = self._json(line, number)
            if isinstance(data, dict) and END in data:
                end = (number, data[END])
                continue
            self.whole.update(line)
            problem = None if header_problem else _change_problem(data, targets)
            if problem:
                self.first_problem = self.first_problem or f"line {number}: {problem}"
                continue
            if header_problem:
                continue
            name = data["target"]
            if name != previous:
                if name in starts:
                    self.first_problem = self.first_problem or (
                        f"line {number}: a change of target {name} after those of another target (a target's "
                        "changes come one after the other)")
                    continue
                starts[name], previous = (offset - len(line), number), name
            digests[name].update(line)
            counts[name][data["action"]] += 1
        if end is None:
            self._no_end(head, header_problem, number)
        self._check_end(*end, sum(sum(c.values()) for c in counts.values()))
        mismatch = [f"target {name} counts {targets[name]['summary'][action]} to {action}, its lines "
                    f"hold {count}" for name, by_action in counts.items() for action, count in by_action.items()
                    if targets[name]["summary"][action] != count]
        if mismatch:
            raise PlanFileError(f"{self.shown} is not a valid plan: its header's summary does not match its "
                                f"changes ({'; '.join(mismatch)})")
        return Saved(self.shown, Plan.from_json(head, {name: () for name in targets}),
                     {name: dict(t["summary"]) for name, t in targets.items()},
                     {name: digest.digest() for name, digest in digests.items()}, starts, number - 1)

    def _json(self, line: bytes, number: int) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if not line.endswith(b"\n"):  # the last line, cut in the middle
                raise PlanFileError(f"{self.shown} is incomplete: it ends in the middle of line {number} (cut short "
                                    "while it was written or copied); it cannot be used") from None
            raise PlanFileError(f"{self.shown} is corrupted (or not a reconciler plan): line {number} is not valid "
                                f"JSON ({exc})") from None

    def _no_end(self, head: Any, header_problem: str | None, number: int) -> None:
        if header_problem:
            raise PlanFileError(f"{self.shown} is not a reconciler plan: {header_problem}")
        if "target_serials" not in head or any("fingerprint" not in t for t in head["targets"].values()):
            raise PlanFileError(f"{self.shown} was saved by an earlier version of reconciler (without target "
                                "fingerprints and a digest): make the plan again with `reconciler plan -o FILE`")
        raise PlanFileError(f"{self.shown} is incomplete: it ends at line {number} without its end line "
                            "(cut short while it was written or copied); it cannot be used")

    def _check_end(self, number: int, end: Any, count: int) -> None:
        if not isinstance(end, dict) or not isinstance(end.get("blake2b"), str):
            raise PlanFileError(f"{self.shown} is not a valid plan: its end line (line {number}) has no digest")
        if end["blake2b"] != self.whole.hexdigest():
            found = f"; for one, {self.first_problem}" if self.first_problem else ""
            raise PlanFileError(f"{self.shown} was edited or corrupted since it was saved: its content does not "
                                f"match the digest on its end line (line {number}){found}")
        if self.first_problem:
            raise PlanFileError(f"{self.shown} is not a valid plan: {self.first_problem}")
        if end.get("changes") != count:
            raise PlanFileError(f"{self.shown} is not a valid plan: its end line counts {end.get('changes')!r} "
                                f"changes, it holds {count}")


def _header_problem(head: Any, whole: bool) -> str | None:
    """What makes ``head`` not a plan's first line (``whole``: a whole plan)."""
    if not isinstance(head, dict):
        return "it does not start with a JSON object"
    if head.get("format_version") != FORMAT_VERSION:
        return f"format_version {head.get('format_version')!r} is not {FORMAT_VERSION}"
    if not isinstance(head.get("lineage"), (str, type(None))) or not _count(head.get("state_serial")):
        return "its lineage or state_serial is not one"
    serials = head.get("target_serials")
    if serials is not None and not (isinstance(serials, dict) and all(map(_count, serials.values()))):
        return "its target_serials are not serials"
    for flag in ("allow_mass_delete", "refreshed"):
        if not isinstance(head.get(flag, False), bool):
            return f"its {flag} is not true or false"
    orphans = head.get("orphaned_targets", {})
    if not (isinstance(orphans, dict) and all(map(_count, orphans.values()))):
        return "its orphaned_targets are not counts"
    targets = head.get("targets")
    if not isinstance(targets, dict):
        return "it has no targets"
    for name, target in targets.items():
        if not isinstance(target, dict):
            return f"target {name} is not an object"
        try:
            get_provider(target.get("provider") if isinstance(target.get("provider"), str) else "")
        except ConfigError as exc:
            return f"target {name}: {exc}"
        printed = target.get("fingerprint")
        if printed is not None and not (isinstance(printed, dict) and all(isinstance(v, str) for v in printed.values())):
            return f"target {name}: its fingerprint is not one"
        summary = target.get("summary")
        if not isinstance(summary, dict) or not all(_count(summary.get(k)) for k in (*ACTIONS, "unchanged")):
            return f"target {name}: its summary does not count {', '.join(ACTIONS)} and unchanged"
        if whole != ("changes" in target):
            return f"target {name}: {'no' if whole else 'a'} list of changes in the header"
        if whole and not isinstance(target["changes"], list):
            return f"target {name}: its changes are not a list"
    return None


def _change_problem(data: Any, targets: dict[str, Any]) -> str | None:
    """What makes ``data`` not a change line of a plan with these header ``targets``."""
    if not isinstance(data, dict):
        return "not a JSON object"
    unknown = sorted(data.keys() - CHANGE_KEYS)
    if unknown:
        return f"unknown key {', '.join(map(repr, unknown))}"
    name = data.get("target")
    if not isinstance(name, str) or name not in targets:
        return f"target {name!r} is not one of the plan's ({', '.join(targets)})"
    action = data.get("action")
    if action not in ACTIONS:
        return f"unknown action {action!r} (a plan's actions are {', '.join(ACTIONS)})"
    records = get_provider(targets[name]["provider"]).capabilities.records
    if data.get("record") not in records:
        return (f"unknown record kind {data.get('record')!r} for target {name} "
                f"({targets[name]['provider']} has {', '.join(records)})")
    for key in ("sku", "key"):
        if not isinstance(data.get(key), str) or not data[key]:
            return f"its {key} is not a text"
    for side, wanted in zip(("before", "after"), SIDES[action]):
        if wanted != isinstance(data.get(side), dict) or (not wanted and data.get(side) is not None):
            return f"the {action} of sku {data['sku']} has {'no' if wanted else 'a'} {side!r} payload"
    fields = data.get("fields")
    if not (isinstance(fields, dict) and fields.keys() <= {"changed", "added", "removed"}
            and all(isinstance(v, list) and all(isinstance(f, str) for f in v) for v in fields.values())):
        return f"the fields of sku {data['sku']} are not lists of field names"
    if not isinstance(data.get("remote_id"), (str, type(None))):
        return f"the remote_id of sku {data['sku']} is not a text"
    return None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _change(data: dict[str, Any]) -> Change:
    return Change.from_json({k: v for k, v in data.items() if k != "target"})


class FileChanges(Changes):
    """A target's lines of a saved plan that :func:`read` checked, parsed as they are
    read: ``offset`` and ``line`` are those of its first line."""

    def __init__(self, path: str, target: str, offset: int, line: int, counts: dict[str, int]):
        self.path, self.target, self.offset, self.first_line, self.counts = path, target, offset, line, counts

    def lines(self) -> Iterator[bytes]:
        for _, data in self._documents():
            yield orjson.dumps(data)

    def __iter__(self) -> Iterator[Change]:
        return (change for _, change in self.numbered())

    def numbered(self) -> Iterator[tuple[int, Change]]:
        for number, data in self._documents():
            yield number, Change.from_json(data)

    def _documents(self) -> Iterator[tuple[int, dict]]:
        left = len(self)
        if not left:
            return
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            for number, line in enumerate(file, self.first_line):
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError:
                    data = None
                if not isinstance(data, dict) or data.pop("target", None) != self.target:
                    raise PlanFileError(f"{self.path} changed while it was read: line {number} is not a change of "
                                        f"target {self.target}")
                yield number, data
                left -= 1
                if not left:
                    return
        raise PlanFileError(f"{self.path} changed while it was read: it ends before the changes of target "
                            f"{self.target} do")
