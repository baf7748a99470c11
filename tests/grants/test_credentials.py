"""Tests of the credential provider and of how a person picks a grant role."""

from __future__ import annotations

import pytest

from pamwire.grants import GrantError, NoActiveGrant
from pamwire.grants.credentials import GrantCredentials, requested_role, split_login
from pamwire.grants.service import GrantService
from pamwire.server.credentials import SessionLogin, UpstreamCredential


def test_credentials_split_login() -> None:
    assert split_login("alice") == ("alice", None)
    assert split_login("alice/read-write") == ("alice", "read-write")
    with pytest.raises(GrantError, match="names no role"):
        split_login("alice/")


@pytest.mark.parametrize(
    ("startup", "role"),
    [
        ({}, None),
        ({"options": "-c search_path=x"}, None),
        ({"pamwire.role": "read-write"}, "read-write"),
        ({"options": "-c pamwire.role=read-write"}, "read-write"),
        ({"options": "-cpamwire.role=read-write -c x=y"}, "read-write"),
        ({"options": "--pamwire.role=read-write"}, "read-write"),
        ({"options": r"-c a=b\ c   -c  pamwire.role=admin"}, "admin"),
    ],
)
def test_credentials_requested_role(startup: dict[str, str], role: str | None) -> None:
    assert requested_role(startup) == role


def test_credentials_conflicting_roles() -> None:
    assert requested_role({"pamwire.role": "a"}, "a") == "a"
    with pytest.raises(GrantError, match="conflicting grant roles"):
        requested_role({"options": "-c pamwire.role=a"}, "b")


class Fallback:
    def login_for(self, person: str, target: object, role: str | None) -> SessionLogin:
        return SessionLogin(UpstreamCredential("shared", "shared-pw"), None, role)


def test_credentials_from_grant_or_fallback(service: GrantService) -> None:
    app = service.config.targets["app"]
    plain = service.config.targets["plain"]
    provider = GrantCredentials(service, Fallback())
    with pytest.raises(NoActiveGrant, match="pamwire grant request app"):
        provider.credential_for("alice", app)
    grant = service.request("alice", "app", "read-write", 600, "x")
    service.approve(grant.id, "bob")
    credential = provider.credential_for("alice", app)
    assert credential.user == f"pamwire_{service.store.account_tag}_alice_{grant.id}"
    assert credential.password not in repr(credential)
    assert provider.grant_for("alice", app).role == "read-write"
    with pytest.raises(NoActiveGrant, match="role 'read-only'"):
        provider.credential_for("alice", app, "read-only")
    assert provider.credential_for("alice", plain).user == "shared"
    with pytest.raises(NoActiveGrant, match="takes no grants"):
        GrantCredentials(service).credential_for("alice", plain)
