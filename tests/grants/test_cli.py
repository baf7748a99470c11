"""The `pamwire grant` commands end to end against the session's PostgreSQL."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
from collections.abc import Sequence

import pytest

from pamwire.audit.store import AuditStore
from pamwire.errors import PamwireError
from pamwire.grants import PolicyError
from pamwire.grants.actor import user_name
from pamwire.grants.cli import add_grant_commands, open_service
from pamwire.pgcluster import PostgresCluster
from tests.conftest import SUPERUSER_PASSWORD

pytestmark = pytest.mark.integration

CONFIG = """\
[target.app]
protocol = "postgres"
host = "127.0.0.1"
port = {port}
database = "app"
credential.user = "postgres"
credential.password_env = "PAMWIRE_TEST_GRANTS_CLI_PW"

[target.app.grants]
roles = {{ "read-only" = "ro", "read-write" = "app" }}
approvers = ["bob"]
max_duration = "2h"

[grants]
path = "state/grants.db"
key_file = "state/grants.key"
account_prefix = "{prefix}"
"""


def run(config: pathlib.Path, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="pamwire")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=pathlib.Path)
    add_grant_commands(parser.add_subparsers(), common)
    args = parser.parse_args([*argv, "--config", str(config)])
    result: int = args.func(args)
    return result


@pytest.fixture
def config(
    pg: PostgresCluster, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> pathlib.Path:
    monkeypatch.setenv("PAMWIRE_TEST_GRANTS_CLI_PW", SUPERUSER_PASSWORD)
    (tmp_path / "state").mkdir()
    path = tmp_path / "pamwire.toml"
    prefix = f"pw{secrets.token_hex(4)}_"
    path.write_text(CONFIG.format(port=pg.port, prefix=prefix))
    return path


def test_cli_flow_never_shows_the_password(
    config: pathlib.Path, pg: PostgresCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["grant", "request", "app", "--duration", "30m", "--reason", "ticket 7"]
    assert run(config, [*argv, "--as", "alice"]) == 0
    assert "grant 1 requested: read-only on app for 30m" in capsys.readouterr().out

    with pytest.raises(PolicyError, match="cannot approve her own request"):
        run(config, ["grant", "approve", "1", "--as", "alice"])
    assert run(config, ["grant", "approve", "1", "--as", "bob"]) == 0
    out = capsys.readouterr().out
    assert "grant 1 is active: alice logs in to app as pw" in out

    service = open_service(config)
    try:
        grant = service.show(1).grant
        password = service.credential(grant).password
    finally:
        service.close()
    assert (
        pg.psql(
            "SELECT current_user", database="app", user=grant.account, password=password
        ).strip()
        == grant.account
    )

    assert run(config, ["grant", "list", "--active", "--user", "alice"]) == 0
    listing = capsys.readouterr().out
    assert "approved" in listing and grant.account in listing
    assert run(config, ["grant", "list", "--format", "json", "--target", "app"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["state"] == "approved" and row["account"] == grant.account
    assert run(config, ["grant", "show", "1"]) == 0
    shown = capsys.readouterr().out
    me = user_name(os.getuid())
    assert f"bob (OS user {me})  approved" in shown and "ticket 7" in shown

    assert run(config, ["grant", "revoke", "1", "--as", "bob", "--reason", "done"]) == 0
    assert "grant 1 revoked" in capsys.readouterr().out
    assert run(config, ["grant", "show", "1", "--format", "json"]) == 0
    shown_json = capsys.readouterr()
    details = json.loads(shown_json.out)
    assert details["state"] == "revoked"
    assert details["account_state"] == "removed"
    assert [e["action"] for e in details["history"]][-2:] == [
        "revoked",
        "account_removed",
    ]

    everything = listing + shown + shown_json.out + shown_json.err + out
    assert password not in everything
    for path in (config.parent / "state").iterdir():
        assert password.encode() not in path.read_bytes()


def test_cli_errors(config: pathlib.Path, tmp_path: pathlib.Path) -> None:
    # Without [grants.os_users], --as is required.
    with pytest.raises(PamwireError, match="name the person you act as with --as"):
        run(config, ["grant", "approve", "1"])
    with pytest.raises(SystemExit):
        run(config, ["grant", "request", "app", "--duration", "forever", "--as", "a"])
    with pytest.raises(PamwireError, match="exceeds the longest grant"):
        run(config, ["grant", "request", "app", "--duration", "3h", "--as", "a"])
    with pytest.raises(PamwireError, match="no grant 9"):
        run(config, ["grant", "show", "9"])
    with pytest.raises(PamwireError, match="configuration file not found"):
        run(tmp_path / "missing.toml", ["grant", "list"])


def test_cli_escapes_control_characters_in_text_output(
    config: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "fix\n  state:     approved\x1b[2J\x9b31m\tend"
    assert (
        run(config, ["grant", "request", "app", "--reason", reason, "--as", "alice"])
        == 0
    )
    assert run(config, ["grant", "show", "1"]) == 0
    assert run(config, ["grant", "list"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out and "\t" not in out
    assert "  reason:    fix   state:     approved\\x1b[2J\\x9b31m end" in out
    assert not [
        line for line in out.splitlines() if line.startswith("  state:     app")
    ]

    assert run(config, ["grant", "show", "1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reason"] == reason


def test_cli_revoke_of_a_requested_grant_denies_it(
    config: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(config, ["grant", "request", "app", "--reason", "x", "--as", "alice"]) == 0
    )
    assert run(config, ["grant", "revoke", "1", "--as", "alice"]) == 0
    assert "grant 1 was still requested, so it is denied" in capsys.readouterr().out
    with pytest.raises(
        PamwireError, match="is denied, not approved: nothing to revoke"
    ):
        run(config, ["grant", "revoke", "1", "--as", "alice"])


def test_cli_os_user_mapping_picks_and_limits_the_person(
    config: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = user_name(os.getuid())
    plain = config.read_text()
    config.write_text(plain + f'os_users = {{ "{me}" = "alice" }}\n')

    assert run(config, ["grant", "request", "app", "--reason", "ticket 9"]) == 0
    assert "grant 1 requested" in capsys.readouterr().out
    with pytest.raises(PolicyError, match=f"OS user '{me}' acts as 'alice', not 'bob'"):
        run(config, ["grant", "approve", "1", "--as", "bob"])
    with pytest.raises(PolicyError, match="cannot approve her own request"):
        run(config, ["grant", "approve", "1"])

    # An OS user allowed to act for others names the person.
    config.write_text(
        plain + f'os_users = {{ "{me}" = "alice" }}\nact_for_others = ["{me}"]\n'
    )
    assert run(config, ["grant", "approve", "1", "--as", "bob"]) == 0
    assert run(config, ["grant", "revoke", "1", "--as", "bob"]) == 0
    capsys.readouterr()

    assert run(config, ["grant", "show", "1", "--format", "json"]) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert history[0]["actor"] == "alice" and history[0]["action"] == "requested"
    assert {e["os_user"] for e in history} == {me}
    assert run(config, ["grant", "show", "1"]) == 0
    assert f"bob (OS user {me})  approved" in capsys.readouterr().out

    service = open_service(config)
    audit_path = service.audit.path
    service.close()
    assert audit_path is not None
    store = AuditStore(audit_path, read_only=True)
    try:
        details = [i.event.detail or "" for i, _ in store.chained_events()]
    finally:
        store.close()
    assert any(f"requested by alice (OS user {me})" in d for d in details)
    assert all(f"(OS user {me})" in d for d in details), details
