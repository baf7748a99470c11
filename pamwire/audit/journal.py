"""The audit journal: an append-only file that makes events durable before forwarding.

Theory of operation: before a statement is forwarded, its events are appended to the
journal with one write() call, one JSON line per event. When write() returns, the
lines are in the operating system's page cache, which survives a crash or `kill -9`
of pamwire (not a power cut; see docs/audit.md). That costs a few microseconds on
the event loop, where a thread hop to SQLite costs a hundred or more. The SQLite store
stays the searchable copy: a background task copies events into it in groups and,
once it has caught up, empties the journal. At start-up, events found in the journal
are copied into the store first (recovery), so none is lost to a crash. A torn last
line, from a crash in the middle of a write, belonged to a statement that was never
forwarded and is dropped.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import operator
import os
import pathlib
from collections.abc import Sequence

import attrs

from pamwire.audit.events import AuditEvent
from pamwire.audit.store import AuditError, AuditStore, AuditWriteError

log = logging.getLogger("pamwire.audit")

_FIELDS = tuple(field.name for field in attrs.fields(AuditEvent))
_row = operator.attrgetter(*_FIELDS)
_encode = json.JSONEncoder(separators=(",", ":")).encode


def journal_segments(store_path: pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """The journal segments of a store, oldest first: ``<store>.journal-<n>``."""
    prefix = store_path.name + ".journal-"
    found: list[tuple[int, pathlib.Path]] = []
    for entry in store_path.parent.glob(glob.escape(prefix) + "*"):
        number = entry.name.removeprefix(prefix)
        if number.isdigit():
            found.append((int(number), entry))
    return sorted(found)


def segment_path(store_path: pathlib.Path, number: int) -> pathlib.Path:
    return store_path.with_name(f"{store_path.name}.journal-{number}")


def encode_events(events: Sequence[AuditEvent]) -> bytes:
    """One JSON array per event, one line each, in field order."""
    # ensure_ascii (the default) keeps lone surrogates from undecodable client
    # bytes as \\udcXX escapes, which decode back to the same text.
    return "".join([_encode(_row(event)) + "\n" for event in events]).encode("ascii")


def decode_line(line: bytes) -> AuditEvent:
    """One journal line back to its event; AuditError if it is not one."""
    try:
        values = json.loads(line)
        if not isinstance(values, list) or len(values) != len(_FIELDS):
            raise ValueError("not an event record")
        return AuditEvent(**dict(zip(_FIELDS, values, strict=True)))
    except (ValueError, TypeError) as exc:
        raise AuditError(f"bad audit journal line: {exc}") from None


# A segment is closed and a new one started past this size, so a busy proxy never
# needs to rewrite a file: whole segments are deleted once the store holds them.
SEGMENT_LIMIT = 16 << 20


class Journal:
    """The open journal segments of one store; append() runs on the event loop."""

    def __init__(self, store_path: pathlib.Path, *, limit: int = SEGMENT_LIMIT) -> None:
        self.store_path = store_path
        self.limit = limit
        existing = journal_segments(store_path)
        self._kept = [number for number, _ in existing]
        self.segment = (existing[-1][0] if existing else 0) + 1
        self._fd = -1
        self._open_segment()

    @property
    def path(self) -> pathlib.Path:
        return segment_path(self.store_path, self.segment)

    def _open_segment(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot open audit journal {self.path}: {exc.strerror}"
            ) from None
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        stat = os.fstat(fd)
        self._identity = (stat.st_dev, stat.st_ino)
        self.size = stat.st_size

    def append(self, events: Sequence[AuditEvent]) -> int:
        """Hand the events to the OS in one write; returns the segment they are in.

        Raises AuditWriteError when they could not be written (disk full, journal
        deleted or replaced): the caller must then not forward the statement.
        """
        data = encode_events(events)
        try:
            self._check_identity()
            written = os.write(self._fd, data)
            while written < len(data):  # a short write: disk full or a signal
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            raise AuditWriteError(
                f"cannot write audit journal {self.path}: {exc.strerror or exc}"
            ) from None
        self.size += len(data)
        segment = self.segment
        if self.size >= self.limit:
            self._kept.append(self.segment)
            self.segment += 1
            self._open_segment()
        return segment

    def release_before(self, segment: int) -> None:
        """Delete the closed segments older than `segment`: the store holds them."""
        while self._kept and self._kept[0] < segment:
            number = self._kept.pop(0)
            try:
                segment_path(self.store_path, number).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot delete audit journal segment %s: %s", number, exc)

    def sync(self) -> None:
        """Flush the current segment to the disk itself (power-cut durability)."""
        os.fsync(self._fd)

    def close(self, *, discard: bool = False) -> None:
        """Close the journal; with discard, delete every segment (store has them)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if discard:
            self.release_before(self.segment + 1)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _check_identity(self) -> None:
        # A journal deleted or replaced while open would swallow events silently.
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise AuditWriteError(f"audit journal {self.path} was deleted") from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise AuditWriteError(f"audit journal {self.path} was replaced")


def recover(store_path: pathlib.Path, store: AuditStore) -> int:
    """Copy events left in journal segments into the store, then delete them.

    Returns how many events the store did not have yet. Raises AuditError if a
    segment is unreadable or corrupt in the middle (a torn last line is dropped).
    """
    added = 0
    for _, path in journal_segments(store_path):
        events = read_journal(path)
        if events:
            added += store.append_missing(events)
        path.unlink()
    if added:
        log.warning("recovered %d audit events from the journal into the store", added)
    return added


def read_journal(path: pathlib.Path) -> list[AuditEvent]:
    """Every complete event in a journal file; a torn last line is dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AuditError(f"cannot read audit journal {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    if lines and lines[-1]:
        log.warning("audit journal %s ends with a torn line; it is dropped", path)
    events: list[AuditEvent] = []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            events.append(decode_line(line))
        except AuditError as exc:
            raise AuditError(f"{path}:{number}: {exc}") from None
    return events
