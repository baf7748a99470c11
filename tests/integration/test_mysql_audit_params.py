"""COM_STMT_EXECUTE parameters in the trail: redacted by default, values per target."""

from __future__ import annotations

import datetime

import mysql.connector
import pytest

from tests.integration.mysql_conftest import MysqlProxy, mysql_proxy, mysql_server

__all__ = ["mysql_proxy", "mysql_server"]

pytestmark = pytest.mark.integration


def _execute(
    proxy: MysqlProxy, target: str, sql: str, args: tuple[object, ...]
) -> None:
    conn = mysql.connector.connect(
        **proxy.connect_args(database=target), use_pure=True, ssl_disabled=True
    )
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(sql, args)
        cur.fetchall()
        cur.close()
    finally:
        conn.close()


def _params(proxy: MysqlProxy, target: str, marker: str) -> list[object]:
    events = proxy.wait_for_event(lambda e: marker in (e["statement"] or ""))
    return [
        e["params"]
        for e in events
        if e["target"] == target
        and marker in (e["statement"] or "")
        and e["operation"] == "execute"
    ]


def test_mysql_params_are_redacted_by_default(mysql_proxy: MysqlProxy) -> None:
    _execute(mysql_proxy, "app", "SELECT ?, ?, 'mp1'", (42, None))
    assert _params(mysql_proxy, "app", "mp1") == [["?", None]]


def test_mysql_params_values_by_bound_type(mysql_proxy: MysqlProxy) -> None:
    when = datetime.datetime(2026, 12, 4, 10, 30, 5)
    _execute(
        mysql_proxy,
        "app_values",
        "SELECT ?, ?, ?, ?, ?, 'mp2'",
        (42, -7, 2.5, "héllo", when),
    )
    assert _params(mysql_proxy, "app_values", "mp2") == [
        ["42", "-7", "2.5", "héllo", "2026-12-04 10:30:05"]
    ]


def test_mysql_params_values_of_a_password_statement_stay_redacted(
    mysql_proxy: MysqlProxy,
) -> None:
    _execute(
        mysql_proxy,
        "app_values",
        "SELECT 'mp3', ? AS password",
        ("hunter2-mysql-secret",),
    )
    assert _params(mysql_proxy, "app_values", "mp3") == [["?"]]
    trail = mysql_proxy.pamwire("log", "search", "--format", "json")
    assert "hunter2-mysql-secret" not in trail.stdout
