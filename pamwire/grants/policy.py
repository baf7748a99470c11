"""Approval policy: who may approve a grant, how many must, and what a request needs.

Pure functions over the configuration; every refusal is a PolicyError whose message
names the person, role or value at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import attrs

from pamwire.grants import PolicyError
from pamwire.grants.config import (
    GrantsConfig,
    RolePolicy,
    TargetGrants,
    format_duration,
)

T = TypeVar("T")


@attrs.frozen
class Policy:
    """The resolved policy for one target and grant role."""

    target: str
    role: str
    approvers: frozenset[str]
    approvals_needed: int
    max_duration: float
    reason_required: bool


def policy_for(config: GrantsConfig, target: TargetGrants, role: str) -> Policy:
    """The target's policy with the role's overrides applied.

    Raises PolicyError when the target has no such grant role.
    """
    if role not in target.roles:
        raise PolicyError(
            f"target {target.target!r} has no grant role {role!r}; "
            f"roles: {', '.join(target.roles)}"
        )
    override = target.policy.get(role) or RolePolicy()
    approvers = set(
        target.approvers if override.approvers is None else override.approvers
    )
    groups = (
        target.approver_groups
        if override.approver_groups is None
        else override.approver_groups
    )
    for group in groups:
        approvers.update(config.groups.get(group, ()))
    return Policy(
        target=target.target,
        role=role,
        approvers=frozenset(approvers),
        approvals_needed=_first(override.approvals_needed, target.approvals_needed),
        max_duration=_first(override.max_duration, target.max_duration),
        reason_required=_first(override.reason_required, target.reason_required),
    )


def _first(override: T | None, default: T) -> T:
    return default if override is None else override


def check_request(policy: Policy, duration: float, reason: str | None) -> None:
    """Refuse a request that is too long or lacks a required reason."""
    if duration <= 0:
        raise PolicyError(f"duration {format_duration(duration)} is not positive")
    if duration > policy.max_duration:
        raise PolicyError(
            f"duration {format_duration(duration)} exceeds the longest grant of "
            f"role {policy.role!r} on {policy.target!r}: "
            f"{format_duration(policy.max_duration)}"
        )
    if policy.reason_required and not (reason and reason.strip()):
        raise PolicyError(
            f"role {policy.role!r} on {policy.target!r} needs a reason (--reason)"
        )


def check_approver(policy: Policy, approver: str, requester: str) -> None:
    """Refuse an approval by the requester herself or by someone not allowed."""
    if approver == requester:
        raise PolicyError(f"{approver!r} cannot approve her own request")
    if approver not in policy.approvers:
        raise PolicyError(
            f"{approver!r} may not approve role {policy.role!r} on {policy.target!r}"
        )


def may_end(policy: Policy, actor: str, requester: str) -> bool:
    """Whether `actor` may deny or revoke: an approver, or the person herself."""
    return actor == requester or actor in policy.approvers


def approvals_complete(policy: Policy, approvers: Iterable[str]) -> bool:
    """Whether the distinct approvals counted so far reach the number needed.

    Only persons who may approve under the current policy count, so removing an
    approver from the configuration withdraws her pending approvals.
    """
    counted = set(approvers) & policy.approvers
    return len(counted) >= policy.approvals_needed


def narrowest(target: TargetGrants, candidates: Mapping[int, str]) -> int | None:
    """The grant id (of grant id -> role) whose role is listed first, or None.

    Ties go to the grant approved first (the lowest id).
    """
    if not candidates:
        return None
    return min(candidates, key=lambda gid: (target.rank(candidates[gid]), gid))
