"""Tests of the MySQL session recorder: real MariaDB conversations and hand-built
packets, fed as the session feeds them (each packet with its tracker's Step)."""

from __future__ import annotations

import json
import pathlib

import pytest

from pamwire.audit.mysql_recording import (
    MySqlRecorder,
    Recorded,
    column_flags,
    column_type,
    mysql_tag,
    parse_tag,
)
from pamwire.audit.recording import HIDDEN_COLUMN, REDACTED, RecordingChunk
from pamwire.audit.store import AuditStore
from pamwire.errors import ServerProtocolError
from pamwire.mysql import codec, replies
from pamwire.mysql.constants import Capability, ColumnFlag, Command
from pamwire.mysql.packets import PacketReader, frame
from pamwire.mysql.results import ReplyTracker, Step
from tests.audit import BASE_TIME
from tests.mysql.conversation import Conversation

CAPTURES = (
    pathlib.Path(__file__).resolve().parents[2] / "protocols" / "mysql" / "captures"
)
_RECORDED_COMMANDS = (
    Command.COM_QUERY,
    Command.COM_STMT_PREPARE,
    Command.COM_STMT_EXECUTE,
    Command.COM_INIT_DB,
)

# A client that asked for multi-statements and OK packets in place of EOF.
CAPS = (
    codec.PROTOCOL_41
    | codec.DEPRECATE_EOF
    | int(Capability.CLIENT_MULTI_STATEMENTS)
    | int(Capability.CLIENT_MULTI_RESULTS)
)


def _recorder(**kw: int) -> MySqlRecorder:
    return MySqlRecorder("5e55", clock=lambda: BASE_TIME + 1, **kw)


class Feeder:
    """Passes server payloads to a tracker and the recorder, as the session does:
    a row reaches the recorder only while it is decoding."""

    def __init__(self, recorder: MySqlRecorder, caps: int = CAPS) -> None:
        self.recorder = recorder
        self.caps = caps
        self.tracker: ReplyTracker | None = None
        self.rows_passed = 0

    def command(self, command: int, *statements: Recorded) -> None:
        self.tracker = ReplyTracker(command, self.caps)
        self.recorder.command(self.tracker, statements)

    def server(self, data: bytes, seq: int | None = None) -> Step:
        tracker = self.tracker
        assert tracker is not None
        reader = PacketReader()
        reader.feed(frame(data, tracker.next_sequence_id if seq is None else seq))
        block, packets = reader.read_packets()
        step = tracker.feed_packet(block, packets[0])
        if step is not Step.ROW or self.recorder.decoding:
            self.rows_passed += step is Step.ROW
            self.recorder.server_packet(step, block, packets[0])
        if tracker.done:
            self.recorder.reply_done()
        return step


def _statements(text: str) -> list[Recorded]:
    parts = [p.strip() for p in text.split(";") if p.strip()]
    return [
        Recorded(f"e{i}", p, BASE_TIME, p.upper().startswith("CALL"))
        for i, p in enumerate(parts)
    ]


def replay_capture(name: str, recorder: MySqlRecorder) -> list[RecordingChunk]:
    """A recorded MariaDB conversation (protocols/mysql/captures) through the
    recorder; a COM_QUERY's statements are its text split at semicolons."""
    packets = json.loads((CAPTURES / f"{name}.json").read_text("utf-8"))["packets"]
    login = Conversation()
    feeder: Feeder | None = None
    tracker: ReplyTracker | None = None
    for packet in packets:
        data = bytes.fromhex(packet["hex"])
        if not login.logged_in:
            (login.client if packet["from"] == "client" else login.server)(data)
            continue
        if packet["from"] == "client":
            if tracker is not None and not tracker.done:
                tracker.client_packet(len(data), packet["seq"])  # LOCAL INFILE data
                continue
            feeder = None
            tracker = ReplyTracker(data[0], login.caps)
            if data[0] in _RECORDED_COMMANDS:
                feeder = Feeder(recorder, login.caps)
                text = data[1:].decode("utf-8", "replace")
                if data[0] == Command.COM_STMT_EXECUTE:
                    text = f"execute {int.from_bytes(data[1:5], 'little')}"
                if data[0] == Command.COM_QUERY:
                    feeder.command(data[0], *_statements(text))
                else:
                    feeder.command(data[0], Recorded(None, text, BASE_TIME))
                tracker = feeder.tracker
            continue
        if feeder is not None:
            feeder.server(data, packet["seq"])
        else:
            assert tracker is not None
            tracker.feed(data)
    return recorder.close()


def _by_statement(chunks: list[RecordingChunk], start: str) -> list[RecordingChunk]:
    return [c for c in chunks if (c.statement or "").startswith(start)]


# -- real conversations --------------------------------------------------------------


def test_mysql_recording_text_protocol_capture() -> None:
    chunks = replay_capture("pymysql-text", _recorder())
    (select,) = _by_statement(chunks, "SELECT id, a, b FROM t")
    assert select.columns == ("id", "a", "b")
    assert select.rows == (
        ("1", "row 1", "10"),
        ("2", "row 2", "20"),
        ("3", "row 3", "30"),
    )
    assert select.row_count == 3 and select.truncated is None
    assert column_type(select.column_types[0]) == 3  # LONG
    assert column_flags(select.column_types[0]) & ColumnFlag.NOT_NULL_FLAG

    # One COM_QUERY with three statements: one result each, in order.
    one, null, update = (
        _by_statement(chunks, "SELECT 1")[0],
        _by_statement(chunks, "SELECT NULL")[0],
        _by_statement(chunks, "UPDATE t")[0],
    )
    assert (one.event_id, null.event_id, update.event_id) == ("e0", "e1", "e2")
    assert one.rows == (("1",),) and null.rows == ((None, "x"),)
    assert update.columns is None
    assert parse_tag(update.tag) == {
        "affected_rows": "0",
        "warnings": "0",
        "info": "Rows matched: 1  Changed: 0  Warnings: 0",
    }

    # A CALL: a chunk per result set, then its final OK, all under its event.
    call = _by_statement(chunks, "CALL")
    assert [c.columns for c in call] == [("a",), ("b",), None]
    assert [c.rows for c in call] == [(("5",),), (("6",),), ()]
    assert len({c.event_id for c in call}) == 1

    (error,) = _by_statement(chunks, "SELECT * FROM no_such_table")
    assert error.status == "error"
    assert error.error == (
        ("N", "1146"),
        ("C", "42S02"),
        ("M", "Table 'app.no_such_table' doesn't exist"),
    )

    (load,) = _by_statement(chunks, "LOAD DATA LOCAL INFILE")
    assert parse_tag(load.tag)["affected_rows"] == "2"

    # 300 rows: the first 100 are kept, the rest only counted.
    (many,) = _by_statement(chunks, "SELECT * FROM seq_1_to_300")
    assert len(many.rows) == 100 and many.rows[-1] == ("100",)
    assert many.row_count == 300 and many.truncated == "rows"

    (init_db,) = _by_statement(chunks, "app")
    assert parse_tag(init_db.tag)["command"] == "init_db"
    assert [c.seq for c in chunks] == sorted(c.seq for c in chunks)


def test_mysql_recording_binary_protocol_capture_reads_like_text() -> None:
    chunks = replay_capture("mysql-connector-prepared", _recorder())
    prepares = [c for c in chunks if parse_tag(c.tag).get("command") == "prepare"]
    assert [parse_tag(c.tag)["params"] for c in prepares] == ["2", "4", "0"]

    executes = _by_statement(chunks, "execute")
    first, second, insert, table = executes
    assert first.rows == (
        ("8", "row 8", "80"),
        ("9", "row 9", "90"),
        ("10", "row 10", "100"),
    )
    assert second.row_count == 8
    assert parse_tag(insert.tag)["affected_rows"] == "1"
    assert table.columns == ("id", "v", "at", "price", "blob_col")
    assert table.rows[0] == ("1", "a", "2024-01-02 03:04:05.678", "1.50", None)
    assert table.rows[1] == ("2", "b", None, None, None)
    assert table.rows[2][:4] == ("3", "c", "2024-02-29 23:59:58.123", "2.50")
    assert table.rows[2][4] == "0x" + "0001FEFF" * 50  # binary bytes as hex

    (text,) = _by_statement(chunks, "SELECT @@version")
    assert text.rows[0][2:] == ("1500", None)


def test_mysql_recording_capture_of_the_mariadb_client() -> None:
    chunks = replay_capture("mariadb-cli", _recorder())
    assert [c.statement for c in chunks] == [
        "SELECT * FROM t LIMIT 3",
        "SHOW TABLES",
        "CALL p(1)",
        "CALL p(1)",
        "CALL p(1)",
        "SELECT 'after' AS c",
    ]
    assert chunks[1].rows == (("k",), ("ld",), ("t",))
    assert chunks[-1].rows == (("after",),)


# -- hand-built packets (CLIENT_DEPRECATE_EOF: rows end with a 0xFE OK) ------------


def _lenenc(text: str) -> bytes:
    data = text.encode()
    return bytes([len(data)]) + data


def column(
    name: str, type_: int, *, flags: int = 0, charset: int = 45, decimals: int = 0
) -> bytes:
    """A ColumnDefinition41 payload, field by field."""
    return (
        _lenenc("def")
        + _lenenc("app")
        + _lenenc("t")
        + _lenenc("t")
        + _lenenc(name)
        + _lenenc(name)
        + b"\x0c"
        + charset.to_bytes(2, "little")
        + (11).to_bytes(4, "little")
        + bytes([type_])
        + flags.to_bytes(2, "little")
        + bytes([decimals])
        + b"\x00\x00"
    )


def text_row(*values: str | None) -> bytes:
    return b"".join(b"\xfb" if v is None else _lenenc(v) for v in values)


OK = bytes.fromhex("00 00 00 0200 0000")  # affected 0, insert id 0, autocommit
OK_MORE = bytes.fromhex("00 00 00 0a00 0000")  # ... and more results exist
END = bytes.fromhex("fe 00 00 0200 0000")  # end of rows (an OK with 0xFE)
END_MORE = bytes.fromhex("fe 00 00 0a00 0100")  # ... one warning, more results
ERR_1146 = b"\xff\x7a\x04#42S02Table 'app.nope' doesn't exist"


def test_mysql_recording_error_stops_a_multi_statement_query() -> None:
    rec = _recorder()
    feed = Feeder(rec)
    feed.command(
        Command.COM_QUERY,
        *_statements("SELECT id FROM t; SELECT * FROM nope; SELECT 3"),
    )
    for data in (b"\x01", column("id", 3), text_row("1"), text_row("2"), END_MORE):
        feed.server(data)
    feed.server(ERR_1146)
    first, failed, skipped = rec.drain()
    assert first.rows == (("1",), ("2",)) and first.row_count == 2
    assert parse_tag(first.tag) == {"affected_rows": "0", "warnings": "1"}
    assert failed.status == "error" and failed.event_id == "e1"
    assert dict(failed.error or ())["N"] == "1146"
    assert skipped.status == "skipped" and skipped.statement == "SELECT 3"
    assert rec.waiting == 0


def test_mysql_recording_ok_results_carry_affected_rows() -> None:
    rec = _recorder()
    feed = Feeder(rec)
    feed.command(Command.COM_QUERY, *_statements("DELETE FROM t WHERE id = 1; COMMIT"))
    feed.server(bytes.fromhex("00 01 00 0a00 0000"))
    feed.server(OK)
    delete, commit = rec.drain()
    assert parse_tag(delete.tag)["affected_rows"] == "1"
    assert commit.status == "ok" and commit.columns is None


def test_mysql_recording_row_limit_stops_decoding() -> None:
    rec = _recorder(max_rows_per_statement=2)
    feed = Feeder(rec)
    feed.command(Command.COM_QUERY, Recorded("e1", "SELECT n FROM t", BASE_TIME))
    feed.server(b"\x01")
    feed.server(column("n", 3))
    assert rec.decoding
    for n in range(5):
        feed.server(text_row(str(n)))
    assert not rec.decoding
    feed.server(END)
    (chunk,) = rec.drain()
    assert chunk.rows == (("0",), ("1",)) and chunk.row_count == 5
    assert chunk.truncated == "rows"
    assert feed.rows_passed == 2  # the other three cost the recorder nothing


def test_mysql_recording_byte_budget_is_per_session() -> None:
    rec = _recorder(max_bytes_per_session=12)
    feed = Feeder(rec)
    feed.command(Command.COM_QUERY, Recorded("e1", "SELECT a FROM t", BASE_TIME))
    feed.server(b"\x01")
    feed.server(column("a", 253))
    for value in ("12345", "67890", "abcde"):  # six bytes a row
        feed.server(text_row(value))
    feed.server(END)
    feed.command(Command.COM_QUERY, Recorded("e2", "SELECT a FROM t", BASE_TIME))
    feed.server(b"\x01")
    feed.server(column("a", 253))
    assert not rec.decoding  # nothing left of the budget
    feed.server(text_row("x"))
    feed.server(END)
    first, second = rec.drain()
    assert first.rows == (("12345",), ("67890",)) and first.truncated == "bytes"
    assert second.rows == () and second.row_count == 1
    assert second.columns == ("a",)


def test_mysql_recording_repeated_definitions_are_remembered_by_their_bytes() -> None:
    # The same definitions again (a prepared statement's next execute) give the
    # same columns; a definition that differs in one byte is read afresh.
    rec = _recorder()
    feed = Feeder(rec)
    for type_, flags in ((3, 0), (3, 0), (3, int(ColumnFlag.UNSIGNED_FLAG)), (253, 0)):
        feed.command(Command.COM_QUERY, Recorded("e", "SELECT n FROM t", BASE_TIME))
        feed.server(b"\x02")
        feed.server(column("n", type_, flags=flags))
        feed.server(column("password", type_, flags=flags))
        feed.server(text_row("1", "2"))
        feed.server(END)
    chunks = rec.drain()
    assert [c.columns for c in chunks] == [("n", "password")] * 4
    assert [c.column_types[0] for c in chunks] == [3, 3, 3 | 0x20 << 8, 253]
    assert all(c.rows == (("1", REDACTED),) for c in chunks)


def test_mysql_recording_secret_columns_and_statements() -> None:
    rec = _recorder()
    feed = Feeder(rec)
    feed.command(
        Command.COM_QUERY, Recorded("e1", "SELECT user, Password FROM u", BASE_TIME)
    )
    for data in (b"\x02", column("user", 253), column("Password", 253)):
        feed.server(data)
    feed.server(text_row("app", "*ABCDEF"))
    feed.server(END)
    (chunk,) = rec.drain()
    assert chunk.rows == (("app", "<redacted>"),)

    # The redacted text of CREATE USER ... IDENTIFIED BY: its error may quote the
    # secret, so only its number and SQLSTATE are kept.
    feed.command(
        Command.COM_QUERY,
        Recorded("e2", "CREATE USER x IDENTIFIED <redacted>", BASE_TIME),
    )
    feed.server(b"\xff\x28\x04#42000You have an error near 'IDENTIFIED BY 'hunter2''")
    (failed,) = rec.drain()
    assert "hunter2" not in json.dumps(failed.to_data())
    assert dict(failed.error or ())["N"] == "1064"

    feed.command(
        Command.COM_QUERY, Recorded("e3", "SELECT PASSWORD <redacted>", BASE_TIME)
    )
    feed.server(b"\x01")
    feed.server(column("PASSWORD('hunter2')", 253))
    assert not rec.decoding
    feed.server(text_row("*94BDCEBE19083CE2A1F959FD02F964C7AF4CFC29"))
    feed.server(END)
    (hidden,) = rec.drain()
    assert hidden.rows == () and hidden.row_count == 1 and hidden.truncated == "secret"
    # The server names the column by its expression, secret included.
    assert hidden.columns == (HIDDEN_COLUMN,)
    assert "hunter2" not in json.dumps(hidden.to_data())


def test_mysql_recording_refusal_is_the_error_the_client_saw() -> None:
    rec = _recorder()
    reply = replies.denial("no-delete-without-where", "add a WHERE", "delete", 1, CAPS)
    statements = _statements("SELECT 1; DELETE FROM t")
    rec.refused(statements, 1, reply)
    skipped, denied = rec.drain()
    assert skipped.status == "skipped" and skipped.event_id == "e0"
    assert denied.status == "error" and denied.event_id == "e1"
    fields = dict(denied.error or ())
    assert (fields["N"], fields["C"]) == ("1142", "42000")
    assert fields["M"].startswith(
        'pamwire: statement denied by rule "no-delete-without-where"'
    )


def test_mysql_recording_binary_values_as_text() -> None:
    rec = _recorder()
    feed = Feeder(rec)
    feed.command(Command.COM_STMT_EXECUTE, Recorded("e1", "SELECT ...", BASE_TIME))
    unsigned = int(ColumnFlag.UNSIGNED_FLAG)
    columns = (
        column("u", 8, flags=unsigned, charset=63),  # BIGINT UNSIGNED
        column("i", 1, charset=63),  # TINYINT
        column("f", 4, charset=63),  # FLOAT
        column("d", 5, charset=63),  # DOUBLE
        column("day", 10, charset=63),  # DATE
        column("t", 11, charset=63, decimals=2),  # TIME(2)
        column("s", 253),  # VARCHAR
    )
    feed.server(bytes([len(columns)]))
    for data in columns:
        feed.server(data)
    row = (
        b"\x00\x00\x00"  # header, null bitmap (9 bits with the offset of 2)
        + (2**64 - 1).to_bytes(8, "little")
        + b"\xff"
        + bytes.fromhex("c3f54840")  # 3.14 as a float
        + bytes.fromhex("000000000000f03f")  # 1.0
        + bytes.fromhex("04 e807 0c 1f")  # 2024-12-31
        + bytes.fromhex("0c 01 01000000 02 03 04 20a10700")  # -1 day 02:03:04.5
        + _lenenc("héllo")
    )
    feed.server(row)
    feed.server(END)
    (chunk,) = rec.drain()
    assert chunk.rows == (
        (
            "18446744073709551615",
            "-1",
            "3.14",
            "1",
            "2024-12-31",
            "-26:03:04.50",
            "héllo",
        ),
    )


def test_mysql_recording_close_finishes_waiting_statements() -> None:
    rec = _recorder()
    feed = Feeder(rec)
    feed.command(Command.COM_QUERY, Recorded("e1", "SELECT SLEEP(100)", BASE_TIME))
    assert rec.waiting == 1
    (chunk,) = rec.close()
    assert chunk.status == "unfinished" and chunk.event_id == "e1"


def test_mysql_recording_malformed_row_is_the_servers_fault() -> None:
    rec = _recorder()
    feed = Feeder(rec)
    feed.command(Command.COM_QUERY, Recorded("e1", "SELECT a FROM t", BASE_TIME))
    feed.server(b"\x01")
    feed.server(column("a", 253))
    with pytest.raises(ServerProtocolError):
        feed.server(b"\x05ab")  # a value shorter than its length


def test_mysql_recording_tag_round_trips() -> None:
    tag = mysql_tag(affected_rows=3, warnings=1, info="Records: 3  Duplicates: 0")
    assert parse_tag(tag) == {
        "affected_rows": "3",
        "warnings": "1",
        "info": "Records: 3  Duplicates: 0",
    }
    assert parse_tag(None) == {}


def test_mysql_recording_chunks_store_like_postgres(tmp_path: pathlib.Path) -> None:
    chunks = replay_capture("mariadb-cli", _recorder())
    store = AuditStore(tmp_path / "audit.db")
    try:
        store.append_recording(chunks)
        assert store.recording("5e55") == chunks
    finally:
        store.close()
