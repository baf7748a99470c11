"""`pamwire rules explain`: each statement's facts, the rules that matched, the verdict.

The CLI adds these arguments to its ``rules explain`` sub-command and prints what
``run_explain`` returns. PostgreSQL text is read with pglast, MySQL/MariaDB text
with pamwire's sqlglot-based reader, each with the settings given on the command
line.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pamwire.errors import ConfigError
from pamwire.rules.engine import Decision, RuleContext, RuleSet, strongest
from pamwire.sql import mysql, pg
from pamwire.sql.facts import StatementFacts

DIALECTS = ("postgres", "mysql")
FORMATS = ("table", "json")

# Settings of --setting that change how text is read or names resolve.
_SETTINGS = ("standard_conforming_strings", "search_path")
_MYSQL_SETTINGS = ("sql_mode", "database", "flavor", "version")
_OFF = frozenset({"off", "false", "no", "0"})


def add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``pamwire rules explain`` on ``parser``."""
    parser.add_argument(
        "--dialect", choices=DIALECTS, default="postgres", help="SQL dialect"
    )
    parser.add_argument("--role", help="grant role of the session (read-only, ...)")
    parser.add_argument("--user", default="explain", help="pamwire user name")
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        help="a group of the user, for when.group (repeatable)",
    )
    parser.add_argument("--target", default="explain", help="configured target name")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="session setting; postgres: "
        + ", ".join(_SETTINGS)
        + "; mysql: "
        + ", ".join(_MYSQL_SETTINGS),
    )
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("sql", help="the statement text, as the client sends it")


def run_explain(args: argparse.Namespace, ruleset: RuleSet) -> str:
    """Decide ``args.sql`` and describe how; ConfigError for a bad argument."""
    if args.dialect == "mysql":
        analysis = mysql.analyze(args.sql, **_mysql_session(args.setting))
    else:
        analysis = pg.analyze(args.sql, **_session(args.setting))
    ctx = RuleContext(
        user=getattr(args, "user", None) or "explain",
        target=getattr(args, "target", None) or "explain",
        role=args.role,
        dialect=args.dialect,
        groups=frozenset(getattr(args, "group", None) or ()),
    )
    report = explain(analysis, ruleset, ctx)
    if args.format == "json":
        return json.dumps(report, indent=2)
    return _table(report)


def explain(
    analysis: pg.Analysis, ruleset: RuleSet, ctx: RuleContext
) -> dict[str, Any]:
    """The report as plain data: verdict, rule, message, rules, statements, error."""
    if analysis.error is not None:
        decision = ruleset.decide_unparsable(analysis.error, ctx)
        return {
            **_decision(decision),
            "rules": [_match(decision)] if decision.rule else [],
            "statements": [],
            "error": analysis.error,
        }
    statements = []
    decisions = []
    for facts in analysis.statements:
        decision = ruleset.decide(facts, ctx)
        decisions.append(decision)
        matched = ruleset.matching(facts, ctx)
        lifted_by = {lift.deny: lift.by for lift in decision.lifted}
        statements.append(
            {
                "facts": _facts(facts),
                **_decision(decision),
                "rules": [
                    {
                        "id": rule.id,
                        "ref": rule.ref,
                        "action": rule.action,
                        "source": rule.source,
                        "overrides": list(rule.overrides),
                        "lifted_by": lifted_by.get(rule.ref),
                    }
                    for rule in matched
                ],
            }
        )
    overall = strongest(decisions)
    rule_ids = []
    for statement in statements:
        for rule in statement["rules"]:
            if rule["id"] not in rule_ids:
                rule_ids.append(rule["id"])
    # Every exception used, in any statement, shows at the top.
    lifted: list[dict[str, str]] = []
    for statement in statements:
        lifted.extend(x for x in statement["lifted"] if x not in lifted)
    return {
        **_decision(overall),
        "lifted": lifted,
        "rules": rule_ids,
        "statements": statements,
        "error": None,
    }


def _session(settings: list[str]) -> dict[str, Any]:
    session: dict[str, Any] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in _SETTINGS:
            raise ConfigError(
                f"unknown setting {item!r}; allowed: "
                + ", ".join(f"{each}=VALUE" for each in _SETTINGS)
            )
        if name == "standard_conforming_strings":
            session[name] = value.strip().lower() not in _OFF
        else:
            schemas = (part.strip().strip('"') for part in value.split(","))
            session[name] = tuple(schema for schema in schemas if schema)
    return session


def _mysql_session(settings: list[str]) -> dict[str, Any]:
    """Keyword arguments of pamwire.sql.mysql.analyze from NAME=VALUE settings."""
    session: dict[str, Any] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if not sep or name not in _MYSQL_SETTINGS:
            raise ConfigError(
                f"unknown setting {item!r}; allowed: "
                + ", ".join(f"{each}=VALUE" for each in _MYSQL_SETTINGS)
            )
        if name == "sql_mode":
            modes = {m.strip().upper() for m in value.split(",")}
            session["ansi_quotes"] = bool(modes & {"ANSI_QUOTES", "ANSI"})
            session["no_backslash_escapes"] = "NO_BACKSLASH_ESCAPES" in modes
        elif name == "database":
            session["database"] = value or None
        elif name == "flavor":
            session["flavor"] = value.lower()
        else:
            parts = value.split(".")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise ConfigError(f"version {value!r} is not like 10.11.6")
            session["server_version"] = tuple(int(p) for p in parts)
    return session


def _decision(decision: Decision) -> dict[str, Any]:
    return {
        "verdict": decision.verdict,
        "rule": decision.rule,
        "message": decision.message,
        "lifted": [{"deny": lift.deny, "by": lift.by} for lift in decision.lifted],
    }


def _match(decision: Decision) -> dict[str, Any]:
    return {
        "id": decision.rule,
        "ref": decision.rule,
        "action": decision.verdict,
        "source": "built-in",
        "overrides": [],
        "lifted_by": None,
    }


def _facts(facts: StatementFacts) -> dict[str, Any]:
    return {
        "text": facts.text,
        "kind": facts.kind,
        "object": facts.object_type,
        "tables_read": sorted(facts.tables_read),
        "tables_written": sorted(facts.tables_written),
        "columns": sorted(facts.columns),
        "functions": sorted(facts.functions),
        "calls": sorted(facts.calls),
        "settings": sorted(facts.settings),
        "unscoped": facts.unscoped_write,
        "copy": facts.copy_target,
        "destructive": facts.destructive,
        "server_code": facts.server_code,
        "unsafe_client_encoding": facts.unsafe_client_encoding,
        "prepare_name": facts.prepare_name,
        "inner": None if facts.inner is None else _facts(facts.inner),
    }


def _table(report: dict[str, Any]) -> str:
    lines = []
    for number, statement in enumerate(report["statements"], 1):
        facts = statement["facts"]
        lines.append(f"statement {number}: {facts['text']}")
        for key, value in facts.items():
            if key == "text" or value in (None, False, []):
                continue
            if isinstance(value, list):
                value = ", ".join(value)
            elif isinstance(value, dict):
                value = f"{value['kind']} ({value['text']})"
            lines.append(f"  {key:<15} {value}")
        for rule in statement["rules"]:
            note = f" (lifted by {rule['lifted_by']})" if rule["lifted_by"] else ""
            lines.append(f"  matched         {rule['action']:<6} {rule['id']}{note}")
        for lift in statement["lifted"]:
            lines.append(f"  override        {lift['by']} lifts {lift['deny']}")
        lines.append(f"  verdict         {statement['verdict']}")
    if report["error"]:
        lines.append(f"cannot analyze: {report['error']}")
    by = f" by rule {report['rule']}" if report["rule"] else ""
    lines.append(f"verdict: {report['verdict']}{by}")
    for lift in report["lifted"]:
        lines.append(f"override: deny rule {lift['deny']} lifted by {lift['by']}")
    if report["verdict"] != "allow" and report["message"]:
        lines.append(f"message: {report['message']}")
    return "\n".join(lines)
