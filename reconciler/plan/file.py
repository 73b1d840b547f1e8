"""Saved plans (``plan -o FILE``): JSON lines, so that a plan of millions of changes is
written and read one change at a time, never parsed as one document.

The first line is the plan without its changes (``Plan.to_json(changes=False)``: format
version, lineage, serial, and per target the provider and summary); each further line
is one change, ``{"target": name, ...Change.to_json()}``, in plan order. :func:`load`
also takes a plan as one JSON document (``plan --format json`` output).
"""
from __future__ import annotations

import os

import orjson

from reconciler.plan.model import Change, Plan


def save(plan: Plan, path: str | os.PathLike) -> None:
    with open(path, "wb") as file:
        file.write(orjson.dumps(plan.to_json(changes=False)) + b"\n")
        for name, target in plan.targets.items():
            for change in target.changes:
                file.write(orjson.dumps({"target": name, **change.to_json()}) + b"\n")


def load(path: str | os.PathLike) -> Plan:
    """The plan saved at ``path``; ValueError, KeyError or TypeError if it is not one."""
    with open(path, "rb") as file:
        try:
            head = orjson.loads(file.readline())
        except orjson.JSONDecodeError:  # a plan as one indented JSON document
            file.seek(0)
            return Plan.from_json(orjson.loads(file.read()))
        if not isinstance(head, dict):
            raise ValueError("its first line is not a JSON object")
        if any("changes" in t for t in head.get("targets", {}).values()):
            return Plan.from_json(head)  # a plan as one JSON document on one line
        changes: dict[str, list[Change]] = {name: [] for name in head["targets"]}
        for line in file:
            if line.strip():
                data = orjson.loads(line)
                changes[data.pop("target")].append(Change.from_json(data))
        return Plan.from_json(head, changes)
