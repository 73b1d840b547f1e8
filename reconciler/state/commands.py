"""``reconciler state ...``: inspect, edit, unlock and move the state.

Reading commands (``list``, ``show``) open the state read-only and never write it.
Editing commands (``rm``, ``restore``, ``unlock``, ``migrate``) hold the lock of what
they change and bump the serials of the targets whose items they change, so a plan
saved before is stale. ``rm`` first writes what it removes to a backup file (JSON
lines, one item each) that ``restore`` puts back.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import click
import orjson

from reconciler.cli import Context, ReconcilerGroup, exists, lock_timeout_option, pass_context
from reconciler.errors import StateError
from reconciler.state.store import Item, State

STATE_FORMATS = click.Choice(["text", "json"])


@click.group("state", cls=ReconcilerGroup)
def state_group() -> None:
    """Inspect or edit the state.

    \b
    Example:
        reconciler state list -t meta-us
        reconciler state show SKU-1
    """


def writer(ctx: Context) -> State:
    """The state opened for writing; an error (never a new state) when there is none."""
    if not exists(ctx.workspace):
        raise StateError(f"there is no state at {ctx.workspace.state_location.display()}")
    return ctx.workspace.state(create=True)


@state_group.command("list")
@click.option("-t", "--target", help="Only this target.")
@click.option("--format", "fmt", type=STATE_FORMATS, default="text", show_default=True,
              help="text: one tab-separated line per item (target, record, sku, key, remote id, last outcome); "
                   "json: one document with the lineage, serials and items.")
@pass_context
def state_list(ctx: Context, target: str | None, fmt: str) -> None:
    """List the items of the state. The text form is only the item lines (for cut and
    awk); the lineage and serial go to standard error.

    \b
    Example:
        reconciler state list -t meta-us | cut -f3
        reconciler state list --format json | jq '.items | length'
    """
    state = ctx.workspace.state()
    try:
        if fmt == "json":
            ctx.echo_chunks(json_listing(state, target))
            return
        ctx.echo(f"lineage {state.lineage or '-'}  serial {state.serial}  schema {state.schema_version}", err=True)
        for item in state.items(target):
            ctx.echo(f"{item.target}\t{item.record}\t{item.sku}\t{item.key}\t{item.remote_id or '-'}\t"
                     f"{item.last_outcome}")
    finally:
        state.close()


def json_listing(state: State, target: str | None) -> Iterator[str]:
    """``{"lineage", "serial", "schema_version", "targets": {name: {"serial", "items"}},
    "locks": [...], "items": [...]}``, an item a piece. A lock's ``alive`` is null when
    its holder cannot be checked from here (another host)."""
    counts = state.targets()
    serials = state.target_serials()
    names = sorted((counts.keys() | serials.keys()) if target is None else {target})
    head = {"lineage": state.lineage, "serial": state.serial, "schema_version": state.schema_version,
            "targets": {name: {"serial": serials.get(name, 0), "items": counts.get(name, 0)} for name in names},
            "locks": [{"scope": h.scope, "lock_id": h.lock_id, "command": h.command, "pid": h.pid, "host": h.host,
                       "since": h.acquired_at, "alive": alive} for h, alive in state.holders()]}
    yield orjson.dumps(head).decode()[:-1] + ', "items": ['
    for index, item in enumerate(state.items(target)):
        listed = {"target": item.target, "record": item.record, "sku": item.sku, "key": item.key,
                  "remote_id": item.remote_id, "last_action": item.last_action,
                  "last_outcome": item.last_outcome, "updated_at": item.updated_at}
        yield ("," if index else "") + "\n  " + orjson.dumps(listed).decode()
    yield "\n]}\n"


@state_group.command("show")
@click.argument("sku")
@pass_context
def state_show(ctx: Context, sku: str) -> None:
    """Show what the state holds for one sku at every target.

    \b
    Example:
        reconciler state show SKU-1
    """
    state = ctx.workspace.state()
    try:
        items = state.items_of_sku(sku)
    finally:
        state.close()
    if not items:
        raise StateError(f"sku {sku!r} is not in the state")
    for item in items:
        ctx.echo(f"{item.target} ({item.record}, key {item.key}, remote id {item.remote_id or '-'}, "
                 f"last {item.last_action} {item.last_outcome} at {item.updated_at}):")
        ctx.echo(orjson.dumps(item.payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


@state_group.command("rm")
@click.argument("sku", required=False)
@click.option("-t", "--target", help="Only at this target.")
@click.option("--all", "everything", is_flag=True, help="Every item of the target given with -t (a target no "
                                                          "longer declared, forgotten on purpose).")
@click.option("--backup", type=click.Path(dir_okay=False), help="Where to keep what is removed "
                                                                "(default: state/backups/rm-TIME.jsonl).")
@lock_timeout_option
@pass_context
def state_rm(ctx: Context, sku: str | None, target: str | None, everything: bool, backup: str | None,
             lock_timeout: float) -> None:
    """Forget a sku, or every item of a target (the destination is not told; the next
    plan creates what the manifests still declare). What is removed is first written to
    a backup file, which `reconciler state restore` puts back.

    \b
    Example:
        reconciler state rm SKU-1 -t meta-us
        reconciler state rm -t old-target --all
        reconciler state restore state/backups/rm-20250101T120000Z.jsonl   # undo
    """
    if everything == bool(sku) or (everything and not target):
        raise click.UsageError("give a SKU, or -t TARGET --all")
    state = writer(ctx)
    try:
        affected = [target] if target else sorted({i.target for i in state.items_of_sku(sku)})
        with state.locked(f"reconciler state rm (pid {os.getpid()})", affected or None, lock_timeout):
            items = list(state.items(target)) if everything else \
                [i for i in state.items_of_sku(sku) if not target or i.target == target]
            if not items:
                what = f"target {target} has no items" if everything else f"sku {sku!r} is not"
                raise StateError(f"{what} in the state" + (f" at target {target}" if target and sku else ""))
            path = Path(backup) if backup else default_backup(ctx, "rm")
            write_backup(path, items)
            removed = state.remove(items)
    finally:
        state.close()
    what = f"every item of target {target}" if everything else f"{sku}"
    ctx.echo(f"Removed {removed} record(s) of {what} from the state (the destinations were not told).")
    ctx.echo(f"Backup of what was removed: {path}\nTo undo: reconciler state restore {path}")


def default_backup(ctx: Context, what: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return ctx.workspace.backups / f"{what}-{stamp}.jsonl"


def write_backup(path: Path, items: list[Item]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as file:
            for item in items:
                file.write(orjson.dumps(item_json(item)) + b"\n")
    except OSError as exc:
        raise StateError(f"nothing was removed: cannot write the backup {path}: {exc.strerror or exc}") from None


def item_json(item: Item) -> dict:
    return {"target": item.target, "record": item.record, "key": item.key, "sku": item.sku,
            "payload": item.payload, "hash": item.hash.hex(), "remote_id": item.remote_id,
            "last_action": item.last_action, "last_outcome": item.last_outcome, "updated_at": item.updated_at}


def read_backup(path: str) -> list[Item]:
    items = []
    try:
        with open(path, "rb") as file:
            for number, line in enumerate(file, 1):
                if line.strip():
                    data = orjson.loads(line)
                    items.append(Item(**{**data, "hash": bytes.fromhex(data["hash"])}))
    except OSError as exc:
        raise StateError(f"cannot read the backup {path}: {exc.strerror or exc}") from None
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise StateError(f"{path}:{number}: not a line of a `state rm` backup: {exc}") from None
    return items


@state_group.command("restore")
@click.argument("backup", type=click.Path(exists=True, dir_okay=False))
@lock_timeout_option
@pass_context
def state_restore(ctx: Context, backup: str, lock_timeout: float) -> None:
    """Put back the items a `reconciler state rm` removed, from its backup file.

    \b
    Example:
        reconciler state restore state/backups/rm-20250101T120000Z.jsonl
    """
    items = read_backup(backup)
    state = ctx.workspace.state(create=True)
    try:
        with state.locked(f"reconciler state restore (pid {os.getpid()})",
                          sorted({i.target for i in items}) or None, lock_timeout):
            restored = state.restore(items)
    finally:
        state.close()
    ctx.echo(f"Restored {restored} record(s) from {backup}.")


@state_group.command("unlock")
@click.option("--force", "lock_id", metavar="LOCK_ID",
              help="Remove this lock even though its holder may be alive (check first that it is not running).")
@pass_context
def state_unlock(ctx: Context, lock_id: str | None) -> None:
    """Remove the locks of holders that died without releasing them. A live holder's
    lock (or one held from another host, which cannot be checked from here) is
    refused, naming its holder and lock id, unless forced by that id.

    \b
    Example:
        reconciler state unlock
        reconciler state unlock --force 3f2a9c81d0e4
    """
    if not exists(ctx.workspace):
        ctx.echo("The state was not locked (there is no state yet).")
        return
    state = ctx.workspace.state(create=True)
    try:
        removed = state.unlock(lock_id)
    finally:
        state.close()
    if not removed:
        ctx.echo("The state was not locked.")
    for holder in removed:
        ctx.echo(f"Removed the lock on {holder.what} held by {holder.who()}.")


@state_group.command("migrate")
@click.option("--to", "destination", required=True, metavar="PATH_OR_URL",
              help="The new state: a SQLite file or a postgresql:// URL (its schema: --state-schema, or --to-schema).")
@click.option("--to-schema", metavar="NAME", help="PostgreSQL schema of the new state (default: --state-schema).")
@lock_timeout_option
@pass_context
def state_migrate(ctx: Context, destination: str, to_schema: str | None, lock_timeout: float) -> None:
    """Copy the state to another backend (SQLite to PostgreSQL or back), holding both
    locks, and verify every table's rows before saying so. The source is left as it
    was; point --state (or RECONCILER_STATE) at the new one afterwards.

    \b
    Example:
        reconciler state migrate --to postgresql://ci@db.internal/catalog
        reconciler --state postgresql://ci@db.internal/catalog state migrate --to state/reconciler.db
    """
    from reconciler.state.location import Location
    from reconciler.state.transfer import migrate

    target = Location.parse(destination, to_schema or ctx.workspace.state_location.schema)
    if target == ctx.workspace.state_location:
        raise StateError("--to names the state itself")
    source = writer(ctx)
    try:
        lineage = source.lineage
        copied = migrate(source, target, lock_timeout)
    finally:
        source.close()
    counts = ", ".join(f"{copied[name]} {name}" for name in ("items", "jobs", "applies", "failures", "requests"))
    ctx.echo(f"Copied the state (lineage {lineage}) to {target.display()}: {counts}; verified.")
    ctx.echo(f"Use it with --state {target.display().split(' (schema')[0]} (or RECONCILER_STATE).")
