"""`pamwire rules replay`: re-deciding audited statements with candidate rules."""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

import pytest

from pamwire.audit.events import AuditEvent, new_event_id
from pamwire.audit.store import AuditStore
from pamwire.rules.replay import (
    UNPARSABLE_NOW,
    add_replay_arguments,
    load_candidates,
    replay,
    run_replay,
)

# 2026-12-07T10:00:00Z, a Monday.
BASE = 1796637600.0

CANDIDATE = """
[[rule]]
id = "no-deletes"
action = "deny"
when.kind = ["delete"]

[[rule]]
id = "mysql-sleep"
action = "deny"
when.dialect = ["mysql"]
when.functions = ["sleep"]

[[rule]]
id = "no-night-selects"
action = "audit"
when.kind = ["select"]
when.time = "22:00-06:00"
"""


def _event(n: int, statement: str | None, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "event_id": new_event_id(),
        "time": BASE + n,
        "kind": "statement",
        "session": "5e55",
        "user": "alice",
        "target": "prod",
        "client_addr": "127.0.0.1:5000",
        "application": "psql",
        "statement": statement,
        "verdict": "allow",
    }
    values.update(fields)
    return AuditEvent(**values)


EVENTS = [
    _event(0, "SELECT 1"),
    _event(1, "DELETE FROM t WHERE id = 1"),
    _event(2, "DELETE FROM t WHERE id = 2", verdict="deny", rule="old-rule"),
    _event(3, "SELECT SLEEP(1)", protocol="mysql"),
    _event(4, "SELECT pg_sleep(1)"),
    _event(5, "ALTER ROLE bob PASSWORD '<redacted>' VALID"),
    _event(6, "SELEC oops", verdict="deny", rule="unparsable"),
    _event(7, None, kind="session_start"),
    _event(14 * 3600, "SELECT 2"),
]


@pytest.fixture
def candidate(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "candidate.toml"
    path.write_text(CANDIDATE, "utf-8")
    return path


@pytest.fixture
def store_path(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    store.append(EVENTS)
    store.close()
    return path


def test_replay_reports_only_changed_verdicts(candidate: pathlib.Path) -> None:
    report = replay(EVENTS, load_candidates([str(candidate)]))
    assert report.checked == 8
    got = {(c.statement, c.transition, c.new_rule) for c in report.changes}
    assert got == {
        ("DELETE FROM t WHERE id = 1", "allow -> deny", "no-deletes"),
        ("SELECT SLEEP(1)", "allow -> deny", "mysql-sleep"),
        (
            "ALTER ROLE bob PASSWORD '<redacted>' VALID",
            f"allow -> {UNPARSABLE_NOW}",
            None,
        ),
        ("SELECT 2", "allow -> audit", "no-night-selects"),
    }
    assert report.counts() == {
        "allow -> deny": 2,
        f"allow -> {UNPARSABLE_NOW}": 1,
        "allow -> audit": 1,
    }


def test_replay_uses_the_role_given_for_each_event(candidate: pathlib.Path) -> None:
    rules = load_candidates(["pack:baseline", "pack:read-only"])
    events = [_event(0, "SELECT nextval('s')"), _event(1, "SELECT now()")]
    assert replay(events, rules).changes == ()
    report = replay(events, rules, role_of=lambda event: "read-only")
    assert [c.new_rule for c in report.changes] == ["read-only-functions"]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_replay_arguments(parser)
    return parser.parse_args(list(argv))


def test_replay_command_table(
    candidate: pathlib.Path,
    store_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _args("--since", "2026-12-07", str(candidate))
    assert run_replay(args, None, store_path) == 0
    out = capsys.readouterr().out
    assert out.startswith("8 statements re-decided, 4 changed\n")
    assert "deny/no-deletes" in out
    assert "DELETE FROM t WHERE id = 1" in out
    assert f"1  allow -> {UNPARSABLE_NOW}" in out


def test_replay_command_json_and_since(
    candidate: pathlib.Path,
    store_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _args("--since", "2026-12-07T12:00:00Z", "--format", "json", str(candidate))
    assert run_replay(args, None, store_path) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["checked"] == 1
    assert document["counts"] == {"allow -> audit": 1}
    [change] = document["changes"]
    assert change["old"] == {"verdict": "allow", "rule": None}
    assert change["new"] == {"verdict": "audit", "rule": "no-night-selects"}


def test_replay_command_needs_since_and_files() -> None:
    with pytest.raises(SystemExit):
        _args("rules.toml")
    with pytest.raises(SystemExit):
        _args("--since", "yesterday-ish", "rules.toml")
