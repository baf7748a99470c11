"""The MariaDB minter against the session's real MariaDB (fixture `mariadb`)."""

from __future__ import annotations

import logging
import pathlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest

from pamwire.grants import MintError
from pamwire.grants.config import MARIADB_CREATE
from pamwire.grants.mariadb import event_name
from pamwire.grants.service import GrantService
from pamwire.grants.store import AccountState, Grant, State
from pamwire.mariadbcluster import MariaDBServer, quote_identifier, quote_string
from tests.grants.conftest import (
    ADMIN_ENV,
    FakeClock,
    copy_grants_file,
    document,
    make_service,
)
from tests.mysql.conftest import ROOT_PASSWORD

pytestmark = pytest.mark.integration

HOSTILE_ROLE = "ro`; DROP USER 'app'@'127.0.0.1'; --"
WEIRD_ROLE = "we'ird \\ role %s {x}"


@pytest.fixture
def prefix() -> str:
    """A prefix of its own per test: the server is shared by the whole session."""
    return f"pw{secrets.token_hex(4)}_"


@pytest.fixture
def roles(mariadb: MariaDBServer, prefix: str) -> Iterator[dict[str, str]]:
    """Two database roles of this test: read-only and read-write on app.*."""
    made = {"read-only": f"{prefix}ro", "read-write": f"{prefix}rw"}
    ro, rw = (quote_identifier(made[k]) for k in ("read-only", "read-write"))
    mariadb.sql(
        f"CREATE ROLE {ro}; GRANT SELECT ON app.* TO {ro};"
        f" CREATE ROLE {rw}; GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO {rw};"
    )
    yield made
    mariadb.sql(f"DROP ROLE IF EXISTS {ro}; DROP ROLE IF EXISTS {rw};")


@pytest.fixture
def live(
    mariadb: MariaDBServer,
    tmp_path: pathlib.Path,
    prefix: str,
    roles: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    monkeypatch.setenv(ADMIN_ENV, ROOT_PASSWORD)
    clock = FakeClock(time.time())
    services: list[GrantService] = []

    def make(folder: str = "", **target_grants: Any) -> GrantService:
        # `folder`: a grants database of its own, as a second pamwire instance.
        where = tmp_path / folder
        where.mkdir(exist_ok=True)
        target_grants.setdefault("roles", roles)
        target_grants.setdefault("admin", {"user": "root", "password_env": ADMIN_ENV})
        raw = document(
            port=mariadb.port, grants={"account_prefix": prefix}, **target_grants
        )
        raw["target"]["app"]["protocol"] = "mysql"
        del raw["target"]["plain"]
        service = make_service(raw, where, clock)
        services.append(service)
        return service

    make.clock = clock  # type: ignore[attr-defined]
    yield make
    for service in services:
        service.close()
    for user, host in accounts_like(mariadb, prefix):
        mariadb.sql(f"DROP USER {quote_string(user)}@{quote_string(host)}")
    for event in events_like(mariadb, prefix):
        mariadb.sql(f"DROP EVENT IF EXISTS app.{quote_identifier(event)}")


def accounts_like(mariadb: MariaDBServer, prefix: str) -> list[tuple[str, str]]:
    """(user, host) of the accounts, not roles, whose names start with prefix."""
    out = mariadb.sql(
        "SELECT User, Host FROM mysql.user WHERE is_role = 'N'"
        f" AND LEFT(User, {len(prefix)}) = {quote_string(prefix)} ORDER BY User"
    )
    rows = [line.split("\t") for line in out.splitlines()]
    return [(user, host) for user, host in rows]


def users_like(mariadb: MariaDBServer, prefix: str) -> list[str]:
    return [user for user, _ in accounts_like(mariadb, prefix)]


def events_like(mariadb: MariaDBServer, prefix: str) -> list[str]:
    out = mariadb.sql(
        "SELECT EVENT_NAME FROM information_schema.EVENTS"
        f" WHERE LEFT(EVENT_NAME, {len(prefix) + 5})"
        f" = {quote_string('lock_' + prefix)}"
    )
    return out.split()


def connect(mariadb: MariaDBServer, user: str, password: str) -> Any:
    return pymysql.connect(
        host=mariadb.host,
        port=mariadb.port,
        user=user,
        password=password,
        database="app",
        connect_timeout=5,
    )


def query(conn: Any, sql: str) -> list[Any]:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def approved(service: GrantService, role: str = "read-only", duration: float = 600):  # type: ignore[no-untyped-def]
    grant = service.request("alice", "app", role, duration, "incident 42")
    return service.approve(grant.id, "bob")


@pytest.fixture
def scheduler_on(mariadb: MariaDBServer) -> Iterator[None]:
    mariadb.sql("SET GLOBAL event_scheduler = ON")
    yield
    mariadb.sql("SET GLOBAL event_scheduler = OFF")


def locked(mariadb: MariaDBServer, account: str) -> str:
    out = mariadb.sql(
        "SELECT IF(JSON_EXTRACT(Priv, '$.account_locked') = 'true', 'Y', 'N')"
        f" FROM mysql.global_priv WHERE User = {quote_string(account)}"
    )
    return out.strip() or "gone"


def test_live_mariadb_approve_mints_and_revoke_kills_and_drops(
    mariadb: MariaDBServer, live: Any, prefix: str, roles: dict[str, str]
) -> None:
    service = live()
    grant = approved(service)
    account = grant.account
    assert account == f"{prefix}{service.store.account_tag}_alice_{grant.id}"
    assert users_like(mariadb, prefix) == [account]

    password = service.credential(grant).password
    session = connect(mariadb, account, password)
    try:
        assert query(session, "SELECT CURRENT_USER(), CURRENT_ROLE()") == [
            (f"{account}@%", roles["read-only"])
        ]
        assert query(session, "SELECT count(*) FROM t") == [(10,)]
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            query(session, "DELETE FROM t")

        revoked = service.revoke(grant.id, "carol", "incident over")
        assert revoked.state is State.REVOKED
        assert revoked.account_state is AccountState.REMOVED
        with pytest.raises(pymysql.err.OperationalError):
            query(session, "SELECT 1")
    finally:
        session.close()

    assert users_like(mariadb, prefix) == []
    with pytest.raises(pymysql.err.OperationalError, match="denied"):
        connect(mariadb, account, password)
    history = [e.action for e in service.show(grant.id).history]
    assert history[-2:] == ["revoked", "account_removed"]


def test_live_mariadb_read_write_role_can_write(
    mariadb: MariaDBServer, live: Any
) -> None:
    service = live()
    grant = approved(service, "read-write")
    session = connect(mariadb, grant.account, service.credential(grant).password)
    try:
        query(session, "UPDATE t SET b = b WHERE id = 1")
        session.commit()
    finally:
        session.close()
    service.revoke(grant.id, "bob")


def test_live_mariadb_without_scheduler_records_missing_second_lock(
    mariadb: MariaDBServer,
    live: Any,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="pamwire.grants")
    service = live()
    grant = approved(service)
    assert events_like(mariadb, prefix) == []
    notes = [e for e in service.show(grant.id).history if e.action == "warning"]
    assert len(notes) == 1 and notes[0].detail is not None
    assert notes[0].detail.startswith("second lock missing")
    assert "event scheduler is OFF" in caplog.text
    service.revoke(grant.id, "bob")


def test_live_mariadb_event_locks_the_account_at_expiry(
    mariadb: MariaDBServer, live: Any, prefix: str, scheduler_on: None
) -> None:
    """The server's own second lock: no sweep runs, yet the account is locked."""
    service = live()
    live.clock.now = time.time()  # the event runs on the server's real clock
    grant = approved(service, duration=3)
    assert events_like(mariadb, prefix) == [event_name(grant.account)]
    assert locked(mariadb, grant.account) == "N"
    deadline = time.monotonic() + 10
    while locked(mariadb, grant.account) != "Y" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert locked(mariadb, grant.account) == "Y"
    assert events_like(mariadb, prefix) == []  # one-shot: gone after it ran

    live.clock.now += 4
    [ended] = service.expire_due()
    assert ended.state is State.EXPIRED
    assert service.show(grant.id).grant.account_state is AccountState.REMOVED
    assert users_like(mariadb, prefix) == []


def test_live_mariadb_revoke_drops_pending_event(
    mariadb: MariaDBServer, live: Any, prefix: str, scheduler_on: None
) -> None:
    service = live()
    grant = approved(service)
    assert events_like(mariadb, prefix) == [event_name(grant.account)]
    service.revoke(grant.id, "bob")
    assert events_like(mariadb, prefix) == []
    assert users_like(mariadb, prefix) == []


def test_live_mariadb_expiry_sweep_kills_a_running_session(
    mariadb: MariaDBServer, live: Any, prefix: str
) -> None:
    service = live()
    grant: Grant = approved(service, duration=60)
    session = connect(mariadb, grant.account, service.credential(grant).password)
    try:
        live.clock.now += 61
        [ended] = service.expire_due()
        assert ended.state is State.EXPIRED
        with pytest.raises(pymysql.err.OperationalError):
            query(session, "SELECT 1")
    finally:
        session.close()
    assert service.show(grant.id).grant.account_state is AccountState.REMOVED
    assert users_like(mariadb, prefix) == []


@pytest.mark.parametrize(
    "change",
    [
        {"roles": {"read-only": "no_such_role_here"}},
        {
            "templates": {
                "create": [*MARIADB_CREATE, "GRANT no_such_role_here TO {name}"]
            }
        },
    ],
    ids=["missing-role", "last-statement-fails"],
)
def test_live_mariadb_failed_mint_leaves_nothing(
    mariadb: MariaDBServer, live: Any, prefix: str, change: dict[str, Any]
) -> None:
    service = live(**change)
    grant = service.request("alice", "app", "read-only", 600, "x")
    with pytest.raises(MintError, match="no_such_role_here"):
        service.approve(grant.id, "bob")
    assert users_like(mariadb, prefix) == []
    assert events_like(mariadb, prefix) == []
    after = service.show(grant.id).grant
    assert after.state is State.REQUESTED
    assert after.account_state is AccountState.NONE
    assert after.last_error is not None and "templates.create" in after.last_error


@pytest.mark.parametrize("db_role", [HOSTILE_ROLE, WEIRD_ROLE])
def test_live_mariadb_hostile_names_are_quoted(
    mariadb: MariaDBServer,
    live: Any,
    prefix: str,
    db_role: str,
    scheduler_on: None,
) -> None:
    role = quote_identifier(db_role)
    mariadb.sql(f"CREATE ROLE {role}; GRANT SELECT ON app.t TO {role};")
    try:
        service = live(roles={"read-only": db_role}, account_host="127.0.0.%")
        grant = approved(service)
        session = pymysql.connect(
            host=mariadb.host,
            port=mariadb.port,
            user=grant.account,
            password=service.credential(grant).password,
            database="app",
        )
        try:
            assert query(session, "SELECT CURRENT_ROLE()") == [(db_role,)]
            assert query(session, "SELECT count(*) FROM t") == [(10,)]
        finally:
            session.close()
        assert users_like(mariadb, "app") == ["app"]  # nothing was injected
        service.revoke(grant.id, "bob")
        assert users_like(mariadb, prefix) == []
        assert events_like(mariadb, prefix) == []
    finally:
        mariadb.sql(f"DROP ROLE IF EXISTS {role}")


def test_live_mariadb_no_password_in_logs_or_errors(
    mariadb: MariaDBServer,
    live: Any,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    service = live()
    grant = approved(service)
    password = service.credential(grant).password
    connect(mariadb, grant.account, password).close()
    broken = live(templates={"create": ["CREATE USER {name} IDENTIFIED {password}"]})
    other = broken.request("alice", "app", "read-only", 600, "x")
    with pytest.raises(MintError) as info:
        broken.approve(other.id, "bob")
    assert "<hidden>" in str(info.value) and "*" not in str(info.value)
    service.revoke(grant.id, "bob")

    assert password not in caplog.text
    for path in tmp_path.iterdir():
        assert password.encode() not in path.read_bytes(), path
    assert password not in mariadb.log_path.read_text(errors="replace")


def test_live_mariadb_two_instances_mint_apart_and_remove_only_their_own(
    mariadb: MariaDBServer, live: Any, prefix: str
) -> None:
    first_service, second_service = live(), live(folder="second")
    first, second = approved(first_service), approved(second_service)
    assert first.id == second.id  # both number their grants from 1
    assert first.account != second.account
    assert sorted(users_like(mariadb, prefix)) == sorted(
        [first.account, second.account]
    )
    second_password = second_service.credential(second).password

    first_service.revoke(first.id, "bob")
    assert users_like(mariadb, prefix) == [second.account]
    conn = connect(mariadb, second.account, second_password)
    try:
        assert query(conn, "SELECT CURRENT_USER()") == [(f"{second.account}@%",)]
    finally:
        conn.close()

    live.clock.now += 601
    first_service.expire_due()
    assert users_like(mariadb, prefix) == [second.account]
    [ended] = second_service.expire_due()
    assert ended.id == second.id and users_like(mariadb, prefix) == []


def test_live_mariadb_copied_grants_file_collides_and_leaves_the_account_alone(
    mariadb: MariaDBServer, live: Any, prefix: str, tmp_path: pathlib.Path
) -> None:
    first_service = live()
    copy_grants_file(tmp_path / "grants.db", tmp_path / "copy" / "grants.db")
    second_service = live(folder="copy")
    first = approved(first_service)
    second = second_service.request("alice", "app", "read-only", 600, "x")
    assert second_service.account_for(second) == first.account
    with pytest.raises(MintError, match="already exists; pamwire did not create"):
        second_service.approve(second.id, "bob")
    assert users_like(mariadb, prefix) == [first.account]
    assert locked(mariadb, first.account) == "N"
    assert second_service.show(second.id).grant.state is State.REQUESTED
