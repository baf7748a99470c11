"""Just-in-time grants: a person asks for a target for a while, others approve, and
pamwire mints a database account for that grant alone and removes it when it ends.

`service.GrantService` ties the pieces together; this module holds their errors.
"""

from __future__ import annotations

from pamwire.errors import PamwireError


class GrantError(PamwireError):
    """A grant operation was refused or failed; the message says which and why."""


class PolicyError(GrantError):
    """The approval policy forbids what was asked (self-approval, too long, ...)."""


class NoActiveGrant(GrantError):
    """A person has no active grant for a target; the message names the command."""


class MintError(GrantError):
    """Creating or removing a database account failed; nothing secret is in it."""
