"""Tests of the grant operations with a fake minter and a fake clock."""

from __future__ import annotations

import pathlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import trio

from pamwire.grants import GrantError, MintError, NoActiveGrant, PolicyError
from pamwire.grants.service import (
    CLEANUP_LEASE,
    RECHECK_INTERVAL,
    RETRY_FIRST,
    WATCH_INTERVAL,
    GrantService,
    account_name,
)
from pamwire.grants.store import _SCHEMA_V1, AccountState, GrantStore, State
from tests.grants.conftest import (
    ADMIN_ENV,
    START,
    FakeClock,
    FakeMinter,
    document,
    make_service,
)


def active_grant(service: GrantService, role: str = "read-only") -> int:
    grant = service.request("alice", "app", role, 3600, "incident 42")
    service.approve(grant.id, "bob")
    return grant.id


def test_service_request_approve_mints_account(
    service: GrantService, minter: FakeMinter, clock: FakeClock
) -> None:
    grant = service.request("alice", "app", "read-only", 1800, "incident 42")
    assert grant.state is State.REQUESTED
    clock.now += 10
    approved = service.approve(grant.id, "bob")
    assert approved.state is State.APPROVED
    assert approved.approved_at == clock.now
    assert approved.expires_at == clock.now + 1800
    assert approved.account == f"pamwire_{service.store.account_tag}_alice_{grant.id}"
    account = minter.accounts[approved.account]
    assert account.role == "ro"
    assert account.owner == "postgres"
    assert account.expires_at == approved.expires_at
    assert account.password is not None
    credential = service.credential(approved)
    assert credential.user == approved.account
    assert credential.password == account.password.reveal()
    actions = [(e.actor, e.action) for e in service.show(grant.id).history]
    assert actions == [("alice", "requested"), ("bob", "approval"), ("bob", "approved")]


def test_service_request_defaults_and_refusals(service: GrantService) -> None:
    grant = service.request("alice", "app", reason="why")
    assert (grant.role, grant.duration) == ("read-only", 3600)
    with pytest.raises(PolicyError, match="needs a reason"):
        service.request("alice", "app", "read-only", 60, None)
    with pytest.raises(PolicyError, match="exceeds the longest grant"):
        service.request("alice", "app", "read-only", 9 * 3600, "x")
    with pytest.raises(GrantError, match="takes no grants"):
        service.request("alice", "plain", None, 60, "x")
    with pytest.raises(GrantError, match="no target named 'nope'"):
        service.request("alice", "nope", None, 60, "x")
    with pytest.raises(GrantError, match="invalid person name"):
        service.request("al ice", "app", None, 60, "x")


def test_service_self_and_stranger_approval_refused(service: GrantService) -> None:
    grant = service.request("bob", "app", "read-only", 60, "x")
    with pytest.raises(PolicyError, match="cannot approve her own request"):
        service.approve(grant.id, "bob")
    with pytest.raises(PolicyError, match="'mallory' may not approve"):
        service.approve(grant.id, "mallory")
    assert service.show(grant.id).approvals == []
    assert service.approve(grant.id, "carol").state is State.APPROVED
    with pytest.raises(GrantError, match="is approved, not requested"):
        service.approve(grant.id, "carol")


def test_service_two_approvals_needed(
    tmp_path: pathlib.Path,
    clock: FakeClock,
    minter: FakeMinter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ADMIN_ENV, "pw")
    service = make_service(document(approvals_needed=2), tmp_path, clock, minter)
    grant = service.request("alice", "app", "read-only", 60, "x")
    assert service.approve(grant.id, "bob").state is State.REQUESTED
    assert service.approve(grant.id, "bob").state is State.REQUESTED  # counted once
    assert not minter.accounts
    assert service.approve(grant.id, "carol").state is State.APPROVED
    assert len(service.show(grant.id).approvals) == 2
    service.close()


def test_service_failed_mint_leaves_grant_requested(
    service: GrantService, minter: FakeMinter
) -> None:
    grant = service.request("alice", "app", "read-only", 60, "x")
    minter.fail_mint = 'role "ro" does not exist'
    with pytest.raises(MintError, match="could not be created, so it is not active"):
        service.approve(grant.id, "bob")
    failed = service.show(grant.id)
    assert failed.grant.state is State.REQUESTED
    assert failed.grant.account_state is AccountState.NONE
    assert failed.grant.last_error is not None
    assert 'role "ro" does not exist' in failed.grant.last_error
    assert failed.history[-1].action == "mint_failed"
    assert service.store.sealed_password(grant.id) is None
    # approving again retries
    minter.fail_mint = None
    assert service.approve(grant.id, "bob").state is State.APPROVED


def test_service_missing_admin_password_is_a_failed_mint(
    service: GrantService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ADMIN_ENV)
    grant = service.request("alice", "app", "read-only", 60, "x")
    with pytest.raises(MintError, match=f"{ADMIN_ENV} is not set"):
        service.approve(grant.id, "bob")
    assert service.show(grant.id).grant.state is State.REQUESTED


def test_service_deny(service: GrantService) -> None:
    grant = service.request("alice", "app", "read-only", 60, "x")
    with pytest.raises(PolicyError, match="'mallory' may not end grant"):
        service.deny(grant.id, "mallory")
    denied = service.deny(grant.id, "carol", "not now")
    assert denied.state is State.DENIED
    assert service.show(grant.id).history[-1].detail == "not now"
    with pytest.raises(GrantError, match="is denied, not requested"):
        service.approve(grant.id, "bob")
    # the person herself may withdraw her request
    other = service.request("alice", "app", "read-only", 60, "x")
    assert service.deny(other.id, "alice").state is State.DENIED


def test_service_revoke_removes_account(
    service: GrantService, minter: FakeMinter
) -> None:
    grant_id = active_grant(service)
    with pytest.raises(PolicyError):
        service.revoke(grant_id, "mallory")
    revoked = service.revoke(grant_id, "carol", "done")
    assert revoked.state is State.REVOKED
    assert revoked.account_state is AccountState.REMOVED
    assert minter.removed == [revoked.account]
    assert service.store.sealed_password(grant_id) is None
    assert service.active_grant_ids() == frozenset()
    with pytest.raises(GrantError, match="is revoked, not approved"):
        service.revoke(grant_id, "carol")


def test_service_expiry_and_retry_of_failed_cleanup(
    service: GrantService, minter: FakeMinter, clock: FakeClock
) -> None:
    grant_id = active_grant(service)
    assert service.active_grant_ids() == {grant_id}
    assert service.expire_due() == []
    clock.now += 3600  # the end itself is no longer active
    assert service.active_grant_ids() == frozenset()
    minter.fail_remove = "server unreachable"
    [ended] = service.expire_due()
    assert ended.state is State.EXPIRED
    assert ended.account_state is AccountState.ACTIVE
    assert ended.last_error == "server unreachable"
    # retried only after the pause, which doubles
    clock.now += 1
    service.expire_due()
    assert service.show(grant_id).grant.cleanup_attempts == 1
    clock.now += 2
    service.expire_due()
    assert service.show(grant_id).grant.cleanup_attempts == 2
    minter.fail_remove = None
    clock.now += 4
    service.expire_due()
    done = service.show(grant_id)
    assert done.grant.account_state is AccountState.REMOVED
    assert [e.action for e in done.history][-4:] == [
        "expired",
        "cleanup_failed",
        "cleanup_failed",
        "account_removed",
    ]


def test_service_removal_held_elsewhere_is_not_run_twice(
    service: GrantService, minter: FakeMinter, clock: FakeClock
) -> None:
    grant_id = active_grant(service)
    clock.now += 3600
    # Another process (the proxy's sweep, say) took the removal and is at it.
    assert service.store.claim_cleanup(grant_id, clock.now, clock.now + CLEANUP_LEASE)
    assert not service.store.claim_cleanup(grant_id, clock.now, clock.now + 1)
    [ended] = service.expire_due()
    assert ended.state is State.EXPIRED and minter.removed == []
    # That process died: after the lease, the removal is taken over.
    clock.now += CLEANUP_LEASE
    service.expire_due()
    assert minter.removed == [ended.account]
    assert service.show(grant_id).grant.account_state is AccountState.REMOVED


def test_service_catch_up_after_downtime(
    tmp_path: pathlib.Path,
    clock: FakeClock,
    minter: FakeMinter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ADMIN_ENV, "pw")
    first = make_service(document(), tmp_path, clock, minter)
    grant_id = active_grant(first)
    first.close()
    clock.now += 7200
    second = make_service(document(), tmp_path, clock, minter)
    [ended] = second.catch_up()
    assert ended.id == grant_id
    assert second.show(grant_id).grant.account_state is AccountState.REMOVED
    second.close()


def test_service_abandoned_mint_is_cleaned_up(
    service: GrantService, minter: FakeMinter, clock: FakeClock
) -> None:
    grant = service.request("alice", "app", "read-only", 60, "x")
    # a process claimed the mint and died
    assert service.store.claim_mint(grant.id, "pamwire_alice_1", clock.now, 0)
    service.expire_due()
    assert minter.removed == []
    clock.now += 301
    service.expire_due()
    assert minter.removed == ["pamwire_alice_1"]
    assert service.show(grant.id).grant.account_state is AccountState.REMOVED


def test_service_denied_while_minting(
    service: GrantService, minter: FakeMinter
) -> None:
    grant = service.request("alice", "app", "read-only", 60, "x")
    real_mint = minter.mint

    def mint_then_deny(*args: object) -> None:
        real_mint(*args)  # type: ignore[arg-type]
        service.deny(grant.id, "carol")

    minter.mint = mint_then_deny  # type: ignore[method-assign]
    with pytest.raises(GrantError, match="ended while its account was created"):
        service.approve(grant.id, "bob")
    assert minter.accounts == {}
    assert service.show(grant.id).grant.state is State.DENIED


def test_service_find_active_narrowest_or_chosen(
    service: GrantService, clock: FakeClock
) -> None:
    with pytest.raises(NoActiveGrant) as info:
        service.find_active("alice", "app")
    assert "pamwire grant request app --role ROLE" in str(info.value)
    rw = active_grant(service, "read-write")
    assert service.find_active("alice", "app").id == rw
    ro = active_grant(service, "read-only")
    assert service.find_active("alice", "app").id == ro
    assert service.find_active("alice", "app", "read-write").id == rw
    assert service.active_grant_ids() == {ro, rw}
    with pytest.raises(NoActiveGrant, match="no active grant for role 'read-only'"):
        service.find_active("bob", "app", "read-only")
    clock.now += 3600
    with pytest.raises(NoActiveGrant):
        service.find_active("alice", "app")


def test_service_list_filters(service: GrantService) -> None:
    first = active_grant(service)
    service.request("carol", "app", "read-only", 60, "x")
    assert [g.id for g in service.list(active=True)] == [first]
    assert [g.person for g in service.list(person="carol")] == ["carol"]
    assert len(service.list(target="app")) == 2
    assert service.list(target="plain") == []


def test_service_no_plain_password_in_store(
    service: GrantService, tmp_path: pathlib.Path
) -> None:
    grant_id = active_grant(service)
    password = service.credential(service.show(grant_id).grant).password
    db = sqlite3.connect(tmp_path / "grants.db")
    db.execute("PRAGMA wal_checkpoint(FULL)")
    db.close()
    for path in tmp_path.iterdir():
        assert password.encode() not in path.read_bytes(), path


def test_account_names() -> None:
    assert (
        account_name("pamwire_", "0a1b2c3d", "Alice.Smith@corp", 7)
        == "pamwire_0a1b2c3d_alice_smith_corp_7"
    )
    long = account_name("pamwire_", "0a1b2c3d", "x" * 80, 123456)
    assert len(long) == 63
    assert long.startswith("pamwire_0a1b2c3d_xxx") and long.endswith("_123456")
    assert len(account_name("p_", "0a1b2c3d", "x" * 200, 1, max_length=80)) == 80
    with pytest.raises(GrantError, match="exceed 20 characters"):
        account_name("pamwire_", "0a1b2c3d", "alice", 1234, max_length=20)


def test_store_account_tag_is_random_per_file_and_kept(tmp_path: pathlib.Path) -> None:
    tags = []
    for name in ("one.db", "two.db"):
        with GrantStore(tmp_path / name) as store:
            tags.append(store.account_tag)
    assert re.fullmatch(r"[0-9a-f]{8}", tags[0]) and tags[0] != tags[1]
    with GrantStore(tmp_path / "one.db") as again:
        assert again.account_tag == tags[0]


def test_store_migrates_a_version_1_file_and_keeps_its_names(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for statement in _SCHEMA_V1:
        db.execute(statement)
    db.execute(
        "INSERT INTO grants (person, target, role, duration, state, requested_at,"
        " account, account_state) VALUES ('alice', 'app', 'read-only', 60,"
        " 'expired', 1, 'pamwire_alice_1', 'active')"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with GrantStore(path) as store:
        assert re.fullmatch(r"[0-9a-f]{8}", store.account_tag)
        # An account minted before the tag keeps its name, so it is removed.
        [grant] = store.needing_cleanup(10, 0)
        assert grant.account == "pamwire_alice_1"


def test_service_mints_tagged_names_per_protocol(
    service: GrantService, tmp_path: pathlib.Path
) -> None:
    grant = service.request("a" * 60, "app", "read-only", 60, "x")
    name = service.account_for(grant)
    assert len(name) == 63
    assert name.startswith(f"pamwire_{service.store.account_tag}_aaa")


# -- the expiry loop, on trio's MockClock ------------------------------------------


class TrioClock:
    """The service clock as trio's (mock) clock plus START, so sleeping in the loop
    and reading the service clock agree."""

    def __call__(self) -> float:
        return START + trio.current_time()


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    """run_sync without threads: a thread would let autojump_clock jump meanwhile."""
    return fn(*args)


class Sessions:
    """Records each pass's active grant ids with the trio time of the pass."""

    def __init__(self) -> None:
        self.passes: list[tuple[float, frozenset[int]]] = []

    async def end_sessions(self, active: frozenset[int]) -> None:
        self.passes.append((trio.current_time(), active))

    def ended_at(self, grant_id: int) -> float:
        """The trio time of the first pass after which `grant_id` was not active."""
        seen = False
        for at, active in self.passes:
            if grant_id in active:
                seen = True
            elif seen:
                return at
        raise AssertionError(f"grant {grant_id} never ended: {self.passes}")


@pytest.fixture
def looped(
    tmp_path: pathlib.Path, minter: FakeMinter, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GrantService, GrantService]]:
    """The proxy's service and a second one on the same files, as the command line."""
    monkeypatch.setenv(ADMIN_ENV, "admin-pw")
    clock = TrioClock()
    proxy = make_service(document(), tmp_path, clock, minter)  # type: ignore[arg-type]
    cli = make_service(document(), tmp_path, clock, minter)  # type: ignore[arg-type]
    yield proxy, cli
    cli.close()
    proxy.close()


async def run_loop(
    service: GrantService, sessions: Sessions, nursery: trio.Nursery
) -> None:
    nursery.start_soon(
        partial(service.expiry_loop, sessions.end_sessions, run_sync=inline)
    )
    await trio.sleep(0)


async def test_service_expiry_loop_ends_sessions_at_grant_end(
    looped: tuple[GrantService, GrantService], autojump_clock: trio.abc.Clock
) -> None:
    proxy, cli = looped
    sessions = Sessions()
    grant = cli.request("alice", "app", "read-only", 7.3, "x")
    cli.approve(grant.id, "bob")
    async with trio.open_nursery() as nursery:
        await run_loop(proxy, sessions, nursery)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    ends = cli.show(grant.id).grant.expires_at
    assert ends is not None
    late = sessions.ended_at(grant.id) - (ends - START)
    assert 0 <= late < 0.02, late
    assert proxy.show(grant.id).grant.account_state is AccountState.REMOVED
    # Idle: a pass at the end and at most every RECHECK_INTERVAL otherwise.
    assert len(sessions.passes) <= 20 / RECHECK_INTERVAL + 3, sessions.passes


async def test_service_expiry_loop_notices_revocation_elsewhere(
    looped: tuple[GrantService, GrantService], autojump_clock: trio.abc.Clock
) -> None:
    proxy, cli = looped
    sessions = Sessions()
    grant = cli.request("alice", "app", "read-only", 3600, "x")
    cli.approve(grant.id, "bob")
    async with trio.open_nursery() as nursery:
        await run_loop(proxy, sessions, nursery)
        await trio.sleep(12.34)
        revoked_at = trio.current_time()
        cli.revoke(grant.id, "carol", "done")  # another process, as far as SQLite knows
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    late = sessions.ended_at(grant.id) - revoked_at
    assert 0 < late <= WATCH_INTERVAL + 0.01, late


async def test_service_expiry_loop_schedules_grant_approved_elsewhere(
    looped: tuple[GrantService, GrantService], autojump_clock: trio.abc.Clock
) -> None:
    proxy, cli = looped
    sessions = Sessions()
    async with trio.open_nursery() as nursery:
        await run_loop(proxy, sessions, nursery)
        await trio.sleep(30)  # the loop idles with nothing to do
        grant = cli.request("alice", "app", "read-only", 2, "x")
        cli.approve(grant.id, "bob")
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    ends = cli.show(grant.id).grant.expires_at
    assert ends is not None
    late = sessions.ended_at(grant.id) - (ends - START)
    assert 0 <= late < 0.02, late


async def test_service_expiry_loop_retries_failed_removal_on_time(
    looped: tuple[GrantService, GrantService],
    minter: FakeMinter,
    autojump_clock: trio.abc.Clock,
) -> None:
    proxy, cli = looped
    grant = cli.request("alice", "app", "read-only", 1, "x")
    cli.approve(grant.id, "bob")
    minter.fail_remove = "server unreachable"
    async with trio.open_nursery() as nursery:
        await run_loop(proxy, Sessions(), nursery)
        await trio.sleep(1.5)
        assert proxy.show(grant.id).grant.cleanup_attempts == 1
        minter.fail_remove = None
        # The retry is due RETRY_FIRST seconds after the failure, not at a recheck.
        await trio.sleep(RETRY_FIRST + 0.05)
        assert proxy.show(grant.id).grant.account_state is AccountState.REMOVED
        nursery.cancel_scope.cancel()
