"""The product stream the planner consumes: per-product work, in parallel when large.

For each product, :class:`Evaluator` does everything that needs only that product:
validate it, route it to targets, check what each target's API requires (and the
fields its overrides set), map it to payloads and digest them. That is most of a
plan's cost, so for large JSONL files it runs in worker processes, on chunks of
lines, while the main process checks what needs every product (duplicate skus and
keys) in file order and compares digests with the state. Results come back in order, so a parallel plan equals a sequential one.

A product of a YAML, JSON or CSV file comes out as ``(sku, file, line, problems,
entries)`` where an entry is ``(target, key, record, body, digest)``: ``body`` is the
payload as canonical JSON bytes, loaded again only for changed items, and ``None``
when the digest is the state's (the item is unchanged). JSONL files come out by
:class:`Chunk`, whose :class:`Summary` carries the same facts for a whole chunk of
valid products in a compact form. Only plain tuples, lists, strings and bytes cross
process boundaries: they pickle fastest.
"""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

from reconciler.errors import Problem, suggestion
from reconciler.manifest.csv_rows import csv_products
from reconciler.manifest.files import BOM
from reconciler.manifest.loader import (
    Location, Manifests, json_line_product, parse_product, spaced_colons,
)
from reconciler.manifest.models import Product, Target
from reconciler.mapping import canonical, item_key, missing_fields, records, unknown_overrides
from reconciler.plan.cache import PlanCache, sku_hash, source_digest
from reconciler.state.store import digest_of

Entry = tuple[str, str, str, bytes, bytes]


class Summary(NamedTuple):
    """A chunk of valid products, compact: per product only its sku and line; entries
    whose digest is the state's as ``(record, key, index)`` per target; the others in
    full as ``(index, target, key, record, body, digest)``. Index: into ``skus``."""

    skus: list[str]
    lines: list[int]
    changed: list[tuple[int, str, str, str, bytes, bytes]]
    unchanged: dict[str, list[tuple[str, str, int]]]
    learnt: tuple[list[int], list[int], list[tuple[bytes, bytes, int, bool]]] = ([], [], [])  # see Evaluator.learnt


Evaluated = tuple[str | None, str, int, list[Problem], tuple[Entry, ...]]


class Chunk(NamedTuple):
    """Lines of a JSONL file, and their summary, or (when a product of it has a
    problem) its products evaluated one by one."""

    file: str
    first_line: int
    data: bytes
    summary: Summary | list[Evaluated]

PARALLEL_MIN_BYTES = 16 * 2**20  # below this a JSONL file is read in-process
CHUNK_BYTES = 1 << 20  # about 1,700 products of 600 bytes
IN_FLIGHT_CHUNKS = 32  # per worker pool: enough for workers to run ahead of the main process


class Evaluator:
    """Per-product checks and mapping, in the main process or a forked worker.

    ``digests`` (per planned target, ``{(record, key): digest}`` as in the state) lets
    an entry whose digest is unchanged leave its body out: most of a plan's items are
    unchanged, and their bodies are most of what would cross process boundaries.
    ``cache`` (see :mod:`reconciler.plan.cache`): a product it knows unchanged is not
    parsed; in step with its snapshot it comes out as nothing at all (None), and only
    its number goes back to the main process (:meth:`learnt`).
    """

    def __init__(self, targets: dict[str, Target], names: Iterable[str], planned: Iterable[str],
                 digests: Mapping[str, Mapping[tuple[str, str], bytes]] | None = None,
                 cache: PlanCache | None = None):
        self.targets = tuple(targets.values())
        self.by_name = dict(targets)
        self.known = frozenset(names)
        self.planned = frozenset(planned)
        self.ignore = {t.name: tuple(t.ignore_fields) for t in self.targets}
        self.digests = digests or {}
        self.cache = cache
        # what the cache was asked and taught since the last summary (see learnt())
        self.synced: list[int] = []
        self.stale: list[int] = []
        self.fresh: list[tuple[bytes, bytes, int, bool]] = []

    def __call__(self, where: Location, raw: Any) -> Evaluated | None:
        source = None
        if self.cache is not None:
            source = source_digest(repr(raw).encode("utf-8", "surrogatepass"))
            found = self._cached(source, where.file, where.line)
            if found is not False:
                return found
        product, problems = parse_product(raw, where)
        sku, file, number, problems, entries = self._evaluated(product, problems, where.file, where.line)
        return self._learnt(source, (sku, file, number, [where.located(problem) for problem in problems], entries))

    def line(self, file: str, number: int, line: bytes, spaced: bool = True) -> Evaluated | None:
        """A JSONL line: the common case, a valid product, with no Location built
        (``spaced``: see :func:`~reconciler.manifest.loader.json_line_product`)."""
        source = None
        if self.cache is not None:
            source = source_digest(line)
            found = self._cached(source, file, number)
            if found is not False:
                return found
        product, problems = json_line_product(line, file, number, spaced)
        return self._learnt(source, self._evaluated(product, problems, file, number))

    def _cached(self, source: bytes, file: str, number: int) -> Evaluated | None | bool:
        """A product the cache knows: None when it is unchanged in step with the
        cache's snapshot (nothing to say: ``cache.in_step``); else as evaluated, when
        each of its items is unchanged in the state. False: evaluate it in full (not
        cached, or an item differs: its payload is needed)."""
        cache = self.cache
        found = cache.index.get(source)
        if found is None:
            return False
        if cache.in_step:
            if cache.synced[found]:
                self.synced.append(found)
                return None
            self.stale.append(found)
            return False
        sku, items = cache.items(found)
        digests = self.digests
        for target, key, record, digest in items:
            if digests.get(target, {}).get((record, key)) != digest:
                self.stale.append(found)
                return False
        self.synced.append(found)
        return sku, file, number, [], tuple((target, key, record, None, digest) for target, key, record, digest in items)

    def _learnt(self, source: bytes | None, evaluated: Evaluated) -> Evaluated:
        sku, _, _, problems, entries = evaluated
        if source is not None and sku is not None and not problems and source not in self.cache.index:
            # in step, the digests of the state are not at hand: not known synced
            synced = not self.cache.in_step and all(body is None for _, _, _, body, _ in entries)
            value = self.cache.value(sku, ((t, k, r, d) for t, k, r, _, d in entries))
            self.fresh.append((source, value, sku_hash(sku), synced))
        return evaluated

    def learnt(self) -> tuple[list[int], list[int], list[tuple[bytes, bytes, int, bool]]]:
        """What the cache was asked and taught since the last call (then forgotten):
        the numbers of the cached products found (whose items are all the state's,
        and the others), and ``(source digest, value, sku hash, synced)`` of the products
        evaluated anew. See :meth:`PlanCache.learn`."""
        learnt = self.synced, self.stale, self.fresh
        self.synced, self.stale, self.fresh = [], [], []
        return learnt

    def _evaluated(self, product: Product | None, problems: list[Problem], file: str, number: int) -> Evaluated:
        if product is None:
            return None, file, number, problems, ()
        sku = product.sku
        if product.targets or product.overrides:
            named = [(("targets", i), n) for i, n in enumerate(product.targets or ())]
            named += [(("overrides", n), n) for n in product.overrides or ()]
            problems.extend(Problem(file, number, sku, f"unknown target {name!r} ({suggestion(name, sorted(self.known))})", path)
                            for path, name in named if name not in self.known)
            for name, fields in (product.overrides or {}).items():
                if name in self.by_name:
                    problems.extend(Problem(file, number, sku, message, path)
                                    for path, message in unknown_overrides(self.by_name[name], fields))
        entries = []
        for target in self.targets:
            if not target.wants(product):
                continue
            missing = missing_fields(target, product)
            if missing:
                problems.extend(Problem(file, number, sku, message) for message in missing)
                continue
            if target.name not in self.planned or problems:
                continue
            key = item_key(target, product)
            ignore = self.ignore[target.name]
            known = self.digests.get(target.name, {})
            try:
                for record, payload in records(target, product).items():
                    body = canonical(payload)
                    digest = digest_of(payload, body, ignore)
                    entries.append((target.name, key, record, None if known.get((record, key)) == digest else body,
                                    digest))
            except (TypeError, ValueError, OverflowError) as exc:  # a value JSON cannot carry (a 100-digit integer)
                problems.append(Problem(file, number, sku, f"target {target.name}: a value cannot be sent: {exc}"))
        return sku, file, number, problems, tuple(entries)

    def chunk(self, file: str, first_line: int, data: bytes) -> list[Evaluated]:
        """Evaluate a chunk of JSONL lines, product by product."""
        results = []
        spaced = spaced_colons(data)
        for offset, line in enumerate(data.split(b"\n")):
            if line.strip():
                result = self.line(file, first_line + offset, line, spaced)
                if result is not None:
                    results.append(result)
        return results

    def summary(self, file: str, first_line: int, data: bytes) -> "Summary | list[Evaluated]":
        """A chunk of JSONL lines in the compact form of :class:`Summary`, or, when a
        product of it has a problem, its products evaluated (the main process then goes
        product by product, see :func:`reconciler.plan.planner._scan`)."""
        skus, lines, changed, unchanged = [], [], [], {}
        products = self.chunk(file, first_line, data)
        for index, (sku, _, number, problems, entries) in enumerate(products):
            if sku is None or problems:
                return products
            skus.append(sku)
            lines.append(number)
            for name, key, record, body, digest in entries:
                if body is None:
                    unchanged.setdefault(name, []).append((record, key, index))
                else:
                    changed.append((index, name, key, record, body, digest))
        return Summary(skus, lines, changed, unchanged, self.learnt())


def evaluated(manifests: Manifests, evaluator: Evaluator, workers: int | None = None) -> Iterator[Evaluated | Chunk]:
    """Every product of the workspace, evaluated, in manifest order: one by one from
    YAML, JSON and CSV files, by :class:`Chunk` from JSONL files."""
    for where, raw in manifests.documents:
        if (result := evaluator(where, raw)) is not None:
            yield result
    for path in manifests.streamed:
        name = manifests.display(path)
        if path.suffix.lower() == ".csv":
            for where, raw in csv_products(manifests, path):
                if (result := evaluator(where, raw)) is not None:
                    yield result
            continue
        parallel = workers if workers is not None else (
            os.cpu_count() or 1) if path.stat().st_size >= PARALLEL_MIN_BYTES else 1
        if parallel > 1 and "fork" in multiprocessing.get_all_start_methods():
            yield from _parallel(path, name, evaluator, parallel)
        else:
            for first, data in _chunks(path):
                yield Chunk(name, first, data, evaluator.summary(name, first, data))


def _chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(number of the first line, bytes of whole lines)``, about CHUNK_BYTES each."""
    with path.open("rb") as handle:
        number, rest = 1, b""
        if handle.read(len(BOM)) != BOM:  # a byte order mark is no part of the first line
            handle.seek(0)
        while True:
            block = handle.read(CHUNK_BYTES)
            if not block:
                if rest:
                    yield number, rest
                return
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # a line longer than a block: read on
                rest = data
                continue
            yield number, data[:cut]
            number += data.count(b"\n", 0, cut)
            rest = data[cut:]


_FORKED: Evaluator | None = None  # what forked workers inherit, with the state's digests


def _summary_in_worker(file: str, first_line: int, data: bytes) -> Summary | list[Evaluated]:
    assert _FORKED is not None
    return _FORKED.summary(file, first_line, data)


def _parallel(path: Path, name: str, evaluator: Evaluator, workers: int) -> Iterator[Chunk]:
    # Fork: workers inherit the evaluator (digests included: never pickled) and the
    # imported modules at no cost. At most IN_FLIGHT_CHUNKS chunks are in flight, so
    # memory stays bounded however large the file.
    global _FORKED
    _FORKED = evaluator
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            pending: deque = deque()
            for first, data in _chunks(path):
                pending.append((first, data, pool.submit(_summary_in_worker, name, first, data)))
                if len(pending) >= IN_FLIGHT_CHUNKS:
                    first, data, future = pending.popleft()
                    yield Chunk(name, first, data, future.result())
            while pending:
                first, data, future = pending.popleft()
                yield Chunk(name, first, data, future.result())
    finally:
        _FORKED = None
