"""Minting and removal against the session's real PostgreSQL (fixture `pg`)."""

from __future__ import annotations

import logging
import pathlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pamwire.errors import PamwireError
from pamwire.grants import MintError
from pamwire.grants.config import DEFAULT_CREATE
from pamwire.grants.service import GrantService
from pamwire.grants.store import AccountState, State
from pamwire.pgcluster import PostgresCluster, quote_ident, quote_literal
from tests.conftest import SUPERUSER_PASSWORD
from tests.grants.conftest import (
    ADMIN_ENV,
    FakeClock,
    copy_grants_file,
    document,
    make_service,
)

pytestmark = pytest.mark.integration

HOSTILE_ROLE = 'ro"; DROP ROLE app; --'
WEIRD_ROLE = "we'ird %I %s {name} \\ role"


@pytest.fixture
def prefix() -> str:
    """A prefix of its own per test: the cluster is shared by the whole session."""
    return f"pw{secrets.token_hex(4)}_"


@pytest.fixture
def live(
    pg: PostgresCluster,
    tmp_path: pathlib.Path,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    monkeypatch.setenv(ADMIN_ENV, SUPERUSER_PASSWORD)
    clock = FakeClock(time.time())
    services: list[GrantService] = []

    def make(folder: str = "", **target_grants: Any) -> GrantService:
        # `folder`: a grants database of its own, as a second pamwire instance.
        where = tmp_path / folder
        where.mkdir(exist_ok=True)
        raw = document(port=pg.port, grants={"account_prefix": prefix}, **target_grants)
        service = make_service(raw, where, clock)
        services.append(service)
        return service

    make.clock = clock  # type: ignore[attr-defined]
    yield make
    for service in services:
        service.close()
    for name in roles_like(pg, prefix):
        pg.psql(
            f"DROP OWNED BY {quote_ident(name)}; DROP ROLE {quote_ident(name)}",
            database="app",
        )


def roles_like(pg: PostgresCluster, prefix: str) -> list[str]:
    out = pg.psql(
        "SELECT rolname FROM pg_roles"
        f" WHERE starts_with(rolname, {quote_literal(prefix)})"
    )
    return out.split()


def login(pg: PostgresCluster, user: str, password: str) -> str:
    return pg.psql(
        "SELECT current_user", database="app", user=user, password=password
    ).strip()


def approved(service: GrantService, role: str = "read-only", duration: float = 600):  # type: ignore[no-untyped-def]
    grant = service.request("alice", "app", role, duration, "incident 42")
    return service.approve(grant.id, "bob")


def test_live_approve_mints_and_revoke_ends_sessions_and_drops(
    pg: PostgresCluster, live: Any, prefix: str
) -> None:
    service = live()
    grant = approved(service)
    account = grant.account
    assert account == f"{prefix}{service.store.account_tag}_alice_{grant.id}"

    row = pg.psql(
        "SELECT rolcanlogin, extract(epoch FROM rolvaliduntil),"
        " pg_has_role(rolname, 'ro', 'MEMBER')"
        f" FROM pg_roles WHERE rolname = {quote_literal(account)}"
    ).strip()
    can_login, valid_until, member = row.split("|")
    assert can_login == "t" and member == "t"
    assert abs(float(valid_until) - grant.expires_at) < 1

    password = service.credential(grant).password
    assert login(pg, account, password) == account

    session = psycopg.connect(
        host=pg.host, port=pg.port, dbname="app", user=account, password=password
    )
    try:
        assert session.execute("SELECT current_user").fetchone() == (account,)
        revoked = service.revoke(grant.id, "carol", "incident over")
        assert revoked.state is State.REVOKED
        assert revoked.account_state is AccountState.REMOVED
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    finally:
        session.close()

    assert roles_like(pg, prefix) == []
    assert (
        pg.psql(
            "SELECT count(*) FROM pg_stat_activity"
            f" WHERE usename = {quote_literal(account)}"
        ).strip()
        == "0"
    )
    with pytest.raises(PamwireError, match="authentication failed"):
        login(pg, account, password)


def test_live_expiry_sweep_removes_account(
    pg: PostgresCluster, live: Any, prefix: str
) -> None:
    service = live()
    grant = approved(service, duration=60)
    live.clock.now += 61
    [ended] = service.expire_due()
    assert ended.state is State.EXPIRED
    assert service.show(grant.id).grant.account_state is AccountState.REMOVED
    assert roles_like(pg, prefix) == []


def test_live_revoke_template_that_keeps_the_account(
    pg: PostgresCluster, live: Any, prefix: str
) -> None:
    keep = [
        "ALTER ROLE {name} NOLOGIN",
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
        " WHERE usename = {name_literal}",
    ]
    service = live(templates={"revoke": keep})
    grant = approved(service)
    password = service.credential(grant).password
    session = psycopg.connect(
        host=pg.host, port=pg.port, dbname="app", user=grant.account, password=password
    )
    try:
        service.revoke(grant.id, "bob")
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    finally:
        session.close()
    assert (
        pg.psql(
            "SELECT rolcanlogin FROM pg_roles"
            f" WHERE rolname = {quote_literal(grant.account)}"
        ).strip()
        == "f"
    )
    history = service.show(grant.id).history
    assert history[-1].action == "account_removed"
    assert history[-1].detail is not None and "disabled" in history[-1].detail


def test_live_reassigns_objects_of_the_account(
    pg: PostgresCluster, live: Any, prefix: str
) -> None:
    service = live()
    grant = approved(service, "read-write")
    password = service.credential(grant).password
    table = f"{prefix}table"
    pg.psql(
        f"CREATE TABLE {table} (x int)",
        database="app",
        user=grant.account,
        password=password,
    )
    try:
        service.revoke(grant.id, "bob")
        owner = pg.psql(
            "SELECT tableowner FROM pg_tables"
            f" WHERE tablename = {quote_literal(table)}",
            database="app",
        ).strip()
        assert owner == "postgres"
        assert roles_like(pg, prefix) == []
    finally:
        pg.psql(f"DROP TABLE IF EXISTS {table}", database="app")


@pytest.mark.parametrize(
    "change",
    [
        {"roles": {"read-only": "no_such_role_here"}},
        {
            "templates": {
                "create": [*DEFAULT_CREATE, "GRANT no_such_role_here TO {name}"]
            }
        },
    ],
    ids=["missing-role", "second-statement-fails"],
)
def test_live_failed_mint_leaves_nothing(
    pg: PostgresCluster, live: Any, prefix: str, change: dict[str, Any]
) -> None:
    service = live(**change)
    grant = service.request("alice", "app", "read-only", 600, "x")
    with pytest.raises(MintError, match="no_such_role_here"):
        service.approve(grant.id, "bob")
    assert roles_like(pg, prefix) == []
    after = service.show(grant.id).grant
    assert after.state is State.REQUESTED
    assert after.account_state is AccountState.NONE
    assert after.last_error is not None and "does not exist" in after.last_error


@pytest.mark.parametrize("db_role", [HOSTILE_ROLE, WEIRD_ROLE])
def test_live_hostile_names_are_quoted(
    pg: PostgresCluster, live: Any, prefix: str, db_role: str
) -> None:
    pg.psql(f"CREATE ROLE {quote_ident(db_role)} NOLOGIN")
    try:
        create = [*DEFAULT_CREATE, "COMMENT ON ROLE {name} IS '100% {{minted}}'"]
        service = live(roles={"read-only": db_role}, templates={"create": create})
        grant = approved(service)
        row = pg.psql(
            f"SELECT pg_has_role({quote_literal(grant.account)},"
            f" {quote_literal(db_role)}, 'MEMBER'),"
            " shobj_description(oid, 'pg_authid')"
            f" FROM pg_roles WHERE rolname = {quote_literal(grant.account)}"
        ).strip()
        assert row == "t|100% {minted}"
        assert (
            pg.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'app'").strip()
            == "1"
        )
        service.revoke(grant.id, "bob")
        assert roles_like(pg, prefix) == []
    finally:
        pg.psql(f"DROP ROLE IF EXISTS {quote_ident(db_role)}")


def test_live_no_password_in_logs_files_or_server_log(
    pg: PostgresCluster,
    live: Any,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    service = live()
    grant = approved(service)
    password = service.credential(grant).password
    login(pg, grant.account, password)
    # a failing mint too: its error must not carry the verifier either
    broken = live(templates={"create": ["CREATE ROLE {name} {password}"]})
    other = broken.request("alice", "app", "read-only", 600, "x")
    with pytest.raises(MintError) as info:
        broken.approve(other.id, "bob")
    assert "SCRAM-SHA-256$" not in str(info.value)
    service.revoke(grant.id, "bob")

    assert password not in caplog.text
    assert "SCRAM-SHA-256$" not in caplog.text
    for path in tmp_path.iterdir():
        assert password.encode() not in path.read_bytes(), path
    assert password not in pg.log_path.read_text(errors="replace")


def _can_login(pg: PostgresCluster, name: str) -> str:
    return pg.psql(
        f"SELECT rolcanlogin FROM pg_roles WHERE rolname = {quote_literal(name)}"
    ).strip()


def test_live_two_instances_mint_apart_and_remove_only_their_own(
    pg: PostgresCluster, live: Any, prefix: str
) -> None:
    # Two pamwire instances, each with its grants file, against one server.
    first_service, second_service = live(), live(folder="second")
    first, second = approved(first_service), approved(second_service)
    assert first.id == second.id  # both number their grants from 1
    tags = {first_service.store.account_tag, second_service.store.account_tag}
    assert len(tags) == 2
    assert first.account != second.account
    assert sorted(roles_like(pg, prefix)) == sorted([first.account, second.account])
    second_password = second_service.credential(second).password

    first_service.revoke(first.id, "bob")
    assert roles_like(pg, prefix) == [second.account]
    assert login(pg, second.account, second_password) == second.account

    # The first instance's sweep after the second grant's end leaves it alone.
    live.clock.now += 601
    first_service.expire_due()
    assert roles_like(pg, prefix) == [second.account]
    [ended] = second_service.expire_due()
    assert ended.id == second.id and roles_like(pg, prefix) == []


def test_live_copied_grants_file_collides_and_leaves_the_account_alone(
    pg: PostgresCluster, live: Any, prefix: str, tmp_path: pathlib.Path
) -> None:
    # A grants file copied before its first grant carries the same tag: the only
    # way two instances reach one name. The mint then refuses the other's account.
    first_service = live()
    copy_grants_file(tmp_path / "grants.db", tmp_path / "copy" / "grants.db")
    second_service = live(folder="copy")
    assert first_service.store.account_tag == second_service.store.account_tag
    first = approved(first_service)
    assert first.account is not None and _can_login(pg, first.account) == "t"
    second = second_service.request("alice", "app", "read-only", 600, "x")
    assert second_service.account_for(second) == first.account
    with pytest.raises(MintError, match="already exists; pamwire did not create"):
        second_service.approve(second.id, "bob")
    assert _can_login(pg, first.account) == "t"
    after = second_service.show(second.id).grant
    assert after.state is State.REQUESTED and after.account is None

    # The failed request is ended with revoke, which acts as deny for it.
    ended = second_service.revoke(second.id, "alice", "collided")
    assert ended.state is State.DENIED
    assert _can_login(pg, first.account) == "t"


def test_live_mint_leaves_a_dbas_account_alone(
    pg: PostgresCluster, live: Any, prefix: str
) -> None:
    service = live()
    grant = service.request("alice", "app", "read-only", 600, "x")
    name = service.account_for(grant)
    pg.psql(f"CREATE ROLE {quote_ident(name)} LOGIN")
    with pytest.raises(MintError, match="already exists"):
        service.approve(grant.id, "bob")
    assert _can_login(pg, name) == "t"
