"""The codec, reply tracker and login against a real MariaDB 10.11, over raw sockets.

Every packet either side sends is decoded by tests.mysql.conversation and must
re-encode byte for byte.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from pamwire.mariadbcluster import MariaDBServer
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.auth import DEFAULT_CLIENT_CAPABILITIES, ClientLogin, LoginRefused
from pamwire.mysql.constants import Capability, ColumnType, CursorType, ServerStatus
from pamwire.mysql.packets import PacketReader, frame, payload
from pamwire.mysql.results import ReplyTracker
from tests.mysql.conftest import APP_DATABASE, APP_PASSWORD, APP_USER
from tests.mysql.conversation import Conversation

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


class RawConnection:
    """A blocking socket speaking through the codec, recording a Conversation."""

    def __init__(self, server: MariaDBServer) -> None:
        self.sock = socket.create_connection((server.host, server.port), TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.reader = PacketReader()
        self.pending: list[tuple[int, bytes]] = []
        self.conversation = Conversation()
        self.caps = 0

    def close(self) -> None:
        self.sock.close()

    def recv(self) -> tuple[int, bytes]:
        while not self.pending:
            block, packets = self.reader.read_packets()
            if packets:
                self.pending = [
                    (p.sequence_id, bytes(payload(block, p))) for p in packets
                ]
                break
            data = self.sock.recv(1 << 16)
            assert data, "server closed the connection"
            self.reader.feed(data)
        return self.pending.pop(0)

    def send(self, data: bytes, sequence_id: int) -> None:
        self.conversation.client(data)
        self.sock.sendall(frame(data, sequence_id))

    def login(
        self,
        user: str = APP_USER,
        password: str = APP_PASSWORD,
        database: str | None = APP_DATABASE,
        capabilities: int | None = None,
    ) -> ClientLogin:
        seq, data = self.recv()
        assert seq == 0
        handshake = self.conversation.server(data)
        kwargs: dict[str, Any] = {}
        if capabilities is not None:
            kwargs["capabilities"] = capabilities
        login = ClientLogin(
            username=user,
            password=password,
            database=database,
            connect_attrs=(("_client_name", "pamwire-test"),),
            **kwargs,
        )
        response = login.handshake_response(handshake)
        self.send(codec.encode_payload(response, login.capabilities), 1)
        while not login.done:
            seq, data = self.recv()
            self.conversation.server(data)
            answer = login.on_server_packet(data)
            if answer is not None:
                self.send(answer, seq + 1)
        self.caps = login.capabilities
        return login

    def command(self, message: m.ClientCommand) -> tuple[ReplyTracker, list[Any]]:
        """Send a command and read its whole reply; return the tracker and messages."""
        self.send(codec.encode_payload(message, self.caps), 0)
        tracker = ReplyTracker(message.command, self.caps)
        start = len(self.conversation.decoded)
        expected = 1
        while not tracker.done:
            seq, data = self.recv()
            assert seq == expected
            expected = (seq + 1) & 0xFF
            tracker.feed(data)
            self.conversation.server(data)
        return tracker, self.conversation.decoded[start:]


# Both framings of result sets: with CLIENT_DEPRECATE_EOF (OK packets end rows)
# and without (EOF packets, and no session tracking either).
FRAMINGS = {
    "deprecate_eof": DEFAULT_CLIENT_CAPABILITIES | Capability.CLIENT_LOCAL_FILES,
    "eof": (
        (DEFAULT_CLIENT_CAPABILITIES | Capability.CLIENT_LOCAL_FILES)
        & ~Capability.CLIENT_DEPRECATE_EOF
        & ~Capability.CLIENT_SESSION_TRACK
    ),
}


@pytest.fixture(params=sorted(FRAMINGS))
def conn(
    mariadb: MariaDBServer, request: pytest.FixtureRequest
) -> Iterator[RawConnection]:
    connection = RawConnection(mariadb)
    connection.login(capabilities=FRAMINGS[request.param])
    try:
        yield connection
    finally:
        connection.close()


def test_live_handshake_and_native_login(mariadb: MariaDBServer) -> None:
    connection = RawConnection(mariadb)
    try:
        login = connection.login()
        handshake = connection.conversation.handshake
        assert handshake is not None
        assert handshake.auth_plugin_name == "mysql_native_password"
        assert len(handshake.scramble) == m.SCRAMBLE_LENGTH
        # MariaDB clears CLIENT_MYSQL and sends extended capabilities.
        assert not handshake.capability_flags & Capability.CLIENT_LONG_PASSWORD
        assert login.ok is not None
        changes = codec.parse_session_state(login.ok.session_state_info or b"")
        assert codec.session_schema(changes) == APP_DATABASE
    finally:
        connection.close()


def test_live_wrong_password_is_refused(mariadb: MariaDBServer) -> None:
    connection = RawConnection(mariadb)
    try:
        with pytest.raises(LoginRefused) as info:
            connection.login(password="wrong")
        assert info.value.err.error_code == 1045
        assert info.value.err.sql_state == "28000"
    finally:
        connection.close()


def test_live_multi_statement_query(conn: RawConnection) -> None:
    tracker, replies = conn.command(
        m.ComQuery(
            "SELECT 1; SELECT * FROM t WHERE id < 3; "
            "UPDATE t SET b = b WHERE id = 1; CALL p(5)"
        )
    )
    outcome = tracker.outcome
    assert outcome is not None and outcome.ok
    # SELECT 1, SELECT t, UPDATE, CALL's two selects and its closing OK.
    assert outcome.result_sets == 6
    assert outcome.rows == 1 + 2 + 1 + 1
    rows = [r.values for r in replies if isinstance(r, m.TextResultsetRow)]
    assert rows == [
        (b"1",),
        (b"1", b"row 1", b"10"),
        (b"2", b"row 2", b"20"),
        (b"5",),
        (b"6",),
    ]
    assert not outcome.status_flags & ServerStatus.SERVER_MORE_RESULTS_EXISTS
    eofs = sum(isinstance(r, m.EofPacket) for r in replies)
    assert eofs == (0 if conn.caps & Capability.CLIENT_DEPRECATE_EOF else 8)


def test_live_query_without_deprecate_eof(mariadb: MariaDBServer) -> None:
    connection = RawConnection(mariadb)
    try:
        connection.login(
            capabilities=DEFAULT_CLIENT_CAPABILITIES
            & ~Capability.CLIENT_DEPRECATE_EOF
            & ~Capability.CLIENT_SESSION_TRACK
        )
        tracker, replies = connection.command(m.ComQuery("SELECT id, a FROM t LIMIT 3"))
        assert tracker.outcome is not None and tracker.outcome.rows == 3
        assert sum(isinstance(r, m.EofPacket) for r in replies) == 2
    finally:
        connection.close()


def test_live_error_in_the_middle_stops_the_batch(conn: RawConnection) -> None:
    tracker, _replies = conn.command(
        m.ComQuery("SELECT 1; SELECT * FROM no_such_table; SELECT 2")
    )
    outcome = tracker.outcome
    assert outcome is not None and outcome.error is not None
    assert outcome.error.error_code == 1146
    assert outcome.error.sql_state == "42S02"
    assert outcome.result_sets == 1
    # The session goes on.
    tracker, _ = conn.command(m.ComPing())
    assert tracker.outcome is not None and tracker.outcome.ok


def test_live_prepared_statement_round_trip(conn: RawConnection) -> None:
    tracker, replies = conn.command(
        m.ComStmtPrepare("SELECT id, a, b FROM t WHERE id > ? AND a LIKE ?")
    )
    prepare_ok = tracker.outcome.prepare_ok if tracker.outcome else None
    assert prepare_ok is not None
    assert (prepare_ok.num_params, prepare_ok.num_columns) == (2, 3)
    statement = prepare_ok.statement_id

    execute = m.ComStmtExecute(
        statement,
        new_params_bound_flag=1,
        parameter_types=(
            (ColumnType.MYSQL_TYPE_LONGLONG, 0),
            (ColumnType.MYSQL_TYPE_VAR_STRING, 0),
        ),
        values=((7).to_bytes(8, "little"), b"\x05row %"),
    )
    tracker, replies = conn.command(execute)
    rows = [r for r in replies if isinstance(r, m.BinaryResultsetRow)]
    assert len(rows) == 3
    assert rows[0].values[0] == (8).to_bytes(4, "little")
    assert rows[0].values[1] == b"\x05row 8"

    # Same statement, types not re-bound, one NULL parameter: no rows.
    tracker, _ = conn.command(m.ComStmtExecute(statement, values=(None, b"\x01%")))
    assert tracker.outcome is not None and tracker.outcome.rows == 0

    tracker, _ = conn.command(m.ComStmtReset(statement))
    assert tracker.outcome is not None and tracker.outcome.ok
    tracker, _ = conn.command(m.ComStmtClose(statement))
    assert tracker.done
    tracker, _ = conn.command(m.ComStmtExecute(statement))
    assert tracker.outcome is not None and tracker.outcome.error is not None
    assert tracker.outcome.error.error_code == 1243


def test_live_long_data_and_binary_types(conn: RawConnection) -> None:
    tracker, _ = conn.command(
        m.ComStmtPrepare("SELECT ?, CAST(? AS DATETIME(3)), ?, at FROM d ORDER BY id")
    )
    assert tracker.outcome is not None and tracker.outcome.prepare_ok is not None
    statement = tracker.outcome.prepare_ok.statement_id
    conn.send(
        codec.encode_payload(m.ComStmtSendLongData(statement, 0, b"long " * 100), 0),
        0,
    )
    conn.conversation.tracker = None
    execute = m.ComStmtExecute(
        statement,
        new_params_bound_flag=1,
        parameter_types=(
            (ColumnType.MYSQL_TYPE_BLOB, 0),
            (ColumnType.MYSQL_TYPE_DATETIME, 0),
            (ColumnType.MYSQL_TYPE_DOUBLE, 0),
        ),
        values=(
            b"",
            bytes([11, 0xE8, 0x07, 2, 29, 23, 59, 58]) + (123000).to_bytes(4, "little"),
            struct.pack("<d", 2.5),
        ),
        long_data=(0,),
    )
    tracker, replies = conn.command(execute)
    rows = [r for r in replies if isinstance(r, m.BinaryResultsetRow)]
    assert len(rows) == 2
    assert rows[0].values[0] == b"\xfc\xf4\x01" + b"long " * 100
    assert rows[1].values[3] is None


def test_live_cursor_and_fetch(conn: RawConnection) -> None:
    tracker, _ = conn.command(m.ComStmtPrepare("SELECT id FROM t ORDER BY id"))
    assert tracker.outcome is not None and tracker.outcome.prepare_ok is not None
    statement = tracker.outcome.prepare_ok.statement_id
    tracker, _ = conn.command(
        m.ComStmtExecute(statement, flags=CursorType.CURSOR_TYPE_READ_ONLY)
    )
    assert tracker.outcome is not None
    assert tracker.outcome.status_flags & ServerStatus.SERVER_STATUS_CURSOR_EXISTS
    fetched = 0
    for _ in range(5):
        tracker, _ = conn.command(m.ComStmtFetch(statement, 4))
        assert tracker.outcome is not None and tracker.outcome.ok
        fetched += tracker.outcome.rows
        if tracker.outcome.status_flags & ServerStatus.SERVER_STATUS_LAST_ROW_SENT:
            break
    assert fetched == 10


def test_live_field_list_has_defaults(conn: RawConnection) -> None:
    tracker, replies = conn.command(m.ComFieldList("d"))
    columns = [r for r in replies if isinstance(r, m.ColumnDefinition41)]
    assert [c.name for c in columns] == ["id", "name", "n", "at", "blob_col"]
    assert columns[1].default_value == b"nobody"
    assert columns[2].default_value == b"7"
    assert columns[3].default_value is None
    tracker, replies = conn.command(m.ComFieldList("no_such_table"))
    assert tracker.outcome is not None and tracker.outcome.error is not None


def test_live_simple_commands(conn: RawConnection) -> None:
    for command in (
        m.ComPing(),
        m.ComInitDb("app"),
        m.ComSetOption(1),
        m.ComSetOption(0),
        m.ComResetConnection(),
    ):
        tracker, _ = conn.command(command)
        assert tracker.outcome is not None and tracker.outcome.ok, command
    tracker, _replies = conn.command(m.ComStatistics())
    assert tracker.outcome is not None and "Uptime" in tracker.outcome.info
    tracker, _ = conn.command(m.ComInitDb("no_such_db"))
    assert tracker.outcome is not None and tracker.outcome.error is not None
    assert tracker.outcome.error.error_code == 1044


def test_live_local_infile_request_and_empty_file(conn: RawConnection) -> None:
    conn.send(
        codec.encode_payload(
            m.ComQuery("LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE d"), conn.caps
        ),
        0,
    )
    seq, data = conn.recv()
    conn.conversation.server(data)
    tracker = conn.conversation.tracker
    assert tracker is not None
    assert conn.conversation.decoded[-1] == m.LocalInfileRequest("x.csv")
    conn.send(b"", seq + 1)  # an empty file
    seq, data = conn.recv()
    assert seq == 3
    conn.conversation.server(data)
    assert tracker.done
    assert tracker.outcome is not None and tracker.outcome.ok
