"""pamwire killed (SIGKILL) during a grant and restarted after its end cleans up.

A real `pamwire serve` with a PostgreSQL and a MySQL listener gives targets on the
session's PostgreSQL and MariaDB short grants. The person connects through
pamwire; the test also opens a direct session as each minted account (its
password decrypted from the grants file, as pamwire does), which neither the
server's own expiry (VALID UNTIL, the lock event) nor pamwire's death ends. Then
pamwire is killed with SIGKILL, the grants end while it is down, and its restart
must drop the accounts, end those sessions and record the cleanup in the trail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest

from pamwire.grants.cli import open_service
from pamwire.localserver import free_port
from pamwire.mariadbcluster import MariaDBServer, quote_identifier, quote_string
from pamwire.pgcluster import PostgresCluster, quote_ident, quote_literal
from tests.conftest import SUPERUSER_PASSWORD
from tests.integration.mysql_conftest import mysql_server  # noqa: F401
from tests.integration.pamwire_process import PamwireProcess
from tests.mysql.conftest import APP_PASSWORD, ROOT_PASSWORD

pytestmark = pytest.mark.integration

PERSON = "alice"
PERSON_PASSWORD = "alice-pw"
APPROVER = "bob"
DURATION = 6.0

CONFIG = """\
[[listener]]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_listen}
login_timeout = 5

[[listener]]
protocol = "mysql"
host = "127.0.0.1"
port = {my_listen}
login_timeout = 5

[audit]
path = "audit.db"

[users]
path = "users.db"

[rules]
files = ["pack:baseline"]

[grants]
path = "grants.db"
key_file = "grants.key"
account_prefix = "{prefix}"

[target.pgapp]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 5

[target.pgapp.grants]
roles = {{ "read-only" = "ro" }}
approvers = ["{approver}"]
reason_required = false
admin.user = "postgres"
admin.password_env = "PAMWIRE_TEST_PG_ADMIN_PASSWORD"

[target.myapp]
protocol = "mysql"
host = "127.0.0.1"
port = {my_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 5

[target.myapp.grants]
roles = {{ "read-only" = "{my_role}" }}
approvers = ["{approver}"]
reason_required = false
admin.user = "root"
admin.password_env = "PAMWIRE_TEST_MY_ADMIN_PASSWORD"
"""


class GrantingPamwire(PamwireProcess):
    """pamwire with both listeners; `port` is the PostgreSQL one."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        super().__init__(workdir, free_port(), env)
        self.mysql_port = free_port()

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.mysql_port), 0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"no mysql listener: {self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def kill_hard(self) -> None:
        """SIGKILL: no shutdown code of pamwire runs."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def grant(self, *args: str) -> str:
        result = self.pamwire("grant", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def setup(
    pg: PostgresCluster,
    mysql_server: MariaDBServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[GrantingPamwire, PostgresCluster, MariaDBServer, str]]:
    prefix = f"pk{secrets.token_hex(3)}_"
    my_role = f"{prefix}ro"
    mysql_server.sql(
        f"CREATE ROLE {quote_identifier(my_role)};"
        f" GRANT SELECT ON app.* TO {quote_identifier(my_role)};"
    )
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    env["PAMWIRE_TEST_APP_PASSWORD"] = APP_PASSWORD
    env["PAMWIRE_TEST_PG_ADMIN_PASSWORD"] = SUPERUSER_PASSWORD
    env["PAMWIRE_TEST_MY_ADMIN_PASSWORD"] = ROOT_PASSWORD
    for name in ("PG_ADMIN", "MY_ADMIN"):
        key = f"PAMWIRE_TEST_{name}_PASSWORD"
        monkeypatch.setenv(key, env[key])  # for approvals made by the test itself
    proxy = GrantingPamwire(tmp_path, env)
    proxy.config.write_text(
        CONFIG.format(
            pg_listen=proxy.port,
            my_listen=proxy.mysql_port,
            prefix=prefix,
            pg_port=pg.port,
            my_port=mysql_server.port,
            my_role=my_role,
            approver=APPROVER,
        )
    )
    added = proxy.pamwire(
        "user", "add", PERSON, "--password-stdin", input=PERSON_PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    proxy.start()
    try:
        yield proxy, pg, mysql_server, prefix
    finally:
        proxy.stop()
        for name in pg_roles_like(pg, prefix):
            pg.psql(
                f"DROP OWNED BY {quote_ident(name)}; DROP ROLE {quote_ident(name)}",
                database="app",
            )
        for user in maria_users_like(mysql_server, prefix):
            mysql_server.sql(f"DROP USER {quote_string(user)}@'%'")
        mysql_server.sql(f"DROP ROLE IF EXISTS {quote_identifier(my_role)}")


def pg_roles_like(pg: PostgresCluster, prefix: str) -> list[str]:
    out = pg.psql(
        "SELECT rolname FROM pg_roles"
        f" WHERE starts_with(rolname, {quote_literal(prefix)})"
    )
    return out.split()


def pg_backends(pg: PostgresCluster, account: str) -> int:
    out = pg.psql(
        "SELECT count(*) FROM pg_stat_activity"
        f" WHERE usename = {quote_literal(account)}"
    )
    return int(out.strip())


def maria_users_like(server: MariaDBServer, prefix: str) -> list[str]:
    out = server.sql(
        "SELECT User FROM mysql.user WHERE is_role = 'N'"
        f" AND LEFT(User, {len(prefix)}) = {quote_string(prefix)}"
    )
    return out.split()


def maria_connections(server: MariaDBServer, account: str) -> int:
    out = server.sql(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
        f" WHERE USER = {quote_string(account)}"
    )
    return int(out.strip())


def request(proxy: GrantingPamwire, target: str) -> int:
    out = proxy.grant(
        "request", target, "--duration", f"{DURATION:.0f}s", "--as", PERSON
    )
    found = re.search(r"grant (\d+)", out)
    assert found, out
    return int(found.group(1))


def approve_both(proxy: GrantingPamwire, grant_ids: list[int]) -> list[dict[str, Any]]:
    """Approve in this process, as `pamwire grant approve` does, so that starting
    a command per approval does not eat into the short grants."""
    service = open_service(proxy.config)
    try:
        for grant_id in grant_ids:
            service.approve(grant_id, APPROVER)
    finally:
        service.close()
    shown = [
        json.loads(proxy.grant("show", str(grant_id), "--format", "json"))
        for grant_id in grant_ids
    ]
    assert all(s["state"] == "approved" for s in shown), shown
    return shown


def stored_passwords(config: Path, grant_ids: list[int]) -> dict[int, str]:
    """Each grant's account password, decrypted from the grants file with its key."""
    service = open_service(config)
    try:
        out: dict[int, str] = {}
        for grant_id in grant_ids:
            grant = service.show(grant_id).grant
            out[grant_id] = service.credential(grant).password
        return out
    finally:
        service.close()


def pg_direct(pg: PostgresCluster, user: str, password: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host="127.0.0.1",
        port=pg.port,
        dbname="app",
        user=user,
        password=password,
        sslmode="disable",
        connect_timeout=5,
        autocommit=True,
    )


def maria_direct(server: MariaDBServer, user: str, password: str) -> Any:
    return pymysql.connect(
        host="127.0.0.1",
        port=server.port,
        user=user,
        password=password,
        database="app",
        connect_timeout=5,
    )


def maria_query(conn: Any, sql: str) -> list[Any]:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def test_grants_crash_restart_after_expiry_cleans_up(
    setup: tuple[GrantingPamwire, PostgresCluster, MariaDBServer, str],
) -> None:
    proxy, pg, maria, prefix = setup
    requested = [request(proxy, "pgapp"), request(proxy, "myapp")]
    pg_grant, my_grant = approve_both(proxy, requested)
    pg_account, my_account = pg_grant["account"], my_grant["account"]
    assert pg_account.startswith(prefix) and my_account.startswith(prefix)

    # The person, through pamwire, as the minted accounts.
    person_pg = psycopg.connect(
        host="127.0.0.1",
        port=proxy.port,
        dbname="pgapp",
        user=PERSON,
        password=PERSON_PASSWORD,
        sslmode="disable",
        autocommit=True,
    )
    assert person_pg.execute("SELECT current_user").fetchone() == (pg_account,)
    person_my = pymysql.connect(
        host="127.0.0.1",
        port=proxy.mysql_port,
        user=PERSON,
        password=PERSON_PASSWORD,
        database="myapp",
    )
    [(current,)] = maria_query(person_my, "SELECT CURRENT_USER()")
    assert current == f"{my_account}@%"

    # Sessions that outlive pamwire: direct, with the stored passwords.
    passwords = stored_passwords(proxy.config, [pg_grant["id"], my_grant["id"]])
    pg_password, my_password = passwords[pg_grant["id"]], passwords[my_grant["id"]]
    direct_pg = pg_direct(pg, pg_account, pg_password)
    direct_my = maria_direct(maria, my_account, my_password)

    proxy.kill_hard()
    ends = max(pg_grant["expires_at"], my_grant["expires_at"])
    time.sleep(max(0.0, ends - time.time()) + 1.0)

    # Nobody cleaned up meanwhile: the accounts and the direct sessions are there.
    assert pg_roles_like(pg, prefix) == [pg_account]
    assert maria_users_like(maria, prefix) == [my_account]
    assert direct_pg.execute("SELECT 1").fetchone() == (1,)
    assert maria_query(direct_my, "SELECT 1") == [(1,)]

    proxy.start()  # catch_up runs before the listeners open

    assert pg_roles_like(pg, prefix) == []
    assert pg_backends(pg, pg_account) == 0
    with pytest.raises(psycopg.OperationalError):
        direct_pg.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError):
        pg_direct(pg, pg_account, pg_password)

    assert maria_users_like(maria, prefix) == []
    assert maria_connections(maria, my_account) == 0
    with pytest.raises(pymysql.MySQLError):
        maria_query(direct_my, "SELECT 1")
    with pytest.raises(pymysql.MySQLError):
        maria_direct(maria, my_account, my_password)

    for grant, account in ((pg_grant, pg_account), (my_grant, my_account)):
        shown = json.loads(proxy.grant("show", str(grant["id"]), "--format", "json"))
        assert shown["state"] == "expired"
        assert shown["account_state"] == "removed"
        events = proxy.log_events("--grant", str(grant["id"]))
        steps = [e.get("operation") for e in events if e.get("kind") == "grant"]
        assert steps[-2:] == ["expired", "account_removed"], steps
        assert all(e.get("db_account") == account for e in events[-2:])

    for conn in (person_pg, direct_pg):
        conn.close()
    for conn in (person_my, direct_my):
        with contextlib.suppress(pymysql.MySQLError):  # already gone
            conn.close()


def test_grants_cli_revoke_mid_query_tells_the_mysql_client(
    setup: tuple[GrantingPamwire, PostgresCluster, MariaDBServer, str],
) -> None:
    # The CLI kills the account's connections at once; the session must still
    # answer its client with the grant's end, not just drop the connection.
    proxy, _, server, prefix = setup
    grant_id = request(proxy, "myapp")
    approve_both(proxy, [grant_id])
    conn = pymysql.connect(
        host="127.0.0.1",
        port=proxy.mysql_port,
        user=PERSON,
        password=PERSON_PASSWORD,
        database="myapp",
        connect_timeout=5,
    )
    outcome: dict[str, Any] = {}

    def long_query() -> None:
        try:
            with conn.cursor() as cur:
                # A long read: MariaDB's sequence engine, joined with itself.
                cur.execute("SELECT COUNT(*) FROM seq_1_to_100000 a, seq_1_to_100000 b")
                outcome["result"] = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            outcome["error"] = exc

    import threading

    thread = threading.Thread(target=long_query)
    thread.start()
    time.sleep(0.7)
    proxy.grant("revoke", str(grant_id), "--as", APPROVER, "--reason", "test")
    thread.join(15)
    error = outcome.get("error")
    assert error is not None, outcome
    assert error.args[0] == 1927, error.args
    assert f"grant {grant_id} has ended" in error.args[1]
    with contextlib.suppress(Exception):
        conn.close()
    assert not maria_users_like(server, prefix)
