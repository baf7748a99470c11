"""Sessions whose client and server legs disagree on CLIENT_DEPRECATE_EOF.

Target app_eof_on makes pamwire ask MariaDB for CLIENT_DEPRECATE_EOF whatever
the client chose, app_eof_off never: PyMySQL and mysql-connector (which do
not ask for it) on app_eof_on, and the mariadb CLI (which does) on
app_eof_off, get every reply translated. Raw clients check the framing byte
by byte: a ReplyTracker for the client's own capabilities must accept each
reply, sequence ids included.
"""

from __future__ import annotations

import mysql.connector
import pymysql
import pymysql.cursors
import pytest

from pamwire.mysql import auth, codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Command, CursorType, ServerStatus, SetOption
from pamwire.mysql.results import ReplyTracker, Step
from tests.integration.mysql_conftest import (
    PERSON,
    PERSON_PASSWORD,
    MysqlProxy,
    mysql_open_proxy,
    mysql_server,
)
from tests.integration.test_mysql_session import Raw, _greeting

__all__ = ["mysql_open_proxy", "mysql_server"]

pytestmark = pytest.mark.integration

ON, OFF = "app_eof_on", "app_eof_off"
MULTI = pymysql.constants.CLIENT.MULTI_STATEMENTS


def _pymysql(proxy: MysqlProxy, target: str, **extra: object) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(**proxy.connect_args(database=target, **extra))


# -- real clients ---------------------------------------------------------------------


def test_mysql_eof_pymysql_without_deprecate_eof_on_translated_leg(
    mysql_open_proxy: MysqlProxy,
) -> None:
    conn = _pymysql(mysql_open_proxy, ON, client_flag=MULTI)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, a FROM t WHERE id <= 2 ORDER BY id")
            assert cur.fetchall() == ((1, "row 1"), (2, "row 2"))
            cur.execute("SELECT id FROM t WHERE id < 0")
            assert cur.fetchall() == ()
            cur.execute("SELECT seq FROM seq_1_to_1000")
            assert [r[0] for r in cur.fetchall()] == list(range(1, 1001))
            # Several results: a row set, an OK, another row set.
            cur.execute("CREATE TEMPORARY TABLE tmp_multi (i INT)")
            cur.execute(
                "SELECT 1 AS x; INSERT INTO tmp_multi VALUES (1), (2); SELECT 2, 3"
            )
            assert cur.fetchall() == ((1,),)
            assert cur.nextset() and cur.rowcount == 2
            assert cur.nextset() and cur.fetchall() == ((2, 3),)
            assert not cur.nextset()
            cur.callproc("p", (5,))
            assert cur.fetchall() == ((5,),)
            assert cur.nextset() and cur.fetchall() == ((6,),)
            while cur.nextset():
                pass
            with pytest.raises(pymysql.err.ProgrammingError) as caught:
                cur.execute("SELECT 1; SELECT * FROM no_such_table")
                cur.nextset()
            assert caught.value.args[0] == 1146
            cur.execute("SELECT 'still usable'")
            assert cur.fetchone() == ("still usable",)
    finally:
        conn.close()


def test_mysql_eof_pymysql_unbuffered_and_executemany(
    mysql_open_proxy: MysqlProxy,
) -> None:
    conn = _pymysql(mysql_open_proxy, ON, cursorclass=pymysql.cursors.SSCursor)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT seq FROM seq_1_to_3000")
            assert sum(1 for _ in cur) == 3000
            cur.execute("CREATE TEMPORARY TABLE tmp_eof (id INT, v VARCHAR(10))")
            cur.executemany(
                "INSERT INTO tmp_eof VALUES (%s, %s)", [(i, f"v{i}") for i in range(50)]
            )
            cur.execute("SELECT COUNT(*), MAX(v) FROM tmp_eof")
            assert cur.fetchone() == (50, "v9")
    finally:
        conn.close()


def test_mysql_eof_connector_prepared_binary_results(
    mysql_open_proxy: MysqlProxy,
) -> None:
    conn = mysql.connector.connect(
        **mysql_open_proxy.connect_args(database=ON), use_pure=True, ssl_disabled=True
    )
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(
            "SELECT id, a, b FROM t WHERE id BETWEEN ? AND ? ORDER BY id", (2, 4)
        )
        assert cur.fetchall() == [(2, "row 2", 20), (3, "row 3", 30), (4, "row 4", 40)]
        cur.execute("SELECT id FROM t WHERE id = ?", (99,))
        assert cur.fetchall() == []
        cur.close()
        plain = conn.cursor()
        plain.execute("SELECT name, n FROM d ORDER BY id")
        assert plain.fetchall() == [("alice", 1), ("bob", None)]
    finally:
        conn.close()


def test_mysql_eof_mariadb_cli_with_deprecate_eof_on_old_layout_leg(
    mysql_open_proxy: MysqlProxy,
) -> None:
    result = mysql_open_proxy.mariadb(
        "--batch",
        "-e",
        "SELECT id, a FROM t WHERE id <= 2 ORDER BY id; CALL p(7); SELECT 'end'",
        database=OFF,
    )
    lines = result.stdout.splitlines()
    assert lines == ["id\ta", "1\trow 1", "2\trow 2", "a", "7", "b", "8", "end", "end"]


# -- raw clients ----------------------------------------------------------------------


def _login(proxy: MysqlProxy, target: str, *, deprecate_eof: bool) -> tuple[Raw, int]:
    raw = Raw(proxy.port)
    greeting = _greeting(raw)
    caps = greeting.capabilities & 0xFFFFFFFF | codec.CONNECT_WITH_DB
    caps = caps | codec.DEPRECATE_EOF if deprecate_eof else caps & ~codec.DEPRECATE_EOF
    token = auth.native_password_scramble(PERSON_PASSWORD, greeting.scramble)
    response = m.HandshakeResponse41(
        capability_flags=caps,
        max_packet_size=1 << 24,
        character_set=45,
        username=PERSON,
        auth_response=token,
        database=target,
        auth_plugin_name=auth.NATIVE_PASSWORD,
    )
    raw.send(codec.encode_payload(response, caps), 1)
    _, data = raw.recv()
    assert data[0] == 0, data
    return raw, caps


def _reply(raw: Raw, command: int, caps: int) -> list[tuple[Step, bytes]]:
    """Read one reply, checked packet by packet as the client's own layout."""
    tracker = ReplyTracker(command, caps)
    got = []
    while not tracker.done:
        seq, data = raw.recv()
        assert seq == tracker.next_sequence_id
        got.append((tracker.feed(data), data))
    assert not raw.pending
    return got


def _steps(reply: list[tuple[Step, bytes]]) -> list[Step]:
    return [step for step, _ in reply]


CASES = [(ON, False), (OFF, True)]


@pytest.mark.parametrize(("target", "deprecate_eof"), CASES)
def test_mysql_eof_raw_query_layouts(
    mysql_open_proxy: MysqlProxy, target: str, deprecate_eof: bool
) -> None:
    raw, caps = _login(mysql_open_proxy, target, deprecate_eof=deprecate_eof)
    try:
        raw.send(
            codec.encode_payload(m.ComQuery("SELECT 1, 'a' UNION SELECT 2, 'b'"), caps),
            0,
        )
        reply = _reply(raw, Command.COM_QUERY, caps)
        eof = [Step.EOF] if not deprecate_eof else []
        assert _steps(reply) == [
            Step.COLUMN_COUNT,
            Step.COLUMN_DEFINITION,
            Step.COLUMN_DEFINITION,
            *eof,
            Step.ROW,
            Step.ROW,
            Step.RESULT_END,
        ]
        end = reply[-1][1]
        assert end[0] == 0xFE
        assert (len(end) == 5) == (not deprecate_eof)
        assert codec.decode_text_row(reply[-2][1], 2).values == (b"2", b"b")
        raw.send(codec.encode_payload(m.ComQuery("CALL p(1)"), caps), 0)
        steps = _steps(_reply(raw, Command.COM_QUERY, caps))
        assert steps.count(Step.RESULT_END) == 2 and steps[-1] is Step.OK
        assert steps.count(Step.EOF) == (0 if deprecate_eof else 2)
    finally:
        raw.close()


@pytest.mark.parametrize(("target", "deprecate_eof"), CASES)
def test_mysql_eof_raw_prepare_execute_fetch_field_list_set_option(
    mysql_open_proxy: MysqlProxy, target: str, deprecate_eof: bool
) -> None:
    raw, caps = _login(mysql_open_proxy, target, deprecate_eof=deprecate_eof)
    eof = [] if deprecate_eof else [Step.EOF]
    try:
        sql = "SELECT id, a FROM t WHERE id <= ? ORDER BY id"
        raw.send(codec.encode_payload(m.ComStmtPrepare(sql), caps), 0)
        reply = _reply(raw, Command.COM_STMT_PREPARE, caps)
        definition = Step.COLUMN_DEFINITION
        assert _steps(reply) == [
            Step.PREPARE_OK,
            definition,
            *eof,
            definition,
            definition,
            *eof,
        ]
        ok = codec.decode_stmt_prepare_ok(reply[0][1])

        # A plain execute: binary rows.
        three = (b"\x03\x00\x00\x00",)  # LONG 3
        execute = m.ComStmtExecute(
            ok.statement_id,
            new_params_bound_flag=1,
            parameter_types=((3, 0),),
            values=three,
        )
        raw.send(codec.encode_payload(execute, caps), 0)
        reply = _reply(raw, Command.COM_STMT_EXECUTE, caps)
        rows = [data for step, data in reply if step is Step.ROW]
        assert len(rows) == 3 and all(r[0] == 0 for r in rows)

        # An execute that opens a cursor: definitions and one end, then FETCH.
        cursor = int(CursorType.CURSOR_TYPE_READ_ONLY)
        execute = m.ComStmtExecute(ok.statement_id, cursor, values=three)
        raw.send(codec.encode_payload(execute, caps), 0)
        reply = _reply(raw, Command.COM_STMT_EXECUTE, caps)
        assert Step.ROW not in _steps(reply)
        last = reply[-1][1]
        status = codec.decode_end_of_rows(last, caps).status_flags
        assert status & ServerStatus.SERVER_STATUS_CURSOR_EXISTS
        raw.send(codec.encode_payload(m.ComStmtFetch(ok.statement_id, 10), caps), 0)
        reply = _reply(raw, Command.COM_STMT_FETCH, caps)
        assert _steps(reply) == [Step.ROW] * 3 + [Step.RESULT_END]
        raw.send(codec.encode_payload(m.ComStmtClose(ok.statement_id), caps), 0)

        raw.send(codec.encode_payload(m.ComFieldList("d"), caps), 0)
        reply = _reply(raw, Command.COM_FIELD_LIST, caps)
        names = [
            codec.decode_column_definition(data, caps, field_list=True).name
            for step, data in reply
            if step is Step.COLUMN_DEFINITION
        ]
        assert names == ["id", "name", "n", "at", "blob_col"]
        assert (len(reply[-1][1]) == 5) == (not deprecate_eof)

        on = int(SetOption.MYSQL_OPTION_MULTI_STATEMENTS_ON)
        raw.send(codec.encode_payload(m.ComSetOption(on), caps), 0)
        reply = _reply(raw, Command.COM_SET_OPTION, caps)
        assert len(reply) == 1 and reply[0][1][0] == 0xFE
        assert (len(reply[0][1]) == 5) == (not deprecate_eof)
        raw.send(bytes([Command.COM_PING]), 0)
        assert _steps(_reply(raw, Command.COM_PING, caps)) == [Step.OK]
    finally:
        raw.close()


def test_mysql_eof_local_infile_after_a_translated_result(
    mysql_open_proxy: MysqlProxy,
) -> None:
    # The result set before the file request shifts sequence ids by one: the
    # client's file packets must be shifted back for the server.
    path = mysql_open_proxy.workdir / "ld-eof.csv"
    path.write_text("31,x\n32,y\n")
    conn = _pymysql(
        mysql_open_proxy, ON, local_infile=True, autocommit=True, client_flag=MULTI
    )
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMPORARY TABLE ld (a INT, b TEXT)")
            cur.execute(
                "SELECT 'before' AS w; "
                f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE ld "
                "FIELDS TERMINATED BY ','"
            )
            assert cur.fetchall() == (("before",),)
            assert cur.nextset() and cur.rowcount == 2
            cur.execute("SELECT a, b FROM ld ORDER BY a")
            assert cur.fetchall() == ((31, "x"), (32, "y"))
    finally:
        conn.close()


def test_mysql_eof_translated_session_is_recorded(
    mysql_open_proxy: MysqlProxy,
) -> None:
    # The recorder reads the server leg's packets, before translation.
    conn = _pymysql(mysql_open_proxy, ON)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 'eof-recorded' AS marker, 7 AS n")
            assert cur.fetchall() == (("eof-recorded", 7),)
    finally:
        conn.close()
    events = mysql_open_proxy.wait_for_event(
        lambda e: "eof-recorded" in (e["statement"] or "") and e["rows"] is not None
    )
    (session,) = {
        e["session"] for e in events if "eof-recorded" in (e["statement"] or "")
    }
    replay = mysql_open_proxy.pamwire("session", "replay", session)
    assert replay.returncode == 0, replay.stderr
    assert "| eof-recorded |" in replay.stdout
    assert "1 row in set" in replay.stdout
