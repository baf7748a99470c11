"""The rule loader's errors, the engine's precedence, the baseline pack's examples."""

from __future__ import annotations

import pathlib
import re
import textwrap

import pytest

from pamwire.errors import ConfigError
from pamwire.rules.engine import Decision, RuleContext, RuleSet
from pamwire.rules.function_sets import FUNCTION_SETS
from pamwire.rules.loader import builtin_pack, load_rules, run_examples
from pamwire.sql import pg

REPO = pathlib.Path(__file__).parents[2]
CTX = RuleContext(user="alice", target="prod")


def _rules(tmp_path: pathlib.Path, text: str, name: str = "r.toml") -> RuleSet:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules([path])


def _decide(ruleset: RuleSet, sql: str, ctx: RuleContext = CTX) -> list[Decision]:
    return ruleset.decide_all(pg.analyze(sql), ctx)


# --- the baseline pack ------------------------------------------------------------


SHIPPED = ("baseline", "read-only", "sensitive-data")


def test_shipped_pack_examples_pass() -> None:
    ruleset = load_rules([builtin_pack(name) for name in SHIPPED])
    assert run_examples(ruleset) == []
    assert len(ruleset.rule_ids) >= 18


@pytest.mark.parametrize("name", SHIPPED)
def test_builtin_pack_is_the_repository_file(name: str) -> None:
    shipped = builtin_pack(name)
    repository = REPO / "rules" / f"{name}.toml"
    assert shipped.read_bytes() == repository.read_bytes()
    assert run_examples(load_rules([repository])) == []


def test_builtin_pack_unknown_name_lists_available() -> None:
    with pytest.raises(ConfigError, match=r"unknown rule pack 'nope'.*baseline"):
        builtin_pack("nope")


def test_baseline_names_the_specific_rule() -> None:
    ruleset = load_rules([builtin_pack("baseline")])
    assert _decide(ruleset, "DROP ROLE ro")[0].rule == "no-role-change"
    assert _decide(ruleset, "DROP TABLE t")[0].rule == "no-drop"
    decisions = _decide(ruleset, "SELECT 1; DELETE FROM t")
    assert [d.verdict for d in decisions] == ["allow", "deny"]
    assert decisions[1].rule == "no-unscoped-delete"
    assert decisions[1].message and "WHERE" in decisions[1].message


def test_baseline_dynamic_set_config_has_its_own_message() -> None:
    ruleset = load_rules([builtin_pack("baseline")])
    sql = "SELECT set_config(current_setting('x'), 'off', false)"
    (decision,) = _decide(ruleset, sql)
    assert decision.rule == "no-dynamic-set-config"
    assert decision.message and "not a constant" in decision.message
    assert "role" not in decision.message
    (decision,) = _decide(ruleset, "SELECT set_config('role', 'postgres', false)")
    assert decision.rule == "no-session-privilege-change"


def test_read_only_set_holds_no_large_object_writes_or_advisory_locks() -> None:
    names = FUNCTION_SETS["pg_read_only"]
    for name in (
        "lo_unlink",
        "lo_from_bytea",
        "lo_put",
        "lo_truncate",
        "lo_truncate64",
        "lo_create",
        "lo_creat",
        "lowrite",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_xact_lock_shared",
    ):
        assert name not in names, name
    assert {"lower", "now", "set_config"} <= names


# --- the engine ---------------------------------------------------------------------

PRECEDENCE = """
    [[rule]]
    id = "allow-all"
    action = "allow"

    [[rule]]
    id = "audit-hr"
    action = "audit"
    when.tables = ["hr.*"]

    [[rule]]
    id = "deny-salaries"
    action = "deny"
    message = "salaries are private"
    when.tables = ["hr.salaries"]

    [[rule]]
    id = "deny-sleep"
    action = "deny"
    when.functions = ["PG_SLEEP*"]
"""


def test_engine_deny_beats_audit_beats_allow(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(tmp_path, PRECEDENCE)
    assert _decide(ruleset, "SELECT 1") == [
        Decision("allow", "allow-all", "allow by rule allow-all")
    ]
    assert _decide(ruleset, "SELECT * FROM hr.people")[0].rule == "audit-hr"
    denied = _decide(ruleset, "SELECT amount FROM hr.salaries")[0]
    assert denied == Decision("deny", "deny-salaries", "salaries are private")


def test_engine_first_deny_in_file_order(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(tmp_path, PRECEDENCE)
    decision = _decide(ruleset, "SELECT pg_sleep(1) FROM hr.salaries")[0]
    assert decision.rule == "deny-salaries"


def test_engine_function_globs_are_lowercased(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(tmp_path, PRECEDENCE)
    for sql in ("SELECT pg_catalog.pg_sleep(1)", "SELECT * FROM PG_SLEEP_FOR('1s')"):
        assert _decide(ruleset, sql)[0].rule == "deny-sleep"


def test_engine_no_rule_matches_allows(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(
        tmp_path, '[[rule]]\nid = "x"\naction = "deny"\nwhen.kind = ["drop"]\n'
    )
    assert _decide(ruleset, "SELECT 1") == [Decision("allow", None, None)]


def test_engine_context_conditions(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(
        tmp_path,
        """
        [[rule]]
        id = "dba-only-ddl"
        action = "deny"
        when.kind = ["create", "alter"]
        when.target = ["prod*"]
        when.user = ["*"]

        [[rule]]
        id = "auditor"
        action = "audit"
        when.role = ["auditor"]
        """,
    )
    assert _decide(ruleset, "CREATE TABLE x (id int)")[0].verdict == "deny"
    staging = RuleContext(user="alice", target="staging")
    assert _decide(ruleset, "CREATE TABLE x (id int)", staging)[0].verdict == "allow"
    auditor = RuleContext(user="bob", target="staging", role="auditor")
    assert _decide(ruleset, "SELECT 1", auditor)[0].rule == "auditor"


def test_engine_prepare_judged_on_inner_statement(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(
        tmp_path,
        A_DENY.replace('"a"', '"d"') + 'when.kind = ["delete"]\nwhen.unscoped = true\n',
    )
    assert _decide(ruleset, "PREPARE p AS DELETE FROM t")[0].verdict == "deny"
    assert (
        _decide(ruleset, "PREPARE p AS DELETE FROM t WHERE id = $1")[0].verdict
        == "allow"
    )


def test_engine_unparsable_denied_by_default(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(tmp_path, '[[rule]]\nid = "a"\naction = "allow"\n')
    decision = _decide(ruleset, "SELEC 1")
    assert decision == [
        ruleset.decide_unparsable(pg.analyze("SELEC 1").error or "", CTX)
    ]
    assert decision[0].verdict == "deny" and decision[0].rule == "unparsable"


def test_engine_unparsable_rule_can_allow(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(
        tmp_path,
        """
        [[rule]]
        id = "walsender"
        action = "allow"
        when.unparsable = true
        when.user = ["replicator"]
        """,
    )
    replicator = RuleContext(user="replicator", target="prod")
    assert ruleset.decide_unparsable("x", replicator).verdict == "allow"
    assert ruleset.decide_unparsable("x", CTX).verdict == "deny"
    assert _decide(ruleset, "SELECT 1", replicator)[0].rule is None


def test_run_examples_reports_failures(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(
        tmp_path,
        """
        [[rule]]
        id = "no-drop"
        action = "deny"
        when.kind = ["drop"]
        example = [
            { sql = "DROP TABLE t", expect = "deny" },
            { sql = "TRUNCATE t", expect = "deny" },
            { sql = "SELECT 1", expect = "audit" },
        ]
        """,
    )
    failures = run_examples(ruleset)
    assert len(failures) == 2
    assert "r.toml:3: rule 'no-drop'" in failures[0]
    assert "'TRUNCATE t': expected deny, got allow" in failures[0]


# --- loader errors ------------------------------------------------------------------

A_DENY = '[[rule]]\nid = "a"\naction = "deny"\n'
A_ALLOW = '[[rule]]\nid = "a"\naction = "allow"\n'

LOADER_ERRORS = [
    ("bad toml", "[[rule]\nid = 1\n", r"r\.toml: not valid TOML"),
    (
        "top-level key",
        "rules = 1\n",
        r"r\.toml: rules: unknown key 'rules'; did you mean 'rule'",
    ),
    (
        "unknown rule key",
        '[[rule]]\nid = "a"\naction = "deny"\nmesage = "x"\n',
        r"r\.toml:2: rule 'a' mesage: unknown key 'mesage'; did you mean 'message'",
    ),
    (
        "unknown condition",
        '[[rule]]\nid = "a"\naction = "deny"\nwhen.kinds = ["drop"]\n',
        r"rule 'a' when\.kinds: unknown key 'kinds'; did you mean 'kind'",
    ),
    (
        "missing id",
        '[[rule]]\naction = "deny"\n',
        r"r\.toml:1: rule #1 id: missing; it is required",
    ),
    (
        "missing action",
        '[[rule]]\nid = "a"\n\n[[rule]]\nid = "b"\naction = "deny"\n',
        r"r\.toml:2: rule 'a' action: missing",
    ),
    (
        "bad action",
        '[[rule]]\nid = "a"\naction = "block"\n',
        r"r\.toml:3: rule 'a' action: unknown action 'block'; "
        r"allowed: allow, deny, audit",
    ),
    (
        "bad kind",
        '[[rule]]\nid = "a"\naction = "deny"\nwhen.kind = ["dorp"]\n',
        r"r\.toml:4: rule 'a' when\.kind: unknown value 'dorp'; did you mean 'drop'\? "
        r"allowed: .*delete",
    ),
    (
        "bad object",
        '[[rule]]\nid = "a"\naction = "deny"\n[rule.when]\nobject = ["roles"]\n',
        r"r\.toml:5: rule 'a' when\.object: unknown value 'roles'",
    ),
    (
        "unscoped not bool",
        '[[rule]]\nid = "a"\naction = "deny"\nwhen.unscoped = "yes"\n',
        r"rule 'a' when\.unscoped: must be true or false",
    ),
    (
        "empty glob list",
        '[[rule]]\nid = "a"\naction = "deny"\nwhen.tables = []\n',
        r"rule 'a' when\.tables: must be a string or a non-empty list",
    ),
    (
        "unparsable with facts",
        A_ALLOW + 'when.unparsable = true\nwhen.kind = ["drop"]\n',
        r"rule 'a' when\.kind: unparsable text has no facts",
    ),
    (
        "reserved id",
        '[[rule]]\nid = "unparsable"\naction = "deny"\n',
        r"rule 'unparsable' id: 'unparsable' is reserved",
    ),
    (
        "bad id",
        '[[rule]]\nid = "No Drop"\naction = "deny"\n',
        r"rule 'No Drop' id: invalid id",
    ),
    (
        "example key",
        A_DENY + '[[rule.example]]\nsql = "x"\nexpected = "deny"\n',
        r"r\.toml:6: rule 'a' example\.expected: unknown key 'expected'; "
        r"did you mean 'expect'",
    ),
    (
        "unknown function set",
        A_DENY + 'when.functions_not_in = ["@pg_readonly"]\n',
        r"rule 'a' when\.functions_not_in: unknown function set '@pg_readonly'; "
        r"allowed: @mysql_read_only, @pg_read_only",
    ),
    (
        "bad kind_not_in",
        A_DENY + 'when.kind_not_in = ["selct"]\n',
        r"when\.kind_not_in: unknown value 'selct'; did you mean 'select'",
    ),
    (
        "column needs three parts",
        A_DENY + 'when.columns = ["users.ssn"]\n',
        r"when\.columns: column 'users\.ssn' must be written schema\.table\.column",
    ),
    (
        "bad copy target",
        A_DENY + 'when.copy = ["pipe"]\n',
        r"when\.copy: unknown value 'pipe'.*allowed: file, program, stdio",
    ),
    (
        "server_code not bool",
        A_DENY + 'when.server_code = "yes"\n',
        r"when\.server_code: must be true or false",
    ),
    (
        "example verdict",
        A_DENY + 'example = [{ sql = "x", expect = "no" }]\n',
        r"rule 'a' example\.expect: unknown verdict 'no'",
    ),
]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [(text, pattern) for _, text, pattern in LOADER_ERRORS],
    ids=[name for name, _, _ in LOADER_ERRORS],
)
def test_loader_error_names_file_and_key(
    tmp_path: pathlib.Path, text: str, pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        _rules(tmp_path, text)


def test_loader_duplicate_id_across_files(tmp_path: pathlib.Path) -> None:
    rule = '[[rule]]\nid = "a"\naction = "deny"\n'
    (tmp_path / "one.toml").write_text(rule)
    (tmp_path / "two.toml").write_text("# second\n" + rule)
    with pytest.raises(
        ConfigError, match=r"two\.toml:3: rule 'a' id: duplicate.*one\.toml:2"
    ):
        load_rules([tmp_path / "one.toml", tmp_path / "two.toml"])


def test_loader_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"gone\.toml: cannot read rule file"):
        load_rules([tmp_path / "gone.toml"])


def test_loader_accepts_single_strings_and_rule_tables(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(
        tmp_path,
        """
        [[rule]]
        id = "no-truncate"
        action = "deny"
        [rule.when]
        kind = "truncate"
        """,
    )
    assert _decide(ruleset, "TRUNCATE t")[0].rule == "no-truncate"


def test_docs_rule_examples_load_and_pass(tmp_path: pathlib.Path) -> None:
    docs = (REPO / "docs" / "rules.md").read_text("utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", docs, re.S)
    assert blocks
    for number, block in enumerate(blocks):
        path = tmp_path / f"doc{number}.toml"
        path.write_text(block, encoding="utf-8")
        # A block that overrides a pack's rules is loaded with that pack.
        packs = sorted(set(re.findall(r'"([a-z-]+)/[a-z0-9._-]+"', block)))
        ruleset = load_rules([*(builtin_pack(name) for name in packs), path])
        assert run_examples(ruleset) == []


def test_load_rules_accepts_a_file_without_rules(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("# no rules yet\n")
    ruleset = load_rules([empty])
    assert ruleset.rule_ids == []


def test_engine_allow_list_conditions(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(
        tmp_path,
        """
        [[rule]]
        id = "only-reads"
        action = "deny"
        when.kind_not_in = ["select"]
        [[rule]]
        id = "only-builtins"
        action = "deny"
        when.functions_not_in = ["@pg_read_only", "reports.*"]
        """,
    )
    assert _decide(ruleset, "SELECT lower(a), pg_catalog.upper(a) FROM t") == [
        Decision("allow", None, None)
    ]
    assert _decide(ruleset, "SELECT reports.monthly()")[0].verdict == "allow"
    assert _decide(ruleset, "SELECT public.lower(a) FROM t")[0].rule == "only-builtins"
    assert _decide(ruleset, "SELECT monthly()")[0].rule == "only-builtins"
    assert _decide(ruleset, "SHOW search_path")[0].rule == "only-reads"


def test_engine_column_and_setting_conditions(tmp_path: pathlib.Path) -> None:
    ruleset = _rules(
        tmp_path,
        """
        [[rule]]
        id = "ssn"
        action = "deny"
        when.columns = ["*.users.ssn"]
        [[rule]]
        id = "role"
        action = "deny"
        when.settings = ["ROLE"]
        """,
    )
    assert _decide(ruleset, "SELECT * FROM app.users")[0].rule == "ssn"
    assert _decide(ruleset, "SELECT email FROM users")[0].verdict == "allow"
    assert _decide(ruleset, "SET ROLE admin")[0].rule == "role"
    unknown = "SELECT set_config(current_setting('x'), 'y', false)"
    assert _decide(ruleset, unknown)[0].rule == "role"


def test_loader_table_without_schema_is_an_error_with_a_hint(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[rule]]\nid = "x"\ndescription = "d"\naction = "deny"\n'
        'when.tables = ["orders"]\n'
    )
    with pytest.raises(ConfigError, match=r"'\*\.orders' matches it in any"):
        load_rules([path])
    path.write_text(
        '[[rule]]\nid = "x"\ndescription = "d"\naction = "deny"\n'
        'when.tables = ["*orders", "public.orders"]\n'
    )
    assert list(load_rules([path]).rule_ids) == ["x"]
