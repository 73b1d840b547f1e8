"""Where a plan's changes live while it is made and shown: a temporary file, never a
list of objects (a first load is millions of changes of a kilobyte each).

Changes are appended as the planner finds them, in manifest order, each as its JSON
line (a saved plan's line without its ``target``) under a sort key ``(sku, rank of the
record kind, record kind)``, into one of several *streams* (a target's changes, its
deletes). A stream's entries are buffered; when the buffers hold ``budget`` bytes they
are sorted and written out as *runs*. Reading a stream back merges its runs, so it
comes out in plan order, a change at a time. A run that starts at or after the end of
the stream's last one extends it instead: a catalog in sku order (the usual export)
makes one run per stream, read back sequentially.

The file is anonymous (unlinked at once): it goes when the process ends, however it
ends. Reads are positional (``os.pread``), so any number of readers share it.
"""
from __future__ import annotations

import heapq
import os
import struct
import tempfile
from typing import Hashable, Iterable, Iterator

import orjson

from reconciler.plan.model import Change, Changes

BUDGET = 32 * 2**20  # bytes of entries buffered (all streams together) before a flush
READ_BLOCK = 1 << 20
_HEAD = struct.Struct("<IHHB")  # data length, sku length, record length, rank

Key = tuple[bytes, int, bytes]


def sort_key(sku: str, rank: int, record: str) -> Key:
    """``(sku, rank, record)`` as bytes: UTF-8 keeps the order of code points, so these
    compare as the strings do."""
    return sku.encode("utf-8", "surrogatepass"), rank, record.encode("utf-8", "surrogatepass")


class Spill:
    def __init__(self, budget: int | None = None):
        self.budget = budget if budget is not None else BUDGET
        self.file = tempfile.TemporaryFile(prefix="reconciler-plan-")
        self.fd = self.file.fileno()
        self.size = 0
        self.buffered = 0
        self.buffers: dict[Hashable, list[tuple[Key, bytes]]] = {}
        # per stream, its runs; a run is [segments [(offset, length)], its last key]
        self.runs: dict[Hashable, list[list]] = {}

    def add(self, stream: Hashable, key: Key, data: bytes) -> None:
        buffer = self.buffers.get(stream)
        if buffer is None:
            buffer = self.buffers[stream] = []
        buffer.append((key, data))
        self.buffered += len(data) + 64
        if self.buffered >= self.budget:
            self.flush()

    def flush(self) -> None:
        for stream, buffer in self.buffers.items():
            if buffer:
                buffer.sort(key=_first)  # stable: equal keys keep the order they came in
                self._write_run(stream, buffer)
        self.buffers = {}
        self.buffered = 0

    def _write_run(self, stream: Hashable, entries: list[tuple[Key, bytes]]) -> None:
        pieces = []
        for (sku, rank, record), data in entries:
            pieces += (_HEAD.pack(len(data), len(sku), len(record), rank), sku, record, data)
        block = b"".join(pieces)
        offset = self.size
        written = 0
        while written < len(block):  # pwrite may write less than asked
            written += os.pwrite(self.fd, memoryview(block)[written:], offset + written)
        self.size += len(block)
        runs = self.runs.setdefault(stream, [])
        if runs and runs[-1][1] <= entries[0][0]:
            runs[-1][0].append((offset, len(block)))
            runs[-1][1] = entries[-1][0]
        else:
            runs.append([[(offset, len(block))], entries[-1][0]])

    def read(self, streams: Iterable[Hashable]) -> Iterator[bytes]:
        """The data of every entry of ``streams``, in key order (ties: in the order of
        ``streams``, then in the order they were added)."""
        self.flush()
        runs = [run for stream in streams for run in self.runs.get(stream, ())]
        if len(runs) == 1:
            for _, data in self._entries(runs[0][0]):
                yield data
            return
        for _, data in heapq.merge(*(self._entries(run[0]) for run in runs), key=_first):
            yield data

    def _entries(self, segments: list[tuple[int, int]]) -> Iterator[tuple[Key, bytes]]:
        head = _HEAD.size
        for offset, length in segments:
            end = offset + length
            buffer, at = b"", 0
            while offset < end or at < len(buffer):
                if len(buffer) - at < head or len(buffer) - at < head + sum(_HEAD.unpack_from(buffer, at)[:3]):
                    block = os.pread(self.fd, min(READ_BLOCK, end - offset), offset) if offset < end else b""
                    if not block:
                        raise OSError("the plan's temporary file ended early")
                    buffer, at = buffer[at:] + block, 0
                    offset += len(block)
                    continue
                size, sku_size, record_size, rank = _HEAD.unpack_from(buffer, at)
                start = at + head
                sku = buffer[start:start + sku_size]
                record = buffer[start + sku_size:start + sku_size + record_size]
                start += sku_size + record_size
                yield (sku, rank, record), buffer[start:start + size]
                at = start + size

    def close(self) -> None:
        self.file.close()


class SpilledChanges(Changes):
    """A target's changes in a :class:`Spill`: its stream of creates and updates and
    its stream of deletes, merged in plan order."""

    def __init__(self, spill: Spill, changes: Hashable, deletes: Hashable, counts: dict[str, int]):
        self.spill = spill
        self.streams = (changes, deletes)
        self.counts = counts

    def lines(self) -> Iterator[bytes]:
        return self.spill.read(self.streams)

    def deletions(self) -> Iterator[Change]:
        for line in self.spill.read(self.streams[1:]):
            yield Change.from_json(orjson.loads(line))


def _first(entry: tuple) -> Key:
    return entry[0]
