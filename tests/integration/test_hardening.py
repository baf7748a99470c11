"""What a security review found, kept fixed: audit on shutdown, one instance per
store, login limits, search_path through the extended protocol, undecodable text."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from pamwire.pgcluster import PostgresCluster
from tests.integration import rawpg
from tests.integration.conftest import PERSON, PERSON_PASSWORD, Proxy, _start_proxy

pytestmark = pytest.mark.integration


@pytest.fixture
def own_proxy(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    """A pamwire of the test's own, which the test may stop and start."""
    packs = ["pack:baseline", "pack:sensitive-data"]
    proxy = _start_proxy(pg, pg_md5, tmp_path_factory.mktemp("pamwire-own"), packs)
    try:
        yield proxy
    finally:
        proxy.stop()


def test_statement_event_survives_an_immediate_sigterm(own_proxy: Proxy) -> None:
    marker = f"select 'sigterm-{time.time_ns()}'"
    own_proxy.psql("-c", marker)
    own_proxy.stop()  # SIGTERM right after the statement
    events = own_proxy.log_events()
    assert [e["statement"] for e in events].count(marker) == 1
    verified = own_proxy.pamwire("log", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_second_instance_on_the_same_store_is_refused(own_proxy: Proxy) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pamwire", "serve", "--config", str(own_proxy.config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=own_proxy.env,
    )
    assert result.returncode == 2
    assert "in use by another pamwire process" in result.stderr
    assert "Traceback" not in result.stderr
    # The running instance still works and still has its journal.
    assert own_proxy.psql("-At", "-c", "select 1").stdout.strip() == "1"


def test_undecodable_bytes_are_denied_and_audited_and_restart_works(
    own_proxy: Proxy,
) -> None:
    with rawpg.connect(own_proxy.port, PERSON, PERSON_PASSWORD, "app") as conn:
        body = b"SELECT '\xff' AS bad\x00"
        replies = conn.query(b"Q" + struct.pack("!I", len(body) + 4) + body)
        assert any(e.code == "42501" for e in rawpg.errors(replies))
    own_proxy.stop()
    own_proxy.start()
    events = own_proxy.log_events("--verdict", "deny")
    assert any("AS bad" in str(e["statement"]) for e in events)
    assert own_proxy.psql("-At", "-c", "select 2").stdout.strip() == "2"


def test_silent_client_is_dropped_after_the_login_timeout(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as sock:
        started = time.monotonic()
        data = sock.recv(1024)  # nothing sent: pamwire gives up after 5 s
        assert time.monotonic() - started < 12
        assert data == b"" or data.startswith(b"E")


def test_large_message_before_login_is_refused_without_reading_it(proxy: Proxy) -> None:
    with rawpg.RawConn(proxy.port) as conn:
        conn.send(rawpg.startup({"user": PERSON, "database": "app"}))
        conn.read_until("R")
        conn.send(b"p" + struct.pack("!I", 1 << 30))  # declares a 1 GiB SASL message
        closing = conn.expect_closed(timeout=5)
        assert any(getattr(msg, "code", "") == "08P01" for msg in closing), closing


def test_search_path_set_through_the_extended_protocol_is_followed(
    proxy: Proxy,
) -> None:
    with psycopg.connect(proxy.dsn(), autocommit=True) as conn:
        conn.execute("SET search_path = hr, public", prepare=True)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM salaries", prepare=True)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT set_config('search_path', %s, false)", ["hr"])


def test_prepared_statement_is_decided_again_after_search_path_grows(
    proxy: Proxy,
) -> None:
    script = (
        "PREPARE p AS SELECT count(*) FROM salaries;\n"
        "SET search_path = hr, public;\n"
        "EXECUTE p;\n"
    )
    result = proxy.psql("-v", "ON_ERROR_STOP=0", input=script, check=False)
    # PREPARE fails on the server (no public.salaries); if it had existed, EXECUTE
    # would now read hr.salaries, so pamwire must refuse the EXECUTE either way.
    assert "denied-tables" in result.stderr


@pytest.mark.parametrize("encoding", ["SJIS", "GBK", "BIG5"])
def test_unsafe_client_encoding_is_refused_at_startup(
    proxy: Proxy, encoding: str
) -> None:
    env = dict(proxy.env, PGCLIENTENCODING=encoding)
    result = subprocess.run(
        ["psql", "-X", proxy.dsn(), "-c", "select 1"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode != 0
    assert "is not supported" in result.stderr


def test_unsafe_client_encoding_cannot_be_set_in_a_session(proxy: Proxy) -> None:
    # The review's bypass: SJIS turns bytes 81 5c into one character, so the server
    # would see a DELETE where pamwire saw one string.
    with rawpg.connect(proxy.port, PERSON, PERSON_PASSWORD, "app") as conn:
        replies = conn.query(rawpg.Q("SET client_encoding = 'SJIS'"))
        assert any(e.code == "42501" for e in rawpg.errors(replies))
        body = b"SELECT E'\xc3\x81\x5c' AS harmless; DELETE FROM delete_log; --'\x00"
        replies = conn.query(b"Q" + struct.pack("!I", len(body) + 4) + body)
        assert not any(
            e.message.startswith("pamwire") for e in rawpg.errors(replies)
        ), rawpg.errors(replies)


def test_pipelined_statement_waits_for_a_settings_change(proxy: Proxy) -> None:
    # With standard_conforming_strings off the server reads backslashes in plain
    # strings as escapes; a message pipelined behind the SET must be decided with
    # the new setting, so pamwire holds it until the server has answered the SET.
    with rawpg.connect(proxy.port, PERSON, PERSON_PASSWORD, "app") as conn:
        conn.send(
            rawpg.Q("SET standard_conforming_strings = off")
            + rawpg.Q("SELECT 'a\\' AS x")
        )
        replies = conn.read_until("Z", count=2)
        denials = [e for e in rawpg.errors(replies) if e.code == "42501"]
        assert denials, replies


def test_settings_change_through_the_extended_protocol_is_refused(proxy: Proxy) -> None:
    with (
        psycopg.connect(proxy.dsn(), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SET standard_conforming_strings = off", prepare=True)


def test_copy_after_a_settings_change_in_one_query_does_not_hang(proxy: Proxy) -> None:
    proxy.pg.psql(
        "create table if not exists copy_settle(a text)", database="app", user="app"
    )
    result = proxy.psql(
        "-c",
        "SET standard_conforming_strings = on; COPY copy_settle FROM STDIN",
        input="x\n\\.\n",
    )
    assert "COPY 1" in result.stdout
