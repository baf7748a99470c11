"""Tests of who acts at `pamwire grant`: the OS user and the person it maps to."""

from __future__ import annotations

import os
import pathlib

import pytest

from pamwire.errors import ConfigError
from pamwire.grants import GrantError, PolicyError
from pamwire.grants.actor import OsUser, acting_person, current_os_user, user_name
from pamwire.grants.config import GrantsConfig, parse_grants_config
from tests.grants.conftest import document

MAPPED = GrantsConfig(
    os_users={"asmith": "alice", "bjones": "bob", "ops": "ops-team"},
    act_for_others=("ops", "deploy"),
)


def test_acting_person_without_mapping_trusts_as() -> None:
    anyone = OsUser("whoever")
    assert acting_person(GrantsConfig(), anyone, "carol") == "carol"
    with pytest.raises(GrantError, match="--as PERSON"):
        acting_person(GrantsConfig(), anyone, None)


def test_acting_person_defaults_to_the_mapped_person() -> None:
    assert acting_person(MAPPED, OsUser("asmith"), None) == "alice"
    assert acting_person(MAPPED, OsUser("asmith"), "alice") == "alice"
    assert acting_person(MAPPED, OsUser("asmith"), "ALICE") == "alice"


def test_acting_person_refuses_someone_else() -> None:
    with pytest.raises(PolicyError, match="OS user 'asmith' acts as 'alice', not"):
        acting_person(MAPPED, OsUser("asmith"), "bob")
    with pytest.raises(PolicyError, match="'mallory' is not mapped to a person"):
        acting_person(MAPPED, OsUser("mallory"), None)
    with pytest.raises(PolicyError, match="'mallory' is not mapped to a person"):
        acting_person(MAPPED, OsUser("mallory"), "alice")


def test_acting_person_for_others_only_when_listed() -> None:
    assert acting_person(MAPPED, OsUser("ops"), "bob") == "bob"
    assert acting_person(MAPPED, OsUser("ops"), None) == "ops-team"
    assert acting_person(MAPPED, OsUser("deploy"), "alice") == "alice"
    with pytest.raises(GrantError, match="'deploy' maps to no person: name one"):
        acting_person(MAPPED, OsUser("deploy"), None)
    # Through sudo, the invoker is who the mapping looks up.
    assert acting_person(MAPPED, OsUser("bjones", via="root"), None) == "bob"


def test_current_os_user_trusts_sudo_user_only_for_root_or_the_files_owner(
    tmp_path: pathlib.Path,
) -> None:
    grants_file = tmp_path / "grants.db"
    grants_file.write_bytes(b"")
    owner = grants_file.stat().st_uid
    sudo = {"SUDO_USER": "asmith"}
    assert current_os_user(grants_file, uid=owner, environ={}) == OsUser(
        user_name(owner)
    )
    as_owner = current_os_user(grants_file, uid=owner, environ=sudo)
    assert as_owner == OsUser("asmith", via=user_name(owner))
    assert str(as_owner) == f"asmith (sudo to {user_name(owner)})"
    assert current_os_user(grants_file, uid=0, environ=sudo).name == "asmith"
    stranger = 65534 if owner != 65534 else 65533
    assert stranger != 0
    assert current_os_user(grants_file, uid=stranger, environ=sudo) == OsUser(
        user_name(stranger)
    )
    assert current_os_user(grants_file, environ={}).name == user_name(os.getuid())


def test_user_name_without_an_entry() -> None:
    assert user_name(4_000_000_000) == "uid 4000000000"


def test_config_os_users_validated(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pamwire.toml"
    good = parse_grants_config(
        document(grants={"os_users": {"asmith": "alice"}, "act_for_others": ["ops"]}),
        path,
    )
    assert good.os_users == {"asmith": "alice"} and good.act_for_others == ("ops",)
    with pytest.raises(ConfigError, match="not a person name") as info:
        parse_grants_config(document(grants={"os_users": {"asmith": "a b"}}), path)
    assert "grants.os_users.asmith" in str(info.value)
    with pytest.raises(ConfigError, match="not an OS user name"):
        parse_grants_config(document(grants={"os_users": {"a:b": "alice"}}), path)
    with pytest.raises(ConfigError, match="not an OS user name"):
        parse_grants_config(document(grants={"act_for_others": ["a b"]}), path)
