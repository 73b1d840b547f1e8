"""Resolving a target's ``auth:`` values, only when a command must talk to it.

Values may be literal or ``${ENV_VAR}`` references. Resolved secrets live only in
memory, in the provider instance; they never reach the state, a plan, output or logs.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

from reconciler.errors import ConfigError
from reconciler.manifest.models import Target

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve(target: Target, required: tuple[str, ...] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    missing_keys = [key for key in required if key not in target.auth]
    if missing_keys:
        raise ConfigError(f"target {target.name}: auth needs {', '.join(missing_keys)}")
    resolved, unset = {}, []
    for key, value in target.auth.items():
        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in environ:
                unset.append(name)
                return ""
            return environ[name]
        resolved[key] = REFERENCE.sub(substitute, value)
    if unset:
        names = ", ".join(sorted(set(unset)))
        raise ConfigError(f"target {target.name}: environment variable {names} is not set (needed by auth)")
    return resolved
