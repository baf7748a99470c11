"""Logging in through pamwire's MySQL listener; queries, denials, audit events."""

from __future__ import annotations

import socket
import uuid

import mysql.connector
import pymysql
import pytest

from pamwire.mysql import auth, codec
from pamwire.mysql import messages as m
from pamwire.mysql.packets import PacketReader, frame, payload
from tests.integration.mysql_conftest import (
    PERSON,
    PERSON_PASSWORD,
    MysqlProxy,
    mysql_proxy,
    mysql_server,
)

__all__ = ["mysql_proxy", "mysql_server"]

pytestmark = pytest.mark.integration


def _connect(proxy: MysqlProxy, **extra: object) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(**proxy.connect_args(**extra))


class Raw:
    """A blocking socket speaking MySQL packets to pamwire."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.reader = PacketReader()
        self.pending: list[tuple[int, bytes]] = []

    def recv(self) -> tuple[int, bytes]:
        while not self.pending:
            block, packets = self.reader.read_packets()
            if packets:
                self.pending = [
                    (p.sequence_id, bytes(payload(block, p))) for p in packets
                ]
                break
            data = self.sock.recv(1 << 16)
            assert data, "pamwire closed the connection"
            self.reader.feed(data)
        return self.pending.pop(0)

    def send(self, data: bytes, seq: int) -> None:
        self.sock.sendall(frame(data, seq))

    def close(self) -> None:
        self.sock.close()


def _response(
    handshake: m.HandshakeV10, plugin: str, token: bytes, caps: int | None = None
) -> bytes:
    flags = caps if caps is not None else handshake.capabilities & 0xFFFFFFFF
    response = m.HandshakeResponse41(
        capability_flags=flags | codec.CONNECT_WITH_DB,
        max_packet_size=1 << 24,
        character_set=45,
        username=PERSON,
        auth_response=token,
        database="app",
        auth_plugin_name=plugin,
    )
    return codec.encode_payload(response, flags | codec.CONNECT_WITH_DB)


def _greeting(raw: Raw) -> m.HandshakeV10:
    seq, data = raw.recv()
    assert seq == 0
    greeting = codec.decode_handshake(data)
    assert isinstance(greeting, m.HandshakeV10)
    return greeting


# -- login --


def test_mysql_login_pymysql_native_and_query(mysql_proxy: MysqlProxy) -> None:
    conn = _connect(mysql_proxy)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, a FROM t WHERE id <= 2 ORDER BY id")
            assert cur.fetchall() == ((1, "row 1"), (2, "row 2"))
            cur.execute("SELECT DATABASE(), CURRENT_USER()")
            assert cur.fetchone() == ("app", "app@127.0.0.1")
    finally:
        conn.close()


def test_mysql_handshake_offers_no_tls_nor_compression(mysql_proxy: MysqlProxy) -> None:
    raw = Raw(mysql_proxy.port)
    try:
        greeting = _greeting(raw)
        caps = greeting.capabilities
        assert not caps & codec.SSL
        assert not caps & int(m.Capability.CLIENT_COMPRESS)
        assert caps & codec.PROTOCOL_41 and caps & codec.PLUGIN_AUTH
        assert greeting.auth_plugin_name == auth.CACHING_SHA2_PASSWORD
        assert "MariaDB" in greeting.server_version
        assert greeting.connection_id > 1_000_000
    finally:
        raw.close()


@pytest.mark.parametrize("plugin", [auth.NATIVE_PASSWORD, auth.CACHING_SHA2_PASSWORD])
def test_mysql_login_raw_either_plugin(mysql_proxy: MysqlProxy, plugin: str) -> None:
    raw = Raw(mysql_proxy.port)
    try:
        greeting = _greeting(raw)
        token = auth.auth_response(plugin, PERSON_PASSWORD, greeting.scramble)
        raw.send(_response(greeting, plugin, token), 1)
        seq, data = raw.recv()
        if plugin == auth.CACHING_SHA2_PASSWORD:
            assert (seq, data) == (2, b"\x01\x03")  # fast authentication success
            seq, data = raw.recv()
        assert data[0] == 0x00, data
        assert seq == (3 if plugin == auth.CACHING_SHA2_PASSWORD else 2)
    finally:
        raw.close()


def test_mysql_login_auth_switch_for_other_plugin(mysql_proxy: MysqlProxy) -> None:
    raw = Raw(mysql_proxy.port)
    try:
        greeting = _greeting(raw)
        raw.send(_response(greeting, "client_ed25519", b"x" * 64), 1)
        seq, data = raw.recv()
        switch = codec.decode_auth_reply(data, codec.PROTOCOL_41)
        assert seq == 2 and isinstance(switch, m.AuthSwitchRequest)
        assert switch.plugin_name == auth.CACHING_SHA2_PASSWORD
        nonce = auth.plugin_nonce(switch.plugin_data)
        raw.send(auth.caching_sha2_scramble(PERSON_PASSWORD, nonce), 3)
        assert raw.recv() == (4, b"\x01\x03")
        seq, data = raw.recv()
        assert seq == 5 and data[0] == 0x00
    finally:
        raw.close()


def test_mysql_login_wrong_password_is_1045(mysql_proxy: MysqlProxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as caught:
        _connect(mysql_proxy, password="wrong")
    code, message = caught.value.args
    assert code == 1045
    assert (
        message
        == f"Access denied for user '{PERSON}'@'127.0.0.1' (using password: YES)"
    )


def test_mysql_login_unknown_person_fails_alike(mysql_proxy: MysqlProxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as caught:
        _connect(mysql_proxy, user="mallory")
    assert caught.value.args[0] == 1045


def test_mysql_login_unknown_target(mysql_proxy: MysqlProxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as caught:
        _connect(mysql_proxy, database="nowhere")
    code, message = caught.value.args
    assert code == 1049 and "nowhere" in message


def test_mysql_login_target_down(mysql_proxy: MysqlProxy) -> None:
    with pytest.raises(pymysql.err.MySQLError) as caught:
        _connect(mysql_proxy, database="down")
    assert "target 'down' is unavailable" in str(caught.value)


def test_mysql_upstream_refusal_is_forwarded(mysql_proxy: MysqlProxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as caught:
        _connect(mysql_proxy, database="wrongpw")
    code, message = caught.value.args
    assert code == 1045 and "'app'@'127.0.0.1'" in message


def test_mysql_tls_request_is_refused_clearly(mysql_proxy: MysqlProxy) -> None:
    raw = Raw(mysql_proxy.port)
    try:
        greeting = _greeting(raw)
        flags = (greeting.capabilities & 0xFFFFFFFF) | codec.SSL
        request = m.SSLRequest(flags, 1 << 24, 45)
        raw.send(codec.encode_payload(request, flags), 1)
        seq, data = raw.recv()
        error = codec.decode_err(data, codec.PROTOCOL_41)
        assert seq == 2 and "TLS is not enabled" in error.error_message
    finally:
        raw.close()


def test_mysql_connector_caching_sha2_and_prepared(mysql_proxy: MysqlProxy) -> None:
    conn = mysql.connector.connect(
        **mysql_proxy.connect_args(),
        use_pure=True,
        auth_plugin="caching_sha2_password",
        ssl_disabled=True,
    )
    try:
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT id, a FROM t WHERE id = %s", (4,))
        assert cur.fetchall() == [(4, "row 4")]
        cur.execute("SELECT id FROM t WHERE id > %s ORDER BY id", (8,))
        assert cur.fetchall() == [(9,), (10,)]
        cur.close()
    finally:
        conn.close()


def test_mysql_connector_native_password(mysql_proxy: MysqlProxy) -> None:
    conn = mysql.connector.connect(
        **mysql_proxy.connect_args(),
        use_pure=True,
        auth_plugin="mysql_native_password",
        ssl_disabled=True,
    )
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
    finally:
        conn.close()


# -- denials and the audit trail --


def test_mysql_denial_names_rule_and_session_stays_usable(
    mysql_proxy: MysqlProxy,
) -> None:
    conn = _connect(mysql_proxy)
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as caught:
                cur.execute("DELETE FROM t")
            code, message = caught.value.args
            assert code == 1142
            assert 'rule "no-unscoped-delete"' in message
            cur.execute("SELECT COUNT(*) FROM t")
            assert cur.fetchone() == (10,)
    finally:
        conn.close()


def test_mysql_denied_multi_statement_runs_nothing(mysql_proxy: MysqlProxy) -> None:
    marker = uuid.uuid4().hex[:12]
    conn = _connect(mysql_proxy, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as caught:
                cur.execute(
                    f"UPDATE d SET name = '{marker}' WHERE id = 2; DELETE FROM t"
                )
            assert caught.value.args[0] == 1142
            cur.execute("SELECT COUNT(*) FROM d WHERE name = %s", (marker,))
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


def test_mysql_audit_events(mysql_proxy: MysqlProxy) -> None:
    marker = uuid.uuid4().hex[:12]
    conn = _connect(mysql_proxy)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT '{marker}' AS m")
            with pytest.raises(pymysql.err.OperationalError):
                cur.execute(f"DELETE FROM gone_{marker}")
    finally:
        conn.close()

    def mine(event: dict[str, object]) -> bool:
        return (
            marker in str(event.get("statement")) and event.get("outcome") is not None
        )

    events = mysql_proxy.wait_for_event(
        lambda e: mine(e) and e.get("verdict") == "allow"
    )
    found = [e for e in events if marker in str(e.get("statement"))]
    assert {e["verdict"] for e in found} == {"allow", "deny"}
    for event in found:
        assert event["protocol"] == "mysql"
        assert event["user"] == PERSON and event["target"] == "app"
        assert event["db_account"] == "app"
    denied = next(e for e in found if e["verdict"] == "deny")
    assert denied["rule"] == "no-unscoped-delete"
    assert denied["outcome"] == "skipped"
    allowed = next(e for e in found if e["verdict"] == "allow")
    assert allowed["outcome"] == "ok" and allowed["rows"] == 1
    kinds = {e["kind"] for e in events if e.get("session") == found[0]["session"]}
    assert {"session_start", "statement"} <= kinds


def test_mysql_cli_batch_and_denial(mysql_proxy: MysqlProxy) -> None:
    result = mysql_proxy.mariadb("-N", "-e", "SELECT a FROM t WHERE id = 7")
    assert result.stdout.strip() == "row 7"
    denied = mysql_proxy.mariadb("-e", "UPDATE t SET b = 0", check=False)
    assert denied.returncode == 1
    assert "ERROR 1142 (42000)" in denied.stderr
    assert 'rule "no-unscoped-update"' in denied.stderr
