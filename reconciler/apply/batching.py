"""Packing operations into requests that respect a target's limits (pure, no I/O).

``pack(provider, ops, limits)`` yields, in a stream:

* an ``Outcome(status="confirmed")`` for every delete of a record kind the API cannot
  delete (``capabilities.local_deletes``): the executor records it without a request;
* an ``Outcome(status="failed")`` for every operation whose request would be over
  the byte limit even alone: it is never sent;
* ``Request`` objects, each of operations sharing one ``provider.group_key``, with at
  most ``max_items_per_request`` operations and at most ``max_bytes_per_request`` bytes
  of body, greedily filled in order (the fewest requests a sequential fill gives: with
  only an item limit, exactly ``ceil(n / max_items)`` per group).

Every operation comes out exactly once, as an item of one request or as an outcome.
A request is yielded as soon as it is full, so the packer holds at most one request's
operations per group, never a target's all (a first load of a million products is read
from the plan a change at a time and sent that way).

Sizes are measured without re-encoding prefixes. A request body is a fixed frame plus
the operations' elements joined by a separator, so with ``c(op)`` the size of one
element, ``size(S) = base + Σ c(op) + (|S| - 1) · sep``. A provider that offers
``item_size(op)`` (the bytes of its element) gives ``c`` directly, and ``base``/``sep``
come from encoding one and two operations of the group; for any other provider
``c(op) = len(encode([op]).body)`` and ``sep`` (then negative: minus the frame) comes
from one pair. Every built request is still checked on its real ``len(body)``; should a
provider's body not be additive, an over-limit request is bisected before it is
yielded, so no request over a limit is ever produced.
"""
from __future__ import annotations

from typing import Callable, Hashable, Iterable, Iterator, Sequence

from reconciler.providers.base import Limits, Operation, Outcome, Provider, Request


def pack(provider: Provider, ops: Iterable[Operation], limits: Limits | None = None
         ) -> Iterator[Request | Outcome]:
    limits = limits or provider.limits
    max_items = limits.max_items_per_request
    if max_items is not None and max_items < 1:
        raise ValueError("max_items_per_request must be at least 1")
    local = frozenset(provider.capabilities.local_deletes)
    chunks: dict[Hashable, _Chunk] = {}
    group_key = provider.group_key
    for op in ops:
        if op.action == "delete" and op.record in local:
            yield Outcome(op, "confirmed", reason=(
                f"no delete in the API: {provider.name} cannot delete a {op.record} record; "
                "recorded as deleted without a request"))
            continue
        key = group_key(op)
        chunk = chunks.get(key)
        if chunk is None:
            chunk = chunks[key] = _Chunk(provider, max_items, limits.max_bytes_per_request)
        yield from chunk.add(op)
    for chunk in chunks.values():
        yield from chunk.flush()


def split(request: Request) -> tuple[list[Operation], list[Operation]]:
    """The operations of ``request`` in two halves (for bisection); the second half is
    empty only for a single operation."""
    ops = list(request.operations)
    if len(ops) <= 1:
        return ops, []
    middle = len(ops) // 2
    return ops[:middle], ops[middle:]


class _Chunk:
    """The request being filled for one group: sent as soon as it is full, so that a
    packer holds at most one request's operations per group, never a target's all."""

    def __init__(self, provider: Provider, max_items: int | None, max_bytes: int | None):
        self.provider = provider
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.ops: list[Operation] = []
        self.size = 0
        self.first: Operation | None = None  # the group's first two operations measure base and sep
        self.base = 0
        self.sep: int | None = None
        item_size: Callable[[Operation], int] | None = getattr(provider, "item_size", None)
        self.cost = item_size or (lambda op: len(provider.encode([op]).body or b""))
        self.additive = item_size is not None

    def add(self, op: Operation) -> Iterator[Request | Outcome]:
        if self.max_bytes is not None:
            c = self._measure(op)
            alone = self.base + c
            if alone > self.max_bytes:
                yield _too_big(op, alone, self.max_bytes)
                return
            if self.ops and self.size + self.sep + c > self.max_bytes:
                yield from self.flush()
            self.size = self.size + self.sep + c if self.ops else alone
        self.ops.append(op)
        if self.max_items is not None and len(self.ops) >= self.max_items:
            yield from self.flush()

    def _measure(self, op: Operation) -> int:
        encode = self.provider.encode
        if self.first is None:
            self.first = op
            if self.additive:
                self.base = len(encode([op]).body or b"") - self.cost(op)
        elif self.sep is None:
            pair = len(encode([self.first, op]).body or b"")
            self.sep = pair - self.base - self.cost(self.first) - self.cost(op)
        return self.cost(op)

    def flush(self) -> Iterator[Request | Outcome]:
        if not self.ops:
            return
        ops, self.ops, self.size = self.ops, [], 0
        if self.max_bytes is None:
            yield self.provider.encode(ops)
        else:
            yield from _checked(self.provider, ops, self.max_bytes)


def _too_big(op: Operation, size: int, max_bytes: int) -> Outcome:
    return Outcome(op, "failed", reason=(
        f"the request for {op.key} alone is {size} bytes, over the limit of "
        f"{max_bytes} bytes per request"))


def _checked(provider: Provider, chunk: Sequence[Operation], max_bytes: int) -> Iterator[Request | Outcome]:
    """Encode ``chunk``; bisect it if the real body is over the limit after all."""
    request = provider.encode(chunk)
    size = len(request.body or b"")
    if size <= max_bytes:
        yield request
    elif len(chunk) == 1:
        yield _too_big(chunk[0], size, max_bytes)
    else:
        middle = len(chunk) // 2
        yield from _checked(provider, chunk[:middle], max_bytes)
        yield from _checked(provider, chunk[middle:], max_bytes)
