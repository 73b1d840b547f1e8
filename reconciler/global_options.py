"""Global options anywhere on the command line, as in Terraform and git:
``reconciler plan --no-color -C shop`` means ``reconciler --no-color -C shop plan``.

click reads a group's options only before its subcommand; :func:`hoist` moves the
root group's options found after the subcommand in front of it, walking the
subcommands' own options (and their values) so that a value is never taken for an
option. No subcommand may define an option of the same name (a test checks it), so
the move is never ambiguous. ``--help`` stays where it is: after a subcommand it asks
for that subcommand's help.
"""
from __future__ import annotations

from typing import Sequence

import click


def _options(command: click.Command, ctx: click.Context) -> dict[str, click.Parameter]:
    return {name: param for param in command.get_params(ctx) if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)}


def _takes_value(option: click.Parameter) -> bool:
    return isinstance(option, click.Option) and not option.is_flag and not option.count


def _match(token: str, options: dict[str, click.Parameter]) -> tuple[click.Parameter | None, bool]:
    """The option ``token`` names, and whether its value is inside it (``--dir=x``, ``-Cx``)."""
    if token.startswith("--"):
        name, equals, _ = token.partition("=")
        return options.get(name), bool(equals)
    if token in options:
        return options[token], False
    option = options.get(token[:2])
    if option is not None and _takes_value(option):
        return option, True
    return None, False


def hoist(group: click.Group, ctx: click.Context, args: Sequence[str]) -> list[str]:
    """``args`` with ``group``'s options moved before its subcommand."""
    args = list(args)
    globals_ = {name: option for name, option in _options(group, ctx).items()
                if name not in ctx.help_option_names}
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] not in ("-", "--"):
        option, inline = _match(args[index], globals_)
        index += 2 if option is not None and _takes_value(option) and not inline else 1
    if index >= len(args) or args[index] not in group.commands:
        return args  # no subcommand: click reports what is wrong
    front, moved, kept = args[:index], [], [args[index]]
    command: click.Command = group.commands[args[index]]
    rest = args[index + 1:]
    while rest:
        token = rest.pop(0)
        if token == "--":
            kept += [token, *rest]
            break
        if token.startswith("-") and token != "-":
            option, inline = _match(token, globals_)
            target = moved
            if option is None:
                option, inline = _match(token, _options(command, ctx))
                target = kept
            target.append(token)
            if option is not None and _takes_value(option) and not inline and rest:
                target.append(rest.pop(0))
            continue
        if isinstance(command, click.Group) and token in command.commands:
            command = command.commands[token]
        kept.append(token)
    return [*front, *moved, *kept]
