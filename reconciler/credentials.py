"""Resolving a target's ``auth:`` values, only when a command must talk to it.

Values may be literal or ``${ENV_VAR}`` references. Resolved secrets live only in
memory, in the provider instance; they never reach the state, a plan, output or logs.
"""
from __future__ import annotations

import base64
import itertools
import os
import re
from typing import Mapping, Sequence

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


def secrets_of(values: Mapping[str, str]) -> list[str]:
    """Strings that must never be shown: the resolved credentials, and the Basic-auth
    tokens pairs of them make. Longest first, so replacing one never leaves a tail."""
    plain = [v for v in values.values() if isinstance(v, str) and len(v) >= 4]
    derived = [base64.b64encode(f"{a}:{b}".encode()).decode()
               for a, b in itertools.permutations(values.values(), 2)
               if isinstance(a, str) and isinstance(b, str)]
    return sorted(set(plain + derived), key=len, reverse=True)


def redact(text: str | None, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    text = "" if text is None else str(text)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text
