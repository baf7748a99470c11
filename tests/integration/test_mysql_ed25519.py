"""pamwire logging in upstream as a MariaDB account IDENTIFIED VIA ed25519."""

from __future__ import annotations

import base64

import pymysql
import pytest
import trio

from pamwire.mariadbcluster import MariaDBServer
from pamwire.mysql import codec, ed25519
from pamwire.server import mysql_upstream
from pamwire.server.credentials import UpstreamCredential
from tests.integration.mysql_conftest import (
    ED25519_PASSWORD,
    ED25519_USER,
    MysqlProxy,
    mysql_proxy,
    mysql_server,
)
from tests.mysql.conftest import APP_DATABASE

__all__ = ["mysql_proxy", "mysql_server"]

pytestmark = pytest.mark.integration


def _install_ed25519(server: MariaDBServer) -> None:
    """Load auth_ed25519 and create the ed25519 account once per server."""
    loaded = server.sql(
        "SELECT COUNT(*) FROM information_schema.plugins WHERE plugin_name = 'ed25519'"
    )
    if loaded.strip() == "0":
        server.sql("INSTALL SONAME 'auth_ed25519'")
    # The plugin's function that computes a password's public key, as a UDF.
    server.sql(
        "CREATE FUNCTION IF NOT EXISTS ed25519_password "
        "RETURNS STRING SONAME 'auth_ed25519.so'"
    )
    exists = server.sql(
        f"SELECT COUNT(*) FROM mysql.user WHERE user = '{ED25519_USER}'"
    )
    if exists.strip() == "0":
        server.create_user(
            ED25519_USER,
            ED25519_PASSWORD,
            plugin="ed25519",
            grant_database=APP_DATABASE,
        )


@pytest.fixture
def ed25519_server(mysql_server: MariaDBServer) -> MariaDBServer:
    _install_ed25519(mysql_server)
    return mysql_server


@pytest.mark.parametrize("password", ["x", "", ED25519_PASSWORD, "a" * 32, "ü" * 100])
def test_mysql_ed25519_public_key_matches_mariadb(
    ed25519_server: MariaDBServer, password: str
) -> None:
    # ed25519_password() is the plugin's base64 of the public key, unpadded.
    quoted = password.replace("'", "''")
    theirs = ed25519_server.sql(f"SELECT ed25519_password('{quoted}')").strip()
    ours = base64.b64encode(ed25519.public_key(password.encode())).rstrip(b"=")
    assert theirs == ours.decode()


def _connect(server: MariaDBServer, password: str) -> mysql_upstream.UpstreamConnection:
    async def main() -> mysql_upstream.UpstreamConnection:
        conn = await mysql_upstream.connect(
            "127.0.0.1",
            server.port,
            database=APP_DATABASE,
            credential=UpstreamCredential(ED25519_USER, password),
            capabilities=codec.SUPPORTED_CAPABILITIES,
            character_set=45,
            max_packet_size=1 << 24,
            connect_attrs=None,
            timeout=10,
        )
        rows, error, _ = await mysql_upstream.query_rows(conn, "SELECT CURRENT_USER()")
        assert error is None and rows == [(b"app_ed@127.0.0.1",)]
        await mysql_upstream.close_with_quit(conn, conn.capabilities)
        return conn

    return trio.run(main)


def test_mysql_ed25519_upstream_login_follows_auth_switch(
    ed25519_server: MariaDBServer,
) -> None:
    # Several logins: each has a fresh 32-byte nonce, which may hold NULs.
    for _ in range(5):
        _connect(ed25519_server, ED25519_PASSWORD)


def test_mysql_ed25519_upstream_wrong_password_is_refused(
    ed25519_server: MariaDBServer,
) -> None:
    with pytest.raises(mysql_upstream.UpstreamRefused) as caught:
        _connect(ed25519_server, ED25519_PASSWORD + "!")
    assert caught.value.error.error_code == 1045


def test_mysql_ed25519_target_through_pamwire(
    ed25519_server: MariaDBServer, mysql_proxy: MysqlProxy
) -> None:
    conn = pymysql.connect(**mysql_proxy.connect_args(database="app_ed25519"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), COUNT(*) FROM t")
            assert cur.fetchone() == ("app_ed@127.0.0.1", 10)
    finally:
        conn.close()
