"""asyncpg through pamwire: extended protocol, COPY, cursors, notifications, cancel.

asyncpg runs only on asyncio, so each test is synchronous and drives its own event
loop with asyncio.run(); nothing here touches trio.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from tests.integration.conftest import PERSON, PERSON_PASSWORD, TARGET, Proxy

pytestmark = pytest.mark.integration

Body = Callable[[asyncpg.Connection], Awaitable[None]]


async def _connect(proxy: Proxy) -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1",
        port=proxy.port,
        user=PERSON,
        password=PERSON_PASSWORD,
        database=TARGET,
        timeout=10,
    )


def _run(proxy: Proxy, body: Body) -> None:
    """Open a connection through pamwire, run body on it, close it."""

    async def main() -> None:
        conn = await _connect(proxy)
        try:
            await body(conn)
        finally:
            await conn.close(timeout=5)

    asyncio.run(main())


def _direct(proxy: Proxy, sql: str) -> str:
    return proxy.pg.psql(sql, database="app", user="app").strip()


def test_asyncpg_fetch_with_parameters(proxy: Proxy) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "select id, a, b from t where id between $1 and $2 order by id", 3, 5
        )
        assert [tuple(r) for r in rows] == [
            (3, "row 3", 30),
            (4, "row 4", 40),
            (5, "row 5", 50),
        ]
        assert await conn.fetchval("select $1::text || $2::text", "a", "b") == "ab"
        assert await conn.fetchval("select $1::int is null", None) is True

    _run(proxy, body)


def test_asyncpg_prepared_statement_reused_many_times(proxy: Proxy) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        stmt = await conn.prepare("select b from t where id = $1")
        results = [await stmt.fetchval(i % 10 + 1) for i in range(200)]
        assert results == [(i % 10 + 1) * 10 for i in range(200)]
        assert [a.name for a in stmt.get_attributes()] == ["b"]
        # The statement really is a server-side prepared statement.
        names = await conn.fetchval("select count(*) from pg_prepared_statements")
        assert names >= 1

    _run(proxy, body)


def test_asyncpg_executemany(proxy: Proxy) -> None:
    note = f"asyncpg-many-{time.time_ns()}"

    async def body(conn: asyncpg.Connection) -> None:
        await conn.executemany(
            "insert into delete_log (id, note) values ($1, $2)",
            [(i, note) for i in range(50)],
        )

    _run(proxy, body)
    count = _direct(
        proxy, f"select count(*), sum(id) from delete_log where note = '{note}'"
    )
    assert count == f"50|{sum(range(50))}"


def test_asyncpg_copy_records_and_copy_out_and_copy_in(proxy: Proxy) -> None:
    _direct(proxy, "drop table if exists asyncpg_copy")
    _direct(proxy, "create table asyncpg_copy (id int, note text)")

    async def body(conn: asyncpg.Connection) -> None:
        result = await conn.copy_records_to_table(
            "asyncpg_copy",
            records=[(i, f"rec {i}") for i in range(1000)],
            columns=["id", "note"],
        )
        assert result == "COPY 1000"

        out = io.BytesIO()
        result = await conn.copy_from_query(
            "select id, note from asyncpg_copy where id < $1 order by id",
            3,
            output=out,
            format="csv",
        )
        assert result == "COPY 3"
        assert out.getvalue() == b"0,rec 0\n1,rec 1\n2,rec 2\n"

        source = io.BytesIO(
            "".join(f"{i},in {i}\n" for i in range(1000, 1500)).encode()
        )
        result = await conn.copy_to_table(
            "asyncpg_copy", source=source, columns=["id", "note"], format="csv"
        )
        assert result == "COPY 500"

    _run(proxy, body)
    assert _direct(proxy, "select count(*), max(id) from asyncpg_copy") == "1500|1499"
    assert _direct(proxy, "select note from asyncpg_copy where id = 1200") == "in 1200"


def test_asyncpg_cursor_fetches_in_small_batches(proxy: Proxy) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        query = "select g from generate_series(1, 1000) g"
        async with conn.transaction():
            seen = [r["g"] async for r in conn.cursor(query, prefetch=7)]
            assert seen == list(range(1, 1001))

            cursor = await conn.cursor(
                "select g from generate_series(1, $1::int) g", 100
            )
            first = await cursor.fetch(5)
            assert [r["g"] for r in first] == [1, 2, 3, 4, 5]
            assert await cursor.forward(10) == 10
            row = await cursor.fetchrow()
            assert row is not None and row["g"] == 16
            rest = await cursor.fetch(1000)
            assert len(rest) == 84 and rest[-1]["g"] == 100
        assert await conn.fetchval("select 1") == 1

    _run(proxy, body)


def test_asyncpg_listen_notify_between_two_connections(proxy: Proxy) -> None:
    channel = f"pamwire_chan_{time.time_ns()}"
    payload = "hello through pamwire"

    async def main() -> None:
        listener = await _connect(proxy)
        notifier = await _connect(proxy)
        received: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()

        def on_notify(conn: asyncpg.Connection, pid: int, chan: str, data: str) -> None:
            received.put_nowait((chan, data, pid))

        try:
            await listener.add_listener(channel, on_notify)
            await notifier.execute("select pg_notify($1, $2)", channel, payload)
            await notifier.execute(f"NOTIFY {channel}, 'second'")
            first = await asyncio.wait_for(received.get(), timeout=5)
            second = await asyncio.wait_for(received.get(), timeout=5)
            backend_pid = await notifier.fetchval("select pg_backend_pid()")
        finally:
            await listener.close(timeout=5)
            await notifier.close(timeout=5)
        assert first == (channel, payload, backend_pid)
        assert second[:2] == (channel, "second")

    asyncio.run(main())


def test_asyncpg_timeout_cancels_the_query_upstream(open_proxy: Proxy) -> None:
    # pg_sleep is a dangerous function for the baseline pack: use the open proxy.
    proxy = open_proxy
    marker = f"asyncpg_timeout_{time.time_ns()}"
    sleep_sql = f"select pg_sleep(30) as {marker}"

    async def body(conn: asyncpg.Connection) -> None:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await conn.fetch(sleep_sql, timeout=1)
        assert time.monotonic() - started < 3

        running = "?"
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            running = _direct(
                proxy,
                "select count(*) from pg_stat_activity "
                f"where state = 'active' and query like '%{marker}%' "
                "and pid <> pg_backend_pid()",
            )
            if running == "0":
                break
            await asyncio.sleep(0.1)
        assert running == "0"

        # asyncpg waits for the cancel to finish, then the connection is reusable.
        if not conn.is_closed():
            assert await conn.fetchval("select 41 + 1") == 42

    _run(proxy, body)

    # The trail shows the statement reached the server and was cancelled there.
    def cancelled(event: dict[str, object]) -> bool:
        return (
            marker in str(event["statement"])
            and event["sqlstate"] == "57014"
            and event["outcome"] == "cancelled"
        )

    assert any(cancelled(e) for e in proxy.wait_for_event(cancelled))


def test_asyncpg_denied_statement_raises_and_connection_stays_usable(
    proxy: Proxy,
) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as info:
            await conn.execute("DELETE FROM delete_log")
        assert info.value.sqlstate == "42501"
        assert "no-unscoped-delete" in str(info.value)
        assert await conn.fetchval("select count(*) from t") == 10

        # fetch() always uses the extended protocol (Parse, Bind, Execute).
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.fetch("DELETE FROM delete_log")
        assert await conn.fetchval("select $1::int", 7) == 7

    _run(proxy, body)


def test_asyncpg_denied_statement_aborts_the_transaction(proxy: Proxy) -> None:
    note = f"asyncpg-tx-{time.time_ns()}"

    async def body(conn: asyncpg.Connection) -> None:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("insert into delete_log (id, note) values ($1, $2)", 1, note)
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("DROP TABLE t")
        with pytest.raises(asyncpg.exceptions.InFailedSQLTransactionError):
            await conn.fetchval("select 1")
        await tx.rollback()
        assert await conn.fetchval("select 2") == 2

        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute(
                    "insert into delete_log (id, note) values ($1, $2)", 2, note
                )
                # fetch() sends the denial through Parse/Bind/Execute.
                await conn.fetch("TRUNCATE delete_log")
        assert not conn.is_in_transaction()
        assert await conn.fetchval("select 3") == 3

    _run(proxy, body)
    assert (
        _direct(proxy, f"select count(*) from delete_log where note = '{note}'") == "0"
    )
    assert _direct(proxy, "select count(*) from t") == "10"


def test_asyncpg_denied_statement_is_refused_at_prepare(proxy: Proxy) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as info:
            await conn.prepare("DELETE FROM delete_log")
        assert info.value.sqlstate == "42501"
        assert "no-unscoped-delete" in str(info.value)
        stmt = await conn.prepare("select count(*) from delete_log where id = $1")
        assert await stmt.fetchval(-1) == 0

    _run(proxy, body)


def test_asyncpg_pool_reuses_connections_after_reset(proxy: Proxy) -> None:
    async def main() -> None:
        pool = await asyncpg.create_pool(
            host="127.0.0.1",
            port=proxy.port,
            user=PERSON,
            password=PERSON_PASSWORD,
            database=TARGET,
            min_size=2,
            max_size=3,
        )
        assert pool is not None

        async def work(i: int) -> tuple[int, int]:
            # Releasing runs asyncpg's reset query (UNLISTEN, RESET ALL, ...).
            async with pool.acquire() as conn:
                await conn.execute(f"set application_name = 'pool-{i}'")
                value = await conn.fetchval("select $1::int * 2", i)
                pid = await conn.fetchval("select pg_backend_pid()")
                return value, pid

        try:
            results = await asyncio.gather(*(work(i) for i in range(30)))
            async with pool.acquire() as conn:
                assert await conn.fetchval("show application_name") == ""
        finally:
            await pool.close()
        assert [value for value, _ in results] == [i * 2 for i in range(30)]
        assert len({pid for _, pid in results}) <= 3

    asyncio.run(main())
