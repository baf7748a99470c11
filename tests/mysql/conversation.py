"""Test helpers: decode a whole MySQL conversation packet by packet, both ways.

Conversation follows a recorded or live exchange the way a proxy would (the
handshake, the login, then each command and its reply through ReplyTracker),
decodes every packet with the decoder that fits its place, and checks that
re-encoding gives back the exact payload.
"""

from __future__ import annotations

from typing import Any

from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Command
from pamwire.mysql.results import ReplyTracker, Step


class Conversation:
    """Decodes client and server payloads in order; see the module docstring."""

    def __init__(self) -> None:
        self.server_caps = 0
        self.caps = 0
        self.handshake: m.HandshakeV10 | None = None
        self.logged_in = False
        self.tracker: ReplyTracker | None = None
        self.statements: dict[int, m.StatementParams] = {}
        self._columns: list[m.ColumnDefinition41] = []
        self._cursor_columns: dict[int, list[m.ColumnDefinition41]] = {}
        self._binary = False
        self._pending_prepare: str | None = None
        self.decoded: list[Any] = []

    def _check(self, message: Any, payload: bytes) -> Any:
        again = codec.encode_payload(message, self.caps)
        assert again == payload, (message, payload.hex(), again.hex())
        self.decoded.append(message)
        return message

    # -- client -------------------------------------------------------------------

    def client(self, payload: bytes) -> Any:
        if not self.caps:
            response = codec.decode_handshake_response(payload)
            self.caps = response.capabilities & self.server_caps
            return self._check(response, payload)
        if not self.logged_in:
            return self._check(codec.decode_auth_response(payload), payload)
        tracker = self.tracker
        if tracker is not None and not tracker.done:
            tracker.client_packet(len(payload))
            self.decoded.append(payload)
            return payload
        if payload[:1] == bytes([Command.COM_STMT_EXECUTE]):
            # An unknown (closed) statement: the server will refuse it; only
            # a header without parameters can be decoded.
            statement_id = int.from_bytes(payload[1:5], "little")
            self.statements.setdefault(statement_id, m.StatementParams(0))
        command = codec.decode_command(payload, self.caps, self.statements)
        self._check(command, payload)
        self._start(command)
        return command

    def _start(self, command: m.ClientCommand) -> None:
        self._columns = []
        self._binary = command.command in (
            Command.COM_STMT_EXECUTE,
            Command.COM_STMT_FETCH,
        )
        if isinstance(command, m.ComStmtFetch):
            self._columns = self._cursor_columns.get(command.statement_id, [])
        if isinstance(command, m.ComStmtExecute):
            self._cursor_columns[command.statement_id] = self._columns
            old = self.statements[command.statement_id]
            types = command.parameter_types or old.types
            self.statements[command.statement_id] = m.StatementParams(
                old.num_params, types
            )
        if isinstance(command, m.ComStmtReset | m.ComStmtExecute):
            old = self.statements.get(command.statement_id, m.StatementParams(0))
            self.statements[command.statement_id] = m.StatementParams(
                old.num_params, old.types
            )
        if isinstance(command, m.ComStmtSendLongData):
            old = self.statements[command.statement_id]
            self.statements[command.statement_id] = m.StatementParams(
                old.num_params, old.types, old.long_data | {command.param_id}
            )
        if isinstance(command, m.ComStmtClose):
            self.statements.pop(command.statement_id, None)
        self.tracker = ReplyTracker(command.command, self.caps)

    # -- server -------------------------------------------------------------------

    def server(self, payload: bytes) -> Any:
        if self.handshake is None:
            handshake = codec.decode_handshake(payload)
            assert isinstance(handshake, m.HandshakeV10)
            self.handshake = handshake
            self.server_caps = handshake.capabilities
            return self._check(handshake, payload)
        if not self.logged_in:
            reply = codec.decode_auth_reply(payload, self.caps)
            if isinstance(reply, m.OkPacket | m.ErrPacket):
                self.logged_in = True
            return self._check(reply, payload)
        tracker = self.tracker
        assert tracker is not None and not tracker.done, payload.hex()
        step = tracker.feed(payload)
        return self._check(self._decode(step, payload, tracker), payload)

    def _decode(self, step: Step, payload: bytes, tracker: ReplyTracker) -> Any:
        caps = self.caps
        if step is Step.OK:
            return codec.decode_ok(payload, caps)
        if step is Step.ERR:
            return codec.decode_err(payload, caps)
        if step is Step.EOF:
            if payload[0] == m.EOF_HEADER and len(payload) < 9:
                return codec.decode_end_of_rows(payload, caps)
            return codec.decode_ok(payload, caps)
        if step is Step.RESULT_END:
            return codec.decode_end_of_rows(payload, caps)
        if step is Step.COLUMN_COUNT:
            self._columns.clear()
            return codec.decode_column_count(payload, caps)
        if step is Step.COLUMN_DEFINITION:
            field_list = tracker.command == Command.COM_FIELD_LIST
            column = codec.decode_column_definition(
                payload, caps, field_list=field_list
            )
            self._columns.append(column)
            return column
        if step is Step.ROW:
            if self._binary:
                types = [c.column_type for c in self._columns]
                return codec.decode_binary_row(payload, types)
            return codec.decode_text_row(payload, len(self._columns))
        if step is Step.PREPARE_OK:
            ok = codec.decode_stmt_prepare_ok(payload)
            self.statements[ok.statement_id] = m.StatementParams(ok.num_params)
            return ok
        if step is Step.LOCAL_INFILE_REQUEST:
            return codec.decode_local_infile_request(payload)
        if step is Step.AUTH_DATA:
            return codec.decode_auth_reply(payload, caps)
        if step is Step.STATISTICS:
            return m.AuthSwitchResponse(payload)  # raw text re-encodes as itself
        raise AssertionError(step)
