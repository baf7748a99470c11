"""MySQL sessions through pamwire against MariaDB, recorded and replayed as the
person saw them (PyMySQL, mysql-connector-python's prepared statements and the
mariadb command-line client)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import mysql.connector
import pymysql
import pytest

from tests.integration.mysql_conftest import (
    PERSON,
    MysqlProxy,
    mysql_proxy,
    mysql_server,
)

__all__ = ["mysql_proxy", "mysql_server"]

pytestmark = pytest.mark.integration


def _session_of(proxy: MysqlProxy, marker: str) -> str:
    events = proxy.wait_for_event(lambda e: marker in str(e.get("statement")))
    return str(next(e["session"] for e in events if marker in str(e.get("statement"))))


def _replay(proxy: MysqlProxy, session: str, last: str, *args: str) -> str:
    """The replay once the session has ended and `last` shows in it."""
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        result = proxy.pamwire("session", "replay", session, *args)
        assert result.returncode == 0, result.stderr
        text = result.stdout
        if (
            last in text
            and "session end" in proxy.pamwire("session", "replay", session).stdout
        ):
            return text
        time.sleep(0.3)
    return text


def test_mysql_replay_pymysql_rows_multi_statements_prepare_denial_error(
    mysql_proxy: MysqlProxy,
) -> None:
    marker = uuid.uuid4().hex[:12]
    conn = pymysql.connect(
        **mysql_proxy.connect_args(
            client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS
        )
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT id, a, b FROM t WHERE id <= 3 ORDER BY id /* {marker} */"
            )
            cur.execute("SELECT 1 AS one; UPDATE t SET b = b WHERE id = 1")
            while cur.nextset():
                pass
            cur.execute("PREPARE s FROM 'SELECT a FROM t WHERE id = ?'")
            cur.execute("SET @x = 2")
            cur.execute("EXECUTE s USING @x")
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cur.execute("DELETE FROM t")
            assert denied.value.args[0] == 1142
            with pytest.raises(pymysql.err.ProgrammingError):
                cur.execute(f"SELECT * FROM no_such_{marker}")
    finally:
        conn.close()

    session = _session_of(mysql_proxy, marker)
    listed = mysql_proxy.pamwire("session", "list", "--user", PERSON)
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith(session))
    assert " app " in line

    replay = _replay(mysql_proxy, session, f"no_such_{marker}")
    expected_table = (
        "+----+-------+------+\n"
        "| id | a     | b    |\n"
        "+----+-------+------+\n"
        "|  1 | row 1 |   10 |\n"
        "|  2 | row 2 |   20 |\n"
        "|  3 | row 3 |   30 |\n"
        "+----+-------+------+\n"
        "3 rows in set ("
    )
    assert expected_table in replay, replay
    assert "app> SELECT 1 AS one\n+-----+\n| one |\n+-----+\n|   1 |\n" in replay
    assert "app> UPDATE t SET b = b WHERE id = 1\nQuery OK, 0 rows affected (" in replay
    assert "Rows matched: 1  Changed: 0  Warnings: 0" in replay
    assert "Statement prepared" in replay
    assert "app> EXECUTE s USING @x\n+-------+\n| a     |\n" in replay
    assert "| row 2 |\n+-------+\n1 row in set (" in replay
    assert "denied by rule no-unscoped-delete" in replay
    assert (
        "app> DELETE FROM t\nERROR 1142 (42000): pamwire: statement denied by rule "
        '"no-unscoped-delete"'
    ) in replay
    assert f"ERROR 1146 (42S02): Table 'app.no_such_{marker}' doesn't exist" in replay

    as_json = json.loads(_replay(mysql_proxy, session, "no_such", "--format", "json"))
    results = [s["result"] for s in as_json["steps"] if s.get("result")]
    assert any(
        r["rows"] == [["1", "row 1", "10"], ["2", "row 2", "20"], ["3", "row 3", "30"]]
        for r in results
    )


def test_mysql_replay_binary_protocol_prepared_statement(
    mysql_proxy: MysqlProxy,
) -> None:
    marker = uuid.uuid4().hex[:12]
    conn: Any = mysql.connector.connect(
        **mysql_proxy.connect_args(ssl_disabled=True, use_pure=True)
    )
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(
            f"SELECT id, name, n, at FROM d WHERE id >= ? /* {marker} */ ORDER BY id",
            (1,),
        )
        assert len(cur.fetchall()) == 2
        cur.close()
    finally:
        conn.close()

    session = _session_of(mysql_proxy, marker)
    replay = _replay(mysql_proxy, session, "2 rows in set")
    assert "via prepare" in replay and "Statement prepared (1 parameter)" in replay
    assert "via execute" in replay
    # Binary-protocol values read as the text protocol writes them.
    assert "|  1 | alice |    1 | 2024-01-02 03:04:05.678 |" in replay
    assert "|  2 | bob   | NULL | NULL                    |" in replay


def test_mysql_replay_matches_the_mariadb_client(mysql_proxy: MysqlProxy) -> None:
    marker = uuid.uuid4().hex[:12]
    query = f"SELECT id, a, b, NULL AS z FROM t WHERE id IN (1, 10) /* {marker} */"
    shown = mysql_proxy.mariadb("-t", "-e", query).stdout
    script = f"use app\n{query};\nSELECT * FROM no_such_{marker};\n"
    result = mysql_proxy.mariadb("-t", "--force", input=script, check=False)
    assert f"no_such_{marker}" in result.stderr

    events = mysql_proxy.wait_for_event(
        lambda e: f"no_such_{marker}" in str(e.get("statement"))
    )
    session = next(
        str(e["session"])
        for e in events
        if f"no_such_{marker}" in str(e.get("statement"))
    )
    replay = _replay(mysql_proxy, session, f"no_such_{marker}")
    # The table is exactly the one the client printed for the same query.
    assert shown.strip() + "\n2 rows in set (" in replay
    assert "via init_db\napp> USE app\nDatabase changed" in replay
    assert f"ERROR 1146 (42S02): Table 'app.no_such_{marker}' doesn't exist" in replay
