"""No password typed in a statement reaches any byte pamwire stores or logs.

Statements that carry passwords run (allowed) through pamwire on both protocols,
including ones whose result or error could echo the secret; then every file in the
proxies' folders (audit store and its WAL, journal segments, head file, logs,
recordings, persons) is read whole and searched for each password.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pymysql
import pytest

from tests.integration.conftest import Proxy
from tests.integration.mysql_conftest import MysqlProxy, mysql_open_proxy, mysql_server

__all__ = ["mysql_open_proxy", "mysql_server"]

pytestmark = pytest.mark.integration

PG_SECRETS = ("S3cret-pg-role-one", "S3cret-pg-role-two", "S3cret-pg-unparsed")
MY_SECRETS = ("S3cret-my-create", "S3cret-my-set", "S3cret-my-alter", "S3cret-my-echo")


def _files_holding(folder: Path, secrets: tuple[str, ...]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for secret in secrets:
            for form in (secret.encode(), secret.encode().hex().encode()):
                if form in data:
                    found.append(f"{path.name}: {secret}")
    return found


def test_no_secret_stored_postgres(open_proxy: Proxy) -> None:
    one, two, unparsed = PG_SECRETS
    # The test account may not create roles: the server refuses, after pamwire
    # has logged (and recorded) the statement, which is what is checked here.
    for sql in (
        f"CREATE ROLE pw_probe LOGIN PASSWORD '{one}'",
        f"ALTER ROLE pw_probe PASSWORD '{two}' VALID UNTIL 'infinity'",
        # Unparsable: refused by pamwire, its text cut after the word password.
        f"ALTER ROLE pw_probe PASSWORD '{unparsed}' BOGUS",
    ):
        open_proxy.psql("-c", sql, check=False)
    time.sleep(1.0)  # the store copier's next group
    assert _files_holding(open_proxy.workdir, PG_SECRETS) == []
    events = open_proxy.log_events("--text", "pw_probe")
    assert len(events) >= 3 and all(
        "<redacted>" in (e["statement"] or "")
        for e in events
        if "PASSWORD" in (e["statement"] or "")
    )


def test_no_secret_stored_mysql(mysql_open_proxy: MysqlProxy) -> None:
    create, set_, alter, echo = MY_SECRETS
    conn = pymysql.connect(**mysql_open_proxy.connect_args(), autocommit=True)
    try:
        with conn.cursor() as cur:
            # The test account may not manage users: the server refuses these
            # after pamwire logged them, which is what is checked here.
            for sql in (
                f"CREATE USER 'pw_probe'@'%' IDENTIFIED BY '{create}'",
                f"SET PASSWORD FOR 'pw_probe'@'%' = PASSWORD('{set_}')",
                f"ALTER USER 'pw_probe'@'%' IDENTIFIED BY '{alter}'",
            ):
                with contextlib.suppress(pymysql.err.MySQLError):
                    cur.execute(sql)
            # The server names this column by its expression, secret included.
            cur.execute(f"SELECT PASSWORD('{echo}')")
            assert cur.fetchall()
    finally:
        conn.close()
    time.sleep(1.0)
    assert _files_holding(mysql_open_proxy.workdir, MY_SECRETS) == []
