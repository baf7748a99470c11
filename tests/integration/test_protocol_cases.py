"""The PostgreSQL cases of the protocol corpus (PG-NN), as raw-socket tests of pamwire.

Each test is named after its case. Where the corpus asks for "the same result
directly and through pamwire", the same bytes are sent to the test cluster's own
port (role app, SCRAM) and the replies are compared by rawpg.shape: message types,
tags, rows, transaction status and SQLSTATEs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import struct
import subprocess
import time
from collections.abc import Callable, Iterator

import asyncpg
import psycopg
import pytest

from pamwire.pg import messages as m
from pamwire.pg.codec import encode
from pamwire.pgcluster import PostgresCluster
from tests.conftest import APP_PASSWORD, APP_ROLE
from tests.integration import rawpg
from tests.integration.conftest import PERSON, PERSON_PASSWORD, TARGET, Proxy
from tests.integration.rawpg import GSSREQ, SSLREQ, B, C, D, E, H, P, Q, S

pytestmark = pytest.mark.integration


# -- helpers ---------------------------------------------------------------------------


def via_pamwire(proxy: Proxy, database: str = TARGET) -> rawpg.RawConn:
    return rawpg.connect(proxy.port, PERSON, PERSON_PASSWORD, database)


def direct(pg: PostgresCluster) -> rawpg.RawConn:
    return rawpg.connect(pg.port, APP_ROLE, APP_PASSWORD, TARGET)


@contextlib.contextmanager
def both(proxy: Proxy) -> Iterator[tuple[rawpg.RawConn, rawpg.RawConn]]:
    """A session through pamwire and one straight to the server."""
    with via_pamwire(proxy) as through, direct(proxy.pg) as straight:
        yield through, straight


def same_on_both(
    proxy: Proxy, data: bytes, *, syncs: int = 1
) -> list[m.BackendMessage]:
    """Send data both ways, check the replies agree, return pamwire's."""
    with both(proxy) as (through, straight):
        got = through.query(data, syncs=syncs)
        want = straight.query(data, syncs=syncs)
    assert rawpg.shape(got) == rawpg.shape(want)
    return got


def app_sql(proxy: Proxy, sql: str) -> str:
    """Run sql in database app as the superuser, straight to the server."""
    return proxy.pg.psql(sql, database=TARGET).strip()


def nonce() -> str:
    return secrets.token_hex(4)


def events_where(
    proxy: Proxy, predicate: Callable[[dict[str, object]], bool], timeout: float = 5
) -> list[dict[str, object]]:
    return [e for e in proxy.wait_for_event(predicate, timeout) if predicate(e)]


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def active_queries(proxy: Proxy, marker: str) -> int:
    count = proxy.pg.psql(
        "select count(*) from pg_stat_activity "
        f"where query like '%{marker}%' and pid <> pg_backend_pid()"
    )
    return int(count.strip())


def expect_fatal_and_close(conn: rawpg.RawConn, timeout: float = 5) -> m.ErrorResponse:
    received = conn.expect_closed(timeout)
    errors = rawpg.errors(received)
    assert len(errors) == 1, received
    assert errors[0].severity == "FATAL"
    assert not rawpg.of_type(received, "Z")
    return errors[0]


def select_one_works(conn: rawpg.RawConn) -> None:
    got = conn.query(Q("select 1"))
    assert rawpg.rows(got) == [("1",)]
    assert got[-1] == m.ReadyForQuery(b"I")


# -- PG-01: SSLRequest -----------------------------------------------------------------


def test_pg01_ssl_request_is_answered_n(proxy: Proxy) -> None:
    with rawpg.RawConn(proxy.port) as conn:
        conn.send(SSLREQ)
        assert conn.recv_exact(1) == b"N"
        result = conn.login(PERSON, PERSON_PASSWORD, TARGET)
        assert result.status == b"I"
        select_one_works(conn)


def test_pg01_psql_sslmode_prefer_works_and_require_fails(proxy: Proxy) -> None:
    out = proxy.psql("-At", "-c", "select 1", dsn=proxy.dsn(sslmode="prefer"))
    assert out.stdout.strip() == "1"
    refused = proxy.psql(
        "-c", "select 1", dsn=proxy.dsn(sslmode="require"), check=False
    )
    assert refused.returncode != 0
    assert "server does not support SSL" in refused.stderr


def test_pg01_second_ssl_request_is_fatal_and_closes(proxy: Proxy) -> None:
    with rawpg.RawConn(proxy.port) as conn:
        conn.send(SSLREQ)
        assert conn.recv_exact(1) == b"N"
        conn.send(SSLREQ)
        error = expect_fatal_and_close(conn)
    assert "1234.5679" in error.message


def _second_ssl_request_error(port: int) -> m.ErrorResponse:
    with rawpg.RawConn(port) as conn:
        conn.send(SSLREQ)
        assert conn.recv_exact(1) == b"N"
        conn.send(SSLREQ)
        return expect_fatal_and_close(conn)


def test_pg01_direct_server_refuses_second_ssl_request_with_0a000(
    proxy: Proxy,
) -> None:
    assert _second_ssl_request_error(proxy.pg.port).code == "0A000"


def test_pg01_second_ssl_request_has_the_servers_sqlstate(proxy: Proxy) -> None:
    assert _second_ssl_request_error(proxy.port).code == "0A000"


# -- PG-03: GSSENCRequest --------------------------------------------------------------


def test_pg03_gssenc_request_is_answered_n_then_ssl_then_login(proxy: Proxy) -> None:
    with rawpg.RawConn(proxy.port) as conn:
        conn.send(GSSREQ)
        assert conn.recv_exact(1) == b"N"
        conn.send(SSLREQ)
        assert conn.recv_exact(1) == b"N"
        conn.login(PERSON, PERSON_PASSWORD, TARGET)
        select_one_works(conn)


def test_pg03_gssenc_request_then_startup_directly(proxy: Proxy) -> None:
    with rawpg.RawConn(proxy.port) as conn:
        conn.send(GSSREQ)
        assert conn.recv_exact(1) == b"N"
        # Exactly one byte: nothing else may follow the answer.
        assert conn.read_messages(0.3) == []
        conn.login(PERSON, PERSON_PASSWORD, TARGET)
        select_one_works(conn)


def test_pg03_second_gssenc_request_is_fatal_and_closes(proxy: Proxy) -> None:
    with rawpg.RawConn(proxy.port) as conn:
        conn.send(GSSREQ)
        assert conn.recv_exact(1) == b"N"
        conn.send(GSSREQ)
        expect_fatal_and_close(conn)


def test_pg03_direct_server_would_answer_g(proxy: Proxy) -> None:
    # Why pamwire must answer itself: forwarding would hand the client this 'G'.
    with rawpg.RawConn(proxy.pg.port) as conn:
        conn.send(GSSREQ)
        assert conn.recv_exact(1) in (b"G", b"N")


# -- PG-06: login failures reach the client at once ------------------------------------


def _login_error(
    port: int, user: str, password: str, database: str, *, auth_ok: bool = False
) -> m.ErrorResponse:
    """The ErrorResponse that ends a failed login; checks nothing else came after.

    PostgreSQL itself checks the database after AuthenticationOk (auth_ok=True);
    pamwire must never send AuthenticationOk for a login that then fails.
    """
    with rawpg.RawConn(port) as conn:
        with pytest.raises(rawpg.LoginFailed) as failed:
            conn.login(user, password, database)
        received = failed.value.received
        sent_ok = any(isinstance(x, m.AuthenticationOk) for x in received)
        assert sent_ok == auth_ok
        assert not rawpg.of_type(received, "Z")
        assert not rawpg.of_type(received, "K")
        # Both sides close after a FATAL login error.
        assert conn.expect_closed(5) == []
        return failed.value.error


def test_pg06_wrong_password_to_pamwire_fails_like_the_server(proxy: Proxy) -> None:
    started = time.monotonic()
    got = _login_error(proxy.port, PERSON, "wrong", TARGET)
    assert time.monotonic() - started < 3
    want = _login_error(proxy.pg.port, APP_ROLE, "wrong", TARGET)
    assert (got.severity, got.code) == (want.severity, want.code) == ("FATAL", "28P01")
    assert got.message == f'password authentication failed for user "{PERSON}"'
    assert want.message == f'password authentication failed for user "{APP_ROLE}"'


def test_pg06_upstream_refusal_is_forwarded_verbatim(proxy: Proxy) -> None:
    started = time.monotonic()
    got = _login_error(proxy.port, PERSON, PERSON_PASSWORD, "wrongpw")
    assert time.monotonic() - started < 3
    want = _login_error(proxy.pg.port, APP_ROLE, "not-the-password", TARGET)
    assert got.fields == want.fields


def test_pg06_unreachable_target_fails_fast(proxy: Proxy) -> None:
    started = time.monotonic()
    got = _login_error(proxy.port, PERSON, PERSON_PASSWORD, "down")
    assert time.monotonic() - started < 4
    assert got.severity == "FATAL"
    assert got.code.startswith("08")


def test_pg06_unknown_database_is_3d000(proxy: Proxy) -> None:
    got = _login_error(proxy.port, PERSON, PERSON_PASSWORD, "nope")
    want = _login_error(proxy.pg.port, APP_ROLE, APP_PASSWORD, "nope", auth_ok=True)
    assert (got.severity, got.code) == (want.severity, want.code) == ("FATAL", "3D000")


def test_pg06_asyncpg_wrong_password_within_one_second(proxy: Proxy) -> None:
    async def attempt() -> float:
        started = time.monotonic()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host="127.0.0.1",
                port=proxy.port,
                user=PERSON,
                password="wrong",
                database=TARGET,
                ssl=False,
                timeout=5,
            )
        return time.monotonic() - started

    assert asyncio.run(attempt()) < 1.0


# -- PG-10: one extended-query cycle stays intact --------------------------------------

_RELNAMES = "select relname from pg_class where relkind = $1 order by relname limit 3"
_CYCLE = [P("", _RELNAMES), B(params=[b"r"]), D(b"P"), E(), S]


def test_pg10_unnamed_statement_cycle_in_one_write(proxy: Proxy) -> None:
    got = same_on_both(proxy, b"".join(_CYCLE))
    assert rawpg.types(got) == "12TDDDCZ"


def test_pg10_unnamed_statement_cycle_in_five_writes(proxy: Proxy) -> None:
    results = []
    with both(proxy) as sessions:
        for conn in sessions:
            for piece in _CYCLE:
                conn.send(piece)
                time.sleep(0.2)
            results.append(conn.read_until("Z"))
    assert rawpg.shape(results[0]) == rawpg.shape(results[1])
    assert rawpg.types(results[0]) == "12TDDDCZ"


def test_pg10_lib_pq_pattern_parse_sync_then_bind(proxy: Proxy) -> None:
    with both(proxy) as sessions:
        results = []
        for conn in sessions:
            first = conn.query(P("", _RELNAMES) + D(b"S") + S)
            second = conn.query(B(params=[b"r"]) + E() + S)
            results.append((rawpg.shape(first), rawpg.shape(second)))
    assert results[0] == results[1]
    assert [t for t, _ in results[0][0]] == ["1", "t", "T", "Z"]
    assert [t for t, _ in results[0][1]] == ["2", "D", "D", "D", "C", "Z"]


def test_pg10_psycopg_parameters(proxy: Proxy) -> None:
    with psycopg.connect(proxy.dsn(), connect_timeout=10) as conn:
        cur = conn.execute(
            "select relname from pg_class where relkind = %s limit 3", ("r",)
        )
        assert len(cur.fetchall()) == 3


def test_pg10_asyncpg_fetch_in_a_loop(proxy: Proxy) -> None:
    async def loop() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=proxy.port,
            user=PERSON,
            password=PERSON_PASSWORD,
            database=TARGET,
            ssl=False,
            timeout=10,
        )
        try:
            for i in range(1000):
                assert await conn.fetchval("select $1::int", i, timeout=10) == i
        finally:
            await conn.close()

    asyncio.run(asyncio.wait_for(loop(), 60))


@pytest.mark.parametrize("mode", ["extended", "prepared"])
def test_pg10_pgbench_extended_and_prepared(
    proxy: Proxy, mode: str, tmp_path: os.PathLike[str]
) -> None:
    script = os.path.join(tmp_path, "bench.sql")
    with open(script, "w") as f:
        f.write(
            "\\set id random(1, 10)\n"
            "select a, b from t where id = :id;\n"
            "select count(*) from pg_class where relkind = 'r';\n"
        )
    env = {**proxy.env, "PGPASSWORD": PERSON_PASSWORD}
    result = subprocess.run(
        [
            "pgbench",
            "-n",
            "-M",
            mode,
            "-c",
            "4",
            "-T",
            "3",
            "-f",
            script,
            "-h",
            "127.0.0.1",
            "-p",
            str(proxy.port),
            "-U",
            PERSON,
            TARGET,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    processed = [
        line for line in result.stdout.splitlines() if "transactions actually" in line
    ]
    assert processed and int(processed[0].split(":")[1].split()[0]) > 0
    assert "number of failed transactions: 0" in result.stdout


# -- PG-11: Flush is forwarded and answered without Sync -------------------------------


def test_pg11_flush_is_answered_without_sync(proxy: Proxy) -> None:
    with both(proxy) as sessions:
        results = []
        for conn in sessions:
            conn.send(P("", "select $1::int4 as v") + D(b"S") + H)
            started = time.monotonic()
            described = conn.read_until("T", timeout=1)
            assert time.monotonic() - started < 1
            assert conn.read_messages(0.3) == []  # no ReadyForQuery after a Flush
            finished = conn.query(B(params=[b"7"]) + E() + S)
            results.append((rawpg.shape(described), rawpg.shape(finished)))
    assert results[0] == results[1]
    described_shape, finished_shape = results[0]
    assert [t for t, _ in described_shape] == ["1", "t", "T"]
    assert described_shape[1] == ("t", (23,))
    assert finished_shape == [
        ("2", None),
        ("D", (b"7",)),
        ("C", "SELECT 1"),
        ("Z", b"I"),
    ]


def test_pg11_psycopg_pipeline(proxy: Proxy) -> None:
    with psycopg.connect(proxy.dsn(), connect_timeout=10) as conn:
        cur = conn.cursor()
        with conn.pipeline() as p:
            cur.execute("select %s::int", [1])
            p.sync()
            assert cur.fetchone() == (1,)


# -- PG-12: errors inside a pipeline ---------------------------------------------------


def test_pg12_error_without_sync_arrives_at_once_then_skip_until_sync(
    proxy: Proxy,
) -> None:
    with both(proxy) as sessions:
        results = []
        for conn in sessions:
            conn.send(P("", "select 1/0") + B() + E())
            started = time.monotonic()
            first = conn.read_until("E", timeout=2)
            elapsed = time.monotonic() - started
            rest = conn.query(P("", "select 1") + B() + E() + S)
            results.append((rawpg.shape(first), rawpg.shape(rest), elapsed))
    (first_shape, rest_shape, elapsed), (want_first, want_rest, _) = results
    assert (first_shape, rest_shape) == (want_first, want_rest)
    assert first_shape[-1] == ("E", ("ERROR", "22012"))
    assert rest_shape == [("Z", b"I")]
    assert elapsed < 0.5


def _pg12_pipeline(tag: str) -> tuple[bytes, str, str]:
    one = f"insert into t values (1207, '{tag}')"
    three = f"insert into t values (1208, '{tag}')"
    data = b"".join(
        [P("", one), B(), E(), P("", "select 1/0"), B(), E(), P("", three), B(), E(), S]
    )
    return data, one, three


def test_pg12_statement_after_failure_never_runs_and_is_logged_skipped(
    proxy: Proxy,
) -> None:
    tag = f"pg12-{nonce()}"
    app_sql(proxy, "delete from t where id in (1207, 1208)")
    data, _, three = _pg12_pipeline(tag)
    got = same_on_both(proxy, data)
    assert rawpg.tags(got) == ["INSERT 0 1"]
    assert [e.code for e in rawpg.errors(got)] == ["22012"]
    assert len(rawpg.of_type(got, "Z")) == 1
    assert got[-1] == m.ReadyForQuery(b"I")
    assert app_sql(proxy, "select count(*) from t where id in (1207, 1208)") == "0"

    skipped = events_where(
        proxy, lambda e: e["statement"] == three and e["outcome"] is not None
    )
    assert skipped, "no completed event for statement 3"
    assert {e["outcome"] for e in skipped} == {"skipped"}
    assert all(e["verdict"] == "allow" for e in skipped)


def test_pg12_psycopg_pipeline_error_then_usable(proxy: Proxy) -> None:
    for dsn in (proxy.dsn(), _direct_dsn(proxy.pg)):
        # autocommit: the three statements share one implicit transaction up to the
        # Sync, and nothing is left aborted afterwards.
        # psycopg reads results whenever they are there, so the error surfaces at
        # the sync or already at a later execute, directly as through pamwire.
        with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.DivisionByZero), conn.pipeline() as p:
                conn.execute("select 1")
                conn.execute("select 1/0")
                conn.execute("select 2")
                p.sync()
            assert conn.execute("select 3").fetchone() == (3,)


def _direct_dsn(pg: PostgresCluster) -> str:
    return (
        f"host=127.0.0.1 port={pg.port} dbname={TARGET} user={APP_ROLE} "
        f"password={APP_PASSWORD} sslmode=disable"
    )


def session_events(proxy: Proxy, marker: str) -> list[dict[str, object]]:
    """Every event of the session whose statements carry marker, in order."""
    events = proxy.log_events()
    sessions = {e["session"] for e in events if marker in str(e["statement"])}
    assert len(sessions) == 1, sessions
    return [e for e in events if e["session"] in sessions]


def test_pg12_statement_failing_at_bind_is_logged_as_error(proxy: Proxy) -> None:
    sql = f"select $1::int as pg12b_{nonce()}"
    with via_pamwire(proxy) as conn:
        got = conn.query(P("", sql) + B(params=[b"abc"]) + E() + S)
    assert rawpg.types(got) == "1EZ"
    assert rawpg.errors(got)[0].code == "22P02"
    done = events_where(
        proxy, lambda e: e["statement"] == sql and e["outcome"] is not None
    )
    assert [(e["outcome"], e["sqlstate"]) for e in done] == [("error", "22P02")]


# -- PG-13: pamwire's denials respect Sync framing -------------------------------------


def test_pg13_denied_statement_in_pipeline_takes_the_errors_place(
    proxy: Proxy,
) -> None:
    marker = f"pg13-{nonce()}"
    third = f"insert into delete_log(id, note) values (1301, '{marker}')"
    data = b"".join(
        [
            *(P("", "select 1"), B(), E()),
            *(P("", "drop table t"), B(), E()),
            *(P("", third), B(), E()),
            S,
        ]
    )
    with via_pamwire(proxy) as conn:
        got = conn.query(data)
        assert conn.read_messages(0.3) == []
        assert rawpg.types(got) == "12DCEZ"
        error = rawpg.errors(got)[0]
        assert error.code == "42501"
        assert "denied" in error.message
        assert got[-1] == m.ReadyForQuery(b"I")
        select_one_works(conn)
    assert app_sql(
        proxy, f"select count(*) from delete_log where note = '{marker}'"
    ) == ("0")
    assert app_sql(proxy, "select count(*) from t where id <= 10") == "10"
    skipped = events_where(
        proxy, lambda e: e["statement"] == third and e["outcome"] is not None
    )
    assert [e["outcome"] for e in skipped] == ["skipped"]


def test_pg13_denied_statement_with_flush_then_sync(proxy: Proxy) -> None:
    with via_pamwire(proxy) as conn:
        conn.send(P("", "drop table t") + B() + E() + H)
        got = conn.read_until("E", timeout=2)
        assert rawpg.types(got) == "E"
        assert got[0].code == "42501"  # type: ignore[union-attr]
        assert conn.read_messages(0.3) == []
        assert conn.query(S) == [m.ReadyForQuery(b"I")]
        select_one_works(conn)


def test_pg13_denied_statement_in_simple_query_runs_nothing(proxy: Proxy) -> None:
    marker = f"pg13q-{nonce()}"
    first = f"insert into delete_log(id, note) values (1302, '{marker}')"
    with via_pamwire(proxy) as conn:
        got = conn.query(Q(f"{first}; drop table t; select 2"))
        assert rawpg.types(got) == "EZ"
        assert rawpg.errors(got)[0].code == "42501"
        assert got[-1] == m.ReadyForQuery(b"I")
    assert app_sql(
        proxy, f"select count(*) from delete_log where note = '{marker}'"
    ) == ("0")


def test_pg13_psycopg_pipeline_listen_then_select(proxy: Proxy) -> None:
    with psycopg.connect(proxy.dsn(), connect_timeout=10) as conn:
        with conn.pipeline():
            conn.execute("LISTEN ch")
            cur = conn.execute("select 1")
        assert cur.fetchone() == (1,)


# -- PG-14: a denial inside a transaction aborts it ------------------------------------


def _pg14_run(conn: rawpg.RawConn, failing: str) -> list[list[m.BackendMessage]]:
    steps = [
        "begin",
        "insert into t values (1401, 'pg14', 1)",
        failing,
        "commit",
    ]
    return [conn.query(Q(sql)) for sql in steps]


def test_pg14_commit_after_denial_rolls_back(proxy: Proxy) -> None:
    app_sql(proxy, "delete from t where id = 1401")
    with via_pamwire(proxy) as conn:
        got = _pg14_run(conn, "drop table t")
    with direct(proxy.pg) as conn:
        want = _pg14_run(conn, "select 1/0")
    assert [rawpg.types(r) for r in got] == [rawpg.types(r) for r in want]
    assert [r[-1] for r in got] == [
        m.ReadyForQuery(b"T"),
        m.ReadyForQuery(b"T"),
        m.ReadyForQuery(b"E"),
        m.ReadyForQuery(b"I"),
    ]
    assert rawpg.errors(got[2])[0].code == "42501"
    assert rawpg.tags(got[3]) == rawpg.tags(want[3]) == ["ROLLBACK"]
    assert app_sql(proxy, "select count(*) from t where id = 1401") == "0"


def test_pg14_pipeline_denial_inside_transaction_leaves_status_e(
    proxy: Proxy,
) -> None:
    app_sql(proxy, "delete from t where id = 1402")
    with via_pamwire(proxy) as conn:
        conn.query(Q("begin"))
        insert = "insert into t values (1402, 'pg14', 1)"
        got = conn.query(
            P("", insert) + B() + E() + P("", "drop table t") + B() + E() + S
        )
        assert rawpg.types(got) == "12CEZ"
        assert got[-1] == m.ReadyForQuery(b"E")
        commit = conn.query(Q("commit"))
        assert rawpg.tags(commit) == ["ROLLBACK"]
        assert commit[-1] == m.ReadyForQuery(b"I")
    assert app_sql(proxy, "select count(*) from t where id = 1402") == "0"


# -- PG-15: named statements vs DISCARD ALL, Close, DEALLOCATE -------------------------


def test_pg15_discard_all_drops_named_statements(proxy: Proxy) -> None:
    with both(proxy) as sessions:
        results = []
        for conn in sessions:
            steps = [
                conn.query(P("s1", "select 1") + S),
                conn.query(Q("DISCARD ALL")),
                conn.query(B(stmt="s1") + E() + S),
                conn.query(P("s1", "select 2") + S),
            ]
            results.append([rawpg.shape(step) for step in steps])
    assert results[0] == results[1]
    assert results[0][2] == [("E", ("ERROR", "26000")), ("Z", b"I")]
    assert results[0][3] == [("1", None), ("Z", b"I")]


def test_pg15_close_then_reparse_logs_the_new_sql(proxy: Proxy) -> None:
    tag = nonce()
    old, new = f"select 1 as pg15a_{tag}", f"select 2 as pg15b_{tag}"
    data = P("s1", old) + C(b"S", "s1") + P("s1", new) + B(stmt="s1") + E() + S
    got = same_on_both(proxy, data)
    assert rawpg.types(got) == "1312DCZ"
    assert rawpg.rows(got) == [("2",)]

    executed = events_where(
        proxy, lambda e: e["operation"] == "execute" and e["statement"] == new
    )
    assert len(executed) == 1
    events = proxy.log_events()
    assert not [
        e for e in events if e["statement"] == old and e["operation"] == "execute"
    ]


def test_pg15_sql_level_prepare_execute_deallocate_are_logged(proxy: Proxy) -> None:
    tag = nonce()
    name = f"p_{tag}"
    statements = [
        f"PREPARE {name} AS select 1 as pg15c",
        f"EXECUTE {name}",
        f"DEALLOCATE {name}",
    ]
    with via_pamwire(proxy) as conn:
        for sql in statements:
            got = conn.query(Q(sql))
            assert not rawpg.errors(got), got
    found = events_where(
        proxy,
        lambda e: e["statement"] == statements[-1] and e["outcome"] is not None,
    )
    assert found
    events = proxy.log_events()
    for sql in statements:
        matching = [e for e in events if e["statement"] == sql]
        assert len(matching) == 1, sql
        assert matching[0]["verdict"] == "allow"
    outcomes = {
        e["statement"]: e["outcome"] for e in events if e["statement"] in statements
    }
    assert wait_until(
        lambda: all(
            e["outcome"] == "ok"
            for e in proxy.log_events()
            if e["statement"] in statements
        ),
        5,
    ), outcomes


def test_pg15_psycopg_deallocate_all_in_pipeline(proxy: Proxy) -> None:
    tag = nonce()
    second = f"select %s::text as pg15d_{tag}"
    with psycopg.connect(proxy.dsn(), connect_timeout=10) as conn:
        for _ in range(2):
            assert conn.execute("select %s::int", [1], prepare=True).fetchone() == (1,)
        with conn.pipeline():
            conn.execute("DEALLOCATE ALL")
            cur = conn.execute(second, ["a"], prepare=True)
        assert cur.fetchone() == ("a",)
        assert conn.execute(second, ["b"], prepare=True).fetchone() == ("b",)
    wire_text = second.replace("%s", "$1")
    executed = events_where(
        proxy,
        lambda e: (
            e["operation"] == "execute"
            and e["statement"] == wire_text
            and e["outcome"] is not None
        ),
    )
    assert len(executed) == 2
    assert {e["outcome"] for e in executed} == {"ok"}


def test_pg15_execute_after_discard_all_is_not_logged_as_the_dropped_sql(
    proxy: Proxy,
) -> None:
    dropped = f"select 1 as pg15e_{nonce()}"
    with via_pamwire(proxy) as conn:
        conn.query(P("s1", dropped) + S)
        conn.query(Q("DISCARD ALL"))
        got = conn.query(B(stmt="s1") + E() + S)
    assert rawpg.errors(got)[0].code == "26000"
    executed = [
        e
        for e in proxy.log_events()
        if e["statement"] == dropped and e["operation"] == "execute"
    ]
    assert executed == []


def test_pg15_sql_reprepare_of_a_protocol_name_logs_the_sql_that_ran(
    proxy: Proxy,
) -> None:
    tag = nonce()
    old, new = f"select 2 as pg15f_{tag}", f"select 3 as pg15g_{tag}"
    with via_pamwire(proxy) as conn:
        conn.query(P("s2", old) + S)
        conn.query(Q("DEALLOCATE s2"))
        conn.query(Q(f"PREPARE s2 AS {new}"))
        got = conn.query(B(stmt="s2") + E() + S)
    assert rawpg.rows(got) == [("3",)]
    executed = [e for e in session_events(proxy, tag) if e["operation"] == "execute"]
    assert len(executed) == 1
    assert f"pg15g_{tag}" in str(executed[0]["statement"])


def test_pg15_protocol_execute_of_sql_prepared_statement_logs_its_sql(
    proxy: Proxy,
) -> None:
    tag = nonce()
    with via_pamwire(proxy) as conn:
        conn.query(Q(f"PREPARE s3 AS select 4 as pg15h_{tag}"))
        got = conn.query(B(stmt="s3") + E() + S)
    assert rawpg.rows(got) == [("4",)]
    executed = [e for e in session_events(proxy, tag) if e["operation"] == "execute"]
    assert len(executed) == 1
    assert f"pg15h_{tag}" in str(executed[0]["statement"])


# -- PG-20: COPY FROM STDIN through the extended protocol ------------------------------


def test_pg20_copy_in_extended_protocol_one_ready_for_two_syncs(proxy: Proxy) -> None:
    table = f"ct_{nonce()}"
    proxy.pg.psql(f"create table {table}(a int)", database=TARGET, user=APP_ROLE)
    try:
        results = []
        with both(proxy) as sessions:
            for conn in sessions:
                conn.send(P("", f"copy {table} from stdin") + B() + D(b"P") + E() + S)
                started = conn.read_until("G")
                conn.send(
                    rawpg.msg(b"d", b"1\n")
                    + rawpg.msg(b"d", b"2\n")
                    + rawpg.msg(b"c")
                    + S
                )
                finished = conn.read_until("Z")
                extra = conn.read_messages(0.5)
                assert extra == [], extra
                results.append((rawpg.shape(started), rawpg.shape(finished)))
                select_one_works(conn)
        assert results[0] == results[1]
        assert [t for t, _ in results[0][0]] == ["1", "2", "n", "G"]
        assert results[0][1] == [("C", "COPY 2"), ("Z", b"I")]
        assert app_sql(proxy, f"select count(*) from {table}") == "4"
    finally:
        app_sql(proxy, f"drop table {table}")


# -- PG-23: cancels reach the right session (open proxy: baseline denies pg_sleep) --


def test_pg23_cancel_reaches_only_its_own_session(open_proxy: Proxy) -> None:
    with via_pamwire(open_proxy) as a, via_pamwire(open_proxy) as b:
        assert a.key is not None and b.key is not None
        assert a.key != b.key
        a.send(Q("select pg_sleep(4) as a"))
        b.send(Q("select pg_sleep(4) as b"))
        time.sleep(0.5)
        started = time.monotonic()
        assert rawpg.send_cancel(open_proxy.port, a.key) == b""
        got_a = a.read_until("Z", timeout=5)
        cancelled_after = time.monotonic() - started
        got_b = b.read_until("Z", timeout=8)
    assert [e.code for e in rawpg.errors(got_a)] == ["57014"]
    assert cancelled_after < 2
    assert not rawpg.errors(got_b)
    assert rawpg.tags(got_b) == ["SELECT 1"]


def _sleep_survives_cancel(proxy: Proxy, key: m.BackendKeyData) -> None:
    with via_pamwire(proxy) as conn:
        conn.send(Q("select pg_sleep(1.5)"))
        time.sleep(0.3)
        rawpg.send_cancel(proxy.port, key)
        got = conn.read_until("Z", timeout=6)
        assert not rawpg.errors(got), got
        assert rawpg.tags(got) == ["SELECT 1"]


def test_pg23_wrong_key_cancels_nothing(open_proxy: Proxy) -> None:
    with via_pamwire(open_proxy) as conn:
        assert conn.key is not None
        key = conn.key
        wrong = m.BackendKeyData(
            key.process_id, key.secret_key[:-1] + bytes([key.secret_key[-1] ^ 1])
        )
        conn.send(Q("select pg_sleep(1.5)"))
        time.sleep(0.3)
        rawpg.send_cancel(open_proxy.port, wrong)
        got = conn.read_until("Z", timeout=6)
        assert not rawpg.errors(got), got


def test_pg23_stale_key_after_close_cancels_nothing(open_proxy: Proxy) -> None:
    with via_pamwire(open_proxy) as old:
        assert old.key is not None
        stale = old.key
        old.send(rawpg.X)
    time.sleep(0.2)
    _sleep_survives_cancel(open_proxy, stale)


def test_pg23_asyncpg_timeout_cancels_the_query(open_proxy: Proxy) -> None:
    marker = f"pg23_{nonce()}"

    async def run() -> float:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=open_proxy.port,
            user=PERSON,
            password=PERSON_PASSWORD,
            database=TARGET,
            ssl=False,
            timeout=10,
        )
        try:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetch(f"select pg_sleep(30) as {marker}", timeout=1)
            elapsed = time.monotonic() - started
            assert await conn.fetchval("select 1", timeout=5) == 1
            return elapsed
        finally:
            await conn.close()

    assert asyncio.run(run()) < 2.5
    assert wait_until(lambda: active_queries(open_proxy, marker) == 0, 3)


# -- PG-28: empty queries --------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("", "IZ"),
        (";", "IZ"),
        ("/* only a comment */", "IZ"),
        ("-- only a comment\n;", "IZ"),
        ("select 1;;select 2", "TDCTDCZ"),
    ],
)
def test_pg28_empty_simple_query(proxy: Proxy, sql: str, expected: str) -> None:
    got = same_on_both(proxy, Q(sql))
    assert rawpg.types(got) == expected


def test_pg28_empty_extended_query(proxy: Proxy) -> None:
    got = same_on_both(proxy, P("", "") + B() + D(b"P") + E() + S)
    assert rawpg.types(got) == "12nIZ"


def test_pg28_psql_lone_semicolon(proxy: Proxy) -> None:
    result = proxy.psql(input=";\n/* comment */ ;\nselect 'ok';\n")
    assert "ok" in result.stdout


# -- PG-29: multi-statement simple queries ---------------------------------------------


def test_pg29_error_in_the_middle_stops_the_rest(proxy: Proxy) -> None:
    got = same_on_both(proxy, Q("select 1; select 1/0; select 2"))
    assert rawpg.types(got) == "TDCEZ"
    assert got[-1] == m.ReadyForQuery(b"I")


def test_pg29_transaction_in_one_query_commits(proxy: Proxy) -> None:
    app_sql(proxy, "delete from t where id = 1291")
    with via_pamwire(proxy) as conn:
        got = conn.query(
            Q(
                "begin; insert into t values (1291, 'pg29', 1); "
                "select count(*) from t where id = 1291; commit"
            )
        )
    assert rawpg.tags(got) == ["BEGIN", "INSERT 0 1", "SELECT 1", "COMMIT"]
    assert rawpg.rows(got) == [("1",)]
    assert app_sql(proxy, "select count(*) from t where id = 1291") == "1"
    app_sql(proxy, "delete from t where id = 1291")


def test_pg29_implicit_transaction_rolls_back(proxy: Proxy) -> None:
    app_sql(proxy, "delete from t where id = 1292")
    with via_pamwire(proxy) as conn:
        got = conn.query(Q("insert into t values (1292, 'pg29', 1); select 1/0"))
    assert rawpg.types(got) == "CEZ"
    assert app_sql(proxy, "select count(*) from t where id = 1292") == "0"


def test_pg29_denied_statement_blocks_the_whole_query(proxy: Proxy) -> None:
    marker = f"pg29-{nonce()}"
    first = f"insert into delete_log(id, note) values (1293, '{marker}')"
    with via_pamwire(proxy) as conn:
        got = conn.query(Q(f"{first}; drop table t"))
    assert rawpg.types(got) == "EZ"
    assert rawpg.errors(got)[0].code == "42501"
    assert app_sql(
        proxy, f"select count(*) from delete_log where note = '{marker}'"
    ) == ("0")


def test_pg29_splitter_respects_quotes_dollar_quotes_and_comments(
    open_proxy: Proxy,
) -> None:
    tag = nonce()
    function = f"g_{tag}"
    create = f"create function {function}() returns int language sql as $$ select 1; $$"
    texts = (
        f"select E'a;b' as x_{tag} /* ; */",
        f"select {function}() as y",
        f"select 'c;' as z_{tag}",
    )
    query = f"{create}; " + "; ".join(texts)
    try:
        with via_pamwire(open_proxy) as conn:
            got = conn.query(Q(query))
        assert rawpg.tags(got) == [
            "CREATE FUNCTION",
            "SELECT 1",
            "SELECT 1",
            "SELECT 1",
        ]
        assert rawpg.rows(got) == [("a;b",), ("1",), ("c;",)]
        logged = events_where(open_proxy, lambda e: e["statement"] == texts[-1])
        assert logged
        session = logged[0]["session"]
        in_session = [
            e["statement"]
            for e in open_proxy.log_events("--session", str(session))
            if e["kind"] == "statement"
        ]
        assert len(in_session) == 4, in_session
        assert all(str(s).strip() for s in in_session)
    finally:
        app_sql(open_proxy, f"drop function if exists {function}()")


# -- PG-34: framing does not depend on TCP segmentation --------------------------------


def test_pg34_startup_packet_one_byte_at_a_time(proxy: Proxy) -> None:
    packet = rawpg.startup({"user": PERSON, "database": TARGET})
    with rawpg.RawConn(proxy.port) as conn:
        conn.send_slowly(packet, [1] * len(packet), 0.01)
        conn.login(PERSON, PERSON_PASSWORD, TARGET, sent_startup=True)
        select_one_works(conn)


def test_pg34_query_split_across_writes(proxy: Proxy) -> None:
    with via_pamwire(proxy) as conn:
        conn.send_slowly(Q("select 1"), [1, 3], 0.05)
        got = conn.read_until("Z")
        assert rawpg.rows(got) == [("1",)]


def test_pg34_fifty_queries_in_one_write(proxy: Proxy) -> None:
    data = b"".join(Q(f"select {i}") for i in range(50))
    got = same_on_both(proxy, data, syncs=50)
    assert rawpg.rows(got) == [(str(i),) for i in range(50)]
    assert len(rawpg.of_type(got, "Z")) == 50


def test_pg34_replies_are_coalesced(proxy: Proxy) -> None:
    with via_pamwire(proxy) as conn:
        conn.recv_calls = 0
        got = conn.query(Q("select generate_series(1, 1000)"))
        assert len(rawpg.of_type(got, "D")) == 1000
        # About 15 KB: a few reads, never one per message.
        assert conn.recv_calls < 50, conn.recv_calls


# -- startup and framing beyond the numbered cases -------------------------------------


def _negotiated(port: int, user: str, password: str) -> m.NegotiateProtocolVersion:
    """Log in asking for protocol 3.2; check the session then works in 3.0."""
    with rawpg.RawConn(port) as conn:
        login = conn.login(user, password, TARGET, version=m.PROTOCOL_3_2)
        negotiated = rawpg.of_type(login.messages, "v")
        assert len(negotiated) == 1
        assert login.messages[0] is negotiated[0]
        # A 3.0 session: 4-byte cancel keys, ordinary queries.
        assert login.key is not None and len(login.key.secret_key) == 4
        select_one_works(conn)
    assert isinstance(negotiated[0], m.NegotiateProtocolVersion)
    return negotiated[0]


def test_startup_protocol_3_2_gets_negotiate_protocol_version(proxy: Proxy) -> None:
    got = _negotiated(proxy.port, PERSON, PERSON_PASSWORD)
    assert got.unrecognized == ()
    want = _negotiated(proxy.pg.port, APP_ROLE, APP_PASSWORD)
    assert want == m.NegotiateProtocolVersion(m.PROTOCOL_3_0, ())


def test_startup_protocol_3_2_negotiates_the_servers_version_code(
    proxy: Proxy,
) -> None:
    got = _negotiated(proxy.port, PERSON, PERSON_PASSWORD)
    assert got == m.NegotiateProtocolVersion(m.PROTOCOL_3_0, ())


@pytest.mark.parametrize(
    ("bad", "server_reports"),
    [
        # The server logs a bad length (COMMERROR) and closes without a word;
        # pamwire tells the client why.
        pytest.param(b"Q" + struct.pack(">i", 3), False, id="query-length-3"),
        pytest.param(rawpg.msg(b"z"), True, id="unknown-type-z"),
        pytest.param(rawpg.msg(b"\x01", b"abc"), True, id="unknown-type-1"),
    ],
)
def test_malformed_message_is_fatal_08p01_and_pamwire_keeps_serving(
    proxy: Proxy, bad: bytes, server_reports: bool
) -> None:
    with via_pamwire(proxy) as conn:
        conn.send(bad)
        assert expect_fatal_and_close(conn).code == "08P01"
    with direct(proxy.pg) as conn:
        conn.send(bad)
        if server_reports:
            assert expect_fatal_and_close(conn).code == "08P01"
        else:
            assert conn.expect_closed(5) == []
    with via_pamwire(proxy) as conn:
        select_one_works(conn)


def test_message_above_max_message_size_is_refused_without_the_body(
    proxy: Proxy,
) -> None:
    two_gib_header = b"Q" + struct.pack(">I", 0x7FFFFFFF)
    with via_pamwire(proxy) as conn:
        started = time.monotonic()
        conn.send(two_gib_header + b"select")
        error = expect_fatal_and_close(conn, timeout=3)
        assert time.monotonic() - started < 2
    assert error.code == "08P01"
    # The server itself closes without a word here (a COMMERROR in its log).
    with direct(proxy.pg) as conn:
        conn.send(two_gib_header + b"select")
        assert conn.expect_closed(3) == []
    with via_pamwire(proxy) as conn:
        select_one_works(conn)


def test_function_call_message_is_refused_and_the_session_goes_on(
    proxy: Proxy,
) -> None:
    # FunctionCall ('F') runs a function by oid, past any SQL check: oid 89 is
    # version(). The server answers it; pamwire refuses it like a denied statement.
    call = encode(m.FunctionCall(89, (), (), 0))
    with direct(proxy.pg) as conn:
        assert rawpg.types(conn.query(call)) == "VZ"
    with via_pamwire(proxy) as conn:
        got = conn.query(call)
        assert rawpg.types(got) == "EZ"
        assert rawpg.errors(got)[0].code == "42501"
        assert got[-1] == m.ReadyForQuery(b"I")
        select_one_works(conn)


def test_client_disconnect_mid_query_cancels_the_query(open_proxy: Proxy) -> None:
    marker = f"gone_{nonce()}"
    conn = via_pamwire(open_proxy)
    try:
        conn.send(Q(f"select pg_sleep(30) as {marker}"))
        assert wait_until(lambda: active_queries(open_proxy, marker) == 1, 3)
    finally:
        conn.close()
    started = time.monotonic()
    assert wait_until(lambda: active_queries(open_proxy, marker) == 0, 3), (
        "pg_sleep still running after the client left"
    )
    assert time.monotonic() - started < 3.5
