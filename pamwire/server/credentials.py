"""Where the upstream login for a person's session comes from.

This is the seam for short-lived credentials: today a target has one account from
the configuration; later, the account minted for the person's approved grant.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from pamwire.config import Config, Target


@attrs.frozen(repr=False)
class UpstreamCredential:
    """An account and its password; repr never shows the password."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"UpstreamCredential(user={self.user!r}, password=<hidden>)"


class CredentialProvider(Protocol):
    """Finds the upstream account a person's session logs in with."""

    def credential_for(self, person: str, target: Target) -> UpstreamCredential:
        """Return the account, or raise PamwireError saying why there is none."""
        ...


class ConfiguredCredentials:
    """One account per target, its password read from a file or the environment."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def credential_for(self, person: str, target: Target) -> UpstreamCredential:
        # TODO(grants): look up the person's active grant and its minted account
        # instead of the target's configured one (issue: just-in-time grants).
        password = self._config.read_secret(
            target.credential, key=f"target.{target.name}.credential"
        )
        return UpstreamCredential(target.credential.user, password)
