"""Finding and decoding manifest files: nothing under ``manifests/`` is skipped silently.

The directory is walked in sorted path order. A symbolic link to a directory is
followed, unless it leads back to a directory being walked (a loop: reported). A
dangling link, a directory or a manifest that cannot be read, and a manifest that is
not a regular file (reading a FIFO would block) are reported with their path. Files
are UTF-8, with or without a byte order mark; an invalid byte is reported at its line.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable

EXTENSIONS = (".yaml", ".yml", ".json", ".jsonl", ".csv")
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def reason(exc: OSError) -> str:
    """An OSError as a short reason (``Permission denied``), without the path."""
    return exc.strerror or type(exc).__name__


def manifest_files(root: Path, display: Callable[[Path], str] = str) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The manifest files under ``root`` in sorted path order, and what could not be
    walked as ``(path, message)`` (paths in messages shown by ``display``)."""
    if not root.is_dir():
        return [root], []
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    # An explicit stack: a deep tree must not exhaust Python's recursion. Each entry
    # carries the directories above it by (device, inode), to recognise a loop.
    top = root.stat()
    stack: list[tuple[Path, dict[tuple[int, int], Path]]] = [(root, {(top.st_dev, top.st_ino): root})]
    while stack:
        directory, above = stack.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            problems.append((directory, f"cannot read this directory: {reason(exc)}"))
            continue
        for entry in reversed(entries):  # the stack pops them back in order
            path = Path(entry.path)
            try:
                info = path.stat()  # follows links
            except OSError as exc:
                problems.append((path, _unreachable(path, exc)))
                continue
            if stat.S_ISDIR(info.st_mode):
                ident = (info.st_dev, info.st_ino)
                if ident in above:
                    problems.append((path, f"symbolic link loop: leads back to {display(above[ident])}"))
                    continue
                stack.append((path, {**above, ident: path}))
            elif path.suffix.lower() in EXTENSIONS:
                if stat.S_ISREG(info.st_mode):
                    files.append(path)
                else:
                    problems.append((path, "not a regular file (a manifest is a file)"))
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    return files, problems


def _unreachable(path: Path, exc: OSError) -> str:
    if path.is_symlink():
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads to itself)"
        if exc.errno == errno.ENOENT:
            return f"dangling symbolic link (to {os.readlink(path)}, which does not exist)"
    return f"cannot read: {reason(exc)}"


def utf16_problem(start: bytes) -> str | None:
    """Why a file starting with ``start`` is not UTF-8, when its byte order mark says."""
    if start.startswith(UTF16_BOMS):
        return "the file is UTF-16 (its byte order mark says so); save it as UTF-8"
    return None


def decode(data: bytes) -> tuple[str | None, int, str]:
    """``(text, 0, "")`` for UTF-8 ``data`` (a leading BOM dropped), or ``(None, line,
    message)`` naming the line of the first invalid byte."""
    utf16 = utf16_problem(data)
    if utf16:
        return None, 1, utf16
    start = len(BOM) if data.startswith(BOM) else 0
    try:
        return data[start:].decode("utf-8"), 0, ""
    except UnicodeDecodeError as exc:
        where = start + exc.start
        line_start = data.rfind(b"\n", 0, where) + 1
        column = len(data[max(line_start, start):where].decode("utf-8", "replace")) + 1
        line = data.count(b"\n", 0, where) + 1
        return None, line, f"invalid UTF-8 (byte 0x{data[where]:02x} at column {column}); save the file as UTF-8"
