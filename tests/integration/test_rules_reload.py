"""SIGHUP reloads the rule files: new statements and prepared ones follow at once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import mysql.connector
import psycopg
import pytest

from pamwire.pgcluster import PostgresCluster
from tests.integration.conftest import Proxy, _start_proxy
from tests.integration.mysql_conftest import MysqlProxy, mysql_server
from tests.integration.mysql_conftest import _start_proxy as _start_mysql_proxy

__all__ = ["mysql_server"]

pytestmark = pytest.mark.integration

ALLOW_ALL = "# no rules yet\n"
DENY_T = """\
[[rule]]
id = "no-t"
description = "table t is closed"
action = "deny"
message = "table t is closed for now"
when.tables = ["*t"]
"""


def _reload(proxy: Proxy | MysqlProxy, outcome: str) -> dict[str, object]:
    assert proxy.process is not None
    before = len([e for e in proxy.log_events() if e["kind"] == "rules_reload"])
    os.kill(proxy.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reloads = [e for e in proxy.log_events() if e["kind"] == "rules_reload"]
        if len(reloads) > before:
            assert reloads[-1]["operation"] == outcome, reloads[-1]
            return reloads[-1]
        time.sleep(0.1)
    raise AssertionError("no rules_reload event after SIGHUP")


@pytest.fixture
def reload_proxy(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("pamwire-reload")
    (workdir / "live.toml").write_text(ALLOW_ALL)
    proxy = _start_proxy(pg, pg_md5, workdir, ["live.toml"])
    try:
        yield proxy
    finally:
        proxy.stop()


def test_rules_reload_applies_to_new_and_prepared_statements(
    reload_proxy: Proxy,
) -> None:
    rules = reload_proxy.workdir / "live.toml"
    with psycopg.connect(reload_proxy.dsn(), autocommit=True) as conn:
        query = "SELECT count(*) FROM t WHERE id > %s"
        assert conn.execute(query, (0,), prepare=True).fetchone() == (10,)

        rules.write_text(DENY_T)
        event = _reload(reload_proxy, "loaded")
        assert "1 rules; live.toml:" in str(event["detail"])

        # The statement psycopg prepared before the reload is decided again.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-t"):
            conn.execute(query, (0,), prepare=True)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-t"):
            conn.execute("SELECT 1 FROM t")
        assert conn.execute("SELECT 2").fetchone() == (2,)

        # A file that does not load leaves the rules as they were.
        rules.write_text("[[rule]\nbroken")
        event = _reload(reload_proxy, "failed")
        assert "previous rules stay" in str(event["detail"])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-t"):
            conn.execute("SELECT 1 FROM t")

        # A file emptied (caught half-written) keeps the rules in force too.
        rules.write_text("")
        event = _reload(reload_proxy, "failed")
        assert "no longer holds any rule" in str(event["detail"])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-t"):
            conn.execute("SELECT 1 FROM t")

        rules.write_text(DENY_T.replace('"*t"', '"*.nothing_here"'))
        _reload(reload_proxy, "loaded")
        assert conn.execute(query, (0,), prepare=True).fetchone() == (10,)
    assert reload_proxy.process is not None and reload_proxy.process.poll() is None


def test_rules_reload_decides_mysql_prepared_statements_again(
    mysql_server: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rules = tmp_path_factory.mktemp("mysql-reload") / "live.toml"
    rules.write_text(ALLOW_ALL)
    proxy = _start_mysql_proxy(mysql_server, [str(rules)])  # type: ignore[arg-type]
    conn = mysql.connector.connect(
        **proxy.connect_args(), use_pure=True, ssl_disabled=True
    )
    try:
        cur = conn.cursor(prepared=True)
        sql = "SELECT count(*) FROM t WHERE id > ?"
        cur.execute(sql, (0,))
        assert cur.fetchall()[0][0] > 0
        rules.write_text(DENY_T)
        _reload(proxy, "loaded")
        with pytest.raises(mysql.connector.Error, match="no-t"):
            cur.execute(sql, (0,))
        cur.close()
    finally:
        conn.close()
        proxy.stop()
