"""Tests of the grants configuration: defaults, validation, error messages."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from pamwire.errors import ConfigError
from pamwire.grants.config import (
    DEFAULT_CREATE,
    format_duration,
    parse_duration,
    parse_grants_config,
    split_template,
    without_grants,
)
from tests.grants.conftest import document, load


def parse(raw: dict[str, Any], tmp_path: pathlib.Path):  # type: ignore[no-untyped-def]
    return parse_grants_config(raw, tmp_path / "pamwire.toml")


def test_config_defaults_and_role_order(tmp_path: pathlib.Path) -> None:
    config = parse(document(), tmp_path)
    assert config.path == "grants.db"
    assert config.key_file == "grants.key"
    app = config.targets["app"]
    assert list(app.roles) == ["read-only", "read-write"]
    assert app.rank("read-only") < app.rank("read-write")
    assert app.max_duration == 8 * 3600
    assert app.create_statements() == DEFAULT_CREATE
    assert "plain" not in config.targets


def test_config_objects_choose_revoke_statements(tmp_path: pathlib.Path) -> None:
    reassign = parse(document(), tmp_path).targets["app"].revoke_statements()
    assert any("REASSIGN OWNED" in s for s in reassign)
    assert reassign[0].startswith("ALTER ROLE {name} NOLOGIN")
    assert reassign[-1] == "DROP ROLE {name}"
    keep = parse(document(objects="keep"), tmp_path).targets["app"]
    assert not any("OWNED" in s for s in keep.revoke_statements())
    custom = parse(document(templates={"revoke": ["DROP ROLE {name}"]}), tmp_path)
    assert custom.targets["app"].revoke_statements() == ("DROP ROLE {name}",)


def test_config_whole_file_passes_both_parsers(tmp_path: pathlib.Path) -> None:
    raw = document(grants={"groups": {"dba": ["dave"]}}, approver_groups=["dba"])
    config, grants = load(raw, tmp_path)
    assert "grants" not in without_grants(raw)
    assert "grants" not in without_grants(raw)["target"]["app"]
    assert "grants" in raw["target"]["app"]  # the input is left alone
    assert set(config.targets) == {"app", "plain"}
    assert grants.groups == {"dba": ("dave",)}


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"aprovers": ["x"]}, "target.app.grants.aprovers", "did you mean 'approvers'"),
        (
            {"max_duration": "8 hours"},
            "target.app.grants.max_duration",
            "not a duration",
        ),
        ({"approvals_needed": 3}, "target.app.grants.approvers", "needs 3 approval"),
        ({"approvals_needed": 0}, "target.app.grants.approvals_needed", "below 1"),
        (
            {"reason_required": "yes"},
            "target.app.grants.reason_required",
            "true or false",
        ),
        ({"roles": {}}, "target.app.grants.roles", "at least one role"),
        ({"roles": {"Admin!": "x"}}, "target.app.grants.roles", "not a role name"),
        ({"objects": "burn"}, "target.app.grants.objects", "not one of"),
        ({"approver_groups": ["dba"]}, "approver_groups", "unknown name 'dba'"),
        ({"policy": {"admin": {}}}, "target.app.grants.policy.admin", "unknown name"),
        (
            {"policy": {"read-write": {"approvals_needed": 2, "approvers": ["bob"]}}},
            "target.app.grants.policy.read-write.approvers",
            "needs 2 approval",
        ),
        (
            {"admin": {"user": "x", "password_env": "A", "password_file": "f"}},
            "target.app.grants.admin",
            "exactly one",
        ),
        (
            {"templates": {"create": ["CREATE ROLE {nmae}"]}},
            "target.app.grants.templates.create[0]",
            "unknown placeholder {nmae}",
        ),
        (
            {"templates": {"revoke": ["ALTER ROLE {name} PASSWORD {password}"]}},
            "target.app.grants.templates.revoke[0]",
            "{password} is not allowed",
        ),
        (
            {"templates": {"rollback": ["DROP ROLE {name"]}},
            "target.app.grants.templates.rollback[0]",
            "unmatched",
        ),
        (
            {"templates": {"create": []}},
            "target.app.grants.templates.create",
            "at least",
        ),
    ],
)
def test_config_errors_name_file_and_key(
    tmp_path: pathlib.Path, change: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(document(**change), tmp_path)
    assert str(tmp_path / "pamwire.toml") in str(info.value)
    assert key in str(info.value)
    assert message in str(info.value)


def test_config_global_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"grants\.keyfile: unknown key; did you"):
        parse(document(grants={"keyfile": "k"}), tmp_path)
    with pytest.raises(ConfigError, match=r"grants\.account_prefix"):
        parse(document(grants={"account_prefix": 'x"; drop'}), tmp_path)
    with pytest.raises(ConfigError, match=r"grants\.groups\.dba: group has no"):
        parse(document(grants={"groups": {"dba": []}}), tmp_path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90),
        ("90s", 90),
        ("15m", 900),
        ("8h", 28800),
        ("1d2h", 93600),
        ("1h30m", 5400),
    ],
)
def test_config_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "h", "0s", "1.5h", "2 h", "-5", -5, 0, True, 1.5])
def test_config_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_config_split_template_braces() -> None:
    assert split_template("a {{b}} {name}%") == [
        ("text", "a {b} "),
        ("placeholder", "name"),
        ("text", "%"),
    ]
