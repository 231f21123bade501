"""A local, append-only, fsync'd event spool for when the database is unreachable.

One line per event: `<crc32 as 8 hex digits> <JSON>\\n`. A process killed mid-write leaves
at most one torn last line, which the reader skips (no newline, or a checksum mismatch);
every line that was fsync'd before the request was acknowledged reads back intact. Appends
never extend a torn line: a file opened with a torn end (left by a killed process whose
pid this one reuses, as a restarted container's tracker does) first gets a newline, and a
write that fails half-way is cut back off (or, failing that, ended the same way), so the
torn bytes stay a line of their own and the next acknowledged record is not read as part
of it.

Each tracker process owns one file (`events-<pid>.spool`) and holds an exclusive `flock`
on it; a process draining the directory takes the files whose lock it can get, so the
spools of a crashed process are drained by the next one and never by two at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".spool"


def encode(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """The intact records of a spool file's content; torn or corrupt lines are skipped."""
    lines = data.split(b"\n")
    # The last element is b"" when the file ends in a newline, else a torn line.
    for number, line in enumerate(lines[:-1], start=1):
        if len(line) < 10 or line[8:9] != b" ":
            log.warning("spool line %d malformed, skipped", number)
            continue
        body = line[9:]
        try:
            if int(line[:8], 16) != zlib.crc32(body):
                log.warning("spool line %d fails its checksum, skipped", number)
                continue
            record = json.loads(body)
        except ValueError:
            log.warning("spool line %d unreadable, skipped", number)
            continue
        if isinstance(record, dict):
            yield record
    if lines[-1]:
        log.warning("spool ends in a torn line (%d bytes), skipped", len(lines[-1]))


class Spool:
    """This process's spool file (created lazily, locked while open)."""

    def __init__(self, directory: Path, name: str | None = None) -> None:
        self.directory = Path(directory)
        self.path = self.directory / (name or f"events-{os.getpid()}{SUFFIX}")
        self._fd: int | None = None
        self._torn = False  # the file ends in a partial line
        self.pending = 0

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                # A torn last line (its writer was killed): the next record starts a line.
                self._torn = bool(size) and os.pread(fd, 1, size - 1) != b"\n"
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write and fsync; returns only once the records are durable."""
        if not records:
            return
        fd = self._open()
        data = b"".join(encode(r) for r in records)
        if self._torn:
            data = b"\n" + data
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            # Not acknowledged: take back what was written (it must neither turn up as an
            # event nobody was answered for nor glue itself to the next record).
            try:
                os.ftruncate(fd, size)
            except OSError:
                self._torn = True
            raise
        self._torn = False
        self.pending += len(records)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return list(decode_lines(self.path.read_bytes()))

    def clear(self) -> None:
        """Empty the file after its records are committed to the database."""
        fd = self._open()
        os.ftruncate(fd, 0)
        os.fsync(fd)
        self._torn = False
        self.pending = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def orphans(self) -> list[Path]:
        """Other processes' spool files in the directory (locked ones are skipped later)."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.glob(f"*{SUFFIX}") if p.resolve() != self.path.resolve()
        )


def take_orphan(path: Path) -> tuple[int, list[dict[str, Any]]] | None:
    """Lock another process's spool if nobody holds it; returns (fd, records) or None."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    return fd, list(decode_lines(data))


def release_orphan(path: Path, fd: int, *, drained: bool) -> None:
    """After a drain: delete the file (while still locked) and let go of it."""
    try:
        if drained:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)
