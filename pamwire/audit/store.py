"""SQLite storage of the audit trail: chained records, completions and search.

Theory of operation: one connection in autocommit mode, guarded by a lock so that
worker threads can take turns. Each write opens BEGIN IMMEDIATE, inserts a whole group
of records and commits, so a group costs one commit. Events go to the table `events`,
marks (start, completion, checkpoint; see pamwire/audit/chain.py) to `marks`; a
completion is also copied into its event's row, for search, and `log verify` checks
that copy against the chained mark. The database runs in WAL mode with
synchronous=NORMAL (FULL on request): when a write returns, the rows are in the WAL
file in the OS page cache. Every sqlite3 error on a write becomes AuditWriteError,
and so does a database file that was deleted or replaced while open, which SQLite
itself would keep writing to without complaint. A version-1 file is migrated in place
when opened for writing: its rows are chained as they are, under a writer of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from pamwire.audit import chain, recording_store
from pamwire.audit.chain import EVENT_FIELDS, ChainedEvent, Mark
from pamwire.audit.events import SCHEMA_VERSION, AuditEvent, AuditRecord, Completion
from pamwire.audit.recording import RecordingChunk
from pamwire.audit.recording_store import Seal, SessionSummary
from pamwire.audit.search import SearchQuery
from pamwire.errors import PamwireError

log = logging.getLogger("pamwire.audit")

# How long a write waits for another process holding the write lock (a checkpoint
# by a second pamwire, a `log search` never blocks writers in WAL mode). Long enough
# to ride out a checkpoint, short enough that waiting statements are refused soon.
BUSY_TIMEOUT_MS = 2000

EVENT_COLUMNS = EVENT_FIELDS
CHAIN_COLUMNS = ("writer", "seq", "hash")
COMPLETION_COLUMNS = ("duration_ms", "outcome", "sqlstate", "rows")
MARK_COLUMNS = chain.MARK_FIELDS

# Columns added by schema version 2, with their types and the value v1 rows get.
_V2_COLUMNS = (
    ("grant", "TEXT", None),
    ("approvers", "TEXT", "[]"),
    ("protocol", "TEXT", "postgres"),
    ("db_account", "TEXT", None),
    ("tables_read", "TEXT", "[]"),
    ("tables_written", "TEXT", "[]"),
    ("functions", "TEXT", "[]"),
    ("params", "TEXT", None),
    ("schema", "INTEGER", 1),
    ("writer", "TEXT", None),
    ("seq", "INTEGER", None),
    ("hash", "TEXT", None),
)
# Lists are stored as JSON text.
_LIST_COLUMNS = frozenset({"approvers", "tables_read", "tables_written", "functions"})
_LIST_INDEXES = tuple(
    i for i, name in enumerate(EVENT_COLUMNS) if name in _LIST_COLUMNS | {"params"}
)


def _q(names: Sequence[str]) -> str:
    # Quoted, because "grant" and "rows" are words of SQL.
    return ", ".join(f'"{name}"' for name in names)


_V1_COLUMNS = """
        row_no INTEGER PRIMARY KEY,
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
        rows INTEGER"""

_MARKS_AND_INDEXES = (
    """
    CREATE TABLE marks (
        row_no INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        writer TEXT NOT NULL,
        seq INTEGER NOT NULL,
        time REAL NOT NULL,
        event_id TEXT,
        duration_ms REAL,
        outcome TEXT,
        sqlstate TEXT,
        rows INTEGER,
        detail TEXT,
        hash TEXT NOT NULL,
        UNIQUE (writer, seq)
    )
    """,
    "CREATE UNIQUE INDEX events_chain ON events (writer, seq)",
)
# Every index is paid for on the hot path (the store takes one event row and one
# completion mark per statement). Searches by person, session and time have one;
# searches by target, kind or rule use the time index or a scan, which measured
# cheaper overall: the four extra indexes cost about 10 us per statement.

_SCHEMA = (
    "CREATE TABLE events ("
    + _V1_COLUMNS
    + "".join(f',\n        "{name}" {kind}' for name, kind, _ in _V2_COLUMNS)
    + ")",
    "CREATE INDEX events_time ON events (time)",
    "CREATE INDEX events_user_time ON events (user, time)",
    "CREATE INDEX events_session_time ON events (session, time)",
    *_MARKS_AND_INDEXES,
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_MIGRATE_1_TO_2 = (
    "ALTER TABLE events RENAME COLUMN seq TO row_no",
    *(
        f'ALTER TABLE events ADD COLUMN "{name}" {kind}'
        for name, kind, _ in _V2_COLUMNS
    ),
    "UPDATE events SET "
    + ", ".join(
        f'"{name}" = {value!r}' if isinstance(value, str) else f'"{name}" = {value}'
        for name, _, value in _V2_COLUMNS
        if value is not None
    ),
    *_MARKS_AND_INDEXES,
)

_EVENT_INSERT_COLUMNS = EVENT_COLUMNS + CHAIN_COLUMNS + COMPLETION_COLUMNS
_INSERT = (
    f"INSERT INTO events ({_q(_EVENT_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _EVENT_INSERT_COLUMNS)})"
)
_INSERT_MISSING = _INSERT.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
_INSERT_MARK = (
    f"INSERT INTO marks ({_q(MARK_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in MARK_COLUMNS)})"
)
_INSERT_MARK_MISSING = _INSERT_MARK.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
_UPDATE = (
    'UPDATE events SET duration_ms = ?, outcome = ?, sqlstate = ?, "rows" = ? '
    "WHERE event_id = ?"
)
_SELECT = f"SELECT {_q(_EVENT_INSERT_COLUMNS)} FROM events"
_EVENT_WIDTH = len(EVENT_COLUMNS)
_NO_COMPLETION = (None,) * len(COMPLETION_COLUMNS)


def _text_in(value: object) -> object:
    # SQLite text is UTF-8; lone surrogates (undecodable client bytes) go in as the
    # original bytes instead, and _text_out turns them back into the same string.
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def _text_out(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _encode_list(value: object) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def event_row(item: ChainedEvent) -> list[object]:
    """The column values of a chained event, without completion."""
    values = [_text_in(v) for v in chain._event_values(item.event)]
    for i in _LIST_INDEXES:
        values[i] = _encode_list(values[i])
    values += [item.writer, item.seq, item.hash]
    return values


def event_from_row(row: Sequence[object]) -> AuditEvent:
    values: list[Any] = [_text_out(v) for v in row[:_EVENT_WIDTH]]
    for i in _LIST_INDEXES:
        if isinstance(values[i], str):
            values[i] = json.loads(values[i])
    return AuditEvent(*values)


def _mark_row(mark: Mark) -> tuple[object, ...]:
    return tuple(_text_in(getattr(mark, name)) for name in MARK_COLUMNS)


def _completion_values(mark: Mark) -> tuple[object, ...]:
    return (mark.duration_ms, mark.outcome, mark.sqlstate, mark.rows)


def _event_rows(
    events: Sequence[ChainedEvent], done: dict[str, Mark]
) -> Iterator[list[object]]:
    """Event rows with their completion columns; used completions leave `done`."""
    for item in events:
        row = event_row(item)
        completion = done.pop(item.event.event_id, None)
        row += _NO_COMPLETION if completion is None else _completion_values(completion)
        yield row


@attrs.frozen
class UnreadableRow:
    """A stored event or mark whose columns no longer decode (a hand edit)."""

    writer: str
    seq: int
    hash: str
    label: str
    error: str

    def describe(self) -> str:
        return (
            f"writer {self.writer} seq {self.seq} ({self.label}): unreadable row "
            f"({self.error}): edited"
        )


def _unreadable(
    writer: object, seq: object, digest: object, label: str, error: Exception
) -> UnreadableRow:
    try:
        number = int(seq)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        number = -1
    return UnreadableRow(str(writer), number, str(digest), label, str(error))


class AuditError(PamwireError):
    """The audit store cannot be opened or read."""


class AuditWriteError(AuditError):
    """Audit events could not be committed: disk full, read-only, locked or gone."""


class AuditStore:
    """The audit trail in one SQLite file, created with mode 0600 if missing.

    With read_only=True the file must exist and is never written (for `log search`
    and `log verify`). With full_sync=True every commit waits for the disk
    (synchronous=FULL). Opening raises AuditWriteError (AuditError when read-only)
    if the file cannot be opened or holds something other than an audit trail this
    pamwire reads; a version-1 trail is migrated when opened for writing.
    """

    def __init__(
        self, path: pathlib.Path, *, read_only: bool = False, full_sync: bool = False
    ) -> None:
        self.path = pathlib.Path(path)
        self.read_only = read_only
        self.full_sync = full_sync
        self._lock = threading.Lock()
        self._chain: chain.Chain | None = None
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
                sync = "FULL" if self.full_sync else "NORMAL"
                conn.execute(f"PRAGMA synchronous = {sync}")
            self._prepare_schema(conn)
            if not self.read_only:
                recording_store.ensure_table(conn)
            self._has_recordings = recording_store.has_table(conn)
        except BaseException:
            conn.close()
            raise
        conn.create_function("pw_icontains", 2, _icontains, deterministic=True)
        conn.create_function("pw_has_name", 2, _has_name, deterministic=True)
        return conn

    def _prepare_schema(self, conn: sqlite3.Connection) -> None:
        version = _user_version(conn)
        if version in (0, 1) and not self.read_only:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Checked again under the write lock: another process may have won.
                version = _user_version(conn)
                head: tuple[str, int, str] | None = None
                if version == 0:
                    (tables,) = conn.execute(
                        "SELECT count(*) FROM sqlite_schema"
                    ).fetchone()
                    if tables:
                        raise AuditError(f"{self.path} is not a pamwire audit store")
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    version = SCHEMA_VERSION
                elif version == 1:
                    head = _migrate_1_to_2(conn)
                    version = SCHEMA_VERSION
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            if head is not None:
                chain.write_head(self.path, *head)
                log.warning("audit store %s migrated to schema version 2", self.path)
        if version == 0:
            raise AuditError(f"{self.path} is not a pamwire audit store")
        if version == 1:
            raise AuditError(
                f"audit store {self.path} has schema version 1: "
                "start pamwire once to migrate it to version 2"
            )
        if version != SCHEMA_VERSION:
            raise AuditError(
                f"audit store {self.path} has schema version {version}, "
                f"this pamwire reads version {SCHEMA_VERSION}"
            )

    # -- writing --

    def append_records(
        self, events: Sequence[ChainedEvent], marks: Sequence[Mark] = ()
    ) -> None:
        """Insert chained events and marks in one transaction.

        A completion mark is also copied into its event's row, which may be in the
        same call. After a checkpoint mark commits, the head file is rewritten.
        Raises AuditWriteError with SQLite's reason when nothing was committed.
        """
        if not events and not marks:
            return
        self._write(events, marks, missing_only=False)

    def append_missing(
        self, events: Sequence[ChainedEvent], marks: Sequence[Mark] = ()
    ) -> int:
        """Insert the records the store lacks (recovery); returns how many were new."""
        if not events and not marks:
            return 0
        return self._write(events, marks, missing_only=True)

    def _write(
        self,
        events: Sequence[ChainedEvent],
        marks: Sequence[Mark],
        *,
        missing_only: bool,
    ) -> int:
        with self._lock:
            conn = self._writable()
            try:
                before = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._insert(conn, events, marks, missing_only=missing_only)
                    self._check_identity()
                    added = conn.total_changes - before
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
        checkpoints = [m for m in marks if m.kind == "checkpoint"]
        if checkpoints:
            last = max(checkpoints, key=lambda m: m.seq)
            try:
                chain.write_head(self.path, last.writer, last.seq, last.hash)
            except OSError as exc:
                log.error("cannot write audit head file: %s", exc)
        return added

    @staticmethod
    def _insert(
        conn: sqlite3.Connection,
        events: Sequence[ChainedEvent],
        marks: Sequence[Mark],
        *,
        missing_only: bool,
    ) -> None:
        # A completion whose event is in the same group goes into the event's own
        # row: one insert instead of an insert and an update.
        done = {m.event_id: m for m in marks if m.kind == "completion" and m.event_id}
        every = dict(done)
        if events:
            sql = _INSERT_MISSING if missing_only else _INSERT
            conn.executemany(sql, _event_rows(events, done))
        if missing_only:
            # An event the store already had was not inserted again, so its row did
            # not take the completion: update every row (recovery can meet events
            # that a later group committed while their completions were lost).
            done = every
        if marks:
            sql = _INSERT_MARK_MISSING if missing_only else _INSERT_MARK
            conn.executemany(sql, map(_mark_row, marks))
        if done:
            conn.executemany(
                _UPDATE, [(*_completion_values(m), m.event_id) for m in done.values()]
            )

    # Direct use without an AuditWriter (tools and tests): the store chains the
    # records itself, under a writer id of its own.

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Chain and insert events in one transaction; AuditWriteError on failure."""
        self.append_and_complete(events, ())

    def complete(self, completions: Sequence[Completion]) -> None:
        """Chain and record completions in one transaction."""
        self.append_and_complete((), completions)

    def append_and_complete(
        self, events: Sequence[AuditEvent], completions: Sequence[Completion]
    ) -> None:
        """Chain and insert events, then completions, in one transaction.

        Each call ends with a checkpoint, so the head file follows every call.
        """
        if not events and not completions:
            return
        own = self._own_chain()
        state = own.state()
        marks: list[Mark] = []
        if own.seq == 0:
            marks.append(own.add_mark("start", time.time(), detail=None)[1])
        chained = own.add_events(events)[1]
        marks += own.add_completions(completions, time.time())[1]
        marks.append(own.add_mark("checkpoint", time.time())[1])
        try:
            self.append_records(chained, marks)
        except BaseException:
            own.rewind(state)
            raise

    def _own_chain(self) -> chain.Chain:
        if self._chain is None:
            self._chain = chain.Chain(chain.new_writer_id())
        return self._chain

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

    # -- reading --

    def _read(
        self, sql: str, params: Sequence[object] = ()
    ) -> list[tuple[object, ...]]:
        with self._lock:
            if self._conn is None:
                raise AuditError(f"audit store {self.path} is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise AuditError(f"cannot read audit store {self.path}: {exc}") from exc

    def newest_link(self) -> str | None:
        """ "writer:seq:hash" of the newest record of the last writer that started."""
        rows = self._read(
            "SELECT writer FROM marks WHERE kind = 'start' ORDER BY row_no DESC LIMIT 1"
        )
        if not rows:
            return None
        writer = rows[0][0]
        rows = self._read(
            "SELECT seq, hash FROM (SELECT seq, hash FROM events WHERE writer = ?1"
            " UNION ALL SELECT seq, hash FROM marks WHERE writer = ?1)"
            " ORDER BY seq DESC LIMIT 1",
            (writer,),
        )
        seq, digest = rows[0]
        return chain.format_link(str(writer), int(seq), str(digest))  # type: ignore[call-overload]

    def chained_events(self) -> Iterator[tuple[ChainedEvent, tuple[object, ...]]]:
        """Every event with its chain place and completion columns, by writer, seq.

        AuditError for a row whose columns no longer make an event (edited by hand).
        """
        for item, completion in self.chained_event_rows():
            if isinstance(item, UnreadableRow):
                raise AuditError(item.describe())
            yield item, completion

    def chained_event_rows(
        self,
    ) -> Iterator[tuple[ChainedEvent | UnreadableRow, tuple[object, ...]]]:
        """Like chained_events, but an unreadable row comes as an UnreadableRow."""
        sql = _SELECT + " ORDER BY writer, seq"
        for row in self._read(sql):
            writer, seq, digest = row[_EVENT_WIDTH : _EVENT_WIDTH + 3]
            completion = tuple(row[_EVENT_WIDTH + 3 :])
            try:
                event = event_from_row(row)
            except (ValueError, TypeError) as error:
                label = f"event {_text_out(row[0])}"
                yield _unreadable(writer, seq, digest, label, error), completion
                continue
            item = ChainedEvent(event, writer, seq, digest)  # type: ignore[arg-type]
            yield item, completion

    def marks(self) -> Iterator[Mark]:
        """Every mark, by writer and seq; AuditError for an unreadable row."""
        for mark in self.mark_rows():
            if isinstance(mark, UnreadableRow):
                raise AuditError(mark.describe())
            yield mark

    def mark_rows(self) -> Iterator[Mark | UnreadableRow]:
        """Like marks, but an unreadable row comes as an UnreadableRow."""
        sql = f"SELECT {_q(MARK_COLUMNS)} FROM marks ORDER BY writer, seq"
        for row in self._read(sql):
            values = [_text_out(v) for v in row]
            try:
                yield Mark(*values)  # type: ignore[arg-type]
            except (ValueError, TypeError) as error:
                position = {name: i for i, name in enumerate(MARK_COLUMNS)}
                writer, seq = row[position["writer"]], row[position["seq"]]
                digest = row[position["hash"]]
                label = f"{_text_out(row[position['kind']])} mark"
                yield _unreadable(writer, seq, digest, label, error)

    def search(self, q: SearchQuery) -> list[AuditRecord]:
        """The newest q.limit matching records, oldest first; AuditError on failure."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (
            ("user", q.user),
            ("target", q.target),
            ("verdict", q.verdict),
            ("session", q.session),
            ("statement_kind", q.kind),
            ("rule", q.rule),
            ("grant", q.grant),
        ):
            if value is not None:
                where.append(f'"{column}" = ?')
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
        if q.table:
            where.append(
                "(pw_has_name(tables_read, ?) OR pw_has_name(tables_written, ?))"
            )
            params.extend([q.table] * 2)

        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, row_no DESC LIMIT ?"
        params.append(q.limit)

        rows = self._read(sql, params)
        rows.reverse()
        return [_record(row) for row in rows]

    # -- session recordings (pamwire/audit/recording.py) --

    def append_recording(self, chunks: Sequence[RecordingChunk]) -> list[Seal]:
        """Insert recording chunks in one transaction (called by the writer thread).

        Recordings are not part of the hash chain. Raises AuditWriteError with
        SQLite's reason when nothing was committed.
        """
        return self.append_recording_rows(
            [recording_store.chunk_row(c) for c in chunks]
        )

    def append_recording_rows(self, rows: Sequence[tuple[object, ...]]) -> list[Seal]:
        """Insert recording rows made by recording_store.chunk_row in one transaction;
        returns their seals, for the chain.

        AuditWriteError with SQLite's reason when nothing was committed.
        """
        if not rows:
            return []
        with self._lock:
            conn = self._writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(recording_store.INSERT, rows)
                    self._check_identity()
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise AuditWriteError(
                    f"cannot write recordings to {self.path}: {exc}"
                ) from exc
        return recording_store.seal_rows(rows)

    def recording_rows(self, session: str) -> list[tuple[object, ...]]:
        """The stored rows of one session's recording (chunk_row's columns), by seq."""
        if not self._has_recordings:
            return []
        return self._read(recording_store.SELECT_SESSION, (session,))

    def recording_seqs(self) -> list[tuple[object, ...]]:
        """(session, seq) of every stored recording chunk."""
        if not self._has_recordings:
            return []
        return self._read(recording_store.SELECT_SEQS)

    def recording(self, session: str) -> list[RecordingChunk]:
        """The recorded chunks of one session in wire order; empty if none."""
        if not self._has_recordings:
            return []
        rows = self._read(recording_store.SELECT_SESSION, (session,))
        return [recording_store.chunk_from_row(row) for row in rows]

    def session_summaries(
        self,
        *,
        user: str | None = None,
        target: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[SessionSummary]:
        """Sessions with an event in [since, until), newest first; AuditError on
        failure."""
        sql, params = recording_store.summary_query(
            user=user,
            target=target,
            since=since,
            until=until,
            limit=limit,
            with_recordings=self._has_recordings,
        )
        return [recording_store.summary_from_row(r) for r in self._read(sql, params)]

    # -- streaming reads for export and evidence --

    def events_after(
        self, row_no: int, limit: int
    ) -> list[tuple[int, AuditRecord, str | None]]:
        """Up to `limit` events inserted after row `row_no`, in insert order, as
        (row_no, record, hash)."""
        sql = _SELECT.replace("SELECT ", "SELECT row_no, ", 1)
        sql += " WHERE row_no > ? ORDER BY row_no LIMIT ?"
        out: list[tuple[int, AuditRecord, str | None]] = []
        for row in self._read(sql, (row_no, limit)):
            digest = row[1 + _EVENT_WIDTH + 2]
            record = _record(row[1:])
            out.append((int(row[0]), record, None if digest is None else str(digest)))  # type: ignore[call-overload]
        return out

    def completions_after(self, row_no: int, limit: int) -> list[tuple[int, Mark]]:
        """Up to `limit` completion marks inserted after row `row_no`, in order."""
        sql = (
            f"SELECT row_no, {_q(MARK_COLUMNS)} FROM marks"
            " WHERE row_no > ? AND kind = 'completion' ORDER BY row_no LIMIT ?"
        )
        out = []
        for row in self._read(sql, (row_no, limit)):
            values = [_text_out(v) for v in row[1:]]
            out.append((int(row[0]), Mark(*values)))  # type: ignore[arg-type, call-overload]
        return out

    def writer_order(self) -> dict[str, int]:
        """Each writer's place in the trail: the row of its start mark."""
        rows = self._read(
            "SELECT writer, min(row_no) FROM marks WHERE kind = 'start' GROUP BY writer"
        )
        return {str(w): int(n) for w, n in rows}  # type: ignore[call-overload]

    def iter_records(
        self, *, since: float | None, until: float | None, batch: int = 5000
    ) -> Iterator[AuditRecord]:
        """Every record with since <= time < until, oldest first, read in batches."""
        sql = _SELECT.replace("SELECT ", "SELECT row_no, ", 1)
        sql += (
            " WHERE time >= ? AND time < ? AND (time > ? OR (time = ? AND row_no > ?))"
        )
        sql += " ORDER BY time, row_no LIMIT ?"
        low = float("-inf") if since is None else since
        high = float("inf") if until is None else until
        last_time, last_row = low, -1
        while True:
            rows = self._read(sql, (low, high, last_time, last_time, last_row, batch))
            for row in rows:
                yield _record(row[1:])
            if len(rows) < batch:
                return
            last_time = float(rows[-1][1 + 1])  # type: ignore[arg-type]
            last_row = int(rows[-1][0])  # type: ignore[call-overload]

    def close(self) -> None:
        """Close the connection; later writes raise AuditWriteError. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _record(row: Sequence[Any]) -> AuditRecord:
    writer, seq, _, duration_ms, outcome, sqlstate, rows = row[_EVENT_WIDTH:]
    return AuditRecord(
        event_from_row(row),
        duration_ms=duration_ms,
        outcome=outcome,
        sqlstate=sqlstate,
        rows=rows,
        writer=writer,
        seq=seq,
    )


def _migrate_1_to_2(conn: sqlite3.Connection) -> tuple[str, int, str]:
    """Add the version-2 columns and tables, and chain the existing rows as they are.

    Returns the head (writer, seq, hash) of the new chain for the head file.
    """
    for statement in _MIGRATE_1_TO_2:
        conn.execute(statement)
    migrated = chain.Chain("migrated-" + chain.new_writer_id()[:8])
    now = time.time()
    marks = [
        migrated.add_mark("start", now, detail="migrated from schema version 1")[1]
    ]
    rows = conn.execute(
        _SELECT.replace("SELECT ", "SELECT row_no, ", 1) + " ORDER BY row_no"
    )
    updates: list[tuple[object, ...]] = []
    for row in rows.fetchall():
        row_no, values = row[0], row[1:]
        event = event_from_row(values)
        (item,) = migrated.add_events([event])[1]
        updates.append((item.writer, item.seq, item.hash, row_no))
        duration_ms, outcome, sqlstate, rows_count = values[_EVENT_WIDTH + 3 :]
        if outcome is not None:
            marks.append(
                migrated.add_mark(
                    "completion",
                    event.time,
                    event_id=event.event_id,
                    duration_ms=duration_ms,
                    outcome=outcome,
                    sqlstate=sqlstate,
                    rows=rows_count,
                )[1]
            )
    marks.append(migrated.add_mark("checkpoint", now)[1])
    conn.executemany(
        "UPDATE events SET writer = ?, seq = ?, hash = ? WHERE row_no = ?", updates
    )
    conn.executemany(_INSERT_MARK, map(_mark_row, marks))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    last = marks[-1]
    return last.writer, last.seq, last.hash


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


def _icontains(haystack: str | bytes | None, needle: str) -> bool:
    # Python's casefold handles non-ASCII text, which SQLite's LIKE does not.
    if isinstance(haystack, bytes):
        haystack = haystack.decode("utf-8", "surrogateescape")
    return haystack is not None and needle in haystack.casefold()


def _has_name(names: str | None, name: str) -> bool:
    # A table given without a schema matches it in any schema.
    if not names:
        return False
    return any(n == name or n.endswith("." + name) for n in json.loads(names))
