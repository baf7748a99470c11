"""Overrides: allow rules that lift named deny rules, their load errors, the cache."""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import pathlib
import random
import textwrap

import attrs
import pytest

from pamwire import cli
from pamwire.errors import ConfigError
from pamwire.rules.engine import Decision, Lift, Rule, RuleContext, RuleSet
from pamwire.rules.explain import add_explain_arguments, run_explain
from pamwire.rules.loader import builtin_pack, load_rules, run_examples
from pamwire.sql import mysql, pg

REPO = pathlib.Path(__file__).parents[2]
EXAMPLE = REPO / "rules" / "examples" / "exceptions.toml"

STAGING_DBA = RuleContext(user="dana", target="staging", groups=frozenset({"dba"}))

# A team file next to pack:baseline: TRUNCATE for dba on staging.
TEAM = """
    [[rule]]
    id = "dba-truncate-staging"
    action = "allow"
    overrides = ["baseline/no-truncate"]
    when.kind = ["truncate"]
    when.group = ["dba"]
    when.target = ["staging"]
"""


def _write(tmp_path: pathlib.Path, text: str, name: str) -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _with_baseline(tmp_path: pathlib.Path, text: str = TEAM) -> RuleSet:
    team = _write(tmp_path, text, "team.toml")
    return load_rules([builtin_pack("baseline"), team])


def _decide(ruleset: RuleSet, sql: str, ctx: RuleContext) -> list[Decision]:
    return ruleset.decide_all(pg.analyze(sql), ctx)


# --- the engine ---------------------------------------------------------------------


def test_override_lifts_the_named_deny(tmp_path: pathlib.Path) -> None:
    ruleset = _with_baseline(tmp_path)
    (decision,) = _decide(ruleset, "TRUNCATE orders", STAGING_DBA)
    assert decision.verdict == "allow"
    assert decision.rule == "dba-truncate-staging"
    assert decision.lifted == (
        Lift("baseline/no-truncate", "team/dba-truncate-staging"),
    )
    assert decision.lifted_text() == (
        "deny rule baseline/no-truncate lifted by team/dba-truncate-staging"
    )


def test_override_other_matching_deny_still_wins(tmp_path: pathlib.Path) -> None:
    text = (
        TEAM
        + """
    [[rule]]
    id = "no-hr-writes"
    action = "deny"
    when.tables_written = ["hr.*"]
    """
    )
    ruleset = _with_baseline(tmp_path, text)
    (decision,) = _decide(ruleset, "TRUNCATE hr.salaries", STAGING_DBA)
    assert (decision.verdict, decision.rule) == ("deny", "no-hr-writes")
    # The lift is recorded even so: the auditor sees the exception applied.
    assert decision.lifted == (
        Lift("baseline/no-truncate", "team/dba-truncate-staging"),
    )
    decisions = _decide(ruleset, "TRUNCATE orders; DROP TABLE orders", STAGING_DBA)
    assert [(d.verdict, d.rule) for d in decisions] == [
        ("allow", "dba-truncate-staging"),
        ("deny", "no-drop"),
    ]


def test_override_lifts_only_the_rules_it_names(tmp_path: pathlib.Path) -> None:
    text = """
    [[rule]]
    id = "no-truncate-here"
    action = "deny"
    when.kind = ["truncate"]

    [[rule]]
    id = "truncate-for-dba"
    action = "allow"
    overrides = ["baseline/no-truncate"]
    when.group = ["dba"]
    """
    ruleset = _with_baseline(tmp_path, text)
    (decision,) = _decide(ruleset, "TRUNCATE orders", STAGING_DBA)
    assert (decision.verdict, decision.rule) == ("deny", "no-truncate-here")


def test_override_that_does_not_match_lifts_nothing(tmp_path: pathlib.Path) -> None:
    ruleset = _with_baseline(tmp_path)
    for ctx in (
        RuleContext(user="dana", target="prod", groups=frozenset({"dba"})),
        RuleContext(user="dev", target="staging", groups=frozenset({"developers"})),
    ):
        (decision,) = _decide(ruleset, "TRUNCATE orders", ctx)
        assert (decision.verdict, decision.rule) == ("deny", "no-truncate")
        assert decision.lifted == ()


def test_override_matching_without_the_deny_records_no_lift(
    tmp_path: pathlib.Path,
) -> None:
    text = """
    [[rule]]
    id = "dba-anything"
    action = "allow"
    overrides = ["baseline/no-truncate"]
    when.group = ["dba"]
    """
    ruleset = _with_baseline(tmp_path, text)
    (decision,) = _decide(ruleset, "SELECT 1", STAGING_DBA)
    assert decision == Decision("allow", "dba-anything", "allow by rule dba-anything")


def test_override_with_an_audit_rule_gives_audit_and_keeps_the_lift(
    tmp_path: pathlib.Path,
) -> None:
    text = (
        TEAM
        + """
    [[rule]]
    id = "audit-staging"
    action = "audit"
    when.target = ["staging"]
    """
    )
    ruleset = _with_baseline(tmp_path, text)
    (decision,) = _decide(ruleset, "TRUNCATE orders", STAGING_DBA)
    assert (decision.verdict, decision.rule) == ("audit", "audit-staging")
    assert [lift.by for lift in decision.lifted] == ["team/dba-truncate-staging"]


def test_override_names_the_decision_before_other_allows(
    tmp_path: pathlib.Path,
) -> None:
    first = _write(
        tmp_path, '[[rule]]\nid = "allow-all"\naction = "allow"\n', "open.toml"
    )
    team = _write(tmp_path, TEAM, "team.toml")
    ruleset = load_rules([first, builtin_pack("baseline"), team])
    (decision,) = _decide(ruleset, "TRUNCATE orders", STAGING_DBA)
    assert decision.rule == "dba-truncate-staging"
    (decision,) = _decide(ruleset, "SELECT 1", STAGING_DBA)
    assert decision.rule == "allow-all"


def test_override_applies_to_the_statement_a_prepare_holds(
    tmp_path: pathlib.Path,
) -> None:
    ruleset = _with_baseline(tmp_path)
    analysis = mysql.analyze("PREPARE s FROM 'TRUNCATE TABLE orders'", database="app")
    assert analysis.statements[0].inner is not None
    dba = attrs.evolve(STAGING_DBA, dialect="mysql")
    (decision,) = ruleset.decide_all(analysis, dba)
    assert decision.verdict == "allow" and decision.lifted
    (decision,) = ruleset.decide_all(analysis, attrs.evolve(dba, target="prod"))
    assert decision.rule == "no-truncate"


def test_override_files_load_in_any_order(tmp_path: pathlib.Path) -> None:
    team = _write(tmp_path, TEAM, "team.toml")
    ruleset = load_rules([team, builtin_pack("baseline")])
    (decision,) = _decide(ruleset, "TRUNCATE orders", STAGING_DBA)
    assert decision.verdict == "allow"


def test_override_of_mysql_load_data_local(tmp_path: pathlib.Path) -> None:
    text = """
    [[rule]]
    id = "bob-loads-local"
    action = "allow"
    overrides = ["baseline/no-load-data-local"]
    when.kind = ["load"]
    when.copy = ["stdio"]
    when.user = ["bob"]
    """
    ruleset = _with_baseline(tmp_path, text)
    analysis = mysql.analyze(
        "LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE ld", database="app"
    )
    bob = RuleContext(user="bob", target="app", dialect="mysql")
    alice = RuleContext(user="alice", target="app", dialect="mysql")
    (decision,) = ruleset.decide_all(analysis, bob)
    assert (decision.verdict, decision.rule) == ("allow", "bob-loads-local")
    assert decision.lifted == (
        Lift("baseline/no-load-data-local", "team/bob-loads-local"),
    )
    (decision,) = ruleset.decide_all(analysis, alice)
    assert (decision.verdict, decision.rule) == ("deny", "no-load-data-local")
    server_file = mysql.analyze(
        "LOAD DATA INFILE '/etc/passwd' INTO TABLE ld", database="app"
    )
    (decision,) = ruleset.decide_all(server_file, bob)
    assert decision.rule == "no-copy-server-side"


def test_override_lifts_an_unparsable_deny_rule(tmp_path: pathlib.Path) -> None:
    ruleset = load_rules(
        [
            _write(
                tmp_path,
                """
                [[rule]]
                id = "no-odd-text"
                action = "deny"
                when.unparsable = true

                [[rule]]
                id = "replicator-odd-text"
                action = "allow"
                overrides = ["r/no-odd-text"]
                when.unparsable = true
                when.user = ["replicator"]
                """,
                "r.toml",
            )
        ]
    )
    ctx = RuleContext(user="replicator", target="prod")
    decision = ruleset.decide_unparsable("syntax error", ctx)
    assert (decision.verdict, decision.rule) == ("allow", "replicator-odd-text")
    decision = ruleset.decide_unparsable("syntax error", attrs.evolve(ctx, user="eve"))
    assert (decision.verdict, decision.rule) == ("deny", "no-odd-text")


def test_ruleset_refuses_an_override_of_no_deny_rule() -> None:
    allow = Rule(id="a", action="allow", source="x:1", overrides=("b",))
    other = Rule(id="b", action="allow", source="x:2")
    with pytest.raises(ConfigError, match=r"rule 'a' overrides: .*'b'"):
        RuleSet([allow, other])
    with pytest.raises(ConfigError, match=r"only allow rules can override"):
        RuleSet([Rule(id="d", action="deny", source="x:1", overrides=("d",))])


# --- the decision cache -------------------------------------------------------------

CACHE_RULES = """
    [[rule]]
    id = "no-truncate"
    action = "deny"
    when.kind = ["truncate"]

    [[rule]]
    id = "lift-for-some"
    action = "allow"
    overrides = ["cache/no-truncate"]
    when.kind = ["truncate"]
    when.user = ["dana"]
    when.group = ["dba"]
    when.target = ["staging"]
    when.role = ["read-write"]
    when.dialect = ["postgres"]
"""


def _cache_contexts() -> list[RuleContext]:
    return [
        RuleContext(
            user=user,
            target=target,
            role=role,
            dialect=dialect,
            groups=groups,
        )
        for user, target, role, dialect, groups in itertools.product(
            ("dana", "eve"),
            ("staging", "prod"),
            ("read-write", None),
            ("postgres", "mysql"),
            (frozenset({"dba"}), frozenset({"dev"}), frozenset()),
        )
    ]


def test_override_cache_keys_on_every_context_field(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path, CACHE_RULES, "cache.toml")
    cached = load_rules([path])
    facts = pg.analyze("TRUNCATE orders").statements[0]
    other_literal = pg.analyze("TRUNCATE orders").statements[0]
    contexts = _cache_contexts() * 2
    random.Random(7).shuffle(contexts)
    allowed = 0
    for ctx in contexts:
        fresh = load_rules([path])
        expected = fresh.decide(facts, ctx)
        assert cached.decide(other_literal, ctx) == expected, ctx
        allowed += expected.verdict == "allow"
    # Exactly one context of the 48 is lifted, seen twice.
    assert allowed == 2


@pytest.mark.parametrize(
    "change",
    [
        {"user": "eve"},
        {"groups": frozenset({"dev"})},
        {"target": "prod"},
        {"role": None},
        {"dialect": "mysql"},
    ],
    ids=["person", "group", "target", "role", "dialect"],
)
def test_override_cache_no_stale_decision(
    tmp_path: pathlib.Path, change: dict[str, object]
) -> None:
    ruleset = load_rules([_write(tmp_path, CACHE_RULES, "cache.toml")])
    facts = pg.analyze("TRUNCATE orders").statements[0]
    lifted = RuleContext(
        user="dana",
        target="staging",
        role="read-write",
        groups=frozenset({"dba"}),
    )
    not_lifted = attrs.evolve(lifted, **change)
    # Both orders: a cached allow must not leak to others, nor a deny to dana.
    assert ruleset.decide(facts, lifted).verdict == "allow"
    assert ruleset.decide(facts, not_lifted).verdict == "deny"
    ruleset.cache_clear()
    assert ruleset.decide(facts, not_lifted).verdict == "deny"
    assert ruleset.decide(facts, lifted).verdict == "allow"
    assert ruleset.decide(facts, lifted).lifted


def test_override_cache_follows_the_override_time_window(
    tmp_path: pathlib.Path,
) -> None:
    text = """
    [[rule]]
    id = "no-truncate"
    action = "deny"
    when.kind = ["truncate"]

    [[rule]]
    id = "maintenance-truncate"
    action = "allow"
    overrides = ["window/no-truncate"]
    when.time = "09:00-10:00"
    """
    ruleset = load_rules([_write(tmp_path, text, "window.toml")])
    facts = pg.analyze("TRUNCATE orders").statements[0]

    def at(hour: int, minute: int, second: int) -> RuleContext:
        moment = datetime.datetime(
            2026, 3, 2, hour, minute, second, tzinfo=datetime.UTC
        )
        return RuleContext(user="u", target="t", now=moment.timestamp())

    assert ruleset.decide(facts, at(9, 59, 0)).verdict == "allow"
    assert ruleset.decide(facts, at(10, 0, 0)).verdict == "deny"
    assert ruleset.decide(facts, at(9, 59, 59)).verdict == "allow"
    assert ruleset.decide(facts, at(8, 59, 59)).verdict == "deny"
    assert ruleset.decide(facts, at(9, 0, 0)).verdict == "allow"


# --- the loader's errors ------------------------------------------------------------

DENY_B = '[[rule]]\nid = "b"\naction = "deny"\nwhen.kind = ["drop"]\n'

OVERRIDE_ERRORS = [
    (
        "override on a deny rule",
        DENY_B + '\n[[rule]]\nid = "a"\naction = "deny"\noverrides = ["r/b"]\n',
        r"r\.toml:9: rule 'a' overrides: only allow rules can override; "
        r"this rule is deny",
    ),
    (
        "unknown rule",
        DENY_B + '\n[[rule]]\nid = "a"\naction = "allow"\noverrides = ["r/bb"]\n',
        r"r\.toml:9: rule 'a' overrides: unknown rule 'r/bb'; did you mean 'r/b'\?",
    ),
    (
        "unknown file",
        DENY_B + '\n[[rule]]\nid = "a"\naction = "allow"\noverrides = ["team/c"]\n',
        r"r\.toml:9: rule 'a' overrides: unknown rule 'team/c': neither pack:team "
        r"nor team\.toml is loaded; loaded: r",
    ),
    (
        "file left out",
        DENY_B + '\n[[rule]]\nid = "a"\naction = "allow"\noverrides = ["b"]\n',
        r"r\.toml:9: rule 'a' overrides: override 'b' must name the rule's file "
        r"too: FILE/ID, e.g. 'r/b'",
    ),
    (
        "itself",
        '[[rule]]\nid = "a"\naction = "allow"\noverrides = ["r/a"]\n',
        r"r\.toml:4: rule 'a' overrides: a rule cannot override itself",
    ),
    (
        "an allow rule",
        '[[rule]]\nid = "b"\naction = "allow"\n\n'
        '[[rule]]\nid = "a"\naction = "allow"\noverrides = ["r/b"]\n',
        r"r\.toml:8: rule 'a' overrides: 'r/b' is an allow rule; "
        r"only deny rules can be overridden",
    ),
    (
        "an audit rule",
        '[[rule]]\nid = "b"\naction = "audit"\n\n'
        '[[rule]]\nid = "a"\naction = "allow"\noverrides = ["r/b"]\n',
        r"'r/b' is an audit rule; only deny rules can be overridden",
    ),
    (
        "a cycle of two",
        '[[rule]]\nid = "a"\naction = "allow"\noverrides = ["r/b"]\n\n'
        '[[rule]]\nid = "b"\naction = "allow"\noverrides = ["r/a"]\n',
        r"r\.toml:4: rule 'a' overrides: 'r/b' is an allow rule",
    ),
    (
        "named twice",
        DENY_B + '[[rule]]\nid = "a"\naction = "allow"\noverrides = ["r/b", "r/b"]\n',
        r"r\.toml:8: rule 'a' overrides: 'r/b' is named twice",
    ),
    (
        "empty list",
        DENY_B + '[[rule]]\nid = "a"\naction = "allow"\noverrides = []\n',
        r"rule 'a' overrides: must be a string or a non-empty list",
    ),
    (
        "not a string",
        DENY_B + '[[rule]]\nid = "a"\naction = "allow"\noverrides = [1]\n',
        r"rule 'a' overrides: entries must be non-empty strings, not 1",
    ),
    (
        "misspelt key",
        DENY_B + '[[rule]]\nid = "a"\naction = "allow"\noverride = ["r/b"]\n',
        r"rule 'a' override: unknown key 'override'; did you mean 'overrides'\?",
    ),
]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [(text, pattern) for _, text, pattern in OVERRIDE_ERRORS],
    ids=[name for name, _, _ in OVERRIDE_ERRORS],
)
def test_loader_override_error_names_file_line_and_rule(
    tmp_path: pathlib.Path, text: str, pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_rules([_write(tmp_path, text, "r.toml")])


def test_loader_override_rule_of_another_file_named_by_the_wrong_file(
    tmp_path: pathlib.Path,
) -> None:
    text = '[[rule]]\nid = "a"\naction = "allow"\noverrides = ["team/no-truncate"]\n'
    _write(tmp_path, "", "team.toml")
    with pytest.raises(
        ConfigError,
        match=r"r\.toml:4: rule 'a' overrides: unknown rule 'team/no-truncate'; "
        r"rule 'no-truncate' is 'baseline/no-truncate'",
    ):
        load_rules(
            [
                builtin_pack("baseline"),
                tmp_path / "team.toml",
                _write(tmp_path, text, "r.toml"),
            ]
        )


def test_rules_check_points_at_the_override(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = TEAM.replace("baseline/no-truncate", "baseline/no-trunc")
    path = _write(tmp_path, text, "team.toml")
    code = cli.main(["rules", "check", "pack:baseline", str(path)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{path}:5: rule 'dba-truncate-staging' overrides: " in err
    assert "did you mean 'baseline/no-truncate'?" in err


# --- explain and examples -----------------------------------------------------------


def _explain(ruleset: RuleSet, *argv: str) -> str:
    parser = argparse.ArgumentParser()
    add_explain_arguments(parser)
    return run_explain(parser.parse_args(list(argv)), ruleset)


def test_explain_shows_the_lifted_deny_and_the_override(tmp_path: pathlib.Path) -> None:
    ruleset = _with_baseline(tmp_path)
    argv = ("--group", "dba", "--target", "staging", "SELECT 1; TRUNCATE orders")
    report = json.loads(_explain(ruleset, "--format", "json", *argv))
    assert report["verdict"] == "allow"
    lift = {"deny": "baseline/no-truncate", "by": "team/dba-truncate-staging"}
    assert report["lifted"] == [lift]
    statement = report["statements"][1]
    assert statement["lifted"] == [lift]
    by_ref = {rule["ref"]: rule for rule in statement["rules"]}
    assert by_ref["baseline/no-truncate"]["lifted_by"] == lift["by"]
    assert by_ref["team/dba-truncate-staging"]["overrides"] == [lift["deny"]]
    assert report["statements"][0]["lifted"] == []

    text = _explain(ruleset, *argv)
    assert (
        "matched         deny   no-truncate (lifted by team/dba-truncate-staging)"
        in text
    )
    assert (
        "override        team/dba-truncate-staging lifts baseline/no-truncate" in text
    )
    assert text.splitlines()[-1] == (
        "override: deny rule baseline/no-truncate lifted by team/dba-truncate-staging"
    )

    plain = json.loads(_explain(ruleset, "--format", "json", "TRUNCATE orders"))
    assert plain["verdict"] == "deny" and plain["lifted"] == []


def test_exceptions_example_file_passes_next_to_baseline() -> None:
    ruleset = load_rules([builtin_pack("baseline"), EXAMPLE])
    assert run_examples(ruleset) == []
    overriding = [rule for rule in ruleset.rules if rule.overrides]
    assert {ref for rule in overriding for ref in rule.overrides} == {
        "baseline/no-truncate",
        "baseline/no-load-data-local",
    }


def test_exceptions_example_file_alone_is_a_load_error() -> None:
    with pytest.raises(ConfigError, match=r"exceptions\.toml:\d+: .*baseline"):
        load_rules([EXAMPLE])
