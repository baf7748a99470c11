"""The MY-* protocol cases not already covered by the other MySQL integration tests.

docs/mysql.md maps every MY case to its tests; this module holds only the missing
parts (TLS refusals, wrong passwords through each client, 1000 prepare/close
cycles under a small max_prepared_stmt_count, pamwire never reading a local file,
payloads of exactly 0xFFFFFF bytes and above in both directions).
"""

from __future__ import annotations

import subprocess
import uuid

import mysql.connector
import pymysql
import pytest

from pamwire.mysql import auth, codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Command
from tests.integration.mysql_conftest import (
    PERSON,
    PERSON_PASSWORD,
    MysqlProxy,
    mysql_open_proxy,
    mysql_proxy,
    mysql_server,
)
from tests.integration.test_mysql_session import Raw, _greeting, _response

__all__ = ["mysql_open_proxy", "mysql_proxy", "mysql_server"]

pytestmark = pytest.mark.integration

BIG = 256 << 20


def _connect(proxy: MysqlProxy, **extra: object) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(**proxy.connect_args(**extra))


def _connector(proxy: MysqlProxy, **extra: object) -> object:
    args = {"use_pure": True, "ssl_disabled": True}
    args.update(extra)
    return mysql.connector.connect(**proxy.connect_args(**args))


# -- MY-01: TLS (pamwire has none yet) --


def _cli_with(proxy: MysqlProxy, *options: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        "mariadb",
        "--no-defaults",
        "-h",
        "127.0.0.1",
        "-P",
        str(proxy.port),
        "-u",
        PERSON,
        f"-p{PERSON_PASSWORD}",
        *options,
        "-N",
        "-e",
        "SELECT 1",
        "app",
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=30, env=proxy.env
    )


def test_mysql_cli_requiring_tls_gets_a_clear_error(mysql_proxy: MysqlProxy) -> None:
    # The 10.11 client treats a bare --ssl as "TLS if offered": pamwire offers
    # none, so it logs in in plaintext. Requiring TLS fails before any password.
    assert _cli_with(mysql_proxy, "--ssl").stdout.split() == ["1"]
    result = _cli_with(mysql_proxy, "--ssl", "--ssl-verify-server-cert")
    assert result.returncode != 0
    assert "SSL" in result.stderr or "TLS" in result.stderr, result.stderr


def test_mysql_plaintext_response_with_client_ssl_is_refused(
    mysql_proxy: MysqlProxy,
) -> None:
    raw = Raw(mysql_proxy.port)
    try:
        greeting = _greeting(raw)
        caps = (greeting.capabilities & 0xFFFFFFFF) | codec.SSL
        token = auth.native_password_scramble(PERSON_PASSWORD, greeting.scramble)
        raw.send(_response(greeting, auth.NATIVE_PASSWORD, token, caps), 1)
        seq, data = raw.recv()
        assert data[0] == 0xFF, "a plaintext login claiming CLIENT_SSL got in"
        error = codec.decode_err(data, codec.PROTOCOL_41)
        assert seq == 2 and "must come through TLS" in error.error_message
    finally:
        raw.close()


# -- MY-02: auth switch and wrong passwords per client --


def test_mysql_connector_caching_sha2_plugin_wrong_password(
    mysql_proxy: MysqlProxy,
) -> None:
    conn = _connector(mysql_proxy, auth_plugin="caching_sha2_password")
    try:
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchall() == [("app@127.0.0.1",)]
    finally:
        conn.close()  # type: ignore[attr-defined]
    with pytest.raises(mysql.connector.Error) as caught:
        _connector(mysql_proxy, auth_plugin="caching_sha2_password", password="bad")
    assert caught.value.errno == 1045
    assert f"Access denied for user '{PERSON}'@'127.0.0.1'" in caught.value.msg


def test_mysql_cli_wrong_password_is_1045(mysql_proxy: MysqlProxy) -> None:
    result = mysql_proxy.mariadb("-e", "SELECT 1", password="bad", check=False)
    assert result.returncode != 0
    assert "ERROR 1045 (28000)" in result.stderr
    assert f"Access denied for user '{PERSON}'@'127.0.0.1'" in result.stderr


# -- MY-07: framing per leg, prepared statements and warnings --


@pytest.mark.parametrize("deprecate_eof", [True, False])
def test_mysql_prepare_and_warning_framing_per_leg(
    mysql_proxy: MysqlProxy, deprecate_eof: bool
) -> None:
    raw = Raw(mysql_proxy.port)
    try:
        greeting = _greeting(raw)
        caps = greeting.capabilities & 0xFFFFFFFF
        if not deprecate_eof:
            caps &= ~codec.DEPRECATE_EOF
        token = auth.native_password_scramble(PERSON_PASSWORD, greeting.scramble)
        raw.send(_response(greeting, auth.NATIVE_PASSWORD, token, caps), 1)
        assert raw.recv()[1][0] == 0
        caps |= codec.CONNECT_WITH_DB
        raw.send(codec.encode_payload(m.ComStmtPrepare("SELECT ?, ?"), caps), 0)
        seq, data = raw.recv()
        assert seq == 1
        ok = codec.decode_stmt_prepare_ok(data)
        assert (ok.num_params, ok.num_columns) == (2, 2)
        rest = [raw.recv() for _ in range(4 if deprecate_eof else 6)]
        assert [s for s, _ in rest] == list(range(2, 2 + len(rest)))
        eofs = [d for _, d in rest if d[0] == 0xFE and len(d) < 9]
        assert len(eofs) == (0 if deprecate_eof else 2)
        raw.send(codec.encode_payload(m.ComQuery("SELECT 1/0"), caps), 0)
        packets = [raw.recv() for _ in range(4 if deprecate_eof else 5)]
        assert [s for s, _ in packets] == list(range(1, len(packets) + 1))
        end = codec.decode_end_of_rows(packets[-1][1], caps)
        assert end.warnings == 1
        raw.send(bytes([Command.COM_PING]), 0)
        assert raw.recv()[0] == 1
    finally:
        raw.close()


# -- MY-08: sequence ids through the CLI and mysql-connector --


def test_mysql_cli_300_rows(mysql_proxy: MysqlProxy) -> None:
    result = mysql_proxy.mariadb("-N", "-e", "SELECT seq FROM seq_1_to_300")
    assert result.stdout.split() == [str(i) for i in range(1, 301)]


def test_mysql_connector_prepared_1000_rows(mysql_proxy: MysqlProxy) -> None:
    conn = _connector(mysql_proxy)
    try:
        cur = conn.cursor(prepared=True)  # type: ignore[attr-defined]
        cur.execute("SELECT seq FROM seq_1_to_1000 WHERE seq > ?", (0,))
        assert [r[0] for r in cur.fetchall()] == list(range(1, 1001))
        cur.close()
    finally:
        conn.close()  # type: ignore[attr-defined]


# -- MY-09: mysql-connector's stored_results --


def test_mysql_connector_callproc_stored_results(mysql_open_proxy: MysqlProxy) -> None:
    conn = _connector(mysql_open_proxy)
    try:
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.callproc("p", (1,))
        results = [r.fetchall() for r in cur.stored_results()]
        assert results[:2] == [[(1,)], [(2,)]]
        cur.execute("SELECT 'after'")
        assert cur.fetchall() == [("after",)]
    finally:
        conn.close()  # type: ignore[attr-defined]


# -- MY-14: 1000 prepare/close cycles with max_prepared_stmt_count=100 --


def test_mysql_1000_prepare_close_cycles_under_limit_100(
    mysql_proxy: MysqlProxy,
) -> None:
    server = mysql_proxy.server

    def count() -> int:
        out = server.sql("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
        return int(out.split()[1])

    before = count()
    old = server.sql("SELECT @@GLOBAL.max_prepared_stmt_count").split()[-1]
    server.sql("SET GLOBAL max_prepared_stmt_count = 100")
    try:
        conn = _connector(mysql_proxy)
        try:
            for i in range(1000):
                cur = conn.cursor(prepared=True)  # type: ignore[attr-defined]
                cur.execute("SELECT ? + 1", (i,))
                assert cur.fetchall() == [(i + 1,)]
                cur.close()
            assert count() <= before + 1
        finally:
            conn.close()  # type: ignore[attr-defined]
        # A connection that leaves without closing its statements frees them too.
        conn = _connector(mysql_proxy)
        for i in range(20):
            cur = conn.cursor(prepared=True)  # type: ignore[attr-defined]
            cur.execute("SELECT ?", (i,))
            cur.fetchall()
        conn.close()  # type: ignore[attr-defined]
    finally:
        server.sql(f"SET GLOBAL max_prepared_stmt_count = {int(old)}")
    assert count() <= before


# -- MY-19: pamwire never reads a local file itself --


def test_mysql_local_infile_file_is_never_read_by_pamwire(
    mysql_open_proxy: MysqlProxy,
) -> None:
    # The file exists where pamwire runs; a raw client that answers the
    # server's file request with an empty transfer must load nothing.
    secret = mysql_open_proxy.workdir / f"pamwire_only_{uuid.uuid4().hex[:8]}.csv"
    secret.write_text("77,secret\n")
    server = mysql_open_proxy.server
    server.sql("CREATE TABLE IF NOT EXISTS ld (a INT, b TEXT)", database="app")
    server.sql("DELETE FROM ld WHERE a = 77", database="app")
    raw = Raw(mysql_open_proxy.port)
    try:
        greeting = _greeting(raw)
        caps = (greeting.capabilities & 0xFFFFFFFF) | int(
            m.Capability.CLIENT_LOCAL_FILES
        )
        token = auth.native_password_scramble(PERSON_PASSWORD, greeting.scramble)
        raw.send(_response(greeting, auth.NATIVE_PASSWORD, token, caps), 1)
        assert raw.recv()[1][0] == 0
        query = (
            f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE ld FIELDS TERMINATED BY ','"
        )
        raw.send(bytes([Command.COM_QUERY]) + query.encode(), 0)
        seq, data = raw.recv()
        assert seq == 1 and data[0] == 0xFB and data[1:] == str(secret).encode()
        raw.send(b"", 2)  # the client sends no file
        seq, data = raw.recv()
        assert seq == 3 and data[0] in (0x00, 0xFF)
        raw.send(bytes([Command.COM_PING]), 0)
        assert raw.recv()[0] == 1
    finally:
        raw.close()
    out = server.sql("SELECT COUNT(*) FROM ld WHERE a = 77", database="app")
    assert out.split()[-1] == "0"


def test_mysql_cli_local_infile_off_keeps_session(
    mysql_open_proxy: MysqlProxy,
) -> None:
    path = mysql_open_proxy.workdir / "ld-off.csv"
    path.write_text("5,e\n")
    script = (
        "CREATE TABLE IF NOT EXISTS ld (a INT, b TEXT);\n"
        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE ld FIELDS TERMINATED BY ',';\n"
    )
    result = mysql_open_proxy.mariadb(
        "--local-infile=0", "-N", input=script, check=False
    )
    assert result.returncode != 0 and "ERROR" in result.stderr
    after = mysql_open_proxy.mariadb(
        "--local-infile=0",
        "-N",
        "--force",
        input=script + "SELECT 'after';\n",
        check=False,
    )
    assert "after" in after.stdout


# -- MY-21: payloads of 16 MiB and more --


def test_mysql_query_of_exactly_0xffffff_bytes(mysql_open_proxy: MysqlProxy) -> None:
    conn = _connect(mysql_open_proxy, max_allowed_packet=BIG)
    try:
        with conn.cursor() as cur:
            text = "x" * 16777205
            query = "select '" + text + "'"
            assert len(query) + 1 == 0xFFFFFF
            cur.execute(query)
            assert cur.fetchone() == (text,)
            cur.execute("SELECT LENGTH(REPEAT('x', 16777212)), 1")
            assert cur.fetchone() == (16777212, 1)
            cur.execute("SELECT REPEAT('x', 16777212)")
            assert len(cur.fetchone()[0]) == 16777212
            cur.execute("SELECT REPEAT('y', 40 * 1024 * 1024)")
            assert len(cur.fetchone()[0]) == 40 * 1024 * 1024
            cur.execute("SELECT 'after'")
            assert cur.fetchone() == ("after",)
    finally:
        conn.close()


def test_mysql_cli_row_of_exactly_0xffffff_bytes(mysql_open_proxy: MysqlProxy) -> None:
    result = mysql_open_proxy.mariadb(
        "--max-allowed-packet=256M", "-N", "-e", "SELECT REPEAT('x', 16777211)"
    )
    assert len(result.stdout) == 16777212


def test_mysql_big_text_insert_and_prepared_insert(
    mysql_open_proxy: MysqlProxy,
) -> None:
    conn = _connect(mysql_open_proxy, max_allowed_packet=BIG, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS big (id INT PRIMARY KEY, v LONGBLOB)"
            )
            cur.execute("REPLACE INTO big (id, v) VALUES (2, %s)", (b"a" * 40_000_000,))
            cur.execute("SELECT LENGTH(v) FROM big WHERE id = 2")
            assert cur.fetchone() == (40_000_000,)
    finally:
        conn.close()
    value = bytes(range(256)) * (20_000_000 // 256)
    connector = _connector(mysql_open_proxy)
    try:
        cur = connector.cursor(prepared=True)  # type: ignore[attr-defined]
        cur.execute("REPLACE INTO big (id, v) VALUES (?, ?)", (3, value))
        cur.execute(
            "SELECT LENGTH(v), MD5(v) = MD5(?) FROM big WHERE id = ?", (value, 3)
        )
        assert cur.fetchall() == [(len(value), 1)]
        connector.commit()  # type: ignore[attr-defined]
        cur.close()
    finally:
        connector.close()  # type: ignore[attr-defined]
