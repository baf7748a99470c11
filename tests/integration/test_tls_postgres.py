"""TLS through pamwire's PostgreSQL listener and toward PostgreSQL 15 with ssl on.

One pamwire serves two listeners, tls = require (first) and tls = allow, with
certificates made for the run. Its target `app` is a cluster started with ssl on
and is reached with verify-full against the run's CA; other targets point at the
shared plaintext cluster, to see prefer go on and require fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from pamwire.localserver import free_port
from pamwire.pgcluster import PostgresCluster
from tests.conftest import APP_PASSWORD, TEST_SETTINGS, make_cluster_dir
from tests.integration import rawpg
from tests.integration.pamwire_process import PamwireProcess
from tests.integration.rawpg import GSSREQ, SSLREQ, Q
from tests.tlsfiles import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration

PERSON, PASSWORD = "alice", "alice-pw"
SSL_IN_USE = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"

CONFIG = """\
[[listener]]
protocol = "postgres"
port = {port}
login_timeout = 5
tls = "require"
tls_cert_file = "tls/server.pem"
tls_key_file = "tls/server.key"

[[listener]]
protocol = "postgres"
port = {allow_port}
login_timeout = 5
tls = "allow"
tls_cert_file = "tls/server.pem"
tls_key_file = "tls/server.key"

[target.app]
protocol = "postgres"
host = "127.0.0.1"
port = {tls_pg}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
tls = "verify-full"
tls_ca_file = "tls/ca.pem"

[target.wrongname]
protocol = "postgres"
host = "127.0.0.1"
port = {tls_pg}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
tls = "verify-full"
tls_ca_file = "tls/ca.pem"
tls_server_name = "db.example"

[target.plain_prefer]
protocol = "postgres"
host = "127.0.0.1"
port = {plain_pg}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
tls = "prefer"

[target.plain_require]
protocol = "postgres"
host = "127.0.0.1"
port = {plain_pg}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
tls = "require"

[audit]
path = "audit.db"

[users]
path = "users.db"

[rules]
files = ["allow-all.toml"]
"""


class TlsProxy(PamwireProcess):
    files: TlsFiles
    allow_port: int

    def dsn(self, sslmode: str, *, port: int | None = None, db: str = "app") -> str:
        return (
            f"host=127.0.0.1 port={port or self.port} dbname={db} user={PERSON} "
            f"password={PASSWORD} sslmode={sslmode} sslrootcert={self.files.ca}"
        )

    def psql(self, dsn: str, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
        )

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.files.ca))


@pytest.fixture(scope="module")
def tls_pg() -> Iterator[PostgresCluster]:
    """A PostgreSQL 15 cluster serving TLS with the run's certificate."""
    base = make_cluster_dir("pamwire-pg-tls-")
    files = make_tls_files(base.with_name(base.name + "-files"))
    cluster = PostgresCluster(
        base, port=free_port(), superuser_password="su-pw", settings=TEST_SETTINGS
    )
    try:
        cluster.init()
        cluster.use_tls(files.cert, files.key)
        cluster.start()
        cluster.create_role("app", APP_PASSWORD)
        cluster.create_database("app", owner="app")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(files.ca.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_proxy(
    tls_pg: PostgresCluster,
    pg: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TlsProxy]:
    workdir = tmp_path_factory.mktemp("pamwire-tls")
    env = dict(os.environ, PAMWIRE_TEST_APP_PASSWORD=APP_PASSWORD)
    env.pop("PGSSLMODE", None)
    proxy = TlsProxy(workdir, free_port(), env)
    # The run's server and CA files: the same certificate as the cluster's.
    cluster_files = Path(str(tls_pg.base_dir) + "-files")
    shutil.copytree(cluster_files, workdir / "tls")
    proxy.files = TlsFiles(
        ca=workdir / "tls" / "ca.pem",
        cert=workdir / "tls" / "server.pem",
        key=workdir / "tls" / "server.key",
        other_key=workdir / "tls" / "other.key",
    )
    proxy.allow_port = free_port()
    proxy.config.write_text(
        CONFIG.format(
            port=proxy.port,
            allow_port=proxy.allow_port,
            tls_pg=tls_pg.port,
            plain_pg=pg.port,
        )
    )
    (workdir / "allow-all.toml").write_text("# no rules\n")
    added = proxy.pamwire("user", "add", PERSON, "--password-stdin", input=PASSWORD)
    assert added.returncode == 0, added.stderr
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _tls_conn(proxy: TlsProxy) -> rawpg.RawConn:
    """A raw connection that asked for TLS and got it."""
    conn = rawpg.RawConn(proxy.port)
    conn.send(SSLREQ)
    assert conn.recv_exact(1) == b"S"
    conn.sock = proxy.client_context().wrap_socket(
        conn.sock, server_hostname="127.0.0.1"
    )
    return conn


# -- the client leg --


def test_pg_tls_psql_sslmode_require_reaches_the_server_over_tls(
    tls_proxy: TlsProxy,
) -> None:
    result = tls_proxy.psql(tls_proxy.dsn("require"), SSL_IN_USE)
    # pg_stat_ssl is the server's view: pamwire's upstream leg is TLS too.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t"


def test_pg_tls_psql_verify_full_accepts_pamwire_certificate(
    tls_proxy: TlsProxy,
) -> None:
    result = tls_proxy.psql(tls_proxy.dsn("verify-full"), "select 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_pg_tls_require_listener_refuses_plaintext_psql(tls_proxy: TlsProxy) -> None:
    result = tls_proxy.psql(tls_proxy.dsn("disable"), "select 1")
    assert result.returncode != 0
    assert "requires TLS" in result.stderr


def test_pg_tls_require_refusal_comes_before_any_password(
    tls_proxy: TlsProxy,
) -> None:
    with rawpg.RawConn(tls_proxy.port) as conn:
        conn.send(rawpg.startup({"user": PERSON, "database": "app"}))
        received = conn.expect_closed()
    errors = rawpg.errors(received)
    assert len(errors) == 1 and errors[0].code == "28000"
    assert not rawpg.of_type(received, "R"), "an authentication request was sent"


def test_pg_tls_allow_listener_serves_both(tls_proxy: TlsProxy) -> None:
    for mode, expected in (("disable", "1"), ("require", "1")):
        result = tls_proxy.psql(
            tls_proxy.dsn(mode, port=tls_proxy.allow_port), "select 1"
        )
        assert result.returncode == 0, (mode, result.stderr)
        assert result.stdout.strip() == expected


def test_pg_tls_psycopg_sslmode_require(tls_proxy: TlsProxy) -> None:
    with psycopg.connect(tls_proxy.dsn("require")) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 41 + 1").fetchone() == (42,)


def test_pg_tls_asyncpg_with_ssl_context(tls_proxy: TlsProxy) -> None:
    async def run() -> object:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=tls_proxy.port,
            user=PERSON,
            password=PASSWORD,
            database="app",
            ssl=tls_proxy.client_context(),
        )
        try:
            return await conn.fetchval("select $1::int + 1", 41)
        finally:
            await conn.close()

    assert asyncio.run(run()) == 42


def test_pg_tls_raw_login_over_tls_and_gssenc_still_refused(
    tls_proxy: TlsProxy,
) -> None:
    with rawpg.RawConn(tls_proxy.port) as conn:
        conn.send(GSSREQ)
        assert conn.recv_exact(1) == b"N"
        conn.send(SSLREQ)
        assert conn.recv_exact(1) == b"S"
        conn.sock = tls_proxy.client_context().wrap_socket(
            conn.sock, server_hostname="127.0.0.1"
        )
        assert conn.login(PERSON, PASSWORD, "app").status == b"I"
        assert rawpg.rows(conn.query(Q("select 1"))) == [("1",)]


def test_pg_tls_bytes_after_ssl_request_are_refused(tls_proxy: TlsProxy) -> None:
    # CVE-2021-23214: a startup packet sent along with the SSLRequest would be
    # read as if it had come through TLS. pamwire refuses before answering.
    with rawpg.RawConn(tls_proxy.port) as conn:
        conn.send(SSLREQ + rawpg.startup({"user": PERSON, "database": "app"}))
        first = conn.recv_exact(1)
        assert first == b"E", first
        conn.reader.feed(first)
        received = conn.expect_closed()
    errors = rawpg.errors(received)
    assert errors and "before it was asked for" in errors[0].message


def test_pg_tls_second_ssl_request_inside_tls_is_fatal(tls_proxy: TlsProxy) -> None:
    with _tls_conn(tls_proxy) as conn:
        conn.send(SSLREQ)
        received = conn.expect_closed()
    errors = rawpg.errors(received)
    assert len(errors) == 1 and "1234.5679" in errors[0].message


def test_pg_tls_garbage_and_aborted_handshakes_leave_other_sessions_working(
    tls_proxy: TlsProxy,
) -> None:
    with psycopg.connect(tls_proxy.dsn("require")) as held:
        for junk in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.0\r\n\r\n", b""):
            with socket.create_connection(("127.0.0.1", tls_proxy.port), 5) as sock:
                sock.sendall(SSLREQ)
                assert sock.recv(1) == b"S"
                if junk:
                    sock.sendall(junk)
                    sock.settimeout(5)
                    try:
                        while sock.recv(4096):
                            pass
                    except (ConnectionResetError, TimeoutError):
                        pass
        assert held.execute("select 1").fetchone() == (1,)
    result = tls_proxy.psql(tls_proxy.dsn("verify-full"), "select 2")
    assert result.stdout.strip() == "2", result.stderr
    assert tls_proxy.process is not None and tls_proxy.process.poll() is None


def test_pg_tls_client_that_stalls_in_the_handshake_is_cut_at_login_timeout(
    tls_proxy: TlsProxy,
) -> None:
    with socket.create_connection(("127.0.0.1", tls_proxy.port), 10) as sock:
        sock.sendall(SSLREQ)
        assert sock.recv(1) == b"S"
        sock.settimeout(10)
        assert sock.recv(4096) == b""  # closed after login_timeout (5 s)


# -- the upstream leg --


def test_pg_tls_upstream_verify_full_checks_the_name(tls_proxy: TlsProxy) -> None:
    result = tls_proxy.psql(tls_proxy.dsn("require", db="wrongname"), "select 1")
    assert result.returncode != 0
    assert "tls handshake failed" in result.stderr, result.stderr


def test_pg_tls_upstream_prefer_goes_on_without_server_tls(
    tls_proxy: TlsProxy,
) -> None:
    result = tls_proxy.psql(tls_proxy.dsn("require", db="plain_prefer"), SSL_IN_USE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "f"


def test_pg_tls_upstream_require_refuses_a_server_without_tls(
    tls_proxy: TlsProxy,
) -> None:
    result = tls_proxy.psql(tls_proxy.dsn("require", db="plain_require"), "select 1")
    assert result.returncode != 0
    assert "server does not accept tls" in result.stderr, result.stderr
