"""Session recording for MySQL/MariaDB: what the server answered to each statement.

Theory of operation: the protocol answers one command at a time, so the session
tells the recorder, before it relays a reply, the statements that command carries
(`command`, with the reply's ReplyTracker) and then hands it every server packet
with the Step the tracker made of it (`server_packet`). Results are attributed in
order: each OK packet or end of rows finishes the first unfinished statement of the
command, an ERR finishes it as failed and the rest as skipped (a multi-statement
COM_QUERY stops at its first error). A CALL answers with a result set per SELECT it
runs and then an OK: each result set becomes a chunk of its own under the CALL's
event, and the OK finishes it. A command that pamwire refuses itself is recorded
with the ERR packet pamwire sent (`refused`).

Rows are decoded only while the statement is under its row limit and the session
under its byte budget. `decoding` says whether the next row is wanted; the session
checks it before passing a row, so a row past a limit costs one attribute read.

The chunks are pamwire.audit.recording's RecordingChunk, stored and listed like
PostgreSQL's. Their MySQL fields: `column_types` hold each column's type code with
its column flags shifted above it (`type | flags << 8`); `error` holds ("N", error
number), ("C", SQLSTATE) and ("M", message); `tag` is "key=value" words (see
`mysql_tag`). Bound parameter values are never recorded, as events do not carry
them; statement text comes already redacted.
"""

from __future__ import annotations

import collections
import struct
import time
from collections.abc import Callable, Collection, Sequence
from typing import Final

import attrs

from pamwire.audit.events import AuditEvent
from pamwire.audit.recording import (
    DEFAULT_MAX_BYTES_PER_SESSION,
    DEFAULT_MAX_ROWS_PER_STATEMENT,
    DEFAULT_SECRET_COLUMN_WORDS,
    HIDDEN_COLUMN,
    REDACTED,
    RecordingChunk,
    ReportFields,
    Row,
)
from pamwire.errors import ProtocolError, ServerProtocolError
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import ColumnFlag as Flag
from pamwire.mysql.constants import ColumnType as T
from pamwire.mysql.constants import Command, ServerStatus
from pamwire.mysql.cursor import Cursor
from pamwire.mysql.packets import Packet, PacketReader, payload
from pamwire.mysql.results import ReplyTracker, Step

__all__ = [
    "MySqlRecorder",
    "Recorded",
    "column_flags",
    "column_type",
    "mysql_tag",
    "parse_tag",
    "recorded_from_events",
]

# redact_mysql (pamwire/mysql/statements.py) cuts a statement after the word that
# introduces a secret and writes this; the server's error may quote the secret
# ("... near 'IDENTIFIED BY 'x''"), so only its number and SQLSTATE are kept.
_REDACTION_MARK: Final = "<redacted>"
_SECRET_NOTE: Final = "(message not recorded: the statement carried a secret)"

_BINARY_CHARSET: Final = 63
_UNSIGNED: Final = int(Flag.UNSIGNED_FLAG)
_CURSOR_EXISTS: Final = int(ServerStatus.SERVER_STATUS_CURSOR_EXISTS)
_INT_FORMATS: Final[dict[tuple[int, bool], struct.Struct]] = {
    (T.MYSQL_TYPE_TINY, False): struct.Struct("<b"),
    (T.MYSQL_TYPE_TINY, True): struct.Struct("<B"),
    (T.MYSQL_TYPE_SHORT, False): struct.Struct("<h"),
    (T.MYSQL_TYPE_SHORT, True): struct.Struct("<H"),
    (T.MYSQL_TYPE_YEAR, False): struct.Struct("<H"),
    (T.MYSQL_TYPE_YEAR, True): struct.Struct("<H"),
    (T.MYSQL_TYPE_LONG, False): struct.Struct("<i"),
    (T.MYSQL_TYPE_LONG, True): struct.Struct("<I"),
    (T.MYSQL_TYPE_INT24, False): struct.Struct("<i"),
    (T.MYSQL_TYPE_INT24, True): struct.Struct("<I"),
    (T.MYSQL_TYPE_LONGLONG, False): struct.Struct("<q"),
    (T.MYSQL_TYPE_LONGLONG, True): struct.Struct("<Q"),
}
_FLOAT: Final = struct.Struct("<f")
_DOUBLE: Final = struct.Struct("<d")
_DATE_TYPES: Final = frozenset({T.MYSQL_TYPE_DATE, T.MYSQL_TYPE_NEWDATE})
_DATETIME_TYPES: Final = frozenset({T.MYSQL_TYPE_DATETIME, T.MYSQL_TYPE_TIMESTAMP})

# What a result keeps of a column definition: name, type code with flags (see
# column_types), decimals, binary character set, hidden as a secret.
_Column = tuple[str, int, int, bool, bool]
# Column definitions remembered per session (about 100 bytes each); a hundred
# distinct ones cover the statements an application prepares; the cache starts
# over when full.
_COLUMN_CACHE_SIZE: Final = 128


def column_type(code: int) -> int:
    """The MySQL column type of a recorded MySQL column_types entry."""
    return code & 0xFF


def column_flags(code: int) -> int:
    """The column definition flags of a recorded MySQL column_types entry."""
    return code >> 8


def mysql_tag(**fields: int | str) -> str:
    """A MySQL chunk's tag: "key=value" words; `info`, free text, always last."""
    info = fields.pop("info", "")
    words = [f"{key}={value}" for key, value in fields.items()]
    if info:
        words.append(f"info={info}")
    return " ".join(words)


def parse_tag(tag: str | None) -> dict[str, str]:
    """The fields of a tag written by mysql_tag; {} for None."""
    if not tag:
        return {}
    head, found, info = tag.partition("info=")
    fields = dict(w.split("=", 1) for w in head.split() if "=" in w)
    if found:
        fields["info"] = info
    return fields


@attrs.frozen
class Recorded:
    """A statement as the recorder is told of it. `event_id` is None for a step
    that has no audit event (a COM_STMT_PREPARE or COM_INIT_DB that was allowed);
    `call` marks a CALL, whose reply may hold several result sets."""

    event_id: str | None
    text: str
    time: float
    call: bool = False


def recorded_from_events(events: Sequence[AuditEvent]) -> list[Recorded]:
    """The statements of a command's events, in order."""
    return [
        Recorded(e.event_id, e.statement or "", e.time, e.statement_kind == "call")
        for e in events
    ]


class _Pending:
    """A statement of the current command whose result has not ended."""

    __slots__ = ("call", "event_id", "secret", "started", "text")

    def __init__(self, statement: Recorded) -> None:
        self.event_id = statement.event_id
        self.text = statement.text
        self.started = statement.time
        self.call = statement.call
        self.secret = _REDACTION_MARK in statement.text


class _Result:
    """The result set being received: its columns and the rows kept of it."""

    __slots__ = (
        "binary_charset",
        "count",
        "decimals",
        "first_row",
        "hidden",
        "names",
        "rows",
        "truncated",
        "types",
    )

    def __init__(self, count: int, first_row: int) -> None:
        self.count = count
        self.first_row = first_row  # the tracker's row count when this set began
        self.names: list[str] = []
        self.types: list[int] = []
        self.decimals: list[int] = []
        self.binary_charset: list[bool] = []
        self.hidden: list[bool] = []
        self.rows: list[Row] = []
        self.truncated: str | None = None


class MySqlRecorder:
    """Records one MySQL session's results; see the module docstring.

    Limits, secret columns and the clock are as for SessionRecorder
    (pamwire/audit/recording.py). Decoding a malformed packet raises
    ServerProtocolError, as the session's own decoding would.
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
        self._pending: collections.deque[_Pending] = collections.deque()
        self._last: _Pending | None = None
        self._result: _Result | None = None
        self._tracker: ReplyTracker | None = None
        self._caps = 0
        self._binary = False
        self._done: list[RecordingChunk] = []
        self._seq = 0
        # True while the rows now arriving are to be decoded: read on every row.
        self.decoding = False
        self._columns: dict[tuple[int, bytes], _Column] = {}

    # -- what the client sent ----------------------------------------------------

    def command(self, tracker: ReplyTracker, statements: Sequence[Recorded]) -> None:
        """A command carrying `statements` was forwarded; its reply follows, fed
        to `tracker` and then to server_packet. Anything still pending from an
        earlier command is finished as skipped."""
        self.reply_done()
        self._tracker = tracker
        self._caps = tracker.capabilities
        self._binary = tracker.command == Command.COM_STMT_EXECUTE
        self._pending.extend(_Pending(s) for s in statements)

    def refused(
        self, statements: Sequence[Recorded], refused: int, reply: bytes
    ) -> None:
        """pamwire answered a command itself with the ERR packet `reply` (its wire
        bytes): statements[refused] gets that error, the others are skipped."""
        self.reply_done()
        error = _error_fields(_reply_error(reply))
        for index, statement in enumerate(statements):
            pending = _Pending(statement)
            if index == refused:
                fields = _without_secret(error) if pending.secret else error
                self._finish(pending, "error", error=fields)
            else:
                self._finish(pending, "skipped")

    def answered(self, reply: bytes) -> None:
        """pamwire replaced the rest of the current reply with the ERR `reply`
        (a refused LOCAL INFILE transfer)."""
        self._result = None
        self.decoding = False
        if self._pending:
            self._fail(_error_fields(_reply_error(reply)))

    # -- what the server answered -------------------------------------------------

    def server_packet(self, step: Step, block: bytes, packet: Packet) -> None:
        """One server packet of the reply, with the Step its tracker returned.

        Rows may be left out while `decoding` is false (they are counted by the
        tracker). Raises ServerProtocolError for a malformed packet it decodes.
        """
        if step is Step.ROW:
            if self.decoding and self._result is not None:
                self._row(self._result, block, packet)
        elif step is Step.COLUMN_DEFINITION:
            result = self._result
            if result is not None and len(result.names) < result.count:
                self._column(result, block, packet)
        elif step is Step.COLUMN_COUNT:
            tracker = self._tracker
            assert tracker is not None
            self._result = _Result(tracker.column_count, tracker.rows)
            self.decoding = False
        elif step is Step.RESULT_END:
            # The tracker decoded the packet that made this step: its fields are
            # read from the tracker instead of decoding the packet again.
            assert self._tracker is not None
            self._end_result(self._tracker.warnings)
        elif step is Step.OK:
            assert self._tracker is not None and self._tracker.last_ok is not None
            self._ok(self._tracker.last_ok)
        elif step is Step.ERR:
            assert self._tracker is not None and self._tracker.outcome is not None
            error = self._tracker.outcome.error
            assert error is not None
            self._fail(_error_fields(error))
        elif step is Step.PREPARE_OK:
            prepared = codec.decode_stmt_prepare_ok(payload(block, packet))
            tag = mysql_tag(
                command="prepare",
                params=prepared.num_params,
                columns=prepared.num_columns,
                warnings=prepared.warning_count,
            )
            self._finish_head("ok", tag=tag)
        elif step is Step.EOF:
            assert self._tracker is not None and self._tracker.last_eof is not None
            self._columns_eof(self._tracker.last_eof)

    def reply_done(self) -> None:
        """The reply is complete: a result left open (rows to come through a
        cursor) is finished, statements without a result are skipped."""
        result = self._result
        if result is not None and self._pending:
            self._finish_head("ok", result=result, tag=mysql_tag(cursor=1))
        self._result = None
        self.decoding = False
        while self._pending:
            self._finish(self._pending.popleft(), "skipped")
        self._tracker = None

    # -- result sets ---------------------------------------------------------------

    def _column(self, result: _Result, block: bytes, packet: Packet) -> None:
        # A prepared statement's executions answer with the same definitions
        # each time: what the recording keeps of one is remembered by its bytes.
        key = (self._caps, block[packet.start : packet.end])
        known = self._columns.get(key)
        if known is None:
            known = self._decode_column(payload(block, packet))
            if len(self._columns) >= _COLUMN_CACHE_SIZE:
                self._columns.clear()
            self._columns[key] = known
        name, code, decimals, binary, hidden = known
        result.names.append(name)
        result.types.append(code)
        result.decimals.append(decimals)
        result.binary_charset.append(binary)
        result.hidden.append(hidden)
        if len(result.names) == result.count:
            head = self._pending[0] if self._pending else self._last
            self.decoding = (
                head is not None
                and not head.secret
                and self.max_rows > 0
                and self.budget > 0
            )

    def _decode_column(self, data: bytes | memoryview) -> _Column:
        column = codec.decode_column_definition(data, self._caps)
        folded = column.name.casefold()
        return (
            column.name,
            column.column_type | column.flags << 8,
            column.decimals,
            column.character_set == _BINARY_CHARSET,
            any(word in folded for word in self._secret_words),
        )

    def _columns_eof(self, eof: m.EofPacket) -> None:
        if eof.status_flags & _CURSOR_EXISTS:
            # TODO(recording-fetch): rows read with COM_STMT_FETCH are not recorded;
            # the session would have to route FETCH replies to the recorder.
            self.decoding = False

    def _row(self, result: _Result, block: bytes, packet: Packet) -> None:
        size = packet.length
        if size > self.budget:
            self.decoding = False
            result.truncated = "bytes"
            self.budget = 0
            return
        self.budget -= size
        data = payload(block, packet)
        if self._binary:
            values = codec.decode_binary_row(
                data, [column_type(t) for t in result.types]
            ).values
            result.rows.append(self._binary_text(result, values))
        else:
            values = codec.decode_text_row(data, result.count).values
            result.rows.append(self._text(result, values))
        if len(result.rows) >= self.max_rows:
            self.decoding = False

    def _text(self, result: _Result, values: tuple[bytes | None, ...]) -> Row:
        out: list[str | None] = []
        for i, value in enumerate(values):
            if value is None:
                out.append(None)
            elif result.hidden[i]:
                out.append(REDACTED)
            else:
                out.append(_string(bytes(value), result.binary_charset[i]))
        return tuple(out)

    def _binary_text(self, result: _Result, values: tuple[bytes | None, ...]) -> Row:
        out: list[str | None] = []
        for i, value in enumerate(values):
            if value is None:
                out.append(None)
            elif result.hidden[i]:
                out.append(REDACTED)
            else:
                out.append(
                    _binary_value(
                        bytes(value),
                        result.types[i],
                        result.decimals[i],
                        result.binary_charset[i],
                    )
                )
        return tuple(out)

    def _end_result(self, warnings: int) -> None:
        result = self._result
        self._result = None
        self.decoding = False
        tag = mysql_tag(affected_rows=0, warnings=warnings)
        head = self._head()
        if head is None or result is None:
            return
        if head.call:
            # More results of the same CALL follow; its final OK finishes it.
            self._chunk(head, "ok", result=result, tag=tag)
        else:
            self._finish_head("ok", result=result, tag=tag)

    def _ok(self, ok: m.OkPacket) -> None:
        self._result = None
        self.decoding = False
        command = self._tracker.command if self._tracker is not None else None
        fields: dict[str, int | str] = {}
        if command == Command.COM_INIT_DB:
            fields["command"] = "init_db"
        fields.update(affected_rows=ok.affected_rows, warnings=ok.warnings)
        info = _info_text(ok.info, self._caps)
        if info:
            fields["info"] = info
        self._finish_head("ok", tag=mysql_tag(**fields))

    def _fail(self, error: ReportFields) -> None:
        self._result = None
        self.decoding = False
        head = self._head()
        if head is None:
            return
        if head.secret:
            error = _without_secret(error)
        self._finish_head("error", error=error)
        # The server runs nothing after an error in a multi-statement query.
        while self._pending:
            self._finish(self._pending.popleft(), "skipped")

    # -- chunks --------------------------------------------------------------------

    def _head(self) -> _Pending | None:
        """The statement the next result belongs to. Results beyond the
        statements told (text pamwire could not split) go to the last one."""
        return self._pending[0] if self._pending else self._last

    def _finish_head(
        self,
        status: str,
        *,
        result: _Result | None = None,
        tag: str | None = None,
        error: ReportFields | None = None,
    ) -> None:
        if self._pending:
            self._finish(
                self._pending.popleft(), status, result=result, tag=tag, error=error
            )
        elif self._last is not None:
            self._chunk(self._last, status, result=result, tag=tag, error=error)

    def _finish(
        self,
        pending: _Pending,
        status: str,
        *,
        result: _Result | None = None,
        tag: str | None = None,
        error: ReportFields | None = None,
    ) -> None:
        self._last = pending
        self._chunk(pending, status, result=result, tag=tag, error=error)

    def _chunk(
        self,
        pending: _Pending,
        status: str,
        *,
        result: _Result | None = None,
        tag: str | None = None,
        error: ReportFields | None = None,
    ) -> None:
        self._seq += 1
        columns: tuple[str, ...] | None = None
        types: tuple[int, ...] = ()
        rows: tuple[Row, ...] = ()
        count = 0
        truncated = None
        if result is not None:
            # A server names an unaliased column by its expression, so a secret
            # statement's column names may quote the secret: none are kept.
            columns = (
                tuple(HIDDEN_COLUMN for _ in result.names)
                if pending.secret
                else tuple(result.names)
            )
            types = tuple(result.types)
            rows = tuple(result.rows)
            tracker = self._tracker
            count = tracker.rows - result.first_row if tracker is not None else 0
            count = max(count, len(rows))
            truncated = result.truncated
            if truncated is None and count > len(rows):
                truncated = "secret" if pending.secret else "rows"
        self._done.append(
            RecordingChunk(
                session=self.session_id,
                seq=self._seq,
                event_id=pending.event_id,
                statement=pending.text,
                started=pending.started,
                finished=self._clock(),
                status=status,
                columns=columns,
                column_types=types,
                rows=rows,
                row_count=count,
                truncated=truncated,
                tag=tag,
                error=error,
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
        self._result = None
        self.decoding = False
        while self._pending:
            self._finish(self._pending.popleft(), "unfinished")
        return self.drain()

    @property
    def waiting(self) -> int:
        """Statements forwarded whose result has not ended yet."""
        return len(self._pending)


# -- values ---------------------------------------------------------------------------


def _string(value: bytes, binary_charset: bool) -> str:
    """A text value; binary-charset bytes that are not UTF-8 as 0x hex."""
    if binary_charset:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + value.hex().upper()
    return value.decode("utf-8", "surrogateescape")


def _binary_value(raw: bytes, code: int, decimals: int, binary_charset: bool) -> str:
    """A binary-protocol value (as codec's decode_binary_row gives it, length
    prefix included) as the text protocol would have sent it."""
    type_ = column_type(code)
    unsigned = bool(column_flags(code) & _UNSIGNED)
    fixed = _INT_FORMATS.get((type_, unsigned))
    try:
        if fixed is not None:
            return str(fixed.unpack(raw)[0])
        if type_ == T.MYSQL_TYPE_FLOAT:
            return _float_text(_FLOAT.unpack(raw)[0], 6)
        if type_ == T.MYSQL_TYPE_DOUBLE:
            return _float_text(_DOUBLE.unpack(raw)[0], None)
        if type_ in _DATE_TYPES or type_ in _DATETIME_TYPES:
            return _datetime_text(raw, type_ in _DATE_TYPES, decimals)
        if type_ == T.MYSQL_TYPE_TIME:
            return _time_text(raw, decimals)
        if type_ == T.MYSQL_TYPE_NULL:
            return ""
        value = Cursor(raw).lenenc_bytes()
    except (ProtocolError, struct.error) as exc:
        raise ServerProtocolError(f"bad binary value of type {type_}: {exc}") from None
    return _string(bytes(value), binary_charset)


def _float_text(value: float, digits: int | None) -> str:
    """As the server writes floats: FLOAT to 6 significant digits, DOUBLE in its
    shortest exact form; no ".0" and no "+" in the exponent."""
    text = repr(value) if digits is None else format(value, f".{digits}g")
    text = text.removesuffix(".0")
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


def _fraction(micro: int, decimals: int) -> str:
    if not 0 < decimals <= 6:
        return ""
    return "." + f"{micro:06d}"[:decimals]


def _datetime_text(raw: bytes, date_only: bool, decimals: int) -> str:
    length = raw[0]
    year = month = day = hour = minute = second = micro = 0
    if length >= 4:
        year = int.from_bytes(raw[1:3], "little")
        month, day = raw[3], raw[4]
    if length >= 7:
        hour, minute, second = raw[5], raw[6], raw[7]
    if length >= 11:
        micro = int.from_bytes(raw[8:12], "little")
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if date_only:
        return text
    return f"{text} {hour:02d}:{minute:02d}:{second:02d}" + _fraction(micro, decimals)


def _time_text(raw: bytes, decimals: int) -> str:
    length = raw[0]
    negative = days = hour = minute = second = micro = 0
    if length >= 8:
        negative = raw[1]
        days = int.from_bytes(raw[2:6], "little")
        hour, minute, second = raw[6], raw[7], raw[8]
    if length >= 12:
        micro = int.from_bytes(raw[9:13], "little")
    sign = "-" if negative else ""
    hours = days * 24 + hour
    return f"{sign}{hours:02d}:{minute:02d}:{second:02d}" + _fraction(micro, decimals)


def _info_text(info: str | None, capabilities: int) -> str:
    """The OK packet's human-readable info ("Rows matched: 1 ...").

    Servers write it length-prefixed with or without CLIENT_SESSION_TRACK, where
    the codec reads it to the end of the packet; the prefix is dropped here.
    """
    # TODO(mysql-ok-info): codec.decode_ok could read the prefix itself; it keeps
    # the raw bytes so that OK packets re-encode byte for byte.
    if not info or capabilities & codec.SESSION_TRACK:
        return info or ""
    raw = info.encode("utf-8", "surrogateescape")
    cur = Cursor(raw)
    try:
        length = cur.lenenc_int()
    except ProtocolError:
        return info
    if length != cur.remaining:
        return info
    return raw[-length:].decode("utf-8", "surrogateescape") if length else ""


# -- errors ---------------------------------------------------------------------------


def _error_fields(err: m.ErrPacket) -> ReportFields:
    fields = [("N", str(err.error_code))]
    if err.sql_state is not None:
        fields.append(("C", err.sql_state))
    fields.append(("M", err.error_message))
    return tuple(fields)


def _without_secret(fields: ReportFields) -> ReportFields:
    kept = tuple((c, t) for c, t in fields if c in ("N", "C"))
    return (*kept, ("M", _SECRET_NOTE))


def _reply_error(reply: bytes) -> m.ErrPacket:
    """The ERR packet in the wire bytes of a reply pamwire wrote."""
    reader = PacketReader()
    reader.feed(reply)
    block, packets = reader.read_packets()
    if len(packets) != 1:
        raise ValueError("a refusal is one ERR packet")
    # pamwire writes its ERR packets with the 4.1 layout (replies.error).
    return codec.decode_err(payload(block, packets[0]), codec.PROTOCOL_41)
