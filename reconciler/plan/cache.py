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
each target's configuration but its credentials and base URL (provider, settings,
select, ignore_fields, …), their order, and the targets planned. Any difference and
the cache is ignored and rebuilt.

*In step*: each plan also records the state it compared with (its lineage and the
planned targets' serials, which every command that changes a target's items bumps: a
saved plan relies on them the same way), which of the cached products had every item
equal to that state's (*synced*), how many items each target held and which items no
product produced (the plan's deletes). A later plan against the same state needs no
comparison for a synced product, and loads no list of the state's items: it looks up
only the items of the products it evaluates; the items of the cached products it did
not find, and the snapshot's deletes, are its deletes unless evaluated products
produce them; every other item is unchanged but for the updates. Whatever only a full
plan reports exactly (a problem, a sku or key met twice) makes it plan in full. A
target keyed on another field than the sku, or a state not stored (none yet, or the
copy ``plan --refresh`` changes), is never in step.

File: ``MAGIC``, a 16-byte checksum of the rest, the 32-byte fingerprint, the snapshot
(length-prefixed JSON), the number of products ``n``, their ``n`` source digests,
``n`` sku hashes (8 bytes), ``n`` synced flags, ``n`` value lengths and the values
(compact JSON ``[sku, target index, record, key or null when it is the sku, digest
hex, …]``). A file that is not exactly that (damaged, cut, another version) is
ignored. It is written whole to a temporary file then renamed, only when it changed:
a plan that changed nothing writes nothing.
"""
from __future__ import annotations

import hashlib
import os
import struct
import uuid
from array import array
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import orjson

from reconciler.manifest.models import Target
from reconciler.providers import get_provider
from reconciler.state import State

MAGIC = b"reconciler plan cache 2\n"
_COUNT = struct.Struct("<Q")

CachedEntry = tuple[str, str, str, bytes]  # (target, key, record, digest)


def cache_path(path: str | os.PathLike | bool | None = None,
               default: str | os.PathLike | None = None) -> Path | None:
    """The cache file a plan uses: ``path``, else ``RECONCILER_PLAN_CACHE``, else
    ``default`` (the CLI's ``DIR/.reconciler/plan-cache``); none at all for
    ``path=False`` (``--no-cache``) or when ``RECONCILER_NO_CACHE`` is set (to anything
    but an empty string). The one place that reads those variables."""
    if path is False or os.environ.get("RECONCILER_NO_CACHE"):
        return None
    path = path if path is not None else os.environ.get("RECONCILER_PLAN_CACHE") or default
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
    # Not the credentials (never stored) nor the base URL: where requests go shapes no
    # record, and ``--with-sandbox`` moves it for one command (the catalog a target
    # names is checked apart, against the state: see reconciler.plan.binding).
    configs = [target.model_dump(mode="json", exclude={"auth", "base_url"}) for target in targets]
    data = orjson.dumps([configs, sorted(planned)], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(code_digest() + data, digest_size=32).digest()


class PlanCache:
    """The cache of one plan: the products read from ``path`` (if its fingerprint is
    this plan's), what this plan used of them (:meth:`learn`) and evaluated anew.

    ``snapshot``: the state the cache was last found in step with (see the module
    doc); :attr:`in_step` says whether this plan's state is still that one."""

    def __init__(self, path: str | os.PathLike, targets: Sequence[Target], planned: Iterable[str],
                 state: State | None = None):
        self.path = Path(path)
        self.names = [target.name for target in targets]
        self.number = {name: i for i, name in enumerate(self.names)}
        self.planned = sorted(planned)
        self.fingerprint = fingerprint(targets, self.planned)
        self.index: dict[bytes, int] = {}
        self.digests = b""
        self.offsets = array("Q", [0])
        self.values = b""
        self.skus = array("Q")  # per product, the first 8 bytes of its sku's digest
        self.lengths = array("I")
        self.synced = bytearray()  # per product: its items were all the snapshot state's
        self.snapshot: dict = {}
        self.used = bytearray()
        self.fresh: dict[bytes, tuple[bytes, int, bool]] = {}  # source digest: (value, sku hash, synced)
        self.identity = _identity(state, self.planned) if state is not None else None
        self._read()
        self.used = bytearray(len(self.index))
        self.now_synced = bytearray(len(self.index))
        keyed_on_sku = all(get_provider(t.provider).key_source == "sku" for t in targets if t.name in self.planned)
        self.in_step = bool(self.identity and self.index and keyed_on_sku and self.snapshot.get("state") == self.identity)

    def _read(self) -> None:
        try:
            data = self.path.read_bytes()
        except OSError:
            return
        head = len(MAGIC)
        if not data.startswith(MAGIC) or len(data) < head + 16 + 32 + 2 * _COUNT.size:
            return
        if hashlib.blake2b(memoryview(data)[head + 16:], digest_size=16).digest() != data[head:head + 16]:
            return  # damaged
        at = head + 16
        if data[at:at + 32] != self.fingerprint:
            return
        at += 32
        (size,) = _COUNT.unpack_from(data, at)
        snapshot = orjson.loads(data[at + _COUNT.size:at + _COUNT.size + size])
        at += _COUNT.size + size
        (count,) = _COUNT.unpack_from(data, at)
        at += _COUNT.size
        digests_end = at + 16 * count
        skus, lengths = array("Q"), array("I")
        skus.frombytes(data[digests_end:digests_end + 8 * count])
        at = digests_end + 8 * count
        synced = bytearray(data[at:at + count])
        at += count
        lengths.frombytes(data[at:at + 4 * count])
        values = data[at + 4 * count:]
        offsets = array("Q", accumulate(lengths, initial=0))
        if len(skus) != count or len(synced) != count or len(lengths) != count or offsets[-1] != len(values):
            return
        self.digests = data[digests_end - 16 * count:digests_end]
        self.index = {self.digests[i:i + 16]: n for n, i in enumerate(range(0, 16 * count, 16))}
        self.skus, self.synced, self.lengths, self.offsets, self.values = skus, synced, lengths, offsets, values
        self.snapshot = snapshot

    def __len__(self) -> int:
        return len(self.index)

    def restart(self) -> None:
        """Forget what a plan used and learnt, and plan out of step (in full)."""
        self.used = bytearray(len(self.index))
        self.now_synced = bytearray(len(self.index))
        self.fresh = {}
        self.in_step = False

    def items(self, number: int) -> tuple[str, list[CachedEntry]]:
        """The sku and ``(target, key, record, digest)`` items of cached product ``number``."""
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

    def learn(self, synced: Iterable[int], stale: Iterable[int],
              fresh: Iterable[tuple[bytes, bytes, int, bool]]) -> bool:
        """Record what a part of the plan found (the numbers of the cached products
        whose items all equal the state's, ``synced``, and of the others, ``stale``)
        and evaluated anew (``(source digest, value, sku hash, synced)``: the hash made
        where the sku was at hand, see :func:`sku_hash`). Returns whether a cached
        product was found twice (a line repeated: a duplicate)."""
        used, now, again = self.used, self.now_synced, False
        for numbers, flag in ((synced, 1), (stale, 0)):
            for number in numbers:
                again = again or used[number] == 1
                used[number] = 1
                now[number] = flag
        self.fresh.update((digest, (value, hashed, flag)) for digest, value, hashed, flag in fresh)
        return again

    def unused(self) -> Iterable[int]:
        """The cached products this plan did not find (lines deleted or edited)."""
        start = 0
        while (found := self.used.find(0, start)) != -1:
            yield found
            start = found + 1

    def with_skus(self, skus: Iterable[str]) -> list[int]:
        """The cached products whose sku is one of ``skus``."""
        wanted_skus = set(skus)
        wanted = {sku_hash(sku) for sku in wanted_skus}
        if not wanted:
            return []
        return [n for n, h in enumerate(self.skus) if h in wanted and self.items(n)[0] in wanted_skus]

    def save(self, snapshot: dict | None) -> None:
        """Write what this plan used and learnt, if it differs from what was read.
        ``snapshot`` (``{"known": {target: items in the state}, "deletes": {target:
        [[record, key], …]}}``, see the module doc), when the plan was made in full or
        in step, is recorded with the state's identity. A cache that cannot be
        written is left as it is (a plan never fails for it)."""
        snapshot = {"state": self.identity, **snapshot} if snapshot is not None and self.identity else {}
        fresh = [(digest, *learnt) for digest, learnt in self.fresh.items() if digest not in self.index]
        if not fresh and self.used.count(0) == 0 and snapshot == self.snapshot and self.now_synced == self.synced:
            return
        digests, skus, synced, lengths, values = [], array("Q"), bytearray(), array("I"), []
        for start, end in self._used_runs():  # slices, not a loop over every product
            digests.append(self.digests[16 * start:16 * end])
            skus.extend(self.skus[start:end])
            synced += self.now_synced[start:end]
            lengths.extend(self.lengths[start:end])
            values.append(self.values[self.offsets[start]:self.offsets[end]])
        for digest, value, hashed, flag in fresh:
            digests.append(digest)
            values.append(value)
            skus.append(hashed)
            synced.append(flag)
            lengths.append(len(value))
        head = orjson.dumps(snapshot)
        body = b"".join([self.fingerprint, _COUNT.pack(len(head)), head, _COUNT.pack(len(skus)), *digests,
                         skus.tobytes(), synced, lengths.tobytes(), *values])
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.new")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(MAGIC + hashlib.blake2b(body, digest_size=16).digest() + body)
            os.replace(temporary, self.path)
        except OSError:
            temporary.unlink(missing_ok=True)

    def _used_runs(self) -> Iterator[tuple[int, int]]:
        used, start, count = self.used, 0, len(self.used)
        while start < count:
            start = used.find(1, start)
            if start == -1:
                return
            end = used.find(0, start)
            end = count if end == -1 else end
            yield start, end
            start = end


def sku_hash(sku: str) -> int:
    return int.from_bytes(hashlib.blake2b(sku.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _identity(state: State, planned: Sequence[str]) -> dict | None:
    """What identifies the planned targets' items in ``state``: its lineage and their
    serials (bumped by every command that changes a target's items, as a saved plan
    relies on), or None for a state that is not a stored one (none yet, or the copy
    ``plan --refresh`` changes in memory)."""
    if not state.persistent or state.lineage is None:
        return None
    return {"lineage": state.lineage, "serials": state.target_serials(planned)}
