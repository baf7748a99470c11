"""psycopg 3 (sync) through pamwire: pipelines, named cursors, COPY, notices, audit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import psycopg.errors
import pytest

from tests.integration.conftest import Proxy

pytestmark = pytest.mark.integration


@pytest.fixture
def conn(proxy: Proxy) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection through pamwire with the baseline rules, not in autocommit."""
    with psycopg.connect(proxy.dsn(), connect_timeout=10) as connection:
        yield connection


def _direct(proxy: Proxy, sql: str) -> str:
    return proxy.pg.psql(sql, database="app", user="app").strip()


def _direct_dsn(proxy: Proxy) -> str:
    return (
        f"host=127.0.0.1 port={proxy.pg.port} dbname=app user=app "
        "password=app-secret-pw sslmode=disable"
    )


def test_psycopg_parameters(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = conn.execute(
        "select id, a from t where id = %s or a = %s order by id", (3, "row 5")
    ).fetchall()
    assert rows == [(3, "row 3"), (5, "row 5")]
    named = conn.execute(
        "select %(x)s::int + %(y)s::int, %(s)s::text", {"x": 2, "y": 40, "s": None}
    ).fetchone()
    assert named == (42, None)


def _pipeline_with_error(
    connection: psycopg.Connection[tuple[object, ...]],
    failing: str,
    note: str,
    sync_first: bool,
) -> type[BaseException]:
    """Run insert, failing statement, insert in one pipeline; return the error type.

    With sync_first, a Sync follows the first insert, so it commits on its own.
    """
    cur = connection.cursor()
    insert = "insert into delete_log (id, note) values (%s, %s)"
    with pytest.raises(psycopg.Error) as info, connection.pipeline() as pipeline:
        cur.execute(insert, (1, note))
        if sync_first:
            pipeline.sync()
        cur.execute(failing)
        cur.execute(insert, (2, note))
    return type(info.value)


def _ids_with_note(proxy: Proxy, note: str) -> str:
    return _direct(
        proxy,
        "select coalesce(string_agg(id::text, ',' order by id), '') "
        f"from delete_log where note = '{note}'",
    )


@pytest.mark.parametrize(("sync_first", "expected"), [(False, ""), (True, "1")])
def test_psycopg_pipeline_denial_skips_the_rest_like_a_server_error(
    proxy: Proxy, sync_first: bool, expected: str
) -> None:
    note = f"psycopg-pipe-{time.time_ns()}"
    with psycopg.connect(proxy.dsn(), autocommit=True) as connection:
        error = _pipeline_with_error(
            connection, "DELETE FROM delete_log", note, sync_first
        )
        assert error is psycopg.errors.InsufficientPrivilege
        assert connection.execute("select count(*) from t").fetchone() == (10,)
        with connection.pipeline():
            after = connection.execute("select %s::int", [5])
        assert after.fetchone() == (5,)
    # Without a Sync in between, the first insert shares the implicit
    # transaction of the failed statement and is rolled back with it.
    assert _ids_with_note(proxy, note) == expected

    # The same pipeline with a server error, straight to the server, leaves the
    # same rows behind.
    direct_note = note + "-direct"
    with psycopg.connect(_direct_dsn(proxy), autocommit=True) as connection:
        error = _pipeline_with_error(connection, "select 1/0", direct_note, sync_first)
        assert error is psycopg.errors.DivisionByZero
    assert _ids_with_note(proxy, direct_note) == expected


def test_psycopg_executemany(proxy: Proxy) -> None:
    note = f"psycopg-many-{time.time_ns()}"
    with psycopg.connect(proxy.dsn()) as connection:
        connection.cursor().executemany(
            "insert into delete_log (id, note) values (%s, %s)",
            [(i, note) for i in range(100)],
        )
        connection.commit()
    assert _ids_with_note(proxy, note) == ",".join(str(i) for i in range(100))


def test_psycopg_cancel_stops_the_running_query(open_proxy: Proxy) -> None:
    # pg_sleep is a dangerous function for the baseline pack: use the open proxy.
    proxy = open_proxy
    marker = f"psycopg_cancel_{time.time_ns()}"
    with psycopg.connect(proxy.dsn(), autocommit=True) as connection:
        timer = threading.Timer(0.5, connection.cancel_safe)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                connection.execute(f"select pg_sleep(30) as {marker}")
        finally:
            timer.cancel()
        assert time.monotonic() - started < 5
        assert connection.execute("select 1").fetchone() == (1,)
    running = _direct(
        proxy,
        "select count(*) from pg_stat_activity "
        f"where state = 'active' and query like '%{marker}%' "
        "and pid <> pg_backend_pid()",
    )
    assert running == "0"


def test_psycopg_pipeline_sync_then_fetch(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    cur = conn.cursor()
    with conn.pipeline() as p:
        cur.execute("select %s::int", [1])
        p.sync()
        assert cur.fetchone() == (1,)
        cur.execute("select %s::text", ["two"])
    assert cur.fetchone() == ("two",)


def test_psycopg_server_side_cursor(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    with conn.cursor(name="c") as cur:
        cur.itersize = 7
        cur.execute("select g from generate_series(1, 1000) g")
        values = [row[0] for row in cur]
    assert len(values) == 1000
    assert values[0] == 1 and values[-1] == 1000
    conn.commit()

    with conn.cursor(name="c2", scrollable=True) as cur:
        cur.execute("select g from generate_series(1, %s) g", [50])
        assert cur.fetchmany(3) == [(1,), (2,), (3,)]
        cur.scroll(10)
        assert cur.fetchone() == (14,)
    conn.rollback()


def test_psycopg_copy_in_and_out(proxy: Proxy) -> None:
    _direct(proxy, "drop table if exists psycopg_copy")
    _direct(proxy, "create table psycopg_copy (id int, note text)")
    with psycopg.connect(proxy.dsn(), autocommit=True) as connection:
        cur = connection.cursor()
        with cur.copy("COPY psycopg_copy (id, note) FROM STDIN") as copy:
            for i in range(2000):
                copy.write_row((i, f"note {i}\twith tab"))
        assert cur.rowcount == 2000

        with cur.copy(
            "COPY (select id, note from psycopg_copy where id < 3 order by id) "
            "TO STDOUT"
        ) as copy:
            copy.set_types(["int4", "text"])
            rows = list(copy.rows())
        assert rows == [(i, f"note {i}\twith tab") for i in range(3)]

        with cur.copy("COPY (select id from t order by id) TO STDOUT") as copy:
            raw = b"".join(bytes(block) for block in copy)
        assert raw == b"".join(f"{i}\n".encode() for i in range(1, 11))
    assert _direct(proxy, "select count(*), max(id) from psycopg_copy") == "2000|1999"


def test_psycopg_prepared_statements(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    results = [
        conn.execute(
            "select b from t where id = %s", [i % 10 + 1], prepare=True
        ).fetchone()
        for i in range(30)
    ]
    assert results == [((i % 10 + 1) * 10,) for i in range(30)]
    names = conn.execute(
        "select name, statement from pg_prepared_statements"
    ).fetchall()
    assert any(
        str(name).startswith("_pg3_") and "from t where id = $1" in str(statement)
        for name, statement in names
    ), names


def test_psycopg_notice_handler(open_proxy: Proxy) -> None:
    notices: list[tuple[str | None, str | None]] = []
    with psycopg.connect(open_proxy.dsn(), autocommit=True) as connection:
        connection.add_notice_handler(
            lambda diag: notices.append(
                (diag.severity_nonlocalized, diag.message_primary)
            )
        )
        connection.execute("DO $$ BEGIN RAISE NOTICE 'hi'; END $$")
        connection.execute("select 1")
    assert notices == [("NOTICE", "hi")]


def test_psycopg_transactions_commit_and_rollback(proxy: Proxy) -> None:
    note = f"psycopg-tx-{time.time_ns()}"
    insert = "insert into delete_log (id, note) values (%s, %s)"
    with psycopg.connect(proxy.dsn()) as connection:
        connection.execute(insert, (1, note))
        connection.rollback()

        with connection.transaction():
            connection.execute(insert, (2, note))

        with connection.transaction() as tx:
            connection.execute(insert, (3, note))
            raise psycopg.Rollback(tx)

        connection.execute(insert, (4, note))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            connection.execute("DROP TABLE t")
        assert info.value.sqlstate == "42501"
        assert "no-drop" in str(info.value)
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            connection.execute("select 1")
        connection.rollback()

        connection.execute(insert, (5, note))
        connection.commit()
    ids = _direct(
        proxy,
        f"select string_agg(id::text, ',' order by id) from delete_log "
        f"where note = '{note}'",
    )
    assert ids == "2,5"


def test_psycopg_statements_reach_the_audit_trail(proxy: Proxy) -> None:
    marker = f"psycopg_marker_{time.time_ns()}"
    with psycopg.connect(proxy.dsn(), autocommit=True) as connection:
        connection.execute(f"select %s::int as {marker}", [1])
        connection.execute(f"select 2 as {marker}_plain")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(f"DELETE FROM delete_log /* {marker} */")

    events = proxy.log_events("--user", "alice")
    by_text: dict[object, list[dict[str, object]]] = {}
    for event in events:
        if marker in str(event.get("statement")):
            by_text.setdefault(event["statement"], []).append(event)

    allowed = [f"select $1::int as {marker}", f"select 2 as {marker}_plain"]
    for text in allowed:
        assert text in by_text, sorted(map(str, by_text))
        assert all(e["verdict"] == "allow" for e in by_text[text])
        assert all(e["target"] == "app" and e["session"] for e in by_text[text])
    denied = by_text.get(f"DELETE FROM delete_log /* {marker} */")
    assert denied, sorted(map(str, by_text))
    assert all(e["verdict"] == "deny" for e in denied)
    assert all(e["rule"] == "no-unscoped-delete" for e in denied)
