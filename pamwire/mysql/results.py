"""Follows the server's reply to one client command, packet by packet, without I/O.

Theory of operation: a ReplyTracker is made for one command (its first byte)
and the negotiated capabilities. The proxy hands it every server packet of the
reply in order (feed_packet with the PacketReader's block and Packet, or feed
with a payload) and, during LOCAL INFILE, every client packet (client_packet).
Each call returns the Step the packet was, so the proxy can forward rows and
column definitions untouched: rows are recognised by their first byte and
length alone and never decoded. Only OK, ERR, EOF, column count and prepare-OK
packets are decoded. When done is true the reply is complete and outcome holds
the result: affected rows and status of the final OK, or the ERR packet.

Reply shapes followed (CLIENT_DEPRECATE_EOF drops the EOF after definitions
and turns the EOF after rows into an OK packet with header 0xFE):

    result        OK | ERR | 0xFB file request | count, definitions, [EOF],
                  rows, EOF/OK, and again while SERVER_MORE_RESULTS_EXISTS
    prepare       ERR | prepare-OK, params [EOF], columns [EOF]
    field list    definitions (with defaults) then EOF/OK, or ERR
    fetch         rows then EOF/OK, or ERR
    statistics    one text packet
    ok            OK | ERR (| EOF, for COM_SET_OPTION)
    none          nothing (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA)
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from pamwire.errors import ClientProtocolError, ServerProtocolError
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Command, ServerStatus
from pamwire.mysql.packets import MAX_CHUNK, Packet, next_sequence_id, payload

_Data = bytes | bytearray | memoryview

__all__ = ["Outcome", "Phase", "ReplyKind", "ReplyTracker", "Step", "reply_kind"]

_MORE_RESULTS: Final = int(ServerStatus.SERVER_MORE_RESULTS_EXISTS)
_CURSOR_EXISTS: Final = int(ServerStatus.SERVER_STATUS_CURSOR_EXISTS)
_EOF = m.EOF_HEADER
_ERR = m.ERR_HEADER
_OK = m.OK_HEADER


class ReplyKind(enum.Enum):
    RESULT = "result"
    PREPARE = "prepare"
    FIELD_LIST = "field list"
    FETCH = "fetch"
    STATISTICS = "statistics"
    OK = "ok"
    AUTH = "auth"
    NONE = "none"


_KINDS: Final[dict[int, ReplyKind]] = {
    Command.COM_QUERY: ReplyKind.RESULT,
    Command.COM_STMT_EXECUTE: ReplyKind.RESULT,
    Command.COM_PROCESS_INFO: ReplyKind.RESULT,
    Command.COM_STMT_PREPARE: ReplyKind.PREPARE,
    Command.COM_FIELD_LIST: ReplyKind.FIELD_LIST,
    Command.COM_STMT_FETCH: ReplyKind.FETCH,
    Command.COM_STATISTICS: ReplyKind.STATISTICS,
    Command.COM_CHANGE_USER: ReplyKind.AUTH,
    Command.COM_QUIT: ReplyKind.NONE,
    Command.COM_STMT_CLOSE: ReplyKind.NONE,
    Command.COM_STMT_SEND_LONG_DATA: ReplyKind.NONE,
}

# Commands answered with a single OK or ERR; obsolete ones (COM_SLEEP,
# COM_TIME, ...) get an ERR from the server, which this shape covers too.
_OK_COMMANDS: Final = frozenset(
    {
        Command.COM_SLEEP,
        Command.COM_INIT_DB,
        Command.COM_CREATE_DB,
        Command.COM_DROP_DB,
        Command.COM_REFRESH,
        Command.COM_SHUTDOWN,
        Command.COM_CONNECT,
        Command.COM_PROCESS_KILL,
        Command.COM_DEBUG,
        Command.COM_PING,
        Command.COM_TIME,
        Command.COM_DELAYED_INSERT,
        Command.COM_SET_OPTION,
        Command.COM_STMT_RESET,
        Command.COM_RESET_CONNECTION,
    }
)


def reply_kind(command: int) -> ReplyKind:
    """The shape of the server's reply to a command byte.

    Raises ServerProtocolError for commands whose replies this tracker cannot
    follow (binlog dumps, replica registration, clone, MariaDB's bulk execute).
    """
    kind = _KINDS.get(command)
    if kind is not None:
        return kind
    if command in _OK_COMMANDS:
        return ReplyKind.OK
    raise ServerProtocolError(f"replies to command 0x{command:02x} are not followed")


class Phase(enum.Enum):
    FIRST = "first packet"
    COLUMN_DEFINITIONS = "column definitions"
    COLUMNS_EOF = "eof after column definitions"
    ROWS = "rows"
    LOCAL_INFILE = "local infile data"
    PREPARE_OK = "prepare ok"
    PARAM_DEFINITIONS = "parameter definitions"
    PARAMS_EOF = "eof after parameter definitions"
    PREPARE_COLUMNS = "prepared column definitions"
    PREPARE_COLUMNS_EOF = "eof after prepared column definitions"
    FIELD_LIST = "field list"
    STATISTICS = "statistics"
    SINGLE = "single ok or err"
    AUTH = "authentication"
    AUTH_CLIENT = "authentication, client's turn"
    DONE = "done"


class Step(enum.Enum):
    """What the packet just fed was."""

    OK = "ok"
    ERR = "err"
    LOCAL_INFILE_REQUEST = "local infile request"
    LOCAL_INFILE_DATA = "local infile data"
    COLUMN_COUNT = "column count"
    COLUMN_DEFINITION = "column definition"
    EOF = "eof"
    ROW = "row"
    RESULT_END = "end of rows"
    PREPARE_OK = "prepare ok"
    STATISTICS = "statistics"
    AUTH_DATA = "authentication data"
    PROGRESS = "progress report"


@attrs.frozen
class Outcome:
    """How a command ended: error is the ERR packet, or None on success.

    affected_rows adds up the OK packets of all results; last_insert_id,
    warnings and status_flags come from the last OK/EOF; session_state joins
    the session-state changes of every OK packet, in order.
    """

    error: m.ErrPacket | None = None
    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0
    status_flags: int = 0
    info: str = ""
    result_sets: int = 0
    rows: int = 0
    prepare_ok: m.ComStmtPrepareOk | None = None
    session_state: tuple[m.SessionStateChange, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


class ReplyTracker:
    """The state of one command's reply; see the module docstring.

    Every feeding method raises ServerProtocolError for a packet that cannot
    stand where it came (including a wrong sequence id, with feed_packet).
    """

    def __init__(self, command: int, capabilities: int) -> None:
        self.command = command
        self.capabilities = capabilities
        self.kind = reply_kind(command)
        self._deprecate_eof = bool(capabilities & codec.DEPRECATE_EOF)
        self._progress = bool(capabilities & codec.PROGRESS)
        # The command went out with sequence id 0; the reply starts at 1.
        self.next_sequence_id = 1
        self.column_count = 0
        self._remaining = 0
        self._params = 0
        self._rows = 0
        self._result_sets = 0
        self._affected = 0
        self._last_insert_id = 0
        self._warnings = 0
        self._status = 0
        self._info = ""
        self._state: list[m.SessionStateChange] = []
        self._prepare_ok: m.ComStmtPrepareOk | None = None
        # The last OK, ERR and EOF packets decoded, for the session recording,
        # which would otherwise decode them again.
        self.last_ok: m.OkPacket | None = None
        self.last_eof: m.EofPacket | None = None
        self.outcome: Outcome | None = None
        self.phase = _FIRST_PHASE[self.kind]
        if self.phase is Phase.DONE:
            self.outcome = Outcome()

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def status_flags(self) -> int:
        """Server status of the last OK or EOF packet fed (0 before any)."""
        return self._status

    @property
    def warnings(self) -> int:
        return self._warnings

    # -- feeding --------------------------------------------------------------------

    def feed_packet(self, block: bytes, packet: Packet) -> Step:
        """Take one server packet from a PacketReader block; checks its sequence id.

        Rows are counted from their first byte and length; the payload is only
        joined or decoded for the packets that need it.
        """
        if packet.sequence_id != self.next_sequence_id:
            raise ServerProtocolError(
                f"reply packet has sequence id {packet.sequence_id}, "
                f"expected {self.next_sequence_id}"
            )
        self.next_sequence_id = (packet.last_sequence_id + 1) & 0xFF
        first = packet.first_byte
        if (
            self.phase is Phase.ROWS
            and first != _ERR
            and not codec.is_end_of_rows(first, packet.length)
        ):
            self._rows += 1
            return Step.ROW
        return self._dispatch(first, packet.length, payload(block, packet))

    def feed_row(self, packet: Packet) -> bool:
        """Count packet as a row when it is one, as feed_packet would; else False.

        For relaying the rows nobody decodes: one comparison chain per row, no
        Step. A packet that is not a row of the current result set, or that
        has the wrong sequence id, is left for feed_packet (which judges it).
        """
        first = packet.first_byte
        if (
            self.phase is not Phase.ROWS
            or packet.sequence_id != self.next_sequence_id
            or first == _ERR
            or (first == _EOF and packet.length < MAX_CHUNK)
        ):
            return False
        self.next_sequence_id = (packet.last_sequence_id + 1) & 0xFF
        self._rows += 1
        return True

    def feed(self, data: _Data) -> Step:
        """Take one server payload (no sequence check; the expected id moves on)."""
        step = self._dispatch(data[0] if len(data) else -1, len(data), data)
        self.next_sequence_id = next_sequence_id(self.next_sequence_id, len(data))
        return step

    def client_packet(self, length: int, sequence_id: int | None = None) -> Step:
        """Take one client packet sent during the reply (file data or auth data).

        length is the packet's (joined) payload length. An empty packet ends the
        LOCAL INFILE data; the server then answers with OK or ERR. Raises
        ClientProtocolError outside those phases or for a wrong sequence id.
        """
        if sequence_id is not None and sequence_id != self.next_sequence_id:
            raise ClientProtocolError(
                f"client packet has sequence id {sequence_id}, "
                f"expected {self.next_sequence_id}"
            )
        self.next_sequence_id = next_sequence_id(self.next_sequence_id, length)
        if self.phase is Phase.LOCAL_INFILE:
            if length == 0:
                self.phase = Phase.SINGLE
            return Step.LOCAL_INFILE_DATA
        if self.phase is Phase.AUTH_CLIENT:
            self.phase = Phase.AUTH
            return Step.AUTH_DATA
        raise ClientProtocolError(f"no client packet expected in phase {self.phase}")

    # -- dispatch -------------------------------------------------------------------

    def _dispatch(self, first: int, length: int, data: _Data) -> Step:
        phase = self.phase
        if phase is Phase.DONE:
            raise ServerProtocolError("server packet after the reply was complete")
        if phase in (Phase.LOCAL_INFILE, Phase.AUTH_CLIENT):
            raise ServerProtocolError("server packet while waiting for the client")
        if first == _ERR and phase is not Phase.STATISTICS:
            if self._progress and data[1:3] == b"\xff\xff":
                return Step.PROGRESS  # MariaDB progress report, not an error
            return self._error(data)
        handler = _HANDLERS[phase]
        return handler(self, first, length, data)

    def _first(self, first: int, length: int, data: _Data) -> Step:
        response = codec.decode_response(data, self.capabilities)
        if isinstance(response, m.OkPacket):
            return self._ok(response)
        if isinstance(response, m.LocalInfileRequest):
            self.phase = Phase.LOCAL_INFILE
            return Step.LOCAL_INFILE_REQUEST
        if isinstance(response, m.ErrPacket):  # pragma: no cover - handled earlier
            return self._error(data)
        self.column_count = self._remaining = response.column_count
        if response.metadata_follows == 0:
            # Cached metadata: no definitions, straight to the EOF or the rows.
            self._remaining = 0
            self.phase = Phase.ROWS if self._deprecate_eof else Phase.COLUMNS_EOF
        else:
            self.phase = Phase.COLUMN_DEFINITIONS
        return Step.COLUMN_COUNT

    def _column(self, first: int, length: int, data: _Data) -> Step:
        self._remaining -= 1
        if self._remaining == 0:
            self.phase = Phase.ROWS if self._deprecate_eof else Phase.COLUMNS_EOF
        return Step.COLUMN_DEFINITION

    def _columns_eof(self, first: int, length: int, data: _Data) -> Step:
        eof = self._eof(data)
        if eof.status_flags & _CURSOR_EXISTS:
            # An execute that opened a cursor: rows come with COM_STMT_FETCH.
            self._result_sets += 1
            self._finish()
        else:
            self.phase = Phase.ROWS
        return Step.EOF

    def _rows_end(self, first: int, length: int, data: _Data) -> Step:
        if not codec.is_end_of_rows(first, length):
            self._rows += 1
            return Step.ROW
        end = codec.decode_end_of_rows(data, self.capabilities)
        self._result_sets += 1
        if isinstance(end, m.OkPacket):
            self._absorb_ok(end)
        else:
            self._absorb_eof(end)
        self._next_result()
        return Step.RESULT_END

    def _prepare_ok_step(self, first: int, length: int, data: _Data) -> Step:
        ok = codec.decode_stmt_prepare_ok(data)
        self._prepare_ok = ok
        self._warnings = ok.warning_count
        self._params = ok.num_params
        self.column_count = ok.num_columns
        self._after_prepare_params(start=True)
        return Step.PREPARE_OK

    def _after_prepare_params(self, *, start: bool) -> None:
        if start and self._params:
            self._remaining = self._params
            self.phase = Phase.PARAM_DEFINITIONS
        elif self.column_count:
            self._remaining = self.column_count
            self.phase = Phase.PREPARE_COLUMNS
        else:
            self._finish()

    def _param(self, first: int, length: int, data: _Data) -> Step:
        self._remaining -= 1
        if self._remaining == 0:
            if self._deprecate_eof:
                self._after_prepare_params(start=False)
            else:
                self.phase = Phase.PARAMS_EOF
        return Step.COLUMN_DEFINITION

    def _params_eof(self, first: int, length: int, data: _Data) -> Step:
        self._eof(data)
        self._after_prepare_params(start=False)
        return Step.EOF

    def _prepare_column(self, first: int, length: int, data: _Data) -> Step:
        self._remaining -= 1
        if self._remaining == 0:
            if self._deprecate_eof:
                self._finish()
            else:
                self.phase = Phase.PREPARE_COLUMNS_EOF
        return Step.COLUMN_DEFINITION

    def _prepare_columns_eof(self, first: int, length: int, data: _Data) -> Step:
        self._eof(data)
        self._finish()
        return Step.EOF

    def _field_list(self, first: int, length: int, data: _Data) -> Step:
        if not codec.is_end_of_rows(first, length):
            return Step.COLUMN_DEFINITION
        end = codec.decode_end_of_rows(data, self.capabilities)
        if isinstance(end, m.OkPacket):
            self._absorb_ok(end)
        else:
            self._absorb_eof(end)
        self._finish()
        return Step.RESULT_END

    def _statistics(self, first: int, length: int, data: _Data) -> Step:
        self._info = bytes(data).decode("utf-8", "surrogateescape")
        self._finish()
        return Step.STATISTICS

    def _single(self, first: int, length: int, data: _Data) -> Step:
        if first == _OK:
            return self._ok(codec.decode_ok(data, self.capabilities))
        if codec.is_end_of_rows(first, length):
            # COM_SET_OPTION answers with an EOF packet (an OK under DEPRECATE_EOF).
            end = codec.decode_end_of_rows(data, self.capabilities)
            if isinstance(end, m.OkPacket):
                return self._ok(end)
            self._absorb_eof(end)
            self._finish()
            return Step.EOF
        raise ServerProtocolError(f"expected ok or err, got packet 0x{first:02x}")

    def _auth(self, first: int, length: int, data: _Data) -> Step:
        if first == _OK:
            return self._ok(codec.decode_ok(data, self.capabilities))
        if first in (m.AUTH_SWITCH_HEADER, m.AUTH_MORE_DATA_HEADER):
            codec.decode_auth_reply(data, self.capabilities)
            self.phase = Phase.AUTH_CLIENT
            return Step.AUTH_DATA
        raise ServerProtocolError(f"unexpected packet 0x{first:02x} in change user")

    # -- outcomes -------------------------------------------------------------------

    def _eof(self, data: _Data) -> m.EofPacket:
        if self._deprecate_eof or not codec.is_end_of_rows(
            data[0] if len(data) else -1, len(data)
        ):
            raise ServerProtocolError(f"expected an eof packet in phase {self.phase}")
        eof = codec.decode_end_of_rows(data, self.capabilities)
        if not isinstance(eof, m.EofPacket):  # pragma: no cover - by the check above
            raise ServerProtocolError("expected an eof packet")
        self._absorb_eof(eof)
        return eof

    def _absorb_eof(self, eof: m.EofPacket) -> None:
        self.last_eof = eof
        self._warnings, self._status = eof.warnings, eof.status_flags

    def _absorb_ok(self, ok: m.OkPacket) -> None:
        self.last_ok = ok
        self._affected += ok.affected_rows
        if ok.last_insert_id:
            self._last_insert_id = ok.last_insert_id
        self._warnings = ok.warnings
        self._status = ok.status_flags
        self._info = ok.info or ""
        if ok.session_state_info:
            self._state += codec.parse_session_state(ok.session_state_info)

    def _ok(self, ok: m.OkPacket) -> Step:
        self._absorb_ok(ok)
        if self.kind is ReplyKind.RESULT:
            self._result_sets += 1
            self._next_result()
        else:
            self._finish()
        return Step.OK

    def _next_result(self) -> None:
        if self.kind is ReplyKind.RESULT and self._status & _MORE_RESULTS:
            self.phase = Phase.FIRST
            self.column_count = 0
        else:
            self._finish()

    def _error(self, data: _Data) -> Step:
        error = codec.decode_err(data, self.capabilities)
        self._finish(error)
        return Step.ERR

    def _finish(self, error: m.ErrPacket | None = None) -> None:
        self.phase = Phase.DONE
        self.outcome = Outcome(
            error=error,
            affected_rows=self._affected,
            last_insert_id=self._last_insert_id,
            warnings=self._warnings,
            status_flags=self._status,
            info=self._info,
            result_sets=self._result_sets,
            rows=self._rows,
            prepare_ok=self._prepare_ok,
            session_state=tuple(self._state),
        )


_FIRST_PHASE: Final = {
    ReplyKind.RESULT: Phase.FIRST,
    ReplyKind.PREPARE: Phase.PREPARE_OK,
    ReplyKind.FIELD_LIST: Phase.FIELD_LIST,
    ReplyKind.FETCH: Phase.ROWS,
    ReplyKind.STATISTICS: Phase.STATISTICS,
    ReplyKind.OK: Phase.SINGLE,
    ReplyKind.AUTH: Phase.AUTH,
    ReplyKind.NONE: Phase.DONE,
}

_HANDLERS: Final = {
    Phase.FIRST: ReplyTracker._first,
    Phase.COLUMN_DEFINITIONS: ReplyTracker._column,
    Phase.COLUMNS_EOF: ReplyTracker._columns_eof,
    Phase.ROWS: ReplyTracker._rows_end,
    Phase.PREPARE_OK: ReplyTracker._prepare_ok_step,
    Phase.PARAM_DEFINITIONS: ReplyTracker._param,
    Phase.PARAMS_EOF: ReplyTracker._params_eof,
    Phase.PREPARE_COLUMNS: ReplyTracker._prepare_column,
    Phase.PREPARE_COLUMNS_EOF: ReplyTracker._prepare_columns_eof,
    Phase.FIELD_LIST: ReplyTracker._field_list,
    Phase.STATISTICS: ReplyTracker._statistics,
    Phase.SINGLE: ReplyTracker._single,
    Phase.AUTH: ReplyTracker._auth,
}
