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
    max_bytes = limits.max_bytes_per_request
    if max_items is not None and max_items < 1:
        raise ValueError("max_items_per_request must be at least 1")
    local = frozenset(provider.capabilities.local_deletes)
    groups: dict[Hashable, list[Operation]] = {}
    group_key = provider.group_key
    for op in ops:
        if op.action == "delete" and op.record in local:
            yield Outcome(op, "confirmed", reason=(
                f"no delete in the API: {provider.name} cannot delete a {op.record} record; "
                "recorded as deleted without a request"))
            continue
        key = group_key(op)
        group = groups.get(key)
        if group is None:
            groups[key] = [op]
        else:
            group.append(op)
    for group in groups.values():
        if max_bytes is None:
            yield from _by_items(provider, group, max_items)
        else:
            yield from _by_items_and_bytes(provider, group, max_items, max_bytes)


def split(request: Request) -> tuple[list[Operation], list[Operation]]:
    """The operations of ``request`` in two halves (for bisection); the second half is
    empty only for a single operation."""
    ops = list(request.operations)
    if len(ops) <= 1:
        return ops, []
    middle = len(ops) // 2
    return ops[:middle], ops[middle:]


def _by_items(provider: Provider, group: list[Operation], max_items: int | None) -> Iterator[Request]:
    step = max_items or len(group)
    for start in range(0, len(group), step):
        yield provider.encode(group[start:start + step])


def _too_big(op: Operation, size: int, max_bytes: int) -> Outcome:
    return Outcome(op, "failed", reason=(
        f"the request for {op.key} alone is {size} bytes, over the limit of "
        f"{max_bytes} bytes per request"))


def _by_items_and_bytes(provider: Provider, group: list[Operation], max_items: int | None,
                        max_bytes: int) -> Iterator[Request | Outcome]:
    encode = provider.encode
    item_size: Callable[[Operation], int] | None = getattr(provider, "item_size", None)
    first = group[0]
    one = len(encode([first]).body or b"")
    if item_size is not None:
        cost = item_size
        base = one - item_size(first)
    else:
        def cost(op: Operation) -> int:
            return len(encode([op]).body or b"")
        base = 0
    sep = 0
    if len(group) > 1:
        pair = len(encode(group[:2]).body or b"")
        sep = pair - base - cost(group[0]) - cost(group[1])

    limit_items = max_items or len(group)
    chunk: list[Operation] = []
    size = 0
    for op in group:
        c = cost(op)
        alone = base + c
        if alone > max_bytes:
            yield _too_big(op, alone, max_bytes)
            continue
        if chunk and (len(chunk) >= limit_items or size + sep + c > max_bytes):
            yield from _checked(provider, chunk, max_bytes)
            chunk, size = [], 0
        if chunk:
            size += sep + c
        else:
            size = alone
        chunk.append(op)
    if chunk:
        yield from _checked(provider, chunk, max_bytes)


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
