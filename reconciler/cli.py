"""The ``reconciler`` command line: a thin layer over the library.

Each command parses options, calls one library function and renders its result.
Errors a user can cause are :class:`~reconciler.errors.ReconcilerError`s, shown as
one message with exit code 1 (a traceback only with ``-v``). Exit codes follow SPEC:
0 success, 1 error or a failed item, 2 changes present (``plan --detailed-exitcode``)
or drift found (``drift``).
"""
from __future__ import annotations

import os
import re
import signal
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import click
import orjson

from reconciler.display import printable
from reconciler.errors import ReconcilerError, Terminated
from reconciler.global_options import hoist
from reconciler.plan import Plan, build_plan
from reconciler.plan import file as plan_file
from reconciler.plan.cache import cache_path
from reconciler.plan.render import chunks, render_refusal_markdown, warning_lines
from reconciler.with_sandbox import serve as with_sandbox_serve
from reconciler.workspace import Workspace

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult

# The distribution (pip's name); the command and the import name are `reconciler`.
DISTRIBUTION = "reconciler-catalog"
FORMATS = click.Choice(["text", "json", "markdown"])
# `apply` shows the details of at most this many changes per target before applying:
# a daily 1% of a million-product catalog is tens of thousands, too many to read and a
# burden on every CI log. `plan` shows them all.
APPLY_PREVIEW = 200


class Context:
    def __init__(self, workspace: Workspace, color: bool, verbose: bool):
        self.workspace = workspace
        self.color = color
        self.verbose = verbose

    def echo(self, text: str, err: bool = False, nl: bool = True) -> None:
        click.echo(text, err=err, nl=nl, color=self.color)

    def echo_chunks(self, chunks: Iterable[str], size: int = 1 << 16, err: bool = False) -> None:
        """Write ``chunks`` as they come, in writes of about ``size`` characters."""
        buffer, length = [], 0
        for chunk in chunks:
            buffer.append(chunk)
            length += len(chunk)
            if length >= size:
                self.echo("".join(buffer), nl=False, err=err)
                buffer, length = [], 0
        if buffer:
            self.echo("".join(buffer), nl=False, err=err)


pass_context = click.make_pass_decorator(Context)


class ReconcilerGroup(click.Group):
    """Turns library errors into one clear message and exit code 1; at the root, takes
    the global options after the subcommand too (see :mod:`reconciler.global_options`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            args = hoist(self, ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ReconcilerError as exc:
            verbose = isinstance(ctx.obj, Context) and ctx.obj.verbose
            if verbose:
                traceback.print_exc()
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as exc:
            click.echo("\nInterrupted. Everything the destinations confirmed so far is recorded in the "
                       "state; run the command again to finish.", err=True)
            ctx.exit(143 if isinstance(exc, Terminated) else 130)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "--dir", "root", default=".", type=click.Path(file_okay=False), help="Workspace root.")
@click.option("--manifests", type=click.Path(), help="Manifests directory (default DIR/manifests).")
@click.option("--state", metavar="PATH_OR_URL", envvar="RECONCILER_STATE",
              help="State: a SQLite file (default DIR/state/reconciler.db) or a postgresql:// URL "
                   "(env RECONCILER_STATE).")
@click.option("--state-schema", metavar="NAME", envvar="RECONCILER_STATE_SCHEMA",
              help="PostgreSQL schema holding the state (default reconciler; env RECONCILER_STATE_SCHEMA).")
@click.option("--no-color", is_flag=True, help="No colour (NO_COLOR is honoured too).")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and more detail.")
@click.option("--with-sandbox", is_flag=True,
              help="Run the local simulators (`reconciler sandbox`) on 127.0.0.1 from port 8700 (one port per "
                   "provider) during this command only (their catalogs and jobs end with it).")
@click.option("--sandbox-port", type=click.IntRange(min=0, max=65535), default=8700, show_default=True,
              help="With --with-sandbox: first port (0: any free ports). Targets at the default addresses "
                   "(127.0.0.1:8700 onwards) are pointed at these simulators for this command.")
@click.version_option(None, "-V", "--version", package_name=DISTRIBUTION, prog_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, root: str, manifests: str | None, state: str | None, state_schema: str | None,
        no_color: bool, verbose: bool, with_sandbox: bool, sandbox_port: int) -> None:
    """Declarative, desired-state reconciler for product catalogs.

    \b
    Example:
        reconciler validate
        reconciler plan --format markdown
        reconciler apply --auto-approve
        reconciler --with-sandbox apply --auto-approve   # the example workspace
        reconciler plan --no-color -C shop               # global options go anywhere
    """
    color = wants_color(no_color)
    try:
        workspace = Workspace.at(root, manifests, state, state_schema)
    except ReconcilerError as exc:
        raise click.BadParameter(str(exc), param_hint="--state-schema") from None
    if with_sandbox:
        workspace = with_sandbox_serve(ctx, workspace, sandbox_port)
    elif ctx.get_parameter_source("sandbox_port") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--sandbox-port is for --with-sandbox")
    ctx.obj = Context(workspace, color, verbose)


def wants_color(no_color: bool, stream=None) -> bool:
    """Colour only on a terminal, and never with --no-color or NO_COLOR set."""
    stream = stream if stream is not None else sys.stdout
    return not no_color and "NO_COLOR" not in os.environ and stream.isatty()


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    cli(prog_name="reconciler")


def _terminate(signum, frame) -> None:
    raise Terminated


def no_cache_option(command):
    return click.option(
        "--no-cache", is_flag=True,
        help="Evaluate every product again, ignoring (and not updating) the plan cache "
             "(DIR/.reconciler/plan-cache or RECONCILER_PLAN_CACHE; RECONCILER_NO_CACHE=1 does the same).",
    )(command)


def lock_timeout_option(command):
    return click.option(
        "--lock-timeout", default="0s", show_default=True, metavar="DURATION", callback=_seconds,
        help="Wait this long (30s, 10m, 1h) for a lock held by another command, instead of failing at once.",
    )(command)


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", value or "0")
    if not match:
        raise click.BadParameter(f"{value!r} is not a duration such as 30s, 10m or 1h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


# -- init / validate -----------------------------------------------------------------------
@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Write the example even where a workspace exists (says what first).")
@pass_context
def init(ctx: Context, directory: str, force: bool) -> None:
    """Scaffold a workspace with an example manifest. In an existing workspace it says
    what it would overwrite, and does it only with --force.

    \b
    Example:
        reconciler init my-catalog && cd my-catalog && reconciler plan
    """
    from reconciler.scaffold import scaffold

    for done, path in scaffold(Path(directory), force=force):
        ctx.echo(f"{done} {path}")
    ctx.echo("\nEditors with a YAML language server check and complete manifests that name the schema on "
             "their first line, as the example does; run `reconciler schema -o reconciler.schema.json` "
             "again after changing targets.")
    ctx.echo(f"\nNext: `reconciler -C {directory} plan`, then apply it to the local simulators:\n"
             f"  META_TOKEN=sandbox-token reconciler -C {directory} --with-sandbox apply --auto-approve")


@cli.command()
@pass_context
def validate(ctx: Context) -> None:
    """Load and validate all manifests (no state, no network).

    \b
    Example:
        reconciler validate && echo "manifests are valid"
    """
    from reconciler.plan.planner import validate as run_validation

    manifests = ctx.workspace.manifests()
    count = run_validation(manifests)
    ctx.echo(f"Valid: {len(manifests.targets)} targets, {count} products.")


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write it to this file (default: standard output).")
@pass_context
def schema(ctx: Context, output: str | None) -> None:
    """Print the JSON Schema (draft 2020-12) of this workspace's manifest files, so that
    editors check and complete them: targets with each provider's settings and auth,
    products, and the fields each target's overrides may set. It is made for the
    workspace's targets: run it again after changing them.

    \b
    Example:
        reconciler schema -o reconciler.schema.json
        # then, as the first line of a YAML manifest in manifests/:
        # yaml-language-server: $schema=../reconciler.schema.json
    """
    from reconciler.manifest.schema import workspace_schema

    text = workspace_schema(ctx.workspace.manifests())
    if output:
        writable_file(output, "the schema")
        Path(output).write_text(text, encoding="utf-8")
        ctx.echo(f"Wrote the schema to {output}.", err=True)
    else:
        ctx.echo(text, nl=False)


# -- plan / show ----------------------------------------------------------------------------
@cli.command()
@click.option("-t", "--target", "targets", multiple=True, help="Only this target (repeatable).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Save the plan to this file for `apply`.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none.")
@click.option("--allow-mass-delete", is_flag=True, help="Allow deleting more than max_delete_fraction of a target.")
@click.option("--refresh", is_flag=True, help="First read readable remote catalogs and plan to repair drift.")
@no_cache_option
@pass_context
def plan(ctx: Context, targets: tuple[str, ...], out: str | None, fmt: str, detailed_exitcode: bool,
         allow_mass_delete: bool, refresh: bool, no_cache: bool) -> None:
    """Compute and show what apply would change. Offline, no credentials needed
    (unless --refresh). When no plan can be made (the mass-delete guard, invalid
    manifests), --format markdown still prints a comment saying why (exit 1).

    \b
    Example:
        reconciler plan -t meta-us --format markdown > plan.md
        reconciler plan -o plan.out && reconciler apply plan.out
    """
    try:
        result = make_plan(ctx, targets, out, allow_mass_delete, refresh, no_cache)
    except ReconcilerError as exc:
        if fmt == "markdown":  # the pull request learns why, and how to go on
            ctx.echo(render_refusal_markdown(exc), nl=False)
        raise
    if out:
        try:
            plan_file.save(result, out)
        except OSError as exc:
            Path(out).unlink(missing_ok=True)
            raise ReconcilerError(f"cannot write the plan to {out}: {exc.strerror or exc}") from None
    if fmt != "text":  # the text form says it in its summary
        for line in warning_lines(result):
            ctx.echo(f"Warning: {line}", err=True)
    ctx.echo_chunks(chunks(result, fmt, color=ctx.color))
    if out:
        ctx.echo(f"\nSaved the plan to {out}. Apply exactly it with `reconciler apply {out}`.", err=True)
    if detailed_exitcode and result.has_changes:
        sys.exit(2)


def make_plan(ctx: Context, targets: tuple[str, ...], out: str | None, allow_mass_delete: bool,
              refresh: bool, no_cache: bool) -> Plan:
    """The plan ``plan`` shows, from the workspace's manifests and state."""
    manifests = ctx.workspace.manifests()
    if out:
        writable_file(out, "the plan")
    state = ctx.workspace.state()
    try:
        if refresh:
            from reconciler.drift import refresh_state

            state = refresh_state(manifests, state, targets, reporter=lambda line: ctx.echo(line, err=True))
        return replace(build_plan(manifests, state, targets, allow_mass_delete=allow_mass_delete,
                                  cache=plan_cache(ctx.workspace, no_cache)), refreshed=refresh)
    finally:
        state.close()


def plan_cache(workspace: Workspace, no_cache: bool) -> Path | bool:
    """The plan cache's file, as :func:`~reconciler.plan.cache.cache_path` decides it
    with DIR/.reconciler/plan-cache as the default (False: none)."""
    return cache_path(False if no_cache else None, default=workspace.root / ".reconciler" / "plan-cache") or False


def writable_file(path: str, what: str) -> None:
    """Refuse at once, before any work, a file that cannot be written."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ReconcilerError(f"cannot write {what} to {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise ReconcilerError(f"cannot write {what} to {path}: permission denied")


@cli.command()
@click.argument("planfile", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@pass_context
def show(ctx: Context, planfile: str, fmt: str) -> None:
    """Render a saved plan (checked as apply checks it: a file changed since it was
    saved is refused). Also renders a plan in the JSON format (`plan --format json`).

    \b
    Example:
        reconciler show plan.out --format markdown
    """
    ctx.echo_chunks(chunks(plan_file.load(planfile), fmt, color=ctx.color))


# -- apply / status -------------------------------------------------------------------------
@cli.command()
@click.argument("planfile", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("-t", "--target", "targets", multiple=True, help="Only this target (repeatable).")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-wait", is_flag=True, help="Leave asynchronous jobs pending; settle them with `status`.")
@click.option("--allow-mass-delete", is_flag=True, help="Allow deleting more than max_delete_fraction of a target.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: write a report of the outcome to stdout (per target counts, failed items and "
                   "reasons); the plan and the progress go to stderr.")
@lock_timeout_option
@no_cache_option
@pass_context
def apply(ctx: Context, planfile: str | None, targets: tuple[str, ...], auto_approve: bool, no_wait: bool,
          allow_mass_delete: bool, fmt: str, lock_timeout: float, no_cache: bool) -> None:
    """Apply a fresh plan, or exactly a saved one. A fresh plan is shown first (the
    details of at most 200 changes per target; `reconciler plan` shows them all).
    A saved plan is checked before anything is sent (intact, made for these targets
    and this state, and exactly what the manifests give now), else refused.

    \b
    Example:
        reconciler apply --auto-approve
        reconciler plan -o plan.out && reconciler apply plan.out
        reconciler apply plan.out --format json > outcome.json
    """
    from reconciler.apply.outcome import outcome

    report = fmt == "json"
    try:
        result, cancelled = run_apply(ctx, planfile, targets, auto_approve, no_wait, allow_mass_delete, lock_timeout,
                                      quiet=report, no_cache=no_cache)
    except ReconcilerError as exc:
        if report:
            ctx.echo(json_text(outcome(None, error=exc)))
        raise
    if report:
        ctx.echo(json_text(outcome(result, cancelled=cancelled)))
    if result is not None and not result.ok:
        sys.exit(1)


def run_apply(ctx: Context, planfile: str | None, targets: tuple[str, ...], auto_approve: bool, no_wait: bool,
              allow_mass_delete: bool, lock_timeout: float, quiet: bool,
              no_cache: bool = False) -> tuple[ApplyResult | None, bool]:
    """What ``apply`` did (None: nothing was sent), and whether the answer was other
    than yes. ``quiet``: the plan and the prompt go to stderr."""
    from reconciler.apply import apply_plan, default_reporter
    from reconciler.plan.planner import select_targets

    if planfile:
        saved = read_saved(planfile)
    manifests = ctx.workspace.manifests()
    select_targets(manifests, targets)  # unknown names are an error
    if planfile:
        from reconciler.plan.verify import verify

        def refresh(state, names):
            from reconciler.drift import refresh_state

            return refresh_state(manifests, state, names, reporter=lambda line: ctx.echo(line, err=True))

        state = ctx.workspace.state()
        try:
            chosen = verify(saved, manifests, state, targets, allow_mass_delete, refresh=refresh,
                            cache=plan_cache(ctx.workspace, no_cache))
        finally:
            state.close()
    else:
        state = ctx.workspace.state()
        try:
            chosen = build_plan(manifests, state, targets, allow_mass_delete=allow_mass_delete,
                                cache=plan_cache(ctx.workspace, no_cache))
        finally:
            state.close()
        ctx.echo_chunks(chunks(chosen, "text", color=ctx.color, per_target=APPLY_PREVIEW), err=quiet)
        if not chosen.has_changes:
            return None, False
        if not auto_approve:
            if not sys.stdin.isatty():
                raise ReconcilerError("refusing to apply without --auto-approve: standard input is not a terminal")
            answer = click.prompt("\nDo you want to apply these changes? Only 'yes' will be accepted", default="",
                                  show_default=False, err=quiet)
            if answer.strip() != "yes":
                ctx.echo("Apply cancelled.", err=quiet)
                return None, True
    resolved = check_credentials(chosen, manifests)  # before the state is created or touched
    state = ctx.workspace.state(create=True)
    try:
        # every target, not only the plan's: a rate window is shared with its siblings
        return apply_plan(chosen, manifests.targets, state, wait=not no_wait, credentials=resolved,
                          reporter=default_reporter(color=ctx.color), lock_timeout=lock_timeout), False
    finally:
        state.close()


def json_text(document: dict) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()


def read_saved(path: str) -> plan_file.Saved:
    """The saved plan at ``path``, found intact (see :mod:`reconciler.plan.file`)."""
    from reconciler.errors import PlanFileError

    if plan_file.document(path) is not None:
        raise PlanFileError(f"{path} is a plan in the JSON format (`plan --format json`), which is for reading: it "
                            "carries no digest, so it cannot be applied. Save a plan with `reconciler plan -o FILE`.")
    try:
        return plan_file.read(path)
    except PlanFileError as exc:
        raise PlanFileError(f"{exc}. Nothing was sent.") from None


def check_credentials(plan: Plan, manifests) -> dict[str, dict[str, str]]:
    """The credentials of the targets the plan changes, by target name, for the apply
    (every missing or refused one named at once)."""
    from reconciler import credentials
    from reconciler.errors import ConfigError

    try:
        return credentials.resolve_all(manifests.targets[name] for name, target_plan in plan.targets.items()
                                       if target_plan.changes)
    except ConfigError as exc:
        raise ConfigError(f"nothing was applied:\n  {exc}") from None


@cli.command()
@click.option("-t", "--target", "targets", multiple=True, help="Only this target (repeatable).")
@click.option("--verify", is_flag=True,
              help="Read the only-accepted items back where the provider can read an item: those found as sent "
                   "are confirmed, the others failed (the next plan proposes them again).")
@lock_timeout_option
@pass_context
def status(ctx: Context, targets: tuple[str, ...], verify: bool, lock_timeout: float) -> None:
    """Poll outstanding asynchronous jobs, settle their items, list failed items and
    the items a destination only accepted (acknowledged without confirming them): says
    how many jobs it settled, what became of their items, what is still pending.

    \b
    Example:
        reconciler apply --auto-approve --no-wait && reconciler status
        reconciler status --verify -t bloom-eu
    """
    from reconciler.apply import default_reporter, settle
    from reconciler.plan.planner import select_targets

    manifests = ctx.workspace.manifests()
    configs = select_targets(manifests, targets)
    if not exists(ctx.workspace):  # the state is made by the first apply, not here
        ctx.echo("No state yet: nothing was applied, so nothing is pending or failed.")
        return
    state = ctx.workspace.state(create=True)
    try:
        polled = [j for j in state.pending_jobs() if j.target in configs]
        # what it did is said below, above the failed items of every apply: no "Apply complete" line
        result = settle(state, configs, list(configs), reporter=default_reporter(color=ctx.color, overall=False),
                        lock_timeout=lock_timeout)
        checks = []
        if verify:
            from reconciler.drift.verify import verify_accepted

            checks = verify_accepted(state, configs, list(configs), lock_timeout=lock_timeout,
                                     progress=lambda line: ctx.echo(line, err=True))
            for check in checks:
                ctx.echo(printable(check.line()))
        failures = [f for f in state.failures() if f["target"] in configs]
        pending = [j for j in state.pending_jobs() if j.target in configs]
        accepted = [a for name in sorted(configs) for a in state.accepted(name)]  # only these targets' rows
    finally:
        state.close()
    if polled:
        totals = result.totals()
        ctx.echo(f"Settled {max(0, len(polled) - len(pending))} of {len(polled)} asynchronous job(s): "
                 f"{totals['confirmed']} items confirmed, {totals['failed']} failed.")
    if pending:
        items = sum(len(j.job.operations) for j in pending)
        ctx.echo(f"{items} items in {len(pending)} asynchronous jobs are still pending; run `reconciler status` again.")
    if failures:
        ctx.echo(f"Failed items ({len(failures)}); the next plan proposes them again:")
        for failure in failures:
            ctx.echo(printable(f"  {failure['target']}: {failure['action']} {failure['record']} {failure['sku']}: "
                               f"{failure['reason']}"))
    elif not pending:
        ctx.echo("No pending jobs and no failed items.")
    for line in accepted_lines(accepted, configs):
        ctx.echo(line)
    if failures or not result.ok or any(check.error for check in checks):
        sys.exit(1)


def accepted_lines(accepted: list[dict], targets: dict, shown: int = 10) -> list[str]:
    """The only-accepted items, per target: how many, the first ``shown``, and whether
    they can be read back."""
    from reconciler.providers import get_provider

    if not accepted:
        return []
    lines = [f"Accepted, not confirmed ({len(accepted)}): the destination acknowledged receipt and gives no "
             "final result per item:"]
    by_target: dict[str, list[dict]] = {}
    for row in accepted:
        by_target.setdefault(row["target"], []).append(row)
    for name, rows in by_target.items():
        provider = targets[name].provider
        how = (f"`reconciler status --verify -t {name}` reads them back"
               if get_provider(provider).capabilities.item_reads
               else f"{provider} cannot be read back: its API has no endpoint to read an item")
        listed = ", ".join(f"{r['action']} {r['record']} {r['sku']}" for r in rows[:shown])
        more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
        lines.append(printable(f"  {name}: {len(rows)} ({how}): {listed}{more}"))
    return lines


def exists(workspace: Workspace) -> bool:
    """Whether the workspace's state exists (found without creating or writing it)."""
    state = workspace.state()
    try:
        return state.persistent
    finally:
        state.close()


# -- drift / import ----------------------------------------------------------------------------
@cli.command()
@click.option("-t", "--target", "targets", multiple=True, help="Only this target (repeatable).")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@pass_context
def drift(ctx: Context, targets: tuple[str, ...], fmt: str) -> None:
    """Read the remote catalogs that can be read and report how they differ from the
    state (and what the manifests would change). Exit 2 when drift is found.

    \b
    Example:
        reconciler drift --format markdown > drift.md
        reconciler plan --refresh   # the plan that repairs the drift
    """
    from reconciler.drift import detect_drift
    from reconciler.drift.render import render as render_drift

    manifests = ctx.workspace.manifests()
    state = ctx.workspace.state()
    try:
        report = detect_drift(manifests, state, targets, progress=lambda line: ctx.echo(line, err=True))
    finally:
        state.close()
    ctx.echo(render_drift(report, fmt, color=ctx.color), nl=False)
    if report.has_errors:
        sys.exit(1)
    if report.has_drift:
        sys.exit(2)


@cli.command("import")
@click.option("-t", "--target", "targets", multiple=True, required=True,
              help="Target whose remote catalog to adopt (repeatable).")
@lock_timeout_option
@pass_context
def import_(ctx: Context, targets: tuple[str, ...], lock_timeout: float) -> None:
    """Adopt the items of a readable remote catalog into the state, so that the first
    plan against an existing catalog is not all creates. Items already in the state
    are overwritten with the remote payload.

    \b
    Example:
        reconciler import -t meta-us && reconciler plan
    """
    from reconciler.drift import import_catalog, importable

    manifests = ctx.workspace.manifests()
    importable(manifests, targets)  # refused before a state file is created
    new = not exists(ctx.workspace)
    state = ctx.workspace.state(create=True)
    try:
        results = import_catalog(manifests, state, targets, progress=lambda line: ctx.echo(line, err=True),
                                 lock_timeout=lock_timeout)
    except ReconcilerError:
        state.close()
        if new and ctx.workspace.state_path is not None:  # nothing imported: leave no empty state behind
            for suffix in ("", "-wal", "-shm"):
                Path(f"{ctx.workspace.state_path}{suffix}").unlink(missing_ok=True)
        raise
    finally:
        state.close()
    for result in results:
        for line in result.lines():
            ctx.echo(line)
    total = sum(r.adopted for r in results)
    ctx.echo(f"Imported {total} item(s). Run `reconciler plan` to see what the manifests would still change.")


# -- providers / sandbox -----------------------------------------------------------------------
@cli.command()
@pass_context
def providers(ctx: Context) -> None:
    """Each provider with its capabilities and limits.

    \b
    Example:
        reconciler providers
    """
    from reconciler.providers import PROVIDERS

    for name, provider in PROVIDERS.items():
        caps, limits = provider.capabilities, provider.limits
        ctx.echo(click.style(name, bold=True) if ctx.color else name)
        ctx.echo(f"  key: {provider.key_field}   records: {', '.join(caps.records)}   update: {caps.update_mode}")
        ctx.echo(f"  delete: {caps.delete}")
        ctx.echo(f"  readable: {'yes' if caps.readable else 'no'}   asynchronous: {'yes' if caps.asynchronous else 'no'}")
        required = provider.settings_model.required()
        ctx.echo(f"  auth: {', '.join(provider.auth_keys)}" + (f"   settings: {', '.join(required)}" if required else ""))
        scope = provider.limit_scope
        shared = ("" if scope is None else " (shared by every target at one base URL)" if not scope
                  else f" (shared by the targets with the same {' and '.join(scope)})")
        ctx.echo(f"  limits: {limits.describe()}{shared}")


@cli.command()
@click.option("--port", default=8700, show_default=True, help="First port; each provider takes the next one, in the order of `reconciler providers`.")
@click.option("--time-scale", default=1.0, show_default=True, help="Multiply every rate window (0.001: an hour is 3.6 s).")
@click.option("--fault-rate", default=0.0, show_default=True, help="Share of write requests that fail (500, 503, 429, drop).")
@click.option("--read-fault-rate", default=0.0, show_default=True,
              help="Share of read requests (listings, job status) that fail the same ways.")
@click.option("--seed", default=0, show_default=True, help="Seed of the injected faults.")
def sandbox(port: int, time_scale: float, fault_rate: float, read_fault_rate: float, seed: int) -> None:
    """Run local simulators of every provider on 127.0.0.1.

    \b
    Example:
        reconciler sandbox --port 8700 --time-scale 0.001
    """
    from reconciler.sandbox import SandboxConfig, serve_forever

    serve_forever(SandboxConfig(port=port, time_scale=time_scale, fault_rate=fault_rate,
                                read_fault_rate=read_fault_rate, seed=seed))


from reconciler.state.commands import state_group  # noqa: E402 (it builds on this module's helpers)

cli.add_command(state_group)
