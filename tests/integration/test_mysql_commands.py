"""Commands through pamwire's MySQL listener with real clients (MY-* protocol cases)."""

from __future__ import annotations

import io
import threading
import time
import uuid

import mysql.connector
import pymysql
import pymysql.cursors
import pytest

from pamwire.mysql import auth, codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Command, CursorType, SetOption
from tests.integration.mysql_conftest import (
    MysqlProxy,
    mysql_open_proxy,
    mysql_proxy,
    mysql_server,
)
from tests.integration.test_mysql_session import Raw, _greeting, _response

__all__ = ["mysql_open_proxy", "mysql_proxy", "mysql_server"]

pytestmark = pytest.mark.integration

MULTI = pymysql.constants.CLIENT.MULTI_STATEMENTS


def _connect(proxy: MysqlProxy, **extra: object) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(**proxy.connect_args(**extra))


def _connector(proxy: MysqlProxy, **extra: object) -> object:
    return mysql.connector.connect(
        **proxy.connect_args(**extra), use_pure=True, ssl_disabled=True
    )


def _logged_in(proxy: MysqlProxy) -> tuple[Raw, int]:
    """A raw session after login; returns it and its capabilities."""
    raw = Raw(proxy.port)
    greeting = _greeting(raw)
    caps = greeting.capabilities & 0xFFFFFFFF
    token = auth.native_password_scramble("alice-pw", greeting.scramble)
    raw.send(_response(greeting, auth.NATIVE_PASSWORD, token, caps), 1)
    _, data = raw.recv()
    assert data[0] == 0, data
    return raw, caps | codec.CONNECT_WITH_DB


# -- text protocol --


def test_mysql_sequence_ids_wrap_over_1000_rows(mysql_proxy: MysqlProxy) -> None:
    conn = _connect(mysql_proxy)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT seq FROM seq_1_to_1000")
            assert [r[0] for r in cur.fetchall()] == list(range(1, 1001))
    finally:
        conn.close()


def test_mysql_sscursor_unbuffered(mysql_proxy: MysqlProxy) -> None:
    conn = _connect(mysql_proxy, cursorclass=pymysql.cursors.SSCursor)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT seq FROM seq_1_to_5000")
            assert sum(1 for _ in cur) == 5000
            cur.execute("SELECT 'after'")
            assert cur.fetchone() == ("after",)
    finally:
        conn.close()


def test_mysql_executemany_insert(mysql_proxy: MysqlProxy) -> None:
    marker = uuid.uuid4().hex[:10]
    conn = _connect(mysql_proxy, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO d (name, n) VALUES (%s, %s)",
                [(marker, i) for i in range(20)],
            )
            assert cur.rowcount == 20
            cur.execute("SELECT COUNT(*) FROM d WHERE name = %s", (marker,))
            assert cur.fetchone() == (20,)
            cur.execute("DELETE FROM d WHERE name = %s", (marker,))
    finally:
        conn.close()


def test_mysql_multi_statements_error_in_middle(mysql_proxy: MysqlProxy) -> None:
    marker = int(time.time() * 1000) % 1_000_000 + 1000
    conn = _connect(mysql_proxy, client_flag=MULTI, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1; SELECT * FROM no_such_table; "
                f"INSERT INTO t (id, a, b) VALUES ({marker}, 'x', 1)"
            )
            assert cur.fetchall() == ((1,),)
            with pytest.raises(pymysql.err.ProgrammingError) as caught:
                cur.nextset()
            assert caught.value.args[0] == 1146
            cur.execute("SELECT COUNT(*) FROM t WHERE id = %s", (marker,))
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


def test_mysql_stored_procedure_several_results(mysql_open_proxy: MysqlProxy) -> None:
    conn = _connect(mysql_open_proxy)
    try:
        with conn.cursor() as cur:
            cur.callproc("p", (1,))
            results = [cur.fetchall()]
            while cur.nextset():
                results.append(cur.fetchall())
            assert results[:2] == [((1,),), ((2,),)]
            cur.execute("SELECT 'after'")
            assert cur.fetchone() == ("after",)
    finally:
        conn.close()


def test_mysql_cli_script_with_procedure(mysql_open_proxy: MysqlProxy) -> None:
    script = "CALL p(5);\nSELECT 'after' AS c;\n"
    result = mysql_open_proxy.mariadb("-N", input=script)
    assert result.stdout.split() == ["5", "6", "after"]


def test_mysql_blob_over_16_mib(mysql_open_proxy: MysqlProxy) -> None:
    size = (1 << 24) + 1000
    blob = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    conn = _connect(mysql_open_proxy, max_allowed_packet=256 << 20, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS big (id INT PRIMARY KEY, v LONGBLOB)"
            )
            cur.execute("REPLACE INTO big (id, v) VALUES (1, %s)", (blob,))
            cur.execute("SELECT v FROM big WHERE id = 1")
            (value,) = cur.fetchone()
            assert value == blob
            cur.execute("SELECT REPEAT('x', 16777211)")
            assert len(cur.fetchone()[0]) == 16777211
    finally:
        conn.close()


# -- prepared statements (binary protocol) --


def test_mysql_connector_prepared_many_and_long_data(mysql_proxy: MysqlProxy) -> None:
    # TODO(mysql-analysis): autocommit=True sends SET @@session.autocommit = ON,
    # which the analyser does not read yet; commit explicitly instead.
    conn = _connector(mysql_proxy)
    try:
        cur = conn.cursor(prepared=True)  # type: ignore[attr-defined]
        cur.execute("SELECT seq FROM seq_1_to_1000 WHERE seq > ?", (990,))
        assert [r[0] for r in cur.fetchall()] == list(range(991, 1001))
        cur.execute(
            "UPDATE d SET blob_col = ? WHERE id = ?", (io.BytesIO(b"z" * 5000), 2)
        )
        cur.execute("SELECT LENGTH(blob_col) FROM d WHERE id = ?", (2,))
        assert cur.fetchall() == [(5000,)]
        conn.commit()  # type: ignore[attr-defined]
        cur.close()
    finally:
        conn.close()  # type: ignore[attr-defined]


def test_mysql_prepared_statements_do_not_leak(mysql_proxy: MysqlProxy) -> None:
    server = mysql_proxy.server

    def count() -> int:
        out = server.sql("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
        return int(out.split()[1])

    before = count()
    conn = _connector(mysql_proxy)
    try:
        for i in range(200):
            cur = conn.cursor(prepared=True)  # type: ignore[attr-defined]
            cur.execute("SELECT ? + 1", (i,))
            assert cur.fetchall() == [(i + 1,)]
            cur.close()
        assert count() <= before + 1
    finally:
        conn.close()  # type: ignore[attr-defined]


def test_mysql_prepare_is_decided(mysql_proxy: MysqlProxy) -> None:
    conn = _connector(mysql_proxy)
    try:
        cur = conn.cursor(prepared=True)  # type: ignore[attr-defined]
        with pytest.raises(mysql.connector.Error) as caught:
            cur.execute("DELETE FROM t WHERE ? = ?", (1, 1))
        assert caught.value.errno == 1142
        cur.execute("SELECT 7")
        assert cur.fetchall() == [(7,)]
    finally:
        conn.close()  # type: ignore[attr-defined]


def test_mysql_raw_cursor_fetch_reset_close(mysql_proxy: MysqlProxy) -> None:
    raw, caps = _logged_in(mysql_proxy)
    try:
        raw.send(
            codec.encode_payload(m.ComStmtPrepare("SELECT seq FROM seq_1_to_5"), caps),
            0,
        )
        seq, data = raw.recv()
        ok = codec.decode_stmt_prepare_ok(data)
        for _ in range(ok.num_columns + (0 if caps & codec.DEPRECATE_EOF else 1)):
            raw.recv()
        execute = m.ComStmtExecute(
            ok.statement_id, int(CursorType.CURSOR_TYPE_READ_ONLY)
        )
        raw.send(codec.encode_payload(execute, caps), 0)
        raw.recv()  # column count
        while True:
            seq, data = raw.recv()
            if codec.is_end_of_rows(data[0], len(data)):
                break
        raw.send(codec.encode_payload(m.ComStmtFetch(ok.statement_id, 10), caps), 0)
        rows = 0
        while True:
            seq, data = raw.recv()
            if codec.is_end_of_rows(data[0], len(data)):
                break
            rows += 1
        assert rows == 5
        raw.send(codec.encode_payload(m.ComStmtReset(ok.statement_id), caps), 0)
        assert raw.recv()[1][0] == 0
        raw.send(codec.encode_payload(m.ComStmtClose(ok.statement_id), caps), 0)
        raw.send(codec.encode_payload(m.ComStmtFetch(ok.statement_id, 1), caps), 0)
        seq, data = raw.recv()
        assert seq == 1 and codec.decode_err(data, caps).error_code == 1243
    finally:
        raw.close()


# -- other commands --


def test_mysql_raw_ping_statistics_set_option_field_list(
    mysql_proxy: MysqlProxy,
) -> None:
    raw, caps = _logged_in(mysql_proxy)
    try:
        raw.send(bytes([Command.COM_PING]), 0)
        seq, data = raw.recv()
        assert seq == 1 and data[0] == 0
        raw.send(bytes([Command.COM_STATISTICS]), 0)
        seq, data = raw.recv()
        assert seq == 1 and data.startswith(b"Uptime")
        on = int(SetOption.MYSQL_OPTION_MULTI_STATEMENTS_ON)
        raw.send(codec.encode_payload(m.ComSetOption(on), caps), 0)
        seq, data = raw.recv()
        assert seq == 1 and data[0] in (0x00, 0xFE)
        raw.send(codec.encode_payload(m.ComFieldList("d"), caps), 0)
        names = []
        while True:
            seq, data = raw.recv()
            if codec.is_end_of_rows(data[0], len(data)):
                break
            names.append(codec.decode_column_definition(data, caps, field_list=True))
        assert [c.name for c in names] == ["id", "name", "n", "at", "blob_col"]
        assert names[1].default_value == b"nobody"
        raw.send(codec.encode_payload(m.ComFieldList("no_such"), caps), 0)
        seq, data = raw.recv()
        assert codec.decode_err(data, caps).error_code == 1146
        raw.send(bytes([Command.COM_PING]), 0)
        assert raw.recv()[0] == 1
    finally:
        raw.close()


def test_mysql_init_db_stays_in_target(mysql_proxy: MysqlProxy) -> None:
    conn = _connect(mysql_proxy)
    try:
        conn.select_db("app")
        with pytest.raises(pymysql.err.OperationalError) as caught:
            conn.select_db("mysql")
        assert caught.value.args[0] == 1044
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as caught:
                cur.execute("USE mysql")
            assert caught.value.args[0] == 1142
            assert "target-database" in caught.value.args[1]
            cur.execute("USE app")
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone() == ("app",)
    finally:
        conn.close()


def test_mysql_reset_connection_and_change_user(mysql_proxy: MysqlProxy) -> None:
    conn = _connector(mysql_proxy)
    try:
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.execute("SET @v = 5")
        conn.cmd_reset_connection()  # type: ignore[attr-defined]
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.execute("SELECT @v")
        assert cur.fetchall() == [(None,)]
    finally:
        conn.close()  # type: ignore[attr-defined]
    raw, caps = _logged_in(mysql_proxy)
    try:
        raw.send(codec.encode_payload(m.ComStmtPrepare("SELECT 1"), caps), 0)
        ok = codec.decode_stmt_prepare_ok(raw.recv()[1])
        for _ in range(ok.num_columns + (0 if caps & codec.DEPRECATE_EOF else 1)):
            raw.recv()
        raw.send(codec.encode_payload(m.ComQuery("SET @v = 5"), caps), 0)
        assert raw.recv()[1][0] == 0
        change = m.ComChangeUser(
            "alice", b"", "app", 45, auth.CACHING_SHA2_PASSWORD, None
        )
        raw.send(codec.encode_payload(change, caps), 0)
        # pamwire asks again with a fresh nonce, then answers as at login.
        seq, data = raw.recv()
        switch = codec.decode_auth_reply(data, codec.PROTOCOL_41)
        assert seq == 1 and isinstance(switch, m.AuthSwitchRequest)
        nonce = auth.plugin_nonce(switch.plugin_data)
        raw.send(auth.caching_sha2_scramble("alice-pw", nonce), 2)
        assert raw.recv() == (3, b"\x01\x03")
        seq, data = raw.recv()
        assert seq == 4 and data[0] == 0x00
        # A new upstream connection: no user variable, no prepared statement.
        raw.send(codec.encode_payload(m.ComQuery("SELECT @v"), caps), 0)
        packets = []
        while True:
            seq, data = raw.recv()
            packets.append(data)
            if len(packets) > 2 and codec.is_end_of_rows(data[0], len(data)):
                break
        assert b"\xfb" in packets  # NULL
        raw.send(codec.encode_payload(m.ComStmtExecute(ok.statement_id, 0), caps), 0)
        seq, data = raw.recv()
        assert codec.decode_err(data, caps).error_code == 1243
        raw.send(bytes([Command.COM_PING]), 0)
        assert raw.recv()[0] == 1
    finally:
        raw.close()


def test_mysql_change_user_connector_and_wrong_password(
    mysql_proxy: MysqlProxy,
) -> None:
    conn = _connector(mysql_proxy)
    try:
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.execute("SELECT CONNECTION_ID()")
        (first,) = cur.fetchall()[0]
        conn.cmd_change_user(  # type: ignore[attr-defined]
            username="alice", password="alice-pw", database="app"
        )
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.execute("SELECT CONNECTION_ID(), DATABASE()")
        (second, database) = cur.fetchall()[0]
        assert second != first and database == "app"
        with pytest.raises(mysql.connector.Error) as caught:
            conn.cmd_change_user(  # type: ignore[attr-defined]
                username="alice", password="wrong", database="app"
            )
        assert caught.value.errno == 1045
    finally:
        conn.close()  # type: ignore[attr-defined]
    count = mysql_proxy.server.sql(
        "SELECT COUNT(*) FROM information_schema.processlist "
        f"WHERE id IN ({first}, {second})"
    )
    assert count.split()[-1] == "0"
    events = mysql_proxy.wait_for_event(
        lambda e: e.get("kind") == "session_end" and e.get("detail") == "change user"
    )
    assert any(e.get("detail") == "change user" for e in events)


def test_mysql_unknown_commands_refused(mysql_proxy: MysqlProxy) -> None:
    raw, caps = _logged_in(mysql_proxy)
    try:
        raw.send(bytes([Command.COM_BINLOG_DUMP]) + bytes(10), 0)
        seq, data = raw.recv()
        assert seq == 1 and codec.decode_err(data, caps).error_code == 1047
    finally:
        raw.close()


def test_mysql_sql_mode_tracked(mysql_proxy: MysqlProxy) -> None:
    # Read with backslash escapes, this is one SELECT of a string; read with
    # NO_BACKSLASH_ESCAPES, a SELECT and then an unscoped DELETE.
    tricky = "SELECT 'a\\' ; DELETE FROM t; -- '"
    conn = _connect(mysql_proxy, client_flag=MULTI)
    try:
        with conn.cursor() as cur:
            cur.execute(tricky)
            assert cur.fetchone() == ("a' ; DELETE FROM t; -- ",)
            cur.execute("SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
            with pytest.raises(pymysql.err.OperationalError) as caught:
                cur.execute(tricky)
            assert caught.value.args[0] == 1142
            cur.execute("SELECT COUNT(*) FROM t")
            assert cur.fetchone() == (10,)
    finally:
        conn.close()


# -- KILL --


def test_mysql_kill_query_reaches_the_right_session(
    mysql_open_proxy: MysqlProxy,
) -> None:
    victim = _connect(mysql_open_proxy)
    bystander = _connect(mysql_open_proxy)
    killer = _connect(mysql_open_proxy)
    results: dict[str, object] = {}

    def sleep(name: str, conn: pymysql.Connection, seconds: int) -> None:  # type: ignore[type-arg]
        started = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT SLEEP({seconds})")
                results[name] = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            results[name] = exc
        results[name + "_time"] = time.monotonic() - started

    threads = [
        threading.Thread(target=sleep, args=("victim", victim, 8)),
        threading.Thread(target=sleep, args=("bystander", bystander, 2)),
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        with killer.cursor() as cur:
            cur.execute(f"KILL QUERY {victim.thread_id()}")
            with pytest.raises(pymysql.err.OperationalError) as caught:
                cur.execute("KILL QUERY 12345")
            assert caught.value.args[0] == 1094
        for thread in threads:
            thread.join(15)
        assert results["victim_time"] < 5  # type: ignore[operator]
        assert results["bystander"] == (0,)
        assert results["bystander_time"] >= 1.9  # type: ignore[operator]
        with victim.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        for conn in (victim, bystander, killer):
            conn.close()


def test_mysql_kill_connection(mysql_open_proxy: MysqlProxy) -> None:
    victim = _connect(mysql_open_proxy)
    killer = _connect(mysql_open_proxy)
    try:
        with killer.cursor() as cur:
            cur.execute(f"KILL {victim.thread_id()}")
        with pytest.raises(pymysql.err.MySQLError), victim.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        killer.close()


def test_mysql_kill_query_by_the_server_id_connection_id_shows(
    mysql_open_proxy: MysqlProxy,
) -> None:
    victim = _connect(mysql_open_proxy)
    killer = _connect(mysql_open_proxy)
    outcome: dict[str, object] = {}

    def sleep() -> None:
        started = time.monotonic()
        try:
            with victim.cursor() as cur:
                cur.execute("SELECT SLEEP(8)")
                outcome["result"] = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            outcome["result"] = exc.args[0]
        outcome["time"] = time.monotonic() - started

    try:
        with victim.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (server_id,) = cur.fetchone()
        assert server_id != victim.thread_id()  # the server's id, not pamwire's
        thread = threading.Thread(target=sleep)
        thread.start()
        time.sleep(0.5)
        with killer.cursor() as cur:
            cur.execute(f"KILL QUERY {server_id}")
        thread.join(15)
        assert outcome["time"] < 5  # type: ignore[operator]
        # Interrupted: 1317 "Query execution was interrupted" (or SLEEP's 1).
        assert outcome["result"] in (1317, (1,))
    finally:
        victim.close()
        killer.close()


def test_mysql_kill_by_server_id_of_another_person_is_unknown(
    mysql_open_proxy: MysqlProxy,
) -> None:
    added = mysql_open_proxy.pamwire(
        "user", "add", "mallory", "--password-stdin", input="mallory-pw\n"
    )
    assert added.returncode in (0, 1), added.stderr  # 1: added by an earlier run
    victim = _connect(mysql_open_proxy)
    other = _connect(mysql_open_proxy, user="mallory", password="mallory-pw")
    try:
        with victim.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (server_id,) = cur.fetchone()
        with other.cursor() as cur:
            for target in (server_id, victim.thread_id()):
                with pytest.raises(pymysql.err.OperationalError) as caught:
                    cur.execute(f"KILL {target}")
                assert caught.value.args[0] == 1094
        with victim.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        victim.close()
        other.close()


# -- LOAD DATA LOCAL INFILE --


def test_mysql_local_infile_allowed_by_rule(mysql_open_proxy: MysqlProxy) -> None:
    path = mysql_open_proxy.workdir / "ld.csv"
    path.write_text("1,a\n2,b\n")
    conn = _connect(mysql_open_proxy, local_infile=True, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS ld (a INT, b TEXT)")
            cur.execute("DELETE FROM ld WHERE a IN (1, 2)")
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE ld "
                "FIELDS TERMINATED BY ','"
            )
            cur.execute("SELECT a, b FROM ld ORDER BY a")
            assert cur.fetchall() == ((1, "a"), (2, "b"))
    finally:
        conn.close()


def test_mysql_local_infile_refused_without_rule(mysql_open_proxy: MysqlProxy) -> None:
    path = mysql_open_proxy.workdir / "other.csv"
    path.write_text("1\n")
    conn = _connect(mysql_open_proxy, local_infile=True, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS other_ld (a INT)")
            with pytest.raises(pymysql.err.OperationalError) as caught:
                cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE other_ld")
            assert caught.value.args[0] == 1142
            assert "local-infile" in caught.value.args[1]
            cur.execute("SELECT COUNT(*) FROM other_ld")
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


# -- framing per leg (MY-07) --


@pytest.mark.parametrize("deprecate_eof", [True, False])
def test_mysql_eof_framing_follows_the_client(
    mysql_proxy: MysqlProxy, deprecate_eof: bool
) -> None:
    raw = Raw(mysql_proxy.port)
    try:
        greeting = _greeting(raw)
        caps = greeting.capabilities & 0xFFFFFFFF
        if not deprecate_eof:
            caps &= ~codec.DEPRECATE_EOF
        token = auth.native_password_scramble("alice-pw", greeting.scramble)
        raw.send(_response(greeting, auth.NATIVE_PASSWORD, token, caps), 1)
        assert raw.recv()[1][0] == 0
        raw.send(codec.encode_payload(m.ComQuery("SELECT * FROM seq_1_to_3"), caps), 0)
        packets = [raw.recv() for _ in range(6 if deprecate_eof else 7)]
        assert [seq for seq, _ in packets] == list(range(1, len(packets) + 1))
        last = packets[-1][1]
        if deprecate_eof:
            assert last[0] == 0xFE and isinstance(
                codec.decode_end_of_rows(last, caps), m.OkPacket
            )
        else:
            assert packets[2][1][0] == 0xFE and len(packets[2][1]) == 5
            assert isinstance(codec.decode_end_of_rows(last, caps), m.EofPacket)
        raw.send(bytes([Command.COM_PING]), 0)
        assert raw.recv()[0] == 1
    finally:
        raw.close()


def test_mysql_client_leaving_mid_query_stops_it(mysql_open_proxy: MysqlProxy) -> None:
    marker = uuid.uuid4().hex[:10]
    raw, caps = _logged_in(mysql_open_proxy)
    query = f"SELECT SLEEP(30) AS `{marker}`"
    raw.send(codec.encode_payload(m.ComQuery(query), caps), 0)
    time.sleep(0.5)
    raw.close()
    server = mysql_open_proxy.server
    sql = (
        "SELECT COUNT(*) FROM information_schema.processlist "
        f"WHERE info LIKE '%{marker}%' AND info NOT LIKE '%processlist%'"
    )
    deadline = time.monotonic() + 10
    while int(server.sql(sql).strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert int(server.sql(sql).strip()) == 0


# -- character sets that hide a quote or backslash --


@pytest.mark.parametrize(
    "setting",
    [
        "SET character_set_client = 28",
        "SET character_set_client = 0x67626b",
        "SET @@session.character_set_client = 13",
        "SET NAMES 95",
        "PREPARE s FROM 'SET NAMES gbk'; EXECUTE s",
        "PREPARE s FROM 'SET character_set_client = sjis'; EXECUTE s",
        "PREPARE s FROM 'SET character_set_client = 28'; EXECUTE s",
    ],
)
def test_mysql_charset_by_number_or_hex_is_refused(
    mysql_proxy: MysqlProxy, setting: str
) -> None:
    # 28 is gbk: its second byte 0x5c would hide the backslash pamwire sees, and
    # the DELETE after the string would run unchecked.
    script = f"{setting};\nSELECT 1 AS '\u4e2d\\'; DELETE FROM t; -- ';\n"
    before = mysql_proxy.mariadb("-N", "-e", "SELECT COUNT(*) FROM t").stdout
    result = mysql_proxy.mariadb(input=script, check=False)
    assert result.returncode != 0
    assert "unsafe-client-encoding" in result.stderr or "1142" in result.stderr
    after = mysql_proxy.mariadb("-N", "-e", "SELECT COUNT(*) FROM t").stdout
    assert after == before and int(after) > 0
