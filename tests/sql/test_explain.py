"""`rules explain`: arguments, facts, matched rules and verdict in both formats."""

from __future__ import annotations

import argparse
import json

import pytest

from pamwire.errors import ConfigError
from pamwire.rules.engine import RuleSet
from pamwire.rules.explain import add_explain_arguments, run_explain
from pamwire.rules.loader import builtin_pack, load_rules


@pytest.fixture(scope="module")
def policy() -> RuleSet:
    return load_rules([builtin_pack(n) for n in ("baseline", "read-only")])


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_explain_arguments(parser)
    return parser.parse_args(list(argv))


def test_explain_json_has_verdict_rules_and_facts(policy: RuleSet) -> None:
    out = json.loads(
        run_explain(_args("--format", "json", "SELECT 1; DELETE FROM t"), policy)
    )
    assert out["verdict"] == "deny"
    assert out["rule"] == "no-unscoped-delete"
    assert out["rules"] == ["no-unscoped-delete"]
    first, second = out["statements"]
    assert first["verdict"] == "allow" and first["rules"] == []
    assert second["facts"]["kind"] == "delete"
    assert second["facts"]["unscoped"] is True
    assert second["facts"]["tables_written"] == ["public.t"]


def test_explain_lists_every_matching_rule(policy: RuleSet) -> None:
    out = json.loads(
        run_explain(
            _args("--role", "read-only", "--format", "json", "SELECT wipe() INTO x"),
            policy,
        )
    )
    ids = [rule["id"] for rule in out["statements"][0]["rules"]]
    assert ids == ["read-only-kinds", "read-only-functions", "read-only-writes"]
    assert out["rule"] == "read-only-kinds"


def test_explain_settings_change_the_reading(policy: RuleSet) -> None:
    args = _args(
        "--setting",
        "search_path=hr, public",
        "--setting",
        "standard_conforming_strings=on",
        "--format",
        "json",
        "SELECT * FROM salaries",
    )
    out = json.loads(run_explain(args, policy))
    tables = out["statements"][0]["facts"]["tables_read"]
    assert tables == ["hr.salaries", "public.salaries"]

    off = _args("--setting", "standard_conforming_strings=off", "SELECT 'a\\'")
    assert "cannot analyze" in run_explain(off, policy)


def test_explain_table_format(policy: RuleSet) -> None:
    out = run_explain(_args("--role", "read-only", "SELECT nextval('s')"), policy)
    assert "statement 1: SELECT nextval('s')" in out
    assert "matched         deny   read-only-functions" in out
    assert out.splitlines()[-2] == "verdict: deny by rule read-only-functions"


def test_explain_unparsable(policy: RuleSet) -> None:
    out = json.loads(run_explain(_args("--format", "json", "SELEC 1"), policy))
    assert out["verdict"] == "deny" and out["rules"][0]["id"] == "unparsable"
    assert out["error"].startswith("syntax error")


def test_explain_bad_arguments(policy: RuleSet) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'timezone=utc'"):
        run_explain(_args("--setting", "timezone=utc", "SELECT 1"), policy)
    with pytest.raises(ConfigError, match="unknown setting 'search_path=x'"):
        run_explain(
            _args("--dialect", "mysql", "--setting", "search_path=x", "SELECT 1"),
            policy,
        )


def test_explain_mysql_reads_with_the_session_sql_mode(policy: RuleSet) -> None:
    # With NO_BACKSLASH_ESCAPES the backslash ends the string, and the DELETE
    # after it is a statement of its own.
    text = "SELECT 'a\\' ; DELETE FROM t; -- '"
    plain = json.loads(
        run_explain(_args("--dialect", "mysql", "--format", "json", text), policy)
    )
    no_escapes = json.loads(
        run_explain(
            _args(
                "--dialect",
                "mysql",
                "--setting",
                "sql_mode=NO_BACKSLASH_ESCAPES",
                "--format",
                "json",
                text,
            ),
            policy,
        )
    )
    assert plain["verdict"] == "allow"
    assert no_escapes["verdict"] == "deny"


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (
            "ALTER SYSTEM SET default_transaction_read_only = off",
            "no-persistent-settings",
        ),
        ("ALTER DATABASE app SET role = postgres", "no-persistent-settings"),
        ("SET client_encoding = 'SJIS'", "unsafe-client-encoding"),
        (
            "SELECT set_config(current_setting('x'), 'on', false)",
            "no-dynamic-set-config",
        ),
    ],
)
def test_explain_names_the_new_baseline_rules(
    policy: RuleSet, sql: str, rule: str
) -> None:
    out = json.loads(run_explain(_args("--format", "json", sql), policy))
    assert out["verdict"] == "deny" and out["rule"] == rule
    table = run_explain(_args(sql), policy)
    assert f"verdict: deny by rule {rule}" in table
