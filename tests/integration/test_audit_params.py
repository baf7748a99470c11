"""Bound parameters in the trail: redacted by default, values where a target asks."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import psycopg
import pytest
import trio

from pamwire.pgcluster import PostgresCluster
from tests.integration.conftest import PERSON, PERSON_PASSWORD, Proxy, _start_proxy

pytestmark = pytest.mark.integration

VALUES_TARGET = """
[target.app_values]
protocol = "postgres"
host = "127.0.0.1"
port = {port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
audit_params = "values"

[target.app_none]
protocol = "postgres"
host = "127.0.0.1"
port = {port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
audit_params = "none"
"""


@pytest.fixture(scope="module")
def params_proxy(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    proxy = _start_proxy(
        pg,
        pg_md5,
        tmp_path_factory.mktemp("pamwire-params"),
        ["pack:baseline"],
        extra=VALUES_TARGET.format(port=pg.port),
        audit_extra='redact_literals = ["card-number", "email"]',
    )
    try:
        yield proxy
    finally:
        proxy.stop()


def _params_of(proxy: Proxy, target: str, marker: str) -> list[object]:
    events = proxy.wait_for_event(
        lambda e: e["target"] == target and marker in (e["statement"] or "")
    )
    found = [
        e["params"]
        for e in events
        if e["target"] == target
        and marker in (e["statement"] or "")
        and e["operation"] == "execute"
    ]
    assert found, f"no execute event for {marker} on {target}"
    return found


def _psycopg_query(
    proxy: Proxy, target: str, sql: str, args: tuple[object, ...]
) -> None:
    with psycopg.connect(proxy.dsn(database=target), autocommit=True) as conn:
        conn.execute(sql, args, prepare=True).fetchall()


def test_params_are_redacted_by_default(params_proxy: Proxy) -> None:
    _psycopg_query(params_proxy, "app", "SELECT %s::int, %s::text /* d1 */", (42, None))
    assert _params_of(params_proxy, "app", "d1") == [["?", None]]


def test_params_values_from_a_text_format_client(params_proxy: Proxy) -> None:
    _psycopg_query(
        params_proxy, "app_values", "SELECT %s::int, %s::text /* v1 */", (42, "héllo")
    )
    assert _params_of(params_proxy, "app_values", "v1") == [["42", "héllo"]]


def test_params_values_from_a_binary_format_client(params_proxy: Proxy) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=params_proxy.port,
            user=PERSON,
            password=PERSON_PASSWORD,
            database="app_values",
            timeout=10,
        )
        try:
            await conn.fetchval("SELECT $1::int4 /* v2 */", 42)
        finally:
            await conn.close()

    trio.run(_asyncio_in_trio, run)
    assert _params_of(params_proxy, "app_values", "v2") == [["\\x0000002a"]]


async def _asyncio_in_trio(body: object) -> None:
    # asyncpg needs asyncio; run it in a thread of its own.
    import asyncio

    await trio.to_thread.run_sync(asyncio.run, body())  # type: ignore[operator]


def test_params_values_of_a_secret_statement_stay_redacted(
    params_proxy: Proxy,
) -> None:
    _psycopg_query(
        params_proxy,
        "app_values",
        "SELECT length(%s::text) AS password_len /* v3 */",
        ("hunter2-secret",),
    )
    assert _params_of(params_proxy, "app_values", "v3") == [["?"]]
    trail = params_proxy.pamwire("log", "search", "--format", "json")
    assert "hunter2-secret" not in trail.stdout


def test_params_none_keeps_no_params(params_proxy: Proxy) -> None:
    _psycopg_query(params_proxy, "app_none", "SELECT %s::int /* n1 */", (7,))
    assert _params_of(params_proxy, "app_none", "n1") == [None]


def test_literal_classes_leave_text_and_values(params_proxy: Proxy) -> None:
    _psycopg_query(
        params_proxy,
        "app_values",
        "SELECT %s::text, 'ann@example.com' AS mail /* lc1 */",
        ("4111 1111 1111 1111",),
    )
    events = params_proxy.wait_for_event(lambda e: "lc1" in (e["statement"] or ""))
    (event,) = [
        e
        for e in events
        if "lc1" in (e["statement"] or "") and e["operation"] == "execute"
    ]
    assert event["params"] == ["<redacted:card-number>"]
    assert "'<redacted:email>' AS mail" in event["statement"]
    trail = params_proxy.pamwire("log", "search", "--format", "json").stdout
    assert "4111 1111 1111 1111" not in trail and "ann@example.com" not in trail
