"""How the state keeps a payload: its canonical JSON, deflated with a dictionary of its target.

A catalog's payloads repeat each other (field names, URLs, brands, category paths),
and one payload alone is too short for deflate to find much: 200 B deflate to about
145 B alone, but to 20-60 B with a preset dictionary made of payloads of the same
kind. The dictionaries of each target and record kind live in the state (table
``dictionaries``), numbered from 1 and never changed once written; each ``items`` row
names the one its payload was made with (column ``dictionary``), so a later, larger
dictionary never breaks the rows made with an earlier one:

* ``dictionary`` null: the payload is the canonical JSON itself (a short one, which
  deflate would not shorten);
* ``0``: raw deflate, no dictionary (a kind's first payloads, too few to make one);
* ``n >= 1``: raw deflate with dictionary ``n`` of the row's target and record kind.

A kind's first dictionary is made from the first batch written with at least
``MIN_SAMPLE`` bytes of its payloads; a later batch with twice as many bytes as the
dictionary makes a larger one, up to ``DICTIONARY_SIZE`` (so a kind has a handful at
most). Plans never read payloads of unchanged items (digests only), so only writes
(about 10 µs a payload) and the few reads of changed items pay for this.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from reconciler.state.dialect import Connection

DICTIONARY_SIZE = 16 * 1024
MIN_SAMPLE = 2 * 1024
# Raw deflate (negative wbits: no header, no checksum). Payloads are written with a
# 16 KiB window, the largest dictionary's size: the compressor copied for each payload
# copies its window, and a 32 KiB one cost about 1 µs more a payload for output as
# small (not always the same bytes). They are read with a 32 KiB window, which reads
# both: rows written before, a long payload's matches further back than 16 KiB.
WINDOW_BITS = 14
READ_WINDOW_BITS = 15
LEVEL = 6
# zlib's compression state for memLevel 8 (its default) is over glibc's mmap threshold:
# copying it per payload maps and faults fresh pages each time (about 50 µs a payload);
# at 5 it is a few µs and the output is as small (the format does not depend on it).
MEM_LEVEL = 5


def make_dictionary(bodies: Sequence[bytes], size: int = DICTIONARY_SIZE) -> bytes:
    """A preset dictionary of at most ``size`` bytes: the first payloads of
    ``bodies``, one after the other (deflate finds repeats of them as it would in
    the payloads before)."""
    chosen, total = [], 0
    for body in bodies:
        if total >= size:
            break
        chosen.append(body)
        total += len(body)
    return b"".join(chosen)[:size]


class Payloads:
    """Packs and unpacks the payloads of one state. Dictionaries are read from the
    state once each (they never change); :meth:`forget` drops what was read, for
    a transaction that rolled back (a dictionary it made is gone)."""

    def __init__(self) -> None:
        self._dictionaries: dict[tuple[str, str, int], bytes] = {}
        self._compressors: dict[tuple[str, str, int], object] = {}

    def forget(self) -> None:
        self._dictionaries.clear()
        self._compressors.clear()

    # -- reading ------------------------------------------------------------------------
    def unpack(self, conn: "Connection", target: str, record: str, data: bytes | str, dictionary: int | None) -> bytes:
        """The canonical JSON of a stored payload. Raises ``zlib.error`` or
        ``TypeError`` for one damaged (or edited by hand)."""
        if isinstance(data, str):  # written as text by hand (SQLite keeps what it is given)
            return data.encode()
        if dictionary is None:
            return bytes(data)
        zdict = self.dictionary(conn, target, record, dictionary) if dictionary else b""
        inflate = zlib.decompressobj(-READ_WINDOW_BITS, zdict=zdict) if zdict else zlib.decompressobj(-READ_WINDOW_BITS)
        body = inflate.decompress(data)
        if not inflate.eof:
            raise zlib.error("the payload ends early")
        return body

    def dictionary(self, conn: "Connection", target: str, record: str, number: int) -> bytes:
        found = self._dictionaries.get((target, record, number))
        if found is None:
            row = conn.execute("SELECT data FROM dictionaries WHERE target = ? AND record = ? AND id = ?",
                               (target, record, number)).fetchone()
            if row is None:
                raise zlib.error(f"its dictionary {number} is missing")
            found = self._dictionaries[(target, record, number)] = bytes(row[0])
        return found

    # -- writing (in the caller's transaction) ---------------------------------------------
    def pack_rows(self, conn: "Connection", rows: Sequence[tuple], at: int) -> list[tuple]:
        """``rows`` (each starting with a target and a record kind) with the
        canonical JSON at index ``at`` replaced by the stored payload and its
        dictionary: two values. Grouped by kind, not in their order."""
        kinds: dict[tuple, list[tuple]] = {}
        for row in rows:
            kinds.setdefault(row[:2], []).append(row)
        packed = []
        for kind, mine in kinds.items():
            packed += [(*row[:at], *stored, *row[at + 1:])
                       for row, stored in zip(mine, self.pack(conn, *kind, [row[at] for row in mine]))]
        return packed

    def pack(self, conn: "Connection", target: str, record: str,
             bodies: Sequence[bytes]) -> list[tuple[bytes, int | None]]:
        """``(stored payload, dictionary)`` for each canonical JSON body of a batch
        of ``target``'s ``record`` kind, making a new dictionary when the batch is
        the first one big enough (or twice the size of the last one)."""
        if not bodies:
            return []
        number = self._dictionary_for(conn, target, record, bodies)
        compressor = self._compressor(conn, target, record, number)
        packed = []
        for body in bodies:
            deflate = compressor.copy()
            data = deflate.compress(body) + deflate.flush()
            packed.append((data, number) if len(data) < len(body) else (body, None))
        return packed

    def _dictionary_for(self, conn: "Connection", target: str, record: str, bodies: Sequence[bytes]) -> int:
        row = conn.execute("SELECT id, length(data) FROM dictionaries WHERE target = ? AND record = ? "
                           "ORDER BY id DESC LIMIT 1", (target, record)).fetchone()
        number, size = (row[0], row[1]) if row else (0, 0)
        if size >= DICTIONARY_SIZE:
            return number
        sample = sum(map(len, bodies))
        if sample < MIN_SAMPLE or sample < 2 * size:
            return number
        data = make_dictionary(bodies)
        conn.execute("INSERT INTO dictionaries (target, record, id, data) VALUES (?, ?, ?, ?)",
                     (target, record, number + 1, data))
        self._dictionaries[(target, record, number + 1)] = data
        return number + 1

    def _compressor(self, conn: "Connection", target: str, record: str, number: int):
        found = self._compressors.get((target, record, number))
        if found is None:
            zdict = self.dictionary(conn, target, record, number) if number else b""
            found = (zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, zdict)
                     if zdict else zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEM_LEVEL))
            self._compressors[(target, record, number)] = found
        return found
