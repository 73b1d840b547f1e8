"""Where a state lives: a SQLite file path or a PostgreSQL URL (and schema).

``--state`` (or ``RECONCILER_STATE``) takes either; a value starting with
``postgresql://`` or ``postgres://`` selects PostgreSQL, anything else is a path.
``--state-schema`` (``RECONCILER_STATE_SCHEMA``, default ``reconciler``) names the
PostgreSQL schema holding the state, so several workspaces share one database.

A location is shown (in messages, in the state, anywhere) only as :meth:`Location.display`:
the URL without its password. The password itself may come from the URL or from
libpq's own variables (``PGPASSWORD``, ``PGPASSFILE``...), which psycopg reads.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from reconciler.errors import StateError

DEFAULT_SCHEMA = "reconciler"
SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Location:
    """A SQLite ``path`` or a PostgreSQL ``url`` with its ``schema``."""

    path: Path | None = None
    url: str | None = None
    schema: str = DEFAULT_SCHEMA

    @classmethod
    def parse(cls, value: str | os.PathLike, schema: str | None = None) -> "Location":
        text = os.fspath(value)
        if not text.startswith(SCHEMES):
            return cls(path=Path(text))
        schema = schema or DEFAULT_SCHEMA
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StateError(f"--state-schema {schema!r} is not a schema name: lower-case letters, digits and "
                             "underscores, not starting with a digit, at most 63 characters")
        return cls(url=text, schema=schema)

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    @property
    def password(self) -> str | None:
        """The password written in the URL, if any (to redact from messages)."""
        if self.url is None:
            return None
        try:
            return urlsplit(self.url).password
        except ValueError:
            return None

    def display(self) -> str:
        """How the location is shown: a path, or the URL without its password."""
        if self.url is None:
            return str(self.path)
        try:
            parts = urlsplit(self.url)
            netloc = parts.netloc
            if parts.password is not None:
                userinfo, _, host = netloc.rpartition("@")
                netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
            shown = urlunsplit(parts._replace(netloc=netloc))
        except ValueError:
            shown = "postgresql://(unparsable URL)"
        return f"{shown} (schema {self.schema})"

    def redact(self, text: str) -> str:
        """``text`` without this location's password (a driver's message may quote the URL)."""
        password = self.password
        if password:
            text = text.replace(password, "***")
        if self.url:
            text = text.replace(self.url, self.display())
        return text

    def __str__(self) -> str:
        return self.display()
