"""Upstream logins from grants: a person's session logs in as her grant's account.

With several active grants on a target the narrowest role (listed first in the
target's `roles`) wins, unless the person picks one, in either of two ways:

- a `pamwire.role` startup parameter, which libpq clients send through options:
  `psql "dbname=orders options='-c pamwire.role=read-write'"` or
  `PGOPTIONS='-c pamwire.role=read-write'`; drivers that send startup parameters
  (asyncpg's server_settings, JDBC's options) pass it directly;
- a login name `PERSON/ROLE`, e.g. `user=alice/read-write`, for clients that
  cannot set options. `/` never occurs in a person's name.

Both at once must agree. The role names what the rules see as the grant role.
"""

from __future__ import annotations

from collections.abc import Mapping

from pamwire.config import Target
from pamwire.errors import ProtocolError
from pamwire.grants import GrantError, NoActiveGrant
from pamwire.grants.service import GrantService
from pamwire.grants.store import Grant
from pamwire.pg.startup import split_options
from pamwire.server.credentials import (
    CredentialProvider,
    SessionLogin,
    UpstreamCredential,
)

ROLE_PARAMETER = "pamwire.role"
LOGIN_SEPARATOR = "/"


def split_login(user: str) -> tuple[str, str | None]:
    """`alice/read-write` -> ("alice", "read-write"); `alice` -> ("alice", None)."""
    person, separator, role = user.partition(LOGIN_SEPARATOR)
    if not separator:
        return user, None
    if not role:
        raise GrantError(f"login name {user!r} names no role after {LOGIN_SEPARATOR!r}")
    return person, role


def requested_role(
    startup: Mapping[str, str], login_role: str | None = None
) -> str | None:
    """The grant role a client asked for in its startup parameters, if any.

    Looks at a `pamwire.role` parameter and at `-c pamwire.role=...` (or
    `--pamwire.role=...`) inside `options`; `login_role` comes from split_login.
    Raises GrantError when two of them disagree.
    """
    found: dict[str, str] = {}
    if ROLE_PARAMETER in startup:
        found["startup parameter"] = startup[ROLE_PARAMETER]
    option = _role_from_options(startup.get("options", ""))
    if option is not None:
        found["options"] = option
    if login_role is not None:
        found["login name"] = login_role
    roles = set(found.values())
    if len(roles) > 1:
        where = ", ".join(f"{k} {v!r}" for k, v in found.items())
        raise GrantError(f"conflicting grant roles requested: {where}")
    return roles.pop() if roles else None


def _role_from_options(options: str) -> str | None:
    """Find pamwire.role in a libpq options string (PostgreSQL splits it on
    whitespace; a backslash makes the next character literal)."""
    try:
        words = split_options(options)
    except ProtocolError:
        return None
    role: str | None = None
    for i, word in enumerate(words):
        setting: str | None = None
        if word == "-c" and i + 1 < len(words):
            setting = words[i + 1]
        elif word.startswith(("-c", "--")) and len(word) > 2:
            setting = word[2:]
        if setting is not None:
            name, equals, value = setting.partition("=")
            if equals and name.replace("-", "_") == ROLE_PARAMETER:
                role = value
    return role


class GrantCredentials(CredentialProvider):
    """Logs a session in as the account of the person's active grant.

    Targets without a `grants` table use `fallback` (typically the configured
    credential) when one is given; otherwise they refuse with NoActiveGrant.
    Blocking (SQLite, decryption): call from a worker thread under trio.
    """

    def __init__(
        self, service: GrantService, fallback: CredentialProvider | None = None
    ) -> None:
        self.service = service
        self.fallback = fallback

    def grant_for(self, person: str, target: Target, role: str | None = None) -> Grant:
        """The grant a session of `person` on `target` runs under; NoActiveGrant
        names the command to request one."""
        return self.service.find_active(person, target.name, role)

    def login_for(self, person: str, target: Target, role: str | None) -> SessionLogin:
        """The grant's account, its id and role; the fallback for targets without
        grants. Raises NoActiveGrant naming the command to request one."""
        if target.name not in self.service.grants.targets and self.fallback:
            return self.fallback.login_for(person, target, role)
        grant = self.grant_for(person, target, role)
        return SessionLogin(self.service.credential(grant), grant.id, grant.role)

    def credential_for(
        self, person: str, target: Target, role: str | None = None
    ) -> UpstreamCredential:
        """The grant's account and password; see grant_for for the choice."""
        if target.name not in self.service.grants.targets and self.fallback:
            if role is not None:
                raise NoActiveGrant(f"target {target.name!r} takes no grant roles")
            return self.fallback.login_for(person, target, None).credential
        return self.service.credential(self.grant_for(person, target, role))
