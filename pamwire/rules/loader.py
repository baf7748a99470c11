"""Read rule files (TOML) into a RuleSet, and run the examples written inside them.

Every mistake is a ConfigError naming the file, the line of the rule where it can
be found, the rule id, the key and the allowed values. The format is described
in docs/rules.md.
"""

from __future__ import annotations

import datetime
import difflib
import importlib.resources
import pathlib
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any

from pamwire.errors import ConfigError
from pamwire.rules.engine import (
    DIALECTS,
    UNPARSABLE_RULE,
    VERDICTS,
    WEEKDAYS,
    Columns,
    Example,
    Functions,
    Glob,
    Rule,
    RuleContext,
    RuleSet,
    TimeWindow,
    strongest,
)
from pamwire.rules.function_sets import FUNCTION_SETS, SET_SCHEMAS
from pamwire.sql import mysql, pg
from pamwire.sql.facts import COPY_TARGETS, KINDS, OBJECT_TYPES

_TOP_KEYS = ("rule",)
_RULE_KEYS = (
    "id",
    "description",
    "action",
    "message",
    "overrides",
    "when",
    "example",
)
_WHEN_KEYS = (
    "kind",
    "kind_not_in",
    "unscoped",
    "tables",
    "tables_written",
    "columns",
    "functions",
    "functions_not_in",
    "settings",
    "copy",
    "destructive",
    "server_code",
    "unsafe_client_encoding",
    "object",
    "target",
    "user",
    "role",
    "dialect",
    "group",
    "time",
    "timezone",
    "weekdays",
    "unparsable",
)
_CONTEXT_KEYS = (
    "target",
    "user",
    "role",
    "dialect",
    "group",
    "time",
    "timezone",
    "weekdays",
)
_EXAMPLE_KEYS = (
    "sql",
    "expect",
    "user",
    "target",
    "role",
    "dialect",
    "groups",
    "at",
)
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)\Z")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")

# Makes the error for a key of one rule: (key, message) -> ConfigError.
_Fail = Callable[[str, str], ConfigError]

# Where the shipped packs live inside the installed package. Each file there is a
# symbolic link to the user-facing copy in the repository's rules/ folder.
_PACKS = ("data", "rules")


def builtin_pack(name: str) -> pathlib.Path:
    """The path of a rule pack shipped with pamwire; ConfigError for an unknown name."""
    folder = importlib.resources.files("pamwire").joinpath(*_PACKS)
    available = sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )
    if name not in available:
        raise ConfigError(
            f"unknown rule pack {name!r}; available: {', '.join(available)}",
            key="pack",
        )
    return pathlib.Path(str(folder.joinpath(f"{name}.toml")))


def load_rules(paths: Sequence[pathlib.Path]) -> RuleSet:
    """Load rule files in order into one RuleSet; ConfigError on any mistake."""
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    fails: dict[str, _Fail] = {}
    for path in paths:
        for rule, fail in _load_file(pathlib.Path(path)):
            if rule.id in seen:
                raise ConfigError(
                    f"duplicate rule id, first defined at {seen[rule.id]}",
                    path=rule.source,
                    key=f"rule {rule.id!r} id",
                )
            seen[rule.id] = rule.source
            fails[rule.id] = fail
            rules.append(rule)
    _check_overrides(rules, fails)
    return RuleSet(rules)


def _check_overrides(rules: Sequence[Rule], fails: dict[str, _Fail]) -> None:
    """Each override names, as FILE/ID, a deny rule of some loaded file.

    Files may come in any order: a rule can name one loaded after it.
    """
    by_ref = {rule.ref: rule for rule in rules}
    by_id = {rule.id: rule for rule in rules}
    for rule in rules:
        for ref in rule.overrides:
            named = by_ref.get(ref)
            if named is None:
                raise fails[rule.id]("overrides", _unknown_ref(ref, by_ref, by_id))
            if named is rule:
                raise fails[rule.id]("overrides", "a rule cannot override itself")
            if named.action != "deny":
                raise fails[rule.id](
                    "overrides",
                    f"{ref!r} is an {named.action} rule; only deny rules "
                    "can be overridden",
                )


def _unknown_ref(ref: str, by_ref: dict[str, Rule], by_id: dict[str, Rule]) -> str:
    origin, slash, rule_id = ref.rpartition("/")
    if not slash:
        known = by_id.get(ref)
        hint = f", e.g. {known.ref!r}" if known else ""
        return f"override {ref!r} must name the rule's file too: FILE/ID{hint}"
    known = by_id.get(rule_id)
    if known is not None:
        return f"unknown rule {ref!r}; rule {rule_id!r} is {known.ref!r}"
    files = sorted({rule.origin for rule in by_ref.values()})
    if origin not in files:
        return (
            f"unknown rule {ref!r}: neither pack:{origin} nor {origin}.toml "
            f"is loaded; loaded: {', '.join(files)}"
        )
    near = difflib.get_close_matches(ref, by_ref, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return f"unknown rule {ref!r}{hint}"


def run_examples(ruleset: RuleSet) -> list[str]:
    """Check every example against the whole set; one line per failure."""
    failures = []
    for rule in ruleset.rules:
        for example in rule.examples:
            failure = _check_example(ruleset, rule, example)
            if failure is not None:
                failures.append(f"{rule.source}: rule {rule.id!r}: {failure}")
    return failures


def _check_example(ruleset: RuleSet, rule: Rule, example: Example) -> str | None:
    ctx = RuleContext(
        user=example.user,
        target=example.target,
        role=example.role,
        dialect=example.dialect,
        now=example.at,
        groups=example.groups,
    )
    if example.dialect == "mysql":
        analysis = mysql.analyze(example.sql, database="example")
    else:
        analysis = pg.analyze(example.sql)
    decision = strongest(ruleset.decide_all(analysis, ctx))
    if decision.verdict != example.expect:
        by = f" by rule {decision.rule!r}" if decision.rule else ""
        return f"{example.sql!r}: expected {example.expect}, got {decision.verdict}{by}"
    if example.expect == rule.action and not rule.unparsable:
        statements = analysis.statements
        if not any(rule.matches(facts, ctx) for facts in statements) and not any(
            facts.inner is not None and rule.matches(facts.inner, ctx)
            for facts in statements
        ):
            return f"{example.sql!r}: the rule does not match its own example"
    return None


# --- one file -----------------------------------------------------------------------


class _File:
    """A rule file being read: its name and lines, for error messages."""

    def __init__(self, path: pathlib.Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        # How rules name this file in ``overrides``: baseline.toml is "baseline".
        self.origin = path.name.removesuffix(".toml")

    def line_of(self, pattern: str, span: tuple[int, int] | None = None) -> int | None:
        """The 1-based number of the first line matching ``pattern`` within ``span``.

        ``span`` holds 0-based start and end indexes of lines; None means the file.
        """
        start, end = span or (0, len(self.lines))
        regex = re.compile(pattern)
        for number in range(start, end):
            if regex.search(self.lines[number]):
                return number + 1
        return None

    def rule_spans(self) -> list[tuple[int, int]]:
        """The lines of each ``[[rule]]`` section, in file order."""
        header = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
        starts = [n for n, text in enumerate(self.lines) if header.match(text)]
        ends = [*starts[1:], len(self.lines)] if starts else []
        return list(zip(starts, ends, strict=True))

    def where(self, line: int | None) -> str:
        return f"{self.path}:{line}" if line else str(self.path)


def _load_file(path: pathlib.Path) -> list[tuple[Rule, _Fail]]:
    """The rules of one file, each with a maker of errors pointing into it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read rule file: {exc.strerror}", path=str(path)
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("rule file is not valid utf-8", path=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from None

    file = _File(path, text)
    _check_keys(data, _TOP_KEYS, file.where(None), "")
    entries = data.get("rule", [])
    if not isinstance(entries, list):
        raise ConfigError(
            "must be an array of tables: [[rule]]", path=str(path), key="rule"
        )

    spans: list[tuple[int, int] | None] = list(file.rule_spans())
    if len(spans) != len(entries):
        # Inline tables (rule = [{...}]) leave no [[rule]] headers to point at.
        spans = [None] * len(entries)
    return [
        _build_rule(file, entry, number, span)
        for number, (entry, span) in enumerate(zip(entries, spans, strict=True), 1)
    ]


def _build_rule(
    file: _File, entry: Any, number: int, span: tuple[int, int] | None
) -> tuple[Rule, _Fail]:
    raw_id = entry.get("id") if isinstance(entry, dict) else None
    label = f"rule {raw_id!r}" if isinstance(raw_id, str) else f"rule #{number}"
    line: int | None = None
    if isinstance(raw_id, str):
        line = file.line_of(rf"^\s*id\s*=\s*[\"']{re.escape(raw_id)}[\"']", span)
    if line is None and span is not None:
        line = span[0] + 1
    where = file.where(line)

    def fail(key: str, message: str) -> ConfigError:
        last = key.rsplit(".", 1)[-1]
        key_line = file.line_of(rf"^\s*{re.escape(key)}\s*=", span) or file.line_of(
            rf"^\s*{re.escape(last)}\s*=", span
        )
        return ConfigError(
            message, path=file.where(key_line or line), key=f"{label} {key}"
        )

    if not isinstance(entry, dict):
        raise ConfigError("must be a table", path=where, key=label)
    _check_keys(entry, _RULE_KEYS, where, f"{label} ")

    rule_id = _string(entry, "id", fail, required=True)
    if not _ID.match(rule_id):
        raise fail(
            "id", f"invalid id {rule_id!r}; use lowercase letters, digits, '-', '.'"
        )
    if rule_id == UNPARSABLE_RULE:
        raise fail(
            "id", f"{rule_id!r} is reserved for the built-in denial of unparsable text"
        )
    action = _string(entry, "action", fail, required=True)
    if action not in VERDICTS:
        raise fail(
            "action", f"unknown action {action!r}; allowed: {', '.join(VERDICTS)}"
        )

    when = entry.get("when", {})
    if not isinstance(when, dict):
        raise fail("when", 'must be a table, e.g. when.kind = ["delete"]')
    _check_keys(when, _WHEN_KEYS, where, f"{label} when.")
    conditions = _conditions(when, fail)

    rule = Rule(
        id=rule_id,
        action=action,
        source=where,
        origin=file.origin,
        overrides=_overrides(entry, action, fail),
        description=_string(entry, "description", fail),
        message=_string(entry, "message", fail),
        examples=_examples(entry.get("example", []), fail),
        **conditions,
    )
    return rule, fail


def _overrides(entry: dict[str, Any], action: str, fail: _Fail) -> tuple[str, ...]:
    """``overrides``: references FILE/ID, checked against the other rules later."""
    value = entry.get("overrides")
    if value is None:
        return ()
    if action != "allow":
        raise fail("overrides", f"only allow rules can override; this rule is {action}")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail("overrides", f"must be a string or a non-empty list, not {value!r}")
    refs: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise fail("overrides", f"entries must be non-empty strings, not {item!r}")
        if item in refs:
            raise fail("overrides", f"{item!r} is named twice")
        refs.append(item)
    return tuple(refs)


def _conditions(when: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> Any:
    def globs(key: str, *, lower: bool = False) -> Glob | None:
        values = _string_list(when, key, fail)
        if values is None:
            return None
        return Glob(tuple(v.lower() if lower else v for v in values))

    def choices(key: str, allowed: frozenset[str]) -> frozenset[str] | None:
        values = _string_list(when, key, fail)
        if values is None:
            return None
        for value in values:
            if value not in allowed:
                near = difflib.get_close_matches(value, allowed, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ";"
                raise fail(
                    f"when.{key}",
                    f"unknown value {value!r}{hint} allowed: "
                    + ", ".join(sorted(allowed)),
                )
        return frozenset(values)

    unparsable = when.get("unparsable", False)
    if unparsable is not False:
        if unparsable is not True:
            raise fail("when.unparsable", "must be true (or left out)")
        others = sorted(set(when) - {"unparsable", *_CONTEXT_KEYS})
        if others:
            raise fail(
                f"when.{others[0]}",
                "unparsable text has no facts; combine only with "
                + ", ".join(_CONTEXT_KEYS),
            )

    def flag(key: str) -> bool | None:
        value = when.get(key)
        if value is not None and not isinstance(value, bool):
            raise fail(f"when.{key}", f"must be true or false, not {value!r}")
        return value

    def functions(key: str) -> Functions | None:
        values = _string_list(when, key, fail)
        if values is None:
            return None
        patterns = []
        names: frozenset[str] = frozenset()
        bare_names: frozenset[str] = frozenset()
        for value in values:
            if not value.startswith("@"):
                patterns.append(value.lower())
                continue
            if value[1:] not in FUNCTION_SETS:
                raise fail(
                    f"when.{key}",
                    f"unknown function set {value!r}; allowed: "
                    + ", ".join(f"@{name}" for name in sorted(FUNCTION_SETS)),
                )
            if SET_SCHEMAS.get(value[1:]) is None:
                bare_names |= FUNCTION_SETS[value[1:]]
            else:
                names |= FUNCTION_SETS[value[1:]]
        return Functions(Glob(tuple(patterns)) if patterns else None, names, bare_names)

    def tables(key: str) -> Glob | None:
        found = globs(key)
        for value in found.patterns if found is not None else ():
            # A plain name without a schema can never match (a glob may).
            if "." not in value and not any(c in value for c in "*?["):
                raise fail(
                    f"when.{key}",
                    f"table {value!r} must be written schema.table (facts always "
                    f"name the schema, or the database on MySQL): '*.{value}' "
                    "matches it in any",
                )
        return found

    def columns() -> Columns | None:
        values = _string_list(when, "columns", fail)
        if values is None:
            return None
        for value in values:
            if value.count(".") < 2:
                raise fail(
                    "when.columns",
                    f"column {value!r} must be written schema.table.column",
                )
        return Columns(tuple(values))

    return {
        "kinds": choices("kind", KINDS),
        "kinds_not_in": choices("kind_not_in", KINDS),
        "unscoped": flag("unscoped"),
        "tables": tables("tables"),
        "tables_written": tables("tables_written"),
        "columns": columns(),
        "functions": functions("functions"),
        "functions_not_in": functions("functions_not_in"),
        "settings": globs("settings", lower=True),
        "copy": choices("copy", COPY_TARGETS),
        "destructive": flag("destructive"),
        "server_code": flag("server_code"),
        "unsafe_client_encoding": flag("unsafe_client_encoding"),
        "objects": choices("object", OBJECT_TYPES),
        "targets": globs("target"),
        "users": globs("user"),
        "roles": globs("role"),
        "dialects": choices("dialect", frozenset(DIALECTS)),
        "groups": globs("group"),
        "window": _window(when, fail),
        "unparsable": unparsable,
    }


def _window(
    when: dict[str, Any], fail: Callable[[str, str], ConfigError]
) -> TimeWindow | None:
    """``when.time``, ``when.weekdays`` and ``when.timezone`` as one TimeWindow."""
    span = when.get("time")
    days = _string_list(when, "weekdays", fail)
    zone = when.get("timezone")
    if span is None and days is None:
        if zone is not None:
            raise fail("when.timezone", "applies only with when.time or when.weekdays")
        return None

    start = end = None
    if span is not None:
        match = _TIME.match(span) if isinstance(span, str) else None
        if match is None:
            raise fail("when.time", f"invalid time span {span!r}; use HH:MM-HH:MM")
        hour, minute, end_hour, end_minute = (int(g) for g in match.groups())
        start, end = hour * 60 + minute, end_hour * 60 + end_minute
        if end > 24 * 60:
            raise fail("when.time", f"invalid time span {span!r}; 24:00 is the last")
        if start == end:
            raise fail("when.time", f"empty time span {span!r}")

    weekdays = None
    if days is not None:
        for day in days:
            if day.lower() not in WEEKDAYS:
                raise fail(
                    "when.weekdays",
                    f"unknown day {day!r}; allowed: {', '.join(WEEKDAYS)}",
                )
        weekdays = frozenset(WEEKDAYS.index(day.lower()) for day in days)

    if zone is None:
        zone = "UTC"
    if not isinstance(zone, str) or not zone:
        raise fail("when.timezone", f"must be a non-empty string, not {zone!r}")
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise fail(
            "when.timezone", f"unknown time zone {zone!r}; use e.g. 'Europe/Paris'"
        ) from None
    return TimeWindow(start, end, weekdays, zone)


def _examples(raw: Any, fail: Callable[[str, str], ConfigError]) -> tuple[Example, ...]:
    if not isinstance(raw, list):
        raise fail("example", "must be an array of tables: [[rule.example]]")
    examples = []
    for item in raw:
        if not isinstance(item, dict):
            raise fail("example", "each example must be a table with sql and expect")
        unknown = sorted(set(item) - set(_EXAMPLE_KEYS))
        if unknown:
            raise fail(f"example.{unknown[0]}", _unknown_key(unknown[0], _EXAMPLE_KEYS))
        sql = _string(item, "sql", fail, required=True, prefix="example.")
        expect = _string(item, "expect", fail, required=True, prefix="example.")
        if expect not in VERDICTS:
            raise fail(
                "example.expect",
                f"unknown verdict {expect!r}; allowed: {', '.join(VERDICTS)}",
            )
        examples.append(
            Example(
                sql=sql,
                expect=expect,
                user=_string(item, "user", fail, prefix="example.") or "example",
                target=_string(item, "target", fail, prefix="example.") or "example",
                role=_string(item, "role", fail, prefix="example."),
                dialect=_example_dialect(item, fail),
                groups=frozenset(_example_groups(item, fail)),
                at=_example_at(item, fail),
            )
        )
    return tuple(examples)


def _example_dialect(
    item: dict[str, Any], fail: Callable[[str, str], ConfigError]
) -> str:
    dialect = _string(item, "dialect", fail, prefix="example.") or "postgres"
    if dialect not in DIALECTS:
        raise fail(
            "example.dialect",
            f"unknown dialect {dialect!r}; allowed: {', '.join(DIALECTS)}",
        )
    return str(dialect)


def _example_groups(
    item: dict[str, Any], fail: Callable[[str, str], ConfigError]
) -> list[str]:
    groups = item.get("groups", [])
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and g for g in groups
    ):
        raise fail("example.groups", f"must be a list of names, not {groups!r}")
    return groups


def _example_at(
    item: dict[str, Any], fail: Callable[[str, str], ConfigError]
) -> float | None:
    at = _string(item, "at", fail, prefix="example.")
    if at is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(at)
    except ValueError:
        raise fail(
            "example.at", f"invalid time {at!r}; use ISO 8601, 2026-12-07T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


# --- small checks -------------------------------------------------------------------


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    near = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ";"
    return f"unknown key {key!r}{hint} allowed: {', '.join(allowed)}"


def _check_keys(
    table: dict[str, Any], allowed: Sequence[str], where: str, prefix: str
) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                _unknown_key(key, allowed), path=where, key=f"{prefix}{key}"
            )


def _string(
    table: dict[str, Any],
    key: str,
    fail: Callable[[str, str], ConfigError],
    *,
    required: bool = False,
    prefix: str = "",
) -> Any:
    value = table.get(key)
    if value is None:
        if required:
            raise fail(f"{prefix}{key}", "missing; it is required")
        return None
    if not isinstance(value, str) or not value:
        raise fail(f"{prefix}{key}", f"must be a non-empty string, not {value!r}")
    return value


def _string_list(
    table: dict[str, Any], key: str, fail: Callable[[str, str], ConfigError]
) -> list[str] | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail(
            f"when.{key}", f"must be a string or a non-empty list, not {value!r}"
        )
    for item in value:
        if not isinstance(item, str) or not item:
            raise fail(
                f"when.{key}", f"entries must be non-empty strings, not {item!r}"
            )
    return value
