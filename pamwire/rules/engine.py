"""Decide on statement facts with an ordered set of rules: deny beats audit beats allow.

A rule matches when every condition it states holds; a list inside a condition
matches when any entry does. With no matching rule the verdict is allow. An
allow-list (the read-only pack) is a deny rule on a negated condition:
``kind_not_in`` and ``functions_not_in`` hold when the statement steps outside
the listed kinds or functions.

Exceptions are explicit: an allow rule may name deny rules it *overrides*
(``FILE/ID``). When it matches a statement, those deny rules do not count for
that statement; every other matching deny still wins. Only allow rules
override and only deny rules are overridden, so overrides never chain. The
decision records each lifted deny and the rule that lifted it.
"""

from __future__ import annotations

import datetime
import fnmatch
import functools
import re
import time
import zoneinfo
from collections.abc import Iterable, Sequence

import attrs

from pamwire.errors import ConfigError
from pamwire.sql.facts import ANY_SETTING, Analysis, StatementFacts

VERDICTS = ("allow", "deny", "audit")

#: Decisions kept per rule set; keyed on facts and context, both immutable.
DECISION_CACHE_SIZE = 4096

UNPARSABLE_RULE = "unparsable"

#: Values of ``RuleContext.dialect`` and ``when.dialect``; "mysql" covers MariaDB.
DIALECTS = ("postgres", "mysql")

#: Day names of ``when.weekdays``, Monday first as in ``datetime.weekday()``.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@attrs.frozen(cache_hash=True)
class RuleContext:
    """Who sends the statement, to which configured target, over which protocol, when.

    ``now`` is unix seconds for time conditions; None means the clock at decision.
    ``groups`` are the user's groups from the configuration.
    """

    user: str
    target: str
    role: str | None = None
    dialect: str = "postgres"
    now: float | None = None
    groups: frozenset[str] = frozenset()


@attrs.frozen
class TimeWindow:
    """A daily span of minutes ``[start, end)`` in a time zone; end <= start wraps.

    Bounds are whole minutes and zone offsets change on minute boundaries, so the
    verdict is the same for every second of one minute (the decision cache relies
    on it).
    """

    start: int | None = None
    end: int | None = None
    weekdays: frozenset[int] | None = None
    timezone: str = "UTC"

    def holds(self, now: float) -> bool:
        local = datetime.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start is not None and self.end is not None:
            if self.start < self.end:
                inside = self.start <= minute < self.end
            else:
                # Past midnight: 22:00-06:00 belongs to the day it started on.
                inside = minute >= self.start or minute < self.end
                if minute < self.end:
                    day = (day - 1) % 7
            if not inside:
                return False
        return self.weekdays is None or day in self.weekdays


@attrs.frozen
class Lift:
    """A matching deny rule that did not count, and the allow rule that lifted it.

    Both are rule references, ``FILE/ID`` (see ``Rule.ref``).
    """

    deny: str
    by: str


@attrs.frozen
class Decision:
    """A verdict and the rule that gave it (``rule`` None: no rule matched).

    ``lifted`` lists the deny rules that matched but were overridden.
    """

    verdict: str
    rule: str | None
    message: str | None
    lifted: tuple[Lift, ...] = ()

    def lifted_text(self) -> str | None:
        """The overrides used, as one line for the audit trail; None if none."""
        if not self.lifted:
            return None
        return "; ".join(
            f"deny rule {lift.deny} lifted by {lift.by}" for lift in self.lifted
        )


@attrs.frozen
class Glob:
    """Shell-style patterns (``*``, ``?``, ``[...]``), matched case-sensitively."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        joined = "|".join(fnmatch.translate(p) for p in self.patterns)
        object.__setattr__(self, "_regex", re.compile(joined))

    def match(self, value: str) -> bool:
        return self._regex.match(value) is not None

    def any(self, values: Iterable[str]) -> bool:
        return any(self._regex.match(value) is not None for value in values)


@attrs.frozen
class Functions:
    """Function globs plus named sets of bare names (``@pg_read_only``).

    An entry of ``names`` also covers the name qualified with pg_catalog, never
    with another schema: ``public.lower`` is someone's own function, not the
    built-in. An entry of ``bare_names`` (``@mysql_read_only``) covers only the
    unqualified call: on MySQL ``db.f()`` is always a stored function.
    """

    globs: Glob | None
    names: frozenset[str] = frozenset()
    bare_names: frozenset[str] = frozenset()

    def match(self, name: str) -> bool:
        if self.globs is not None and self.globs.match(name):
            return True
        schema, dot, bare = name.rpartition(".")
        if not dot:
            return name in self.names or name in self.bare_names
        return schema == "pg_catalog" and bare in self.names

    def any(self, values: Iterable[str]) -> bool:
        return any(self.match(value) for value in values)

    def all(self, values: Iterable[str]) -> bool:
        return all(self.match(value) for value in values)


@attrs.frozen
class Columns:
    """Column globs ``schema.table.column``; a fact ``schema.table.*`` reaches all."""

    patterns: tuple[str, ...]
    _pairs: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = attrs.field(
        init=False, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        pairs = []
        for pattern in self.patterns:
            table, _, column = pattern.rpartition(".")
            pairs.append(
                (
                    re.compile(fnmatch.translate(table)),
                    re.compile(fnmatch.translate(column)),
                )
            )
        object.__setattr__(self, "_pairs", tuple(pairs))

    def any(self, values: Iterable[str]) -> bool:
        for value in values:
            table, _, column = value.rpartition(".")
            for table_re, column_re in self._pairs:
                if table_re.match(table) and (column == "*" or column_re.match(column)):
                    return True
        return False


@attrs.frozen
class Example:
    """A statement written next to a rule, with the verdict the whole set must give."""

    sql: str
    expect: str
    user: str = "example"
    target: str = "example"
    role: str | None = None
    dialect: str = "postgres"
    groups: frozenset[str] = frozenset()
    at: float | None = None


@attrs.frozen
class Rule:
    """One rule of a rule file; ``None`` conditions are not stated and always hold.

    ``origin`` is the name of the file the rule comes from (``baseline`` for
    ``pack:baseline`` or ``baseline.toml``); ``overrides`` holds the references
    (``FILE/ID``) of the deny rules an allow rule lifts.
    """

    id: str
    action: str
    source: str
    origin: str = ""
    overrides: tuple[str, ...] = ()
    description: str | None = None
    message: str | None = None
    kinds: frozenset[str] | None = None
    unscoped: bool | None = None
    tables: Glob | None = None
    tables_written: Glob | None = None
    functions: Functions | None = None
    objects: frozenset[str] | None = None
    kinds_not_in: frozenset[str] | None = None
    functions_not_in: Functions | None = None
    columns: Columns | None = None
    settings: Glob | None = None
    copy: frozenset[str] | None = None
    destructive: bool | None = None
    server_code: bool | None = None
    unsafe_client_encoding: bool | None = None
    targets: Glob | None = None
    users: Glob | None = None
    roles: Glob | None = None
    dialects: frozenset[str] | None = None
    groups: Glob | None = None
    window: TimeWindow | None = None
    unparsable: bool = False
    examples: tuple[Example, ...] = ()

    @property
    def ref(self) -> str:
        """How other rules name this one: ``FILE/ID``, or the id without a file."""
        return f"{self.origin}/{self.id}" if self.origin else self.id

    def matches_context(self, ctx: RuleContext) -> bool:
        if self.targets is not None and not self.targets.match(ctx.target):
            return False
        if self.users is not None and not self.users.match(ctx.user):
            return False
        if self.roles is not None and not (
            ctx.role is not None and self.roles.match(ctx.role)
        ):
            return False
        if self.dialects is not None and ctx.dialect not in self.dialects:
            return False
        if self.groups is not None and not self.groups.any(ctx.groups):
            return False
        if self.window is None:
            return True
        return self.window.holds(time.time() if ctx.now is None else ctx.now)

    def matches(self, facts: StatementFacts, ctx: RuleContext) -> bool:
        """Whether every stated condition holds for one statement."""
        if self.unparsable:
            return False
        if self.kinds is not None and facts.kind not in self.kinds:
            return False
        if self.unscoped is not None and facts.unscoped_write != self.unscoped:
            return False
        if self.objects is not None and facts.object_type not in self.objects:
            return False
        if self.tables is not None and not (
            self.tables.any(facts.tables_read) or self.tables.any(facts.tables_written)
        ):
            return False
        if self.tables_written is not None and not self.tables_written.any(
            facts.tables_written
        ):
            return False
        if self.functions is not None and not self.functions.any(facts.functions):
            return False
        if self.kinds_not_in is not None and facts.kind in self.kinds_not_in:
            return False
        if self.functions_not_in is not None and self.functions_not_in.all(facts.calls):
            return False
        if self.columns is not None and not self.columns.any(facts.columns):
            return False
        if self.settings is not None and not (
            ANY_SETTING in facts.settings or self.settings.any(facts.settings)
        ):
            return False
        if self.copy is not None and facts.copy_target not in self.copy:
            return False
        if self.destructive is not None and facts.destructive != self.destructive:
            return False
        if self.server_code is not None and facts.server_code != self.server_code:
            return False
        if (
            self.unsafe_client_encoding is not None
            and facts.unsafe_client_encoding != self.unsafe_client_encoding
        ):
            return False
        return self.matches_context(ctx)

    def decision(self) -> Decision:
        message = self.message or self.description or f"{self.action} by rule {self.id}"
        return Decision(self.action, self.id, message)


_ALLOW = Decision("allow", None, None)


class RuleSet:
    """Rules in file order; decides statements, caching decisions."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        """ConfigError if an override does not name a deny rule of the set."""
        self._rules = tuple(rules)
        _check_overrides(self._rules)
        self._timed = any(rule.window is not None for rule in self._rules)
        self._decide_cached = functools.lru_cache(maxsize=DECISION_CACHE_SIZE)(
            self._decide
        )

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self._rules]

    def cache_clear(self) -> None:
        """Forget every cached decision (for tests and benchmarks)."""
        self._decide_cached.cache_clear()

    def decide(self, facts: StatementFacts, ctx: RuleContext) -> Decision:
        """The verdict on one statement (and on the statement a PREPARE holds)."""
        # Rules never look at the text, so statements that differ only in literal
        # values share one cached decision.
        key = attrs.evolve(facts, text="", fingerprint="") if facts.text else facts
        return self._decide_cached(key, self._cache_context(ctx))

    def _cache_context(self, ctx: RuleContext) -> RuleContext:
        """The context as a cache key: the clock cut to the minute, or dropped.

        A time window holds for whole minutes, so decisions within one minute
        agree; without time rules the clock plays no part and must not split
        the cache.
        """
        if not self._timed:
            return ctx if ctx.now is None else attrs.evolve(ctx, now=None)
        now = time.time() if ctx.now is None else ctx.now
        return attrs.evolve(ctx, now=float(int(now // 60) * 60))

    def matching(self, facts: StatementFacts, ctx: RuleContext) -> list[Rule]:
        """Every rule that matches a statement (or the statement a PREPARE holds)."""
        candidates = (facts,) if facts.inner is None else (facts, facts.inner)
        return [
            rule
            for rule in self._rules
            if any(rule.matches(each, ctx) for each in candidates)
        ]

    def _decide(self, facts: StatementFacts, ctx: RuleContext) -> Decision:
        return _first_by_precedence(self.matching(facts, ctx))

    def decide_unparsable(self, reason: str, ctx: RuleContext) -> Decision:
        """Deny text that cannot be analysed, unless an ``unparsable`` rule decides."""
        matched = [
            rule
            for rule in self._rules
            if rule.unparsable and rule.matches_context(ctx)
        ]
        if not matched:
            return Decision(
                "deny", UNPARSABLE_RULE, f"cannot analyze statement: {reason}"
            )
        return _first_by_precedence(matched)

    def decide_all(self, analysis: Analysis, ctx: RuleContext) -> list[Decision]:
        """One decision per statement, or a single one when the text is unparsable."""
        if analysis.error is not None:
            return [self.decide_unparsable(analysis.error, ctx)]
        return [self.decide(facts, ctx) for facts in analysis.statements]


def _check_overrides(rules: Sequence[Rule]) -> None:
    """Every override names a deny rule of the set, from an allow rule."""
    by_ref = {rule.ref: rule for rule in rules}
    for rule in rules:
        if rule.overrides and rule.action != "allow":
            raise ConfigError(
                f"only allow rules can override; this one is {rule.action}",
                path=rule.source,
                key=f"rule {rule.id!r} overrides",
            )
        for ref in rule.overrides:
            named = by_ref.get(ref)
            if named is None or named.action != "deny" or named is rule:
                raise ConfigError(
                    f"override {ref!r} does not name a deny rule",
                    path=rule.source,
                    key=f"rule {rule.id!r} overrides",
                )


def _first_by_precedence(matched: Sequence[Rule]) -> Decision:
    """The first deny not overridden, else the first audit, else an allow, else allow.

    An allow that lifted a matching deny names the decision before other allows,
    so the trail shows the exception that was used.
    """
    lifted_by: dict[str, Rule] = {}
    for rule in matched:
        if rule.action == "allow":
            for ref in rule.overrides:
                lifted_by.setdefault(ref, rule)
    lifts: list[Lift] = []
    deny = audit = allow = exception = None
    for rule in matched:
        if rule.action == "deny":
            lifter = lifted_by.get(rule.ref)
            if lifter is not None:
                lifts.append(Lift(rule.ref, lifter.ref))
                exception = exception or lifter
            elif deny is None:
                deny = rule
        elif rule.action == "audit" and audit is None:
            audit = rule
        elif rule.action == "allow" and allow is None:
            allow = rule
    chosen = deny or audit or exception or allow
    if chosen is None:
        return _ALLOW
    decision = chosen.decision()
    return attrs.evolve(decision, lifted=tuple(lifts)) if lifts else decision


def strongest(decisions: Iterable[Decision]) -> Decision:
    """The decision that governs a whole message: its first deny, audit, or allow."""
    result = _ALLOW
    for decision in decisions:
        if decision.verdict == "deny":
            return decision
        if decision.verdict == "audit":
            if result.verdict != "audit":
                result = decision
        elif result is _ALLOW and decision.rule is not None:
            result = decision
    return result
