"""TLS through pamwire's MySQL listener and toward MariaDB 10.11 with ssl on.

One pamwire with a tls = require listener (certificates made for the run); its
target `app` is a MariaDB started with the same certificate and is reached with
verify-full against the run's CA. `plain_require` points at the shared MariaDB,
which has no TLS, to see require fail.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator

import pymysql
import pytest

from pamwire.localserver import free_port
from pamwire.mariadbcluster import MariaDBServer
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.packets import frame
from tests.integration.pamwire_process import PamwireProcess
from tests.integration.test_mysql_session import Raw, _greeting
from tests.mysql.conftest import APP_PASSWORD, require_mariadb
from tests.tlsfiles import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration

PERSON, PASSWORD = "alice", "alice-pw"
UPSTREAM_TLS = (
    "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
    "WHERE VARIABLE_NAME = 'SSL_VERSION'"
)

CONFIG = """\
[[listener]]
protocol = "mysql"
port = {port}
login_timeout = 5
tls = "require"
tls_cert_file = "{files}/server.pem"
tls_key_file = "{files}/server.key"

[target.app]
protocol = "mysql"
host = "127.0.0.1"
port = {tls_db}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
tls = "verify-full"
tls_ca_file = "{files}/ca.pem"

[target.plain_require]
protocol = "mysql"
host = "127.0.0.1"
port = {plain_db}
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

    def mariadb(
        self, *options: str, database: str = "app"
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port)]
        cmd += ["-u", PERSON, f"-p{PASSWORD}", "--batch", "--skip-column-names"]
        cmd += [*options, database, "-e", UPSTREAM_TLS]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, env=self.env
        )

    def pymysql(self, **extra: object) -> pymysql.connections.Connection:
        args: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": PERSON,
            "password": PASSWORD,
            "database": "app",
            "ssl_ca": str(self.files.ca),
            "ssl_verify_identity": True,
        }
        args.update(extra)
        return pymysql.connect(**args)


@pytest.fixture(scope="module")
def tls_files() -> Iterator[TlsFiles]:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="pamwire-mysql-tls-files-"))
    try:
        yield make_tls_files(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_db(tls_files: TlsFiles) -> Iterator[MariaDBServer]:
    """A MariaDB 10.11 serving TLS with the run's certificate."""
    require_mariadb()
    base = pathlib.Path(tempfile.mkdtemp(prefix="pamwire-mysql-tls-"))
    base.chmod(0o755)
    server = MariaDBServer(base, port=free_port(), root_password="root-tls-pw")
    try:
        server.init()
        server.use_tls(tls_files.cert, tls_files.key)
        server.start()
        server.create_database("app")
        server.create_user("app", APP_PASSWORD, grant_database="app")
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_proxy(
    tls_db: MariaDBServer, tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsProxy]:
    plain = _plain_server()
    workdir = tmp_path_factory.mktemp("pamwire-mysql-tls")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
    env["PAMWIRE_TEST_APP_PASSWORD"] = APP_PASSWORD
    proxy = TlsProxy(workdir, free_port(), env)
    proxy.files = tls_files
    proxy.config.write_text(
        CONFIG.format(
            port=proxy.port,
            files=tls_files.ca.parent,
            tls_db=tls_db.port,
            plain_db=plain.port,
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


def _plain_server() -> MariaDBServer:
    """The run's shared MariaDB (no TLS), as the mysql_server fixture gives it."""
    from tests.integration import mysql_conftest

    if "server" not in mysql_conftest._shared:
        mysql_conftest._shared["server"] = mysql_conftest._start_server()
    server: MariaDBServer = mysql_conftest._shared["server"]
    return server


# -- the client leg --


def test_mysql_tls_cli_verifying_pamwire_certificate(tls_proxy: TlsProxy) -> None:
    result = tls_proxy.mariadb(
        "--ssl", f"--ssl-ca={tls_proxy.files.ca}", "--ssl-verify-server-cert"
    )
    assert result.returncode == 0, result.stderr
    # The server's own view of pamwire's connection: TLS upstream too.
    assert result.stdout.strip().startswith("TLSv1"), result.stdout


def test_mysql_tls_cli_plain_ssl(tls_proxy: TlsProxy) -> None:
    result = tls_proxy.mariadb("--ssl")
    assert result.returncode == 0, result.stderr


def test_mysql_tls_require_listener_refuses_plaintext_cli(tls_proxy: TlsProxy) -> None:
    result = tls_proxy.mariadb("--ssl=0")
    assert result.returncode != 0
    assert "ERROR 3159" in result.stderr and "requires TLS" in result.stderr


def test_mysql_tls_pymysql_verify_identity(tls_proxy: TlsProxy) -> None:
    conn = tls_proxy.pymysql()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT %s + 1", (41,))
            assert cur.fetchone() == (42,)
            cur.execute(UPSTREAM_TLS)
            assert str(cur.fetchone()[0]).startswith("TLSv1")
    finally:
        conn.close()


def test_mysql_tls_require_refuses_plaintext_pymysql(tls_proxy: TlsProxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as caught:
        tls_proxy.pymysql(ssl_disabled=True, ssl_ca=None, ssl_verify_identity=None)
    assert caught.value.args[0] == 3159


def test_mysql_tls_hello_in_the_same_read_as_the_ssl_request(
    tls_proxy: TlsProxy,
) -> None:
    # A client starts TLS without waiting; its hello often arrives glued to the
    # SSL request and must reach the TLS engine, not the packet reader.
    raw = Raw(tls_proxy.port)
    try:
        greeting = _greeting(raw)
        assert greeting.capabilities & codec.SSL
        flags = (greeting.capabilities & 0xFFFFFFFF) | codec.SSL
        request = codec.encode_payload(m.SSLRequest(flags, 1 << 24, 45), flags)
        context = ssl.create_default_context(cafile=str(tls_proxy.files.ca))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        raw.sock.sendall(frame(request, 1) + outgoing.read())
        for _ in range(10):
            data = raw.sock.recv(1 << 16)
            assert data, "pamwire closed the connection during the handshake"
            incoming.write(data)
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sock.sendall(outgoing.read())
        assert tls.version() is not None
    finally:
        raw.close()


def test_mysql_tls_garbage_handshake_leaves_other_sessions_working(
    tls_proxy: TlsProxy,
) -> None:
    held = tls_proxy.pymysql()
    try:
        for junk in (b"\x16\x03\x01\x00\x05hello", b"not tls at all\r\n", b""):
            raw = Raw(tls_proxy.port)
            try:
                greeting = _greeting(raw)
                flags = (greeting.capabilities & 0xFFFFFFFF) | codec.SSL
                request = m.SSLRequest(flags, 1 << 24, 45)
                raw.sock.sendall(frame(codec.encode_payload(request, flags), 1) + junk)
                raw.sock.settimeout(6)
                try:
                    while raw.sock.recv(4096):
                        pass
                except (TimeoutError, ConnectionResetError):
                    pass
            finally:
                raw.close()
        with held.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        held.close()
    assert tls_proxy.mariadb("--ssl").returncode == 0
    assert tls_proxy.process is not None and tls_proxy.process.poll() is None


# -- the upstream leg --


def test_mysql_tls_upstream_require_refuses_a_server_without_tls(
    tls_proxy: TlsProxy,
) -> None:
    result = tls_proxy.mariadb("--ssl", database="plain_require")
    assert result.returncode != 0
    assert "does not offer tls" in result.stderr, result.stderr
