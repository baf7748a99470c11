"""The `pamwire grant` commands: request, approve, deny, revoke, list, show.

A changing command acts as a person: with `[grants.os_users]` configured, the
one the OS user running it maps to (`--as` may only name someone else for OS
users in `grants.act_for_others`); without it, whoever `--as` names, trusted.
Either way the OS user is written into every history line and audit event the
command makes (pamwire/grants/actor.py). Text output passes through clean_text
(as `log search` does), since a reason or a name may hold terminal escapes; JSON
escapes control characters by itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from pamwire.audit.search import clean_text
from pamwire.config import default_config_path, load_config
from pamwire.errors import ConfigError
from pamwire.grants.actor import acting_person, current_os_user
from pamwire.grants.config import (
    format_duration,
    parse_duration,
)
from pamwire.grants.service import GrantDetails, GrantService
from pamwire.grants.store import Grant, State

_FORMATS = ("table", "json")


def add_grant_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common_parent: argparse.ArgumentParser,
) -> None:
    """Register `grant` and its actions; each sets `func(args) -> exit code`."""
    grant = subparsers.add_parser("grant", help="just-in-time grants")
    sub = grant.add_subparsers(title="grant commands", metavar="ACTION")
    parents = [common_parent]

    p = sub.add_parser("request", parents=parents, help="ask for access to a target")
    p.add_argument("target", help="the target (what clients use as database name)")
    p.add_argument("--role", help="grant role (default: the target's narrowest)")
    p.add_argument(
        "--duration",
        type=_duration,
        help="how long, like 30m, 2h, 1d (default: the target's default_duration)",
    )
    p.add_argument("--reason", help="why; required by most policies")
    _add_actor(p, "the person asking")
    p.set_defaults(func=_cmd_request)

    for action, helptext, func in (
        ("approve", "approve a request (never your own)", _cmd_approve),
        ("deny", "refuse a request, or withdraw your own", _cmd_deny),
        (
            "revoke",
            "end an active grant now and remove its account (a grant still "
            "requested is denied)",
            _cmd_revoke,
        ),
    ):
        p = sub.add_parser(action, parents=parents, help=helptext)
        p.add_argument("id", type=int, help="grant id")
        if action != "approve":
            p.add_argument("--reason", help="why, kept in the grant's history")
        _add_actor(p, "the person deciding")
        p.set_defaults(func=func)

    p = sub.add_parser("list", parents=parents, help="list grants")
    p.add_argument("--active", action="store_true", help="only active grants")
    p.add_argument("--user", help="only this person's grants")
    p.add_argument("--target", help="only grants on this target")
    p.add_argument("--format", choices=_FORMATS, default="table")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("show", parents=parents, help="one grant with its history")
    p.add_argument("id", type=int, help="grant id")
    p.add_argument("--format", choices=_FORMATS, default="table")
    p.set_defaults(func=_cmd_show)


def _add_actor(parser: argparse.ArgumentParser, who: str) -> None:
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="PERSON",
        help=f"{who}; with [grants.os_users] set, defaults to your OS user's "
        "person and may name another only for OS users in grants.act_for_others",
    )


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def open_service(path: Path) -> GrantService:
    """Load the configuration at `path` and open the grant service it describes.

    Raises ConfigError naming the file and key.
    """
    config = load_config(path)
    if config.grants is None:  # pragma: no cover - load_config always sets it
        raise ConfigError("no grant settings", path=str(path))
    return GrantService(config, config.grants)


def _service(args: argparse.Namespace) -> GrantService:
    return open_service(args.config or default_config_path())


def _acting(args: argparse.Namespace) -> tuple[GrantService, str]:
    """The service, recording the OS user, and the person this command acts as.

    Raises GrantError or PolicyError (see acting_person) before anything changes.
    """
    service = _service(args)
    try:
        os_user = current_os_user(service.store.path)
        person = acting_person(service.grants, os_user, args.actor)
    except BaseException:
        service.close()
        raise
    service.store.os_user = str(os_user)
    return service, person


# -- commands --------------------------------------------------------------------


def _cmd_request(args: argparse.Namespace) -> int:
    service, person = _acting(args)
    try:
        grant = service.request(
            person, args.target, args.role, args.duration, args.reason
        )
        details = service.show(grant.id)
    finally:
        service.close()
    needed = details.policy.approvals_needed if details.policy else 1
    _say(
        f"grant {grant.id} requested: {grant.role} on {grant.target} for "
        f"{format_duration(grant.duration)}; waiting for {needed} approval(s)"
    )
    return 0


def _cmd_approve(args: argparse.Namespace) -> int:
    service, person = _acting(args)
    try:
        grant = service.approve(args.id, person)
        details = service.show(grant.id)
    finally:
        service.close()
    if grant.state is State.APPROVED:
        _say(
            f"grant {grant.id} is active: {grant.person} logs in to {grant.target} "
            f"as {grant.account} until {_when(grant.expires_at)}"
        )
    else:
        needed = details.policy.approvals_needed if details.policy else 1
        _say(f"grant {grant.id}: {len(details.approvals)} of {needed} approval(s)")
    return 0


def _cmd_deny(args: argparse.Namespace) -> int:
    service, person = _acting(args)
    try:
        grant = service.deny(args.id, person, args.reason)
    finally:
        service.close()
    _say(f"grant {grant.id} denied")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    service, person = _acting(args)
    try:
        grant = service.revoke(args.id, person, args.reason)
    finally:
        service.close()
    if grant.state is State.DENIED:
        _say(f"grant {grant.id} was still requested, so it is denied")
        return 0
    _say(f"grant {grant.id} revoked")
    if grant.last_error:
        _say(
            f"pamwire: removing account {grant.account} failed, pamwire retries: "
            f"{grant.last_error}",
            stream=sys.stderr,
        )
        return 1
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        grants = service.list(active=args.active, person=args.user, target=args.target)
    finally:
        service.close()
    now = time.time()
    if args.format == "json":
        print(json.dumps([_grant_json(g) for g in grants], indent=2))
        return 0
    rows = [
        [
            str(g.id),
            _state(g, now),
            g.person,
            g.target,
            g.role,
            format_duration(g.duration),
            _when(g.expires_at),
            g.account or "-",
        ]
        for g in grants
    ]
    header = ["ID", "STATE", "PERSON", "TARGET", "ROLE", "DURATION", "ENDS", "ACCOUNT"]
    print(_table(header, rows))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        details = service.show(args.id)
    finally:
        service.close()
    if args.format == "json":
        print(json.dumps(_details_json(details), indent=2))
        return 0
    print(_details_text(details, time.time()))
    return 0


# -- rendering --------------------------------------------------------------------


def _say(text: str, stream: TextIO | None = None) -> None:
    """Print a one-line message for a terminal, cleaned of control characters."""
    print(clean_text(text), file=stream or sys.stdout)


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(moment))


def _state(grant: Grant, now: float) -> str:
    if grant.state is State.APPROVED and not grant.is_active(now):
        return "approved (ended, not yet swept)"
    return str(grant.state)


def _table(header: list[str], rows: list[list[str]]) -> str:
    rows = [[clean_text(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
        for r in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _grant_json(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "person": grant.person,
        "target": grant.target,
        "role": grant.role,
        "duration": grant.duration,
        "reason": grant.reason,
        "state": str(grant.state),
        "requested_at": grant.requested_at,
        "approved_at": grant.approved_at,
        "expires_at": grant.expires_at,
        "ended_at": grant.ended_at,
        "account": grant.account,
        "account_state": str(grant.account_state),
        "last_error": grant.last_error,
        "cleanup_attempts": grant.cleanup_attempts,
    }


def _details_json(details: GrantDetails) -> dict[str, Any]:
    out = _grant_json(details.grant)
    out["approvals"] = [{"approver": a.approver, "at": a.at} for a in details.approvals]
    out["history"] = [
        {
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "detail": e.detail,
            "os_user": e.os_user,
        }
        for e in details.history
    ]
    if details.policy is not None:
        out["policy"] = {
            "approvers": sorted(details.policy.approvers),
            "approvals_needed": details.policy.approvals_needed,
            "max_duration": details.policy.max_duration,
            "reason_required": details.policy.reason_required,
        }
    return out


def _details_text(details: GrantDetails, now: float) -> str:
    g = details.grant
    lines = [
        f"grant {g.id}",
        f"  person:    {g.person}",
        f"  target:    {g.target}",
        f"  role:      {g.role}",
        f"  duration:  {format_duration(g.duration)}",
        f"  reason:    {g.reason or '-'}",
        f"  state:     {_state(g, now)}",
        f"  requested: {_when(g.requested_at)}",
        f"  approved:  {_when(g.approved_at)}",
        f"  ends:      {_when(g.expires_at)}",
        f"  ended:     {_when(g.ended_at)}",
        f"  account:   {g.account or '-'} ({g.account_state})",
    ]
    if g.last_error:
        lines.append(f"  error:     {g.last_error}")
    if details.policy is not None:
        p = details.policy
        lines.append(
            f"  policy:    {p.approvals_needed} approval(s) from "
            f"{', '.join(sorted(p.approvers))}; at most "
            f"{format_duration(p.max_duration)}"
        )
    lines.append("history:")
    for event in details.history:
        detail = f": {event.detail}" if event.detail else ""
        os_user = f" (OS user {event.os_user})" if event.os_user else ""
        lines.append(
            f"  {_when(event.at)}  {event.actor}{os_user}  {event.action}{detail}"
        )
    # Each line is cleaned whole, so a value's line break cannot start a new line.
    return "\n".join(clean_text(line) for line in lines)
