"""Tests of the approval policy functions."""

from __future__ import annotations

import pathlib

import pytest

from pamwire.grants import PolicyError
from pamwire.grants.config import parse_grants_config
from pamwire.grants.policy import (
    approvals_complete,
    check_approver,
    check_request,
    narrowest,
    policy_for,
)
from tests.grants.conftest import document


def config(tmp_path: pathlib.Path):  # type: ignore[no-untyped-def]
    raw = document(
        grants={"groups": {"dba": ["dave", "erin"]}},
        policy={
            "read-write": {
                "approver_groups": ["dba"],
                "approvals_needed": 2,
                "max_duration": "1h",
            }
        },
        reason_required=False,
    )
    return parse_grants_config(raw, tmp_path / "pamwire.toml")


def test_policy_role_overrides_target(tmp_path: pathlib.Path) -> None:
    cfg = config(tmp_path)
    ro = policy_for(cfg, cfg.targets["app"], "read-only")
    rw = policy_for(cfg, cfg.targets["app"], "read-write")
    assert ro.approvers == {"bob", "carol"}
    assert (ro.approvals_needed, ro.max_duration, ro.reason_required) == (
        1,
        28800,
        False,
    )
    # approvers not overridden: the target's persons plus the group's members
    assert rw.approvers == {"bob", "carol", "dave", "erin"}
    assert (rw.approvals_needed, rw.max_duration) == (2, 3600)


def test_policy_unknown_role(tmp_path: pathlib.Path) -> None:
    cfg = config(tmp_path)
    with pytest.raises(PolicyError, match="no grant role 'admin'; roles: read-only"):
        policy_for(cfg, cfg.targets["app"], "admin")


def test_policy_request_checks(tmp_path: pathlib.Path) -> None:
    cfg = config(tmp_path)
    rw = policy_for(cfg, cfg.targets["app"], "read-write")
    check_request(rw, 3600, None)
    with pytest.raises(PolicyError, match="duration 1h1s exceeds the longest grant"):
        check_request(rw, 3601, None)
    strict_cfg = parse_grants_config(document(), tmp_path / "pamwire.toml")
    strict = policy_for(strict_cfg, strict_cfg.targets["app"], "read-only")
    with pytest.raises(PolicyError, match="needs a reason"):
        check_request(strict, 60, "  ")


def test_policy_approver_checks(tmp_path: pathlib.Path) -> None:
    cfg = config(tmp_path)
    ro = policy_for(cfg, cfg.targets["app"], "read-only")
    check_approver(ro, "bob", "alice")
    with pytest.raises(PolicyError, match="'bob' cannot approve her own request"):
        check_approver(ro, "bob", "bob")
    with pytest.raises(PolicyError, match="'mallory' may not approve role 'read-only'"):
        check_approver(ro, "mallory", "alice")


def test_policy_counts_only_current_approvers(tmp_path: pathlib.Path) -> None:
    cfg = config(tmp_path)
    rw = policy_for(cfg, cfg.targets["app"], "read-write")
    assert not approvals_complete(rw, ["dave"])
    assert not approvals_complete(rw, ["dave", "dave", "mallory"])
    assert approvals_complete(rw, ["dave", "bob"])


def test_policy_narrowest_wins(tmp_path: pathlib.Path) -> None:
    target = config(tmp_path).targets["app"]
    assert narrowest(target, {}) is None
    assert narrowest(target, {3: "read-write", 7: "read-only"}) == 7
    assert narrowest(target, {9: "read-only", 4: "read-only"}) == 4
