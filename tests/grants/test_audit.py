"""Grant steps in the audit trail: one event of kind `grant` per change, and what
happens when the audit store cannot be written."""

from __future__ import annotations

import logging
import pathlib

import pytest

from pamwire.audit.search import SearchQuery
from pamwire.audit.store import AuditStore
from pamwire.audit.verify import run_verify
from pamwire.grants import MintError
from pamwire.grants.audit import AuditUnavailable, GrantAudit
from pamwire.grants.service import GrantService
from pamwire.grants.store import AccountState, State
from tests.grants.conftest import FakeClock, FakeMinter


def trail(folder: pathlib.Path) -> list[tuple[str, str | None, str | None]]:
    """(grant, operation, detail) of every grant event in the folder's store."""
    store = AuditStore(folder / "audit.db", read_only=True)
    try:
        records = store.search(SearchQuery(limit=1000))
    finally:
        store.close()
    return [
        (r.event.grant or "", r.event.operation, r.event.detail)
        for r in records
        if r.event.kind == "grant"
    ]


def operations(folder: pathlib.Path) -> list[str | None]:
    return [operation for _, operation, _ in trail(folder)]


def test_audit_every_step_of_a_grant(
    service: GrantService, tmp_path: pathlib.Path, clock: FakeClock
) -> None:
    grant = service.request("alice", "app", "read-only", 600, "incident 42")
    clock.now += 1
    service.approve(grant.id, "bob")
    clock.now += 1
    service.revoke(grant.id, "carol", "done")
    assert operations(tmp_path) == [
        "requested",
        "approval",
        "minted",
        "approved",
        "revoked",
        "account_removed",
    ]
    details = [detail for _, _, detail in trail(tmp_path)]
    assert (
        details[0]
        == "requested by alice (OS user tester): read-only for 10m; reason: incident 42"
    )
    assert details[1] == "approval by bob (OS user tester): 1 of 1 approval(s)"
    assert details[4] == "revoked by carol (OS user tester): done"

    store = AuditStore(tmp_path / "audit.db", read_only=True)
    try:
        events = {i.event.operation: i.event for i, _ in store.chained_events()}
    finally:
        store.close()
    approved = events["approved"]
    assert approved.kind == "grant"
    assert approved.grant == str(grant.id)
    assert approved.user == "alice" and approved.target == "app"
    assert approved.approvers == ("bob",)
    assert (
        approved.db_account == f"pamwire_{service.store.account_tag}_alice_{grant.id}"
    )
    assert run_verify(tmp_path / "audit.db")[0]


def test_audit_deny_expiry_and_cleanup_retries(
    service: GrantService,
    minter: FakeMinter,
    tmp_path: pathlib.Path,
    clock: FakeClock,
) -> None:
    denied = service.request("alice", "app", "read-only", 600, "x")
    service.deny(denied.id, "bob", "not now")
    grant = service.request("alice", "app", "read-only", 600, "x")
    service.approve(grant.id, "bob")
    minter.fail_remove = "server away"
    clock.now += 601
    service.expire_due()
    minter.fail_remove = None
    clock.now += 10
    service.expire_due()
    steps = [(g, op) for g, op, _ in trail(tmp_path)]
    assert steps == [
        (str(denied.id), "requested"),
        (str(denied.id), "denied"),
        (str(grant.id), "requested"),
        (str(grant.id), "approval"),
        (str(grant.id), "minted"),
        (str(grant.id), "approved"),
        (str(grant.id), "expired"),
        (str(grant.id), "cleanup_failed"),
        (str(grant.id), "cleanup_retried"),
        (str(grant.id), "account_removed"),
    ]
    failed = trail(tmp_path)[7][2]
    assert (
        failed
        == "cleanup_failed by pamwire (OS user tester): server away; retry in 2 s"
    )


def test_audit_failed_mint_and_mint_warnings(
    service: GrantService, minter: FakeMinter, tmp_path: pathlib.Path
) -> None:
    grant = service.request("alice", "app", "read-only", 600, "x")
    minter.fail_mint = "no such role"
    with pytest.raises(MintError):
        service.approve(grant.id, "bob")
    minter.fail_mint = None
    minter.notes = ("second lock missing: the event scheduler is OFF",)
    service.approve(grant.id, "carol")
    assert operations(tmp_path) == [
        "requested",
        "approval",
        "mint_failed",
        "approval",
        "minted",
        "warning",
        "approved",
    ]
    history = service.show(grant.id).history
    assert [e.detail for e in history if e.action == "warning"] == [
        "second lock missing: the event scheduler is OFF"
    ]


def test_audit_unwritable_refuses_request_and_approval(
    service: GrantService, minter: FakeMinter, tmp_path: pathlib.Path
) -> None:
    grant = service.request("alice", "app", "read-only", 600, "x")
    service.audit = GrantAudit(tmp_path / "no-such-folder" / "audit.db")
    with pytest.raises(AuditUnavailable, match="cannot be written"):
        service.request("alice", "app", "read-only", 600, "x")
    assert [g.id for g in service.list()] == [grant.id]
    with pytest.raises(AuditUnavailable):
        service.approve(grant.id, "bob")
    after = service.show(grant.id)
    assert after.approvals == [] and after.grant.state is State.REQUESTED
    assert minter.accounts == {}


def test_audit_unwritable_still_revokes_and_expires(
    service: GrantService,
    minter: FakeMinter,
    tmp_path: pathlib.Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = service.request("alice", "app", "read-only", 600, "x")
    service.approve(first.id, "bob")
    second = service.request("alice", "app", "read-write", 600, "x")
    service.approve(second.id, "bob")
    service.audit = GrantAudit(tmp_path / "no-such-folder" / "audit.db")

    revoked = service.revoke(first.id, "bob")
    assert revoked.state is State.REVOKED
    assert revoked.account_state is AccountState.REMOVED
    clock.now += 601
    [expired] = service.expire_due()
    assert expired.account_state is AccountState.REMOVED
    assert minter.accounts == {}
    lost = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lost) == 2
    assert f"grant {first.id} revoked by bob" in lost[0].getMessage()
    assert f"grant {second.id} expired by pamwire" in lost[1].getMessage()


def test_audit_quiet_sweep_opens_no_store(
    service: GrantService, tmp_path: pathlib.Path
) -> None:
    service.expire_due()
    assert not (tmp_path / "audit.db").exists()


def test_audit_grant_events_after_approval_name_the_approvers(
    service: GrantService, tmp_path: pathlib.Path, clock: FakeClock
) -> None:
    grant = service.request("alice", "app", "read-only", 600, "x")
    service.approve(grant.id, "bob")
    clock.now += 601
    service.expire_due()
    store = AuditStore(tmp_path / "audit.db", read_only=True)
    try:
        events = [item.event for item, _ in store.chained_events()]
    finally:
        store.close()
    steps = {e.operation: e.approvers for e in events if e.kind == "grant"}
    assert steps.pop("requested") == ()
    assert steps == {
        op: ("bob",)
        for op in ("approval", "minted", "approved", "expired", "account_removed")
    }
