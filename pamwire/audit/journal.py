"""The audit journal: an append-only file that makes events durable before forwarding.

Theory of operation: before a statement is forwarded, its events are appended to the
journal with one write() call, one line per record: its chain hash, a space, and its
canonical bytes (pamwire/audit/chain.py). When write() returns, the lines are in the
operating system's page cache, which survives a crash or `kill -9` of pamwire. A
background thread flushes them to the disk itself (fsync) every fsync_interval
seconds, or at once when a strict writer asks, so one fsync serves every line written
since the last; only then do they survive a power cut (see docs/audit.md). The SQLite
store stays the searchable copy: a background task copies records into it in groups
and deletes whole journal segments it holds. At start-up, records found in the journal
are copied into the store first (recovery). A torn last line, from a crash in the
middle of a write, belonged to a statement that was never forwarded and is dropped,
which leaves the chain a valid prefix.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pathlib
import threading
import time
from collections.abc import Callable

from pamwire.audit.chain import ChainedEvent, Mark, decode_line
from pamwire.audit.store import AuditError, AuditStore, AuditWriteError

log = logging.getLogger("pamwire.audit")

# How often the sync thread flushes the journal to the disk by default: a power cut
# loses at most this much of the newest trail. Ten fsyncs a second cost a busy disk
# little, and a writer in strict mode does not wait for the interval.
FSYNC_INTERVAL = 0.1


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


# A segment is closed and a new one started past this size, so a busy proxy never
# needs to rewrite a file: whole segments are deleted once the store holds them.
# A journal file deleted or replaced under pamwire is noticed within this many
# seconds: one stat per append would cost more than the write itself.
IDENTITY_CHECK_INTERVAL = 0.1

SEGMENT_LIMIT = 16 << 20


class Journal:
    """The open journal segments of one store; append() runs on the event loop.

    With fsync_interval=None no sync thread runs and nothing is fsynced except by
    sync(). `on_synced(position)` is called from the sync thread after each fsync
    with the number of bytes appended so far that are now on the disk.
    """

    def __init__(
        self,
        store_path: pathlib.Path,
        *,
        limit: int = SEGMENT_LIMIT,
        fsync_interval: float | None = FSYNC_INTERVAL,
    ) -> None:
        self.store_path = store_path
        self.limit = limit
        existing = journal_segments(store_path)
        self._kept = [number for number, _ in existing]
        self.segment = (existing[-1][0] if existing else 0) + 1
        self._fd = -1
        # Shared with the sync thread, under _cond: bytes appended, fds of closed
        # segments still to fsync, and whether a new file needs its folder synced.
        self._cond = threading.Condition()
        self._written = 0
        self._retired: list[int] = []
        self._new_file = False
        self._sync_now = False
        self._stopping = False
        self.synced = 0
        self.sync_error: str | None = None
        self.on_synced: Callable[[int], None] | None = None
        self._open_segment()
        self._thread: threading.Thread | None = None
        if fsync_interval is not None:
            self._interval = fsync_interval
            self._thread = threading.Thread(
                target=self._sync_loop, name="pamwire-audit-fsync", daemon=True
            )
            self._thread.start()

    @property
    def path(self) -> pathlib.Path:
        return segment_path(self.store_path, self.segment)

    @property
    def position(self) -> int:
        """Bytes appended since the journal was opened."""
        return self._written

    def _open_segment(self) -> None:
        self._torn = False
        self._path = os.fspath(self.path)
        self._next_identity_check = 0.0
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot open audit journal {self.path}: {exc.strerror}"
            ) from None
        with self._cond:
            if self._fd >= 0:
                # The sync thread fsyncs and closes it: closing it here could race
                # with an fsync in flight.
                self._retired.append(self._fd)
            self._fd = fd
            self._new_file = True
        stat = os.fstat(fd)
        self._identity = (stat.st_dev, stat.st_ino)
        self.size = stat.st_size

    def append(self, data: bytes, *, urgent: bool = False) -> int:
        """Hand journal lines to the OS in one write; returns their segment.

        With urgent, the sync thread starts an fsync at once. Raises
        AuditWriteError when they could not be written (disk full, journal deleted
        or replaced): the caller must then not forward the statement.
        """
        if self._torn:
            self._start_next_segment()
        written = 0
        try:
            now = time.monotonic()
            if now >= self._next_identity_check:
                self._check_identity()
                self._next_identity_check = now + IDENTITY_CHECK_INTERVAL
            written = os.write(self._fd, data)
            while written < len(data):  # a short write: disk full or a signal
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            if written:
                self._cut_torn_write()
            raise AuditWriteError(
                f"cannot write audit journal {self.path}: {exc.strerror or exc}"
            ) from None
        # Only this thread writes _written; the sync thread only reads it, so the
        # lock is needed only to wake that thread.
        self._written += len(data)
        if urgent:
            with self._cond:
                self._sync_now = True
                self._cond.notify()
        self.size += len(data)
        segment = self.segment
        if self.size >= self.limit:
            self._start_next_segment()
        return segment

    def _start_next_segment(self) -> None:
        self._kept.append(self.segment)
        self.segment += 1
        self._open_segment()

    def _cut_torn_write(self) -> None:
        """Remove the part of a failed write (disk full), so that no torn line ends
        up in the middle of the journal once later writes succeed again; if even
        that fails, the next write starts a new segment."""
        try:
            os.ftruncate(self._fd, self.size)
        except OSError as exc:
            log.error("cannot cut a torn write from %s: %s", self.path, exc.strerror)
            self._torn = True

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                if not (self._stopping or self._sync_now):
                    self._cond.wait(self._interval)
                self._sync_now = False
                stopping = self._stopping
                target, fd = self._written, self._fd
                retired, self._retired = self._retired, []
                new_file, self._new_file = self._new_file, False
            if target > self.synced or retired or new_file:
                self._sync(fd, retired, new_file, target)
            if stopping:
                return

    def _sync(self, fd: int, retired: list[int], new_file: bool, target: int) -> None:
        try:
            for old in retired:
                try:
                    os.fsync(old)
                finally:
                    os.close(old)
            if new_file:
                _sync_folder(self.store_path.parent)
            os.fsync(fd)
        except OSError as exc:
            # The lines are still in the page cache; only power-cut safety is lost.
            self.sync_error = f"cannot fsync audit journal: {exc.strerror or exc}"
            log.error("%s", self.sync_error)
        else:
            self.synced = target
        if self.on_synced is not None:
            self.on_synced(self.synced)

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
        """Flush the current segment to the disk now, in the calling thread."""
        os.fsync(self._fd)

    def close(self, *, discard: bool = False) -> None:
        """Stop the sync thread (after a last fsync) and close the journal.

        With discard, delete every segment (the store has them).
        """
        if self._thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify()
            self._thread.join()
            self._thread = None
        with self._cond:
            retired, self._retired = self._retired, []
        for old in retired:
            os.close(old)
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
            stat = os.stat(self._path)
        except FileNotFoundError:
            raise AuditWriteError(f"audit journal {self.path} was deleted") from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise AuditWriteError(f"audit journal {self.path} was replaced")


def _sync_folder(folder: pathlib.Path) -> None:
    # A new file's name is on the disk only once its folder is synced.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(store_path: pathlib.Path, store: AuditStore) -> int:
    """Copy records left in journal segments into the store, then delete them.

    Returns how many records the store did not have yet. Raises AuditError if a
    segment is unreadable or corrupt in the middle (a torn last line is dropped).
    """
    added = 0
    for _, path in journal_segments(store_path):
        events, marks = read_journal(path)
        added += store.append_missing(events, marks)
        path.unlink()
    if added:
        log.warning("recovered %d audit records from the journal into the store", added)
    return added


def read_journal(path: pathlib.Path) -> tuple[list[ChainedEvent], list[Mark]]:
    """Every complete record in a journal file; a torn last line is dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise AuditError(f"cannot read audit journal {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    if lines and lines[-1]:
        log.warning("audit journal %s ends with a torn line; it is dropped", path)
    events: list[ChainedEvent] = []
    marks: list[Mark] = []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            record = decode_line(line)
        except (ValueError, TypeError) as exc:
            raise AuditError(
                f"{path}:{number}: bad audit journal line: {exc}"
            ) from None
        if isinstance(record, Mark):
            marks.append(record)
        else:
            events.append(record)
    return events, marks
