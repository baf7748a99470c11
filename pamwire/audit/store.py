"""SQLite storage of the audit trail: grouped appends, completions and search.

Theory of operation: one connection in autocommit mode, guarded by a lock so that
worker threads can take turns. Each write opens BEGIN IMMEDIATE, inserts or updates
a whole group of rows and commits, so a group costs one commit. The database runs in
WAL mode with synchronous=NORMAL: when a write returns, the rows are in the WAL file
in the OS page cache. That survives a crash or kill -9 of the proxy, not a power cut
or kernel crash (the WAL is fsynced only at checkpoints). Every sqlite3 error on a
write becomes AuditWriteError, and so does a database file that was deleted or
replaced while open, which SQLite itself would keep writing to without complaint.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import pathlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence

import attrs

from pamwire.audit.events import SCHEMA_VERSION, AuditEvent, AuditRecord, Completion
from pamwire.audit.search import SearchQuery
from pamwire.errors import PamwireError

log = logging.getLogger("pamwire.audit")

# How long a write waits for another process holding the write lock (a checkpoint
# by a second pamwire, a `log search` never blocks writers in WAL mode). Long enough
# to ride out a checkpoint, short enough that waiting statements are refused soon.
BUSY_TIMEOUT_MS = 2000

_SCHEMA = (
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        session TEXT NOT NULL,
        user TEXT,
        target TEXT,
        client_addr TEXT,
        application TEXT,
        statement TEXT,
        verdict TEXT,
        rule TEXT,
        message TEXT,
        statement_kind TEXT,
        fingerprint TEXT,
        operation TEXT,
        detail TEXT,
        duration_ms REAL,
        outcome TEXT,
        sqlstate TEXT,
        rows INTEGER
    )
    """,
    "CREATE INDEX events_time ON events (time)",
    "CREATE INDEX events_user_time ON events (user, time)",
    "CREATE INDEX events_target_time ON events (target, time)",
    "CREATE INDEX events_session_time ON events (session, time)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

EVENT_COLUMNS = tuple(field.name for field in attrs.fields(AuditEvent))
COMPLETION_COLUMNS = ("duration_ms", "outcome", "sqlstate", "rows")

# TODO(hash-chain): completions update rows in place; a hash-chained trail that
# `log verify` can check needs them appended as records of their own.
# TODO(durability): offer synchronous=FULL for sites that must survive a power cut.
_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)
_INSERT_FULL = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS + COMPLETION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS + COMPLETION_COLUMNS)})"
)
_INSERT_MISSING = _INSERT.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
_UPDATE = (
    "UPDATE events SET duration_ms = ?, outcome = ?, sqlstate = ?, rows = ? "
    "WHERE event_id = ?"
)
_SELECT = f"SELECT {', '.join(EVENT_COLUMNS + COMPLETION_COLUMNS)} FROM events"

# attrgetter over several names returns a tuple in that order, at C speed.
_event_row = operator.attrgetter(*EVENT_COLUMNS)
_completion_row = operator.attrgetter(*COMPLETION_COLUMNS, "event_id")
_EVENT_WIDTH = len(EVENT_COLUMNS)
_NO_COMPLETION = (None,) * len(COMPLETION_COLUMNS)


def _full_rows(
    events: Sequence[AuditEvent], done: dict[str, Completion]
) -> Iterator[tuple[object, ...]]:
    """Event rows with their completion columns; used completions leave `done`."""
    for event in events:
        completion = done.pop(event.event_id, None)
        tail = (
            _NO_COMPLETION if completion is None else _completion_row(completion)[:-1]
        )
        yield _event_row(event) + tail


class AuditError(PamwireError):
    """The audit store cannot be opened or read."""


class AuditWriteError(AuditError):
    """Audit events could not be committed: disk full, read-only, locked or gone."""


class AuditStore:
    """The audit trail in one SQLite file, created with mode 0600 if missing.

    With read_only=True the file must exist and is never written (for `log search`).
    Opening raises AuditWriteError (AuditError when read-only) if the file cannot be
    opened or holds something other than a version-1 audit trail.
    """

    def __init__(self, path: pathlib.Path, *, read_only: bool = False) -> None:
        self.path = pathlib.Path(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        error = AuditError if read_only else AuditWriteError
        try:
            self._conn: sqlite3.Connection | None = self._open()
        except (sqlite3.Error, OSError) as exc:
            raise error(f"cannot open audit store {self.path}: {exc}") from exc
        self._identity = _file_identity(self.path)

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            target = self.path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(
                target, uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            _create_private(self.path)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self.read_only:
                (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode != "wal":
                    raise sqlite3.OperationalError(f"journal mode stays {mode!r}")
                conn.execute("PRAGMA synchronous = NORMAL")
            self._prepare_schema(conn)
        except BaseException:
            conn.close()
            raise
        conn.create_function("pw_icontains", 2, _icontains, deterministic=True)
        return conn

    def _prepare_schema(self, conn: sqlite3.Connection) -> None:
        version = _user_version(conn)
        if version == 0 and not self.read_only:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Checked again under the write lock: another process may have won.
                version = _user_version(conn)
                if version == 0:
                    (tables,) = conn.execute(
                        "SELECT count(*) FROM sqlite_schema"
                    ).fetchone()
                    if tables:
                        raise AuditError(f"{self.path} is not a pamwire audit store")
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    version = SCHEMA_VERSION
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        if version == 0:
            raise AuditError(f"{self.path} is not a pamwire audit store")
        if version != SCHEMA_VERSION:
            raise AuditError(
                f"audit store {self.path} has schema version {version}, "
                f"this pamwire reads version {SCHEMA_VERSION}"
            )

    def append_missing(self, events: Sequence[AuditEvent]) -> int:
        """Insert the events whose ids the store lacks; returns how many were new."""
        if not events:
            return 0
        with self._lock:
            conn = self._writable()
            try:
                before = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT_MISSING, map(_event_row, events))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
                return conn.total_changes - before
            except sqlite3.Error as exc:
                raise AuditWriteError(
                    f"cannot write audit events to {self.path}: {exc}"
                ) from exc

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Insert events in one transaction; AuditWriteError if it did not commit."""
        self.append_and_complete(events, ())

    def complete(self, completions: Sequence[Completion]) -> None:
        """Record completions in one transaction; unknown event ids are skipped."""
        self.append_and_complete((), completions)

    def append_and_complete(
        self, events: Sequence[AuditEvent], completions: Sequence[Completion]
    ) -> None:
        """Insert events, then record completions, all in one transaction.

        Completions may refer to events of the same call. Raises AuditWriteError
        with SQLite's reason when nothing was committed.
        """
        if not events and not completions:
            return
        with self._lock:
            conn = self._writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    # A completion whose event is in the same group goes into the
                    # event's own row: one insert instead of an insert and an update.
                    done = {c.event_id: c for c in completions}
                    if events:
                        conn.executemany(_INSERT_FULL, _full_rows(events, done))
                    if done:
                        conn.executemany(_UPDATE, map(_completion_row, done.values()))
                    self._check_identity()
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise AuditWriteError(
                    f"cannot write audit events to {self.path}: {exc}"
                ) from exc

    def _writable(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AuditWriteError(f"audit store {self.path} is closed")
        if self.read_only:
            raise AuditWriteError(f"audit store {self.path} is open read-only")
        return self._conn

    def _check_identity(self) -> None:
        # SQLite keeps writing to a deleted or renamed file, and those rows vanish at
        # close. One stat per group is cheap next to a commit.
        if _file_identity(self.path) != self._identity:
            raise AuditWriteError(
                f"audit store {self.path} was deleted or replaced while open"
            )

    def search(self, q: SearchQuery) -> list[AuditRecord]:
        """The newest q.limit matching records, oldest first; AuditError on failure."""
        where: list[str] = []
        params: list[object] = []
        for column in ("user", "target", "verdict", "session"):
            value = getattr(q, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if q.since is not None:
            where.append("time >= ?")
            params.append(q.since)
        if q.until is not None:
            where.append("time < ?")
            params.append(q.until)
        if q.text:
            where.append(
                "(pw_icontains(statement, ?) OR pw_icontains(message, ?)"
                " OR pw_icontains(detail, ?))"
            )
            params.extend([q.text.casefold()] * 3)

        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, seq DESC LIMIT ?"
        params.append(q.limit)

        with self._lock:
            if self._conn is None:
                raise AuditError(f"audit store {self.path} is closed")
            try:
                rows = self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise AuditError(
                    f"cannot search audit store {self.path}: {exc}"
                ) from exc
        rows.reverse()
        return [
            AuditRecord(AuditEvent(*row[:_EVENT_WIDTH]), *row[_EVENT_WIDTH:])
            for row in rows
        ]

    def close(self) -> None:
        """Close the connection; later writes raise AuditWriteError. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _create_private(path: pathlib.Path) -> None:
    # Create the file ourselves so that it is born 0600; SQLite gives its -wal and
    # -shm files the mode of the database file.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)
    if mode & 0o077:
        log.warning("audit store %s is readable by others (mode %o)", path, mode)


def _file_identity(path: pathlib.Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _user_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _icontains(haystack: str | None, needle: str) -> bool:
    # Python's casefold handles non-ASCII text, which SQLite's LIKE does not.
    return haystack is not None and needle in haystack.casefold()
