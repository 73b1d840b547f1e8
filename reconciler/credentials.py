"""Resolving a target's ``auth:`` values, only when a command must talk to it, and
keeping every form of them out of what is shown or stored.

Values may be literal or ``${ENV_VAR}`` references. A command resolves a target's
values once, before its first request (``apply`` those of every target it writes to,
before the state is touched, and hands them to the apply), and refuses a value holding a control or format
character (a CR from a Windows env file, a pasted newline), or, where the provider puts
credentials in a header as they are, a character that is not ASCII (a curly quote or a
non-breaking space pasted from a document), naming the target, the auth key and the
variable, never the value: such a value would otherwise reach an HTTP header and fail
there, with the header printed or as an internal error, and be retried as if transient.

Resolved secrets live only in memory, in the provider instance. Whatever a command
shows or stores passes through :func:`redact`, which finds a secret in any form it can
take in a message: as is, escaped the way ``repr`` or JSON writes it (httpx prints a
bad header as ``b'Bearer ...'``), percent-encoded, in base64 and in a Basic header.
"""
from __future__ import annotations

import base64
import functools
import itertools
import os
import re
import unicodedata
from typing import Iterable, Mapping, Sequence

from reconciler.display import UNSAFE_CATEGORIES
from reconciler.errors import ConfigError
from reconciler.manifest.models import Target
from reconciler.providers import get_provider

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Values shorter than this are not looked for in messages: replacing every "ab" of a
# message would hide what it says, and such a value protects nothing anyway.
MIN_SECRET_LENGTH = 4


def resolve(target: Target, required: tuple[str, ...] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The target's auth values with ``${ENV_VAR}`` substituted; a :class:`ConfigError`
    naming every missing key, unset variable or refused value (never a value)."""
    environ = os.environ if environ is None else environ
    missing_keys = [key for key in required if key not in target.auth]
    if missing_keys:
        raise ConfigError(f"target {target.name}: auth needs {', '.join(missing_keys)}")
    provider = get_provider(target.provider)
    resolved, unset, refused = {}, [], []
    for key, value in target.auth.items():
        names = REFERENCE.findall(value)

        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in environ:
                unset.append(name)
                return ""
            return environ[name]

        resolved[key] = REFERENCE.sub(substitute, value)
        bad = _refused_character(resolved[key]) or (None if provider.auth_encoded else _not_ascii(resolved[key]))
        if bad:
            source = f" (from environment variable {', '.join(names)})" if names else ""
            refused.append(f"auth.{key}{source} contains {bad}")
    if unset:
        names = ", ".join(sorted(set(unset)))
        raise ConfigError(f"target {target.name}: environment variable {names} is not set (needed by auth)")
    if refused:
        raise ConfigError(f"target {target.name}: {'; '.join(refused)}. A credential is printable text: "
                          "remove the character (a CR or newline often comes from a copied value or a "
                          "Windows env file, a curly quote or a non-breaking space from a document)")
    return resolved


def resolve_all(targets: Iterable[Target], environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Each target's auth values (:func:`resolve`, with the keys its provider needs),
    by target name; one :class:`ConfigError` naming every target's problems at once."""
    resolved, problems = {}, []
    for target in targets:
        try:
            resolved[target.name] = resolve(target, get_provider(target.provider).auth_keys, environ)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n  ".join(problems))
    return resolved


def _refused_character(value: str) -> str | None:
    """What is wrong with a credential's characters, naming the character's code point
    only (never the value or a position in it)."""
    for char in value:
        category = unicodedata.category(char)
        if category in UNSAFE_CATEGORIES:
            kind = "a control character" if category == "Cc" else "a format or separator character"
            return f"{kind} ({_code_point(char)})"
    return None


def _not_ascii(value: str) -> str | None:
    for char in value:
        if not char.isascii():
            return f"a character that is not ASCII ({_code_point(char)}), and an HTTP header carries it as it is"
    return None


def _code_point(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}{' ' + name if name else ''}"


def secrets_of(values: Mapping[str, str]) -> list[str]:
    """Strings that must never be shown: the resolved credentials, and the base64 forms
    of them alone and of the ``a:b`` pairs a Basic header makes of them. Longest first.
    :func:`redact` finds each in its escaped and percent-encoded forms too."""
    plain = [v for v in values.values() if isinstance(v, str)]
    pairs = [f"{a}:{b}" for a, b in itertools.permutations(plain, 2)]
    encoded = set()
    for text in (*plain, *pairs):
        raw = text.encode("utf-8")
        for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            encoded.add(b64.decode("ascii"))
            encoded.add(b64.decode("ascii").rstrip("="))
    forms = {v for v in (*plain, *encoded) if len(v) >= MIN_SECRET_LENGTH}
    return sorted(forms, key=lambda v: (-len(v), v))


def redact(text: str | None, secrets: Sequence[str]) -> str:
    """``text`` with every secret, in any of its forms, replaced by ``***``."""
    text = "" if text is None else str(text)
    if not secrets or not text:
        return text
    return _pattern(tuple(secrets)).sub("***", text)


@functools.lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first: at one position, the alternation takes the first that matches.
    return re.compile("|".join(_char_forms(secret) for secret in secrets))


def _char_forms(secret: str) -> str:
    """A pattern matching ``secret`` with each character as is or in any escape a
    message may hold it in, mixed freely (a message escapes some characters only)."""
    return "".join(_one_char(char) for char in secret)


@functools.lru_cache(maxsize=4096)
def _one_char(char: str) -> str:
    code = ord(char)
    utf8 = char.encode("utf-8", "surrogatepass")
    escapes = {
        "".join(f"%{b:02x}" for b in utf8),                 # percent-encoding (any hex case: (?i))
        "".join(f"\\x{b:02x}" for b in utf8),               # repr() of bytes
        f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}",  # repr() of str, JSON
    }
    if code <= 0xFF:
        escapes.add(f"\\x{code:02x}")                       # repr() of str
    if code > 0xFFFF:                                       # JSON writes a surrogate pair
        high, low = divmod(code - 0x10000, 0x400)
        escapes.add(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}")
    short = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", "\\": "\\\\",
             "'": "\\'", '"': '\\"', "/": "\\/", " ": "+"}.get(char)
    alternatives = [re.escape(char), f"(?i:{'|'.join(re.escape(e) for e in sorted(escapes))})"]
    if short:
        alternatives.append(re.escape(short))
    return f"(?:{'|'.join(alternatives)})"
