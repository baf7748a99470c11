"""Where the upstream login for a person's session comes from.

A target either has one account from the configuration (ConfiguredCredentials), or
takes grants: then each session logs in as the account minted for the person's
active grant (pamwire.grants.credentials.GrantCredentials).
"""

from __future__ import annotations

from typing import Protocol

import attrs

from pamwire.config import Config, Target
from pamwire.errors import PamwireError


@attrs.frozen(repr=False)
class UpstreamCredential:
    """An account and its password; repr never shows the password."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"UpstreamCredential(user={self.user!r}, password=<hidden>)"


@attrs.frozen
class SessionLogin:
    """How one session logs in upstream, and under which grant and role."""

    credential: UpstreamCredential
    grant_id: int | None = None
    role: str | None = None


class CredentialProvider(Protocol):
    """Finds the upstream account a person's session logs in with."""

    def login_for(self, person: str, target: Target, role: str | None) -> SessionLogin:
        """Return the login, or raise PamwireError saying why there is none.

        Blocking (files, SQLite, decryption): call from a worker thread.
        """
        ...


class ConfiguredCredentials:
    """One account per target, its password read from a file or the environment."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def login_for(self, person: str, target: Target, role: str | None) -> SessionLogin:
        if role is not None and role != target.role:
            raise PamwireError(f'target "{target.name}" takes no grant roles')
        return SessionLogin(self.credential_for(person, target), None, target.role)

    def credential_for(self, person: str, target: Target) -> UpstreamCredential:
        password = self._config.read_secret(
            target.credential, key=f"target.{target.name}.credential"
        )
        return UpstreamCredential(target.credential.user, password)
