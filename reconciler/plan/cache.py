"""The plan cache: what each source product produced the last time it was evaluated,
so that a plan costs what changed, not what the catalog weighs.

A source product is a JSONL line (its bytes), or a product of a YAML, JSON or CSV file
(the ``repr`` of the value read: it tells ``1`` from ``1.0``, ``"1"`` and ``True``).
For each, under the digest of its source, the cache keeps the sku and, per planned
target it goes to, the item key, the record kind and the payload's digest: exactly
what the planner compares with the state. A product whose source digest is found, and
whose every item digest equals the state's, is unchanged without being parsed,
validated or mapped; any other product (new, edited, or one whose item the state
holds differently, e.g. after a failed apply) is evaluated in full, as without a cache.
Only products evaluated without a problem are kept.

The whole cache sits under one *fingerprint* of everything else that shapes records:
the code (a digest of this package's sources, and pydantic's and orjson's versions),
each target's configuration but its credentials (provider, settings, select,
ignore_fields, …), their order, and the targets planned. Any difference and the cache
is ignored and rebuilt. The cache never depends on the state: a plan against any state
(another machine's, a PostgreSQL one shared by runners) may use it.

File: ``MAGIC``, a 16-byte checksum of the rest, the 32-byte fingerprint, the number of
products ``n``, their ``n`` source digests, ``n + 1`` offsets and the values (compact
JSON ``[sku, [target index, record, key or null when it is the sku, digest hex], …]``).
A file that is not exactly that (damaged, cut, another version) is ignored. It is
written whole to a temporary file then renamed, only when it changed: a no-op plan
writes nothing.
"""
from __future__ import annotations

import hashlib
import os
import struct
import uuid
from array import array
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import orjson

from reconciler.manifest.models import Target

MAGIC = b"reconciler plan cache 1\n"
_COUNT = struct.Struct("<Q")

CachedEntry = tuple[str, str, str, bytes]  # (target, key, record, digest)


def cache_path(path: str | os.PathLike | bool | None = None) -> Path | None:
    """The cache file a plan uses: ``path``, else ``RECONCILER_PLAN_CACHE``; none at
    all for ``path=False`` or when ``RECONCILER_NO_CACHE`` is set (to anything but an
    empty string)."""
    if path is False or os.environ.get("RECONCILER_NO_CACHE"):
        return None
    path = path if path is not None else os.environ.get("RECONCILER_PLAN_CACHE") or None
    return Path(path) if path is not None else None


def source_digest(source: bytes) -> bytes:
    return hashlib.blake2b(source, digest_size=16).digest()


@lru_cache(maxsize=1)
def code_digest() -> bytes:
    """A digest of the code that shapes records: this package's sources (any edit, any
    version) and the versions of the libraries that validate and serialise."""
    import pydantic

    digest = hashlib.blake2b(digest_size=32)
    digest.update(f"pydantic {pydantic.VERSION} orjson {orjson.__version__}".encode())
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


def fingerprint(targets: Sequence[Target], planned: Iterable[str]) -> bytes:
    configs = [target.model_dump(mode="json", exclude={"auth"}) for target in targets]
    data = orjson.dumps([configs, sorted(planned)], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(code_digest() + data, digest_size=32).digest()


class PlanCache:
    """The cache of one plan: the products read from ``path`` (if its fingerprint is
    this plan's) and what this plan learns (:meth:`keep`, :meth:`used`)."""

    def __init__(self, path: str | os.PathLike, targets: Sequence[Target], planned: Iterable[str]):
        self.path = Path(path)
        self.names = [target.name for target in targets]
        self.number = {name: i for i, name in enumerate(self.names)}
        self.fingerprint = fingerprint(targets, planned)
        self.index: dict[bytes, int] = {}
        self.offsets = array("Q")
        self.values = b""
        self.seen: set[bytes] = set()
        self.fresh: dict[bytes, bytes] = {}
        self._read()

    def _read(self) -> None:
        try:
            data = self.path.read_bytes()
        except OSError:
            return
        head = len(MAGIC)
        if not data.startswith(MAGIC) or len(data) < head + 16 + 32 + _COUNT.size:
            return
        if hashlib.blake2b(memoryview(data)[head + 16:], digest_size=16).digest() != data[head:head + 16]:
            return  # damaged
        at = head + 16
        if data[at:at + 32] != self.fingerprint:
            return
        at += 32
        (count,) = _COUNT.unpack_from(data, at)
        at += _COUNT.size
        digests_end = at + 16 * count
        offsets = array("Q")
        offsets.frombytes(data[digests_end:digests_end + 8 * (count + 1)])
        if len(offsets) != count + 1 or offsets[-1] != len(data) - (digests_end + 8 * (count + 1)):
            return
        self.index = {data[i:i + 16]: n for n, i in enumerate(range(at, digests_end, 16))}
        self.offsets = offsets
        self.values = data[digests_end + 8 * (count + 1):]

    def __len__(self) -> int:
        return len(self.index)

    def get(self, source: bytes) -> tuple[str, list[CachedEntry]] | None:
        """The sku and the items of the product with this source digest, if known."""
        number = self.index.get(source)
        if number is None:
            return None
        sku, *flat = orjson.loads(self.values[self.offsets[number]:self.offsets[number + 1]])
        names = self.names
        return sku, [(names[flat[i]], sku if flat[i + 2] is None else flat[i + 2], flat[i + 1], bytes.fromhex(flat[i + 3]))
                     for i in range(0, len(flat), 4)]

    def value(self, sku: str, entries: Iterable[tuple[str, str, str, bytes]]) -> bytes:
        """The stored form of a product's sku and ``(target, key, record, digest)`` items."""
        flat: list = [sku]
        number = self.number
        for target, key, record, digest in entries:
            flat += (number[target], record, None if key == sku else key, digest.hex())
        return orjson.dumps(flat)

    def learn(self, seen: Iterable[bytes], fresh: Iterable[tuple[bytes, bytes]]) -> None:
        """Record what a part of the plan used (``seen``: source digests found) and
        evaluated anew (``fresh``: ``(source digest, value)``)."""
        self.seen.update(seen)
        self.fresh.update(fresh)

    def save(self) -> None:
        """Write what this plan used and learnt, if it differs from what was read; a
        cache that cannot be written is left as it is (a plan never fails for it)."""
        if not self.fresh and len(self.seen) == len(self.index):  # every product found: nothing new
            return
        kept = [d for d in self.index if d in self.seen and d not in self.fresh]
        digests, values, offsets = [], [], array("Q", [0])
        for digest in kept:
            number = self.index[digest]
            values.append(self.values[self.offsets[number]:self.offsets[number + 1]])
            digests.append(digest)
            offsets.append(offsets[-1] + len(values[-1]))
        for digest, value in self.fresh.items():
            digests.append(digest)
            values.append(value)
            offsets.append(offsets[-1] + len(value))
        body = b"".join([self.fingerprint, _COUNT.pack(len(digests)), *digests, offsets.tobytes(), *values])
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.new")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(MAGIC + hashlib.blake2b(body, digest_size=16).digest() + body)
            os.replace(temporary, self.path)
        except OSError:
            temporary.unlink(missing_ok=True)
