"""Context conditions of rules: dialect, groups, time of day and weekdays."""

from __future__ import annotations

import datetime
import pathlib

import attrs
import pytest

from pamwire.errors import ConfigError
from pamwire.rules.engine import RuleContext, RuleSet, strongest
from pamwire.rules.loader import load_rules, run_examples
from pamwire.sql import mysql, pg

OFFICE_HOURS = """
[[rule]]
id = "no-writes-out-of-hours"
action = "deny"
when.kind = ["update", "delete", "insert"]
when.time = "09:00-18:00"
when.timezone = "Europe/Paris"
when.weekdays = ["mon", "tue", "wed", "thu", "fri"]
when.group = ["contractors"]

[[rule.example]]
sql = "UPDATE t SET a = 1 WHERE id = 1"
groups = ["contractors"]
at = "2026-12-07T10:00:00Z"
expect = "deny"

[[rule.example]]
sql = "UPDATE t SET a = 1 WHERE id = 1"
groups = ["contractors"]
at = "2026-12-07T17:30:00Z"
expect = "allow"
"""

NIGHT = """
[[rule]]
id = "night-audit"
action = "audit"
when.time = "22:00-06:00"
when.weekdays = ["fri"]
"""


def _load(tmp_path: pathlib.Path, text: str) -> RuleSet:
    path = tmp_path / "r.toml"
    path.write_text(text, "utf-8")
    return load_rules([path])


def _at(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


def _now(ctx: RuleContext, iso: str) -> RuleContext:
    return attrs.evolve(ctx, now=_at(iso))


def _decide(rules: RuleSet, sql: str, ctx: RuleContext) -> str:
    return strongest(rules.decide_all(pg.analyze(sql), ctx)).verdict


def test_rule_time_window_in_a_time_zone(tmp_path: pathlib.Path) -> None:
    rules = _load(tmp_path, OFFICE_HOURS)
    assert run_examples(rules) == []
    ctx = RuleContext(user="u", target="t", groups=frozenset({"contractors"}))
    sql = "DELETE FROM t WHERE id = 1"
    # Monday 2026-12-07: Paris is UTC+1 in winter.
    assert _decide(rules, sql, _now(ctx, "2026-12-07T07:59:00Z")) == "allow"
    assert _decide(rules, sql, _now(ctx, "2026-12-07T08:00:00Z")) == "deny"
    assert _decide(rules, sql, _now(ctx, "2026-12-07T16:59:59Z")) == "deny"
    assert _decide(rules, sql, _now(ctx, "2026-12-07T17:00:00Z")) == "allow"
    # Saturday.
    assert _decide(rules, sql, _now(ctx, "2026-12-12T10:00:00Z")) == "allow"


def test_rule_group_must_match(tmp_path: pathlib.Path) -> None:
    rules = _load(tmp_path, OFFICE_HOURS)
    sql = "DELETE FROM t WHERE id = 1"
    now = _at("2026-12-07T10:00:00Z")
    staff = RuleContext(user="u", target="t", groups=frozenset({"dba"}), now=now)
    nobody = RuleContext(user="u", target="t", now=now)
    assert _decide(rules, sql, staff) == "allow"
    assert _decide(rules, sql, nobody) == "allow"
    both = RuleContext(
        user="u", target="t", groups=frozenset({"dba", "contractors"}), now=now
    )
    assert _decide(rules, sql, both) == "deny"


def test_rule_window_past_midnight_counts_for_the_day_it_started(
    tmp_path: pathlib.Path,
) -> None:
    rules = _load(tmp_path, NIGHT)

    def at(iso: str) -> str:
        return _decide(rules, "SELECT 1", RuleContext("u", "t", now=_at(iso)))

    assert at("2026-12-11T23:00:00+00:00") == "audit"  # Friday night
    assert at("2026-12-12T05:59:00+00:00") == "audit"  # still Friday's night
    assert at("2026-12-12T06:00:00+00:00") == "allow"
    assert at("2026-12-12T23:00:00+00:00") == "allow"  # Saturday night
    assert at("2026-12-11T05:00:00+00:00") == "allow"  # Thursday's night


def test_rule_cache_does_not_carry_a_verdict_across_minutes(
    tmp_path: pathlib.Path,
) -> None:
    rules = _load(tmp_path, OFFICE_HOURS)
    facts = pg.analyze("DELETE FROM t WHERE id = 1").statements[0]
    groups = frozenset({"contractors"})
    inside = RuleContext("u", "t", now=_at("2026-12-07T16:59:30Z"), groups=groups)
    outside = RuleContext("u", "t", now=_at("2026-12-07T17:00:10Z"), groups=groups)
    assert rules.decide(facts, inside).verdict == "deny"
    assert rules.decide(facts, outside).verdict == "allow"
    assert rules.decide(facts, inside).verdict == "deny"


def test_rule_clock_defaults_to_the_current_time(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = _load(tmp_path, NIGHT)
    clock = [_at("2026-12-11T23:00:00+00:00")]
    monkeypatch.setattr("pamwire.rules.engine.time.time", lambda: clock[0])
    ctx = RuleContext("u", "t")
    assert _decide(rules, "SELECT 1", ctx) == "audit"
    clock[0] = _at("2026-12-12T12:00:00+00:00")
    assert _decide(rules, "SELECT 1", ctx) == "allow"


def test_rule_clock_does_not_split_the_cache_without_time_rules(
    tmp_path: pathlib.Path,
) -> None:
    rules = _load(tmp_path, '[[rule]]\nid = "a"\naction = "audit"\n')
    facts = pg.analyze("SELECT 1").statements[0]
    for second in range(5):
        rules.decide(facts, RuleContext("u", "t", now=float(second)))
    assert rules._decide_cached.cache_info().currsize == 1


def test_rule_time_condition_decides_unparsable_text(tmp_path: pathlib.Path) -> None:
    text = NIGHT.replace('action = "audit"', 'action = "allow"') + (
        "when.unparsable = true\n"
    )
    rules = _load(tmp_path, text)
    night = RuleContext("u", "t", now=_at("2026-12-11T23:00:00+00:00"))
    day = RuleContext("u", "t", now=_at("2026-12-11T12:00:00+00:00"))
    assert rules.decide_unparsable("x", night).verdict == "allow"
    assert rules.decide_unparsable("x", day).verdict == "deny"


def test_rule_dialect_condition(tmp_path: pathlib.Path) -> None:
    rules = _load(
        tmp_path,
        '[[rule]]\nid = "a"\naction = "deny"\nwhen.dialect = ["mysql"]\n'
        'when.functions = ["date_format", "time_to_str"]\n'
        "[[rule.example]]\nsql = \"SELECT DATE_FORMAT(d, '%Y') FROM t\"\n"
        'dialect = "mysql"\nexpect = "deny"\n',
    )
    assert run_examples(rules) == []
    analysis = mysql.analyze("SELECT DATE_FORMAT(d, '%Y') FROM t", database="app")
    pg_ctx = RuleContext("u", "t")
    my_ctx = RuleContext("u", "t", dialect="mysql")
    assert strongest(rules.decide_all(analysis, pg_ctx)).verdict == "allow"
    assert strongest(rules.decide_all(analysis, my_ctx)).verdict == "deny"


LOADER_ERRORS = [
    ('when.time = "9-18"', r"r\.toml:4: rule 'a' when\.time: invalid time span '9-18'"),
    ('when.time = "09:00-25:00"', r"when\.time: invalid time span"),
    ('when.time = "09:00-09:00"', r"when\.time: empty time span"),
    ("when.time = 9", r"when\.time: invalid time span 9"),
    (
        'when.weekdays = ["monday"]',
        r"when\.weekdays: unknown day 'monday'; allowed: mon",
    ),
    ("when.weekdays = []", r"when\.weekdays: must be a string or a non-empty list"),
    (
        'when.time = "09:00-18:00"\nwhen.timezone = "Mars/Olympus"',
        r"r\.toml:5: rule 'a' when\.timezone: unknown time zone 'Mars/Olympus'",
    ),
    ('when.timezone = "UTC"', r"when\.timezone: applies only with when\.time"),
    ('when.dialect = ["oracle"]', r"when\.dialect: unknown value 'oracle'"),
    ("when.group = []", r"when\.group: must be a string or a non-empty list"),
]


@pytest.mark.parametrize(("line", "pattern"), LOADER_ERRORS)
def test_rule_loader_rejects_bad_context_values(
    tmp_path: pathlib.Path, line: str, pattern: str
) -> None:
    text = f'[[rule]]\nid = "a"\naction = "deny"\n{line}\n'
    with pytest.raises(ConfigError, match=pattern):
        _load(tmp_path, text)


def test_rule_loader_rejects_bad_example_context(tmp_path: pathlib.Path) -> None:
    base = '[[rule]]\nid = "a"\naction = "deny"\n[[rule.example]]\nsql = "SELECT 1"\n'
    with pytest.raises(ConfigError, match=r"example\.at: invalid time 'noon'"):
        _load(tmp_path, base + 'expect = "deny"\nat = "noon"\n')
    with pytest.raises(ConfigError, match=r"example\.dialect: unknown dialect"):
        _load(tmp_path, base + 'expect = "deny"\ndialect = "sqlite"\n')
