"""Who acts at `pamwire grant`: the OS user running it, and the person it acts as.

Theory of operation. The OS user is the process's real uid, named from the
password database, never from $USER. Under sudo the real uid is the account sudo
ran the command as; when that account is root or owns the grants file, the
invoker named by SUDO_USER is taken as the OS user instead (and recorded as
`alice (sudo to pamwire)`). Trusting SUDO_USER there gives nothing away: whoever
runs as the file's owner without sudo can set SUDO_USER, but can as well write
the grants file directly. That is the set-up the mapping is for: the grants and
key files owned by a service user with mode 0600, and sudoers letting each person
run `pamwire grant` as that user.

With `[grants.os_users]` set, the acting person is the one the OS user maps to;
`--as` may only repeat her, unless the OS user is listed in
`grants.act_for_others`. Without it `--as` is required and trusted.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path

import attrs

from pamwire.grants import GrantError, PolicyError
from pamwire.grants.config import GrantsConfig


@attrs.frozen
class OsUser:
    """The OS user behind a command; `via` is the account sudo switched to."""

    name: str
    via: str | None = None

    def __str__(self) -> str:
        return self.name if self.via is None else f"{self.name} (sudo to {self.via})"


def user_name(uid: int) -> str:
    """The name of `uid` in the password database, or `uid N` without an entry."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def current_os_user(
    grants_file: Path,
    *,
    uid: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> OsUser:
    """The OS user running this process; see the module docstring for sudo."""
    uid = os.getuid() if uid is None else uid
    environ = os.environ if environ is None else environ
    name = user_name(uid)
    invoker = environ.get("SUDO_USER")
    if invoker and (uid == 0 or _owner(grants_file) == uid):
        return OsUser(invoker, via=name)
    return OsUser(name)


def acting_person(grants: GrantsConfig, os_user: OsUser, named: str | None) -> str:
    """The person a command acts as: `named` (from --as) checked against the
    mapping, or the OS user's own person.

    Raises GrantError when --as is needed but missing, PolicyError when the OS
    user may not act as `named` or is not mapped at all.
    """
    if not grants.os_users:
        if named is None:
            raise GrantError("name the person you act as with --as PERSON")
        return named
    mapped = grants.os_users.get(os_user.name)
    for_others = os_user.name in grants.act_for_others
    if named is None:
        if mapped is not None:
            return mapped
        if for_others:
            raise GrantError(
                f"OS user {os_user.name!r} maps to no person: name one with --as"
            )
        raise PolicyError(_unmapped(os_user))
    if mapped is not None and named.lower() == mapped.lower():
        return mapped
    if for_others:
        return named
    if mapped is None:
        raise PolicyError(_unmapped(os_user))
    raise PolicyError(
        f"OS user {os_user.name!r} acts as {mapped!r}, not {named!r} "
        "(grants.act_for_others does not list it)"
    )


def _unmapped(os_user: OsUser) -> str:
    return f"OS user {os_user.name!r} is not mapped to a person in [grants.os_users]"


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None
