"""Session recording: what the server answered to each statement, up to set limits.

Theory of operation: the session tells the recorder, in wire order, each statement
it forwards (`statement`) and each message after which the server sends
ReadyForQuery (`sync`: a Query, Sync or FunctionCall). Statements between two syncs
form a group, the stretch of the conversation that one ReadyForQuery closes. Server
replies are attributed to the first unfinished statement of the oldest group:
CommandComplete, EmptyQueryResponse and PortalSuspended finish it; an ErrorResponse
finishes it as failed and the rest of its group as skipped (a Query stops at its
first error, an extended-protocol pipeline skips to Sync); ReadyForQuery closes the
group. Rows are decoded only while the statement is under its row limit and the
session under its byte budget; after that DataRows are only counted by type byte.

Sans-IO and single-threaded: the session calls it on its event loop and hands the
chunks from `drain()` to the audit writer, which stores them with
AuditStore.append_recording. Bound parameter values never reach the recorder; the
statement text comes already redacted.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import attrs

from pamwire.pg.codec import (
    Frame,
    FrameReader,
    command_tag,
    data_row_values,
    decode_backend,
    payload,
)
from pamwire.pg.messages import (
    ErrorResponse,
    NoticeResponse,
    RowDescription,
)

DEFAULT_MAX_ROWS_PER_STATEMENT = 100
DEFAULT_MAX_BYTES_PER_SESSION = 1 << 20

# Notices kept per statement; a loop of RAISE NOTICE should not fill the budget alone.
MAX_NOTICES_PER_STATEMENT = 100

# Column names that mark a column's values as secrets: replaced, never recorded.
DEFAULT_SECRET_COLUMN_WORDS = ("password", "passwd", "secret")
REDACTED = "<redacted>"

# The redactor (pamwire/sql/redact.py) writes this where it removed a secret. The
# server's error for such a statement may quote the secret ("syntax error at or near
# ..."), so only the SQLSTATE and severity of its errors and notices are kept.
_REDACTION_MARK = "'<redacted>'"
_SECRET_NOTE = "(message not recorded: the statement carried a secret)"

# The name a recording keeps for each column of a statement that carried a secret:
# a server names an unaliased column by its expression (`PASSWORD('x')`).
HIDDEN_COLUMN = "(name not recorded)"
_KEPT_FIELDS_OF_SECRET = frozenset({"S", "V", "C"})

# What a finished chunk's status can be.
STATUSES = ("ok", "empty", "suspended", "error", "skipped", "unfinished", "message")

_D, _T, _C, _I, _S_SUSPENDED, _E, _N, _Z = (ord(c) for c in "DTCIsENZ")
_WATCHED = frozenset({_T, _C, _I, _S_SUSPENDED, _E, _N, _Z})

ReportFields = tuple[tuple[str, str], ...]
Row = tuple[str | None, ...]


@attrs.frozen(kw_only=True)
class RecordingChunk:
    """What the recording holds for one statement, or for a server message that
    belongs to none (status "message": a notice or error between statements).

    `seq` orders the chunks of a session as the statements went on the wire.
    `columns` is None when the server described no columns to this statement;
    `rows` are the recorded rows as text (binary values as \\x hex, NULL as None);
    `row_count` counts every DataRow, recorded or not. `truncated` says why rows
    are missing: "rows" (the statement's limit), "bytes" (the session's budget) or
    "secret" (the statement carried a secret, so none of its rows are kept).
    """

    session: str
    seq: int
    event_id: str | None
    statement: str | None
    started: float | None
    finished: float
    status: str
    columns: tuple[str, ...] | None = None
    column_types: tuple[int, ...] = ()
    rows: tuple[Row, ...] = ()
    row_count: int = 0
    truncated: str | None = None
    tag: str | None = None
    error: ReportFields | None = None
    notices: tuple[ReportFields, ...] = ()
    notices_dropped: int = 0

    @property
    def rows_not_recorded(self) -> int:
        return self.row_count - len(self.rows)

    def to_data(self) -> dict[str, Any]:
        """The fields kept in a recording row's JSON column (see from_data)."""
        return {
            "statement": self.statement,
            "columns": None if self.columns is None else list(self.columns),
            "column_types": list(self.column_types),
            "rows": [list(row) for row in self.rows],
            "truncated": self.truncated,
            "tag": self.tag,
            "error": None if self.error is None else [list(f) for f in self.error],
            "notices": [[list(f) for f in n] for n in self.notices],
            "notices_dropped": self.notices_dropped,
        }

    @classmethod
    def from_data(
        cls,
        data: dict[str, Any],
        *,
        session: str,
        seq: int,
        event_id: str | None,
        started: float | None,
        finished: float,
        status: str,
        row_count: int,
    ) -> RecordingChunk:
        """Rebuild a chunk from its stored columns and JSON data."""
        columns = data.get("columns")
        error = data.get("error")
        return cls(
            session=session,
            seq=seq,
            event_id=event_id,
            statement=data.get("statement"),
            started=started,
            finished=finished,
            status=status,
            columns=None if columns is None else tuple(columns),
            column_types=tuple(data.get("column_types", ())),
            rows=tuple(tuple(row) for row in data.get("rows", ())),
            row_count=row_count,
            truncated=data.get("truncated"),
            tag=data.get("tag"),
            error=None if error is None else _fields(error),
            notices=tuple(_fields(n) for n in data.get("notices", ())),
            notices_dropped=int(data.get("notices_dropped", 0)),
        )


def _fields(value: Sequence[Sequence[str]]) -> ReportFields:
    return tuple((str(code), str(text)) for code, text in value)


class _Pending:
    """A statement forwarded to the server whose result is still arriving."""

    __slots__ = (
        "binary",
        "columns",
        "decoding",
        "event_id",
        "hidden",
        "notices",
        "notices_dropped",
        "row_count",
        "rows",
        "secret",
        "seq",
        "started",
        "text",
        "truncated",
        "types",
    )

    def __init__(self, event_id: str, text: str, started: float, seq: int) -> None:
        self.event_id = event_id
        self.text = text
        self.started = started
        self.seq = seq
        self.secret = _REDACTION_MARK in text
        self.decoding = not self.secret
        self.columns: tuple[str, ...] | None = None
        self.types: tuple[int, ...] = ()
        self.binary: tuple[bool, ...] = ()
        self.hidden: tuple[bool, ...] = ()
        self.rows: list[Row] = []
        self.row_count = 0
        self.truncated: str | None = None
        self.notices: list[ReportFields] = []
        self.notices_dropped = 0


class _Group:
    """Statements up to the message the server answers with one ReadyForQuery."""

    __slots__ = ("closed", "statements")

    def __init__(self) -> None:
        self.statements: collections.deque[_Pending] = collections.deque()
        self.closed = False


class SessionRecorder:
    """Records one session's results; see the module docstring.

    Limits: at most `max_rows_per_statement` rows of each statement and
    `max_bytes_per_session` bytes of row values and notices in the whole session.
    Values of columns whose name contains one of `secret_column_words` (any case)
    are recorded as "<redacted>". `clock` gives the wall-clock time of results.
    """

    def __init__(
        self,
        session_id: str,
        *,
        max_rows_per_statement: int = DEFAULT_MAX_ROWS_PER_STATEMENT,
        max_bytes_per_session: int = DEFAULT_MAX_BYTES_PER_SESSION,
        secret_column_words: Collection[str] = DEFAULT_SECRET_COLUMN_WORDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_rows_per_statement < 0 or max_bytes_per_session < 0:
            raise ValueError("recording limits must be >= 0")
        self.session_id = session_id
        self.max_rows = max_rows_per_statement
        self.budget = max_bytes_per_session
        self._secret_words = tuple(w.casefold() for w in secret_column_words)
        self._clock = clock
        self._groups: collections.deque[_Group] = collections.deque()
        self._done: list[RecordingChunk] = []
        self._seq = 0

    # -- what the client sent ----------------------------------------------------

    def statement(self, event_id: str, text: str, time: float) -> None:
        """A statement was forwarded (or a denial's stand-in for it), in wire order."""
        self._seq += 1
        group = self._groups[-1] if self._groups else None
        if group is None or group.closed:
            group = _Group()
            self._groups.append(group)
        group.statements.append(_Pending(event_id, text, time, self._seq))

    def sync(self) -> None:
        """A Query, Sync or FunctionCall was forwarded: the server will send
        ReadyForQuery for everything since the previous one."""
        group = self._groups[-1] if self._groups else None
        if group is None or group.closed:
            group = _Group()
            self._groups.append(group)
        group.closed = True

    # -- what the server answered -------------------------------------------------

    def server_block(self, block: bytes, frames: list[Frame] | None = None) -> None:
        """Server replies as forwarded to the client.

        `frames` are the block's frames from the FrameReader; None makes the
        recorder split the block itself (for a block pamwire rewrote). Raises
        ServerProtocolError for a malformed message it decodes.
        """
        if frames is None:
            reader = FrameReader()
            reader.feed(block)
            block, frames = reader.read_frames()
        for frame in frames:
            t = frame.type
            if t == _D:
                head = self._head()
                if head is not None:
                    head.row_count += 1
                    if head.decoding:
                        self._record_row(head, block, frame)
            elif t in _WATCHED:
                self._reply(t, block, frame)

    def _reply(self, t: int, block: bytes, frame: Frame) -> None:
        head = self._head()
        if t == _Z:
            self._close_group()
        elif t == _T:
            if head is not None:
                message = decode_backend(t, payload(block, frame))
                assert isinstance(message, RowDescription)
                self._describe(head, message)
        elif t == _C:
            if head is not None:
                self._finish(head, "ok", tag=command_tag(payload(block, frame)))
        elif t == _I:
            if head is not None:
                self._finish(head, "empty")
        elif t == _S_SUSPENDED:
            if head is not None:
                self._finish(head, "suspended")
        elif t == _E:
            message = decode_backend(t, payload(block, frame))
            assert isinstance(message, ErrorResponse)
            self._error(head, message.fields)
        elif t == _N:
            message = decode_backend(t, payload(block, frame))
            assert isinstance(message, NoticeResponse)
            self._notice(head, message.fields)

    def _head(self) -> _Pending | None:
        if not self._groups:
            return None
        statements = self._groups[0].statements
        return statements[0] if statements else None

    # TODO(recording-describe): a client that describes a prepared statement once
    # and executes it later gets no RowDescription with the rows; remembering
    # descriptions per statement name needs the session to pass Parse names.
    # TODO(recording-copy): COPY TO STDOUT data (CopyData) is not recorded or counted.
    def _describe(self, head: _Pending, message: RowDescription) -> None:
        fields = message.fields
        head.columns = tuple(f.name for f in fields)
        head.types = tuple(f.type_oid for f in fields)
        head.binary = tuple(f.format == 1 for f in fields)
        head.hidden = tuple(
            any(word in f.name.casefold() for word in self._secret_words)
            for f in fields
        )

    def _record_row(self, head: _Pending, block: bytes, frame: Frame) -> None:
        if len(head.rows) >= self.max_rows:
            head.decoding = False
            head.truncated = head.truncated or "rows"
            return
        size = frame.end - frame.start
        if size > self.budget:
            head.decoding = False
            head.truncated = "bytes"
            self.budget = 0
            return
        self.budget -= size
        values = data_row_values(payload(block, frame))
        head.rows.append(self._row_text(head, values))

    def _row_text(self, head: _Pending, values: tuple[bytes | None, ...]) -> Row:
        out: list[str | None] = []
        for i, value in enumerate(values):
            if value is None:
                out.append(None)
            elif i < len(head.hidden) and head.hidden[i]:
                out.append(REDACTED)
            elif i < len(head.binary) and head.binary[i]:
                out.append("\\x" + bytes(value).hex())
            else:
                out.append(bytes(value).decode("utf-8", "surrogateescape"))
        return tuple(out)

    def _error(self, head: _Pending | None, fields: ReportFields) -> None:
        if head is None:
            self._loose(error=fields)
            return
        if head.secret:
            fields = _without_secret(fields)
        self._finish(head, "error", error=fields)
        # The server skips the rest of the group: the rest of a Query, or every
        # extended-protocol step up to Sync.
        for pending in list(self._groups[0].statements):
            self._finish(pending, "skipped")

    def _notice(self, head: _Pending | None, fields: ReportFields) -> None:
        size = sum(len(text) for _, text in fields)
        if head is None:
            if size <= self.budget:
                self.budget -= size
                self._loose(notices=(fields,))
            return
        if len(head.notices) >= MAX_NOTICES_PER_STATEMENT or size > self.budget:
            head.notices_dropped += 1
            return
        self.budget -= size
        head.notices.append(_without_secret(fields) if head.secret else fields)

    def _close_group(self) -> None:
        if not self._groups:
            return
        group = self._groups.popleft()
        for pending in list(group.statements):
            self._finish(pending, "skipped", group=group)

    def _finish(
        self,
        pending: _Pending,
        status: str,
        *,
        tag: str | None = None,
        error: ReportFields | None = None,
        group: _Group | None = None,
    ) -> None:
        statements = (group or self._groups[0]).statements
        if statements and statements[0] is pending:
            statements.popleft()
        else:
            statements.remove(pending)
        truncated = pending.truncated
        if truncated is None and pending.row_count > len(pending.rows):
            truncated = "secret"  # the only way rows go unrecorded without a limit
        self._done.append(
            RecordingChunk(
                session=self.session_id,
                seq=pending.seq,
                event_id=pending.event_id,
                statement=pending.text,
                started=pending.started,
                finished=self._clock(),
                status=status,
                columns=(
                    tuple(HIDDEN_COLUMN for _ in pending.columns)
                    if pending.secret and pending.columns is not None
                    else pending.columns
                ),
                column_types=pending.types,
                rows=tuple(pending.rows),
                row_count=pending.row_count,
                truncated=truncated,
                tag=tag,
                error=error,
                notices=tuple(pending.notices),
                notices_dropped=pending.notices_dropped,
            )
        )

    def _loose(
        self,
        *,
        error: ReportFields | None = None,
        notices: tuple[ReportFields, ...] = (),
    ) -> None:
        self._seq += 1
        now = self._clock()
        self._done.append(
            RecordingChunk(
                session=self.session_id,
                seq=self._seq,
                event_id=None,
                statement=None,
                started=None,
                finished=now,
                status="message",
                error=error,
                notices=notices,
            )
        )

    # -- output --------------------------------------------------------------------

    def drain(self) -> list[RecordingChunk]:
        """The chunks finished since the last drain, in the order they finished."""
        done, self._done = self._done, []
        return done

    def close(self) -> list[RecordingChunk]:
        """End of session: statements still waiting are finished as "unfinished";
        returns every chunk not yet drained."""
        while self._groups:
            group = self._groups.popleft()
            for pending in list(group.statements):
                self._finish(pending, "unfinished", group=group)
        return self.drain()

    @property
    def waiting(self) -> int:
        """Statements forwarded whose result has not ended yet."""
        return sum(len(g.statements) for g in self._groups)


def _without_secret(fields: ReportFields) -> ReportFields:
    kept = tuple((c, t) for c, t in fields if c in _KEPT_FIELDS_OF_SECRET)
    return (*kept, ("M", _SECRET_NOTE))
