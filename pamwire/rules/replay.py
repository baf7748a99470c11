"""Re-decide the statements of the audit trail with candidate rules, and report changes.

Each statement event is analysed again (PostgreSQL or MySQL, by its protocol) and
decided by the candidate rule set with the event's own user, target and time;
its stored verdict is the old one. Stored text is redacted (passwords cut), so
some statements no longer parse: they are reported as "unparsable now", not
judged.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
from collections.abc import Callable, Iterable, Sequence

import attrs

from pamwire.audit.events import AuditEvent
from pamwire.audit.search import clean_text, format_time, parse_time
from pamwire.audit.store import AuditStore
from pamwire.errors import PamwireError
from pamwire.rules.engine import UNPARSABLE_RULE, RuleContext, RuleSet, strongest
from pamwire.rules.loader import builtin_pack, load_rules
from pamwire.sql import mysql, pg

#: The pseudo-verdict of a statement that cannot be analysed any more.
UNPARSABLE_NOW = "unparsable now"

FORMATS = ("table", "json")

_STATEMENT_WIDTH = 60


@attrs.frozen
class Change:
    """One statement whose verdict differs between the trail and the candidates."""

    event_id: str
    time: float
    user: str | None
    target: str | None
    statement: str
    old_verdict: str | None
    old_rule: str | None
    new_verdict: str
    new_rule: str | None
    reason: str | None = None

    @property
    def transition(self) -> str:
        return f"{self.old_verdict or '-'} -> {self.new_verdict}"


@attrs.frozen
class ReplayReport:
    """How many statements were re-decided, and those whose verdict changed."""

    checked: int
    changes: tuple[Change, ...]

    def counts(self) -> dict[str, int]:
        """Changes per ``old -> new`` transition, most frequent first."""
        counter = collections.Counter(change.transition for change in self.changes)
        return dict(counter.most_common())


def replay(
    events: Iterable[AuditEvent],
    ruleset: RuleSet,
    *,
    role_of: Callable[[AuditEvent], str | None] | None = None,
    groups_of: Callable[[AuditEvent], frozenset[str]] | None = None,
) -> ReplayReport:
    """Re-decide every statement event; never raises for text it cannot analyse.

    ``role_of`` gives the grant role of an event (the trail stores the grant id,
    not its role; None: no role, so role rules do not apply); ``groups_of`` the
    user's groups (None: none).
    """
    checked = 0
    changes: list[Change] = []
    for event in events:
        if event.kind != "statement" or event.statement is None:
            continue
        checked += 1
        change = _redecide(event, ruleset, role_of, groups_of)
        if change is not None:
            changes.append(change)
    return ReplayReport(checked, tuple(changes))


def _redecide(
    event: AuditEvent,
    ruleset: RuleSet,
    role_of: Callable[[AuditEvent], str | None] | None,
    groups_of: Callable[[AuditEvent], frozenset[str]] | None,
) -> Change | None:
    text = event.statement or ""
    dialect = "mysql" if event.protocol == "mysql" else "postgres"
    # TODO(replay-session): the session's database, search_path, sql_mode and
    # server version are not in the trail; the defaults are used.
    analysis = mysql.analyze(text) if dialect == "mysql" else pg.analyze(text)
    old = (event.verdict, event.rule)

    if analysis.error is not None:
        if event.rule == UNPARSABLE_RULE:
            return None
        return _change(event, text, old, (UNPARSABLE_NOW, None), analysis.error)

    ctx = RuleContext(
        user=event.user or "",
        target=event.target or "",
        role=role_of(event) if role_of is not None else None,
        dialect=dialect,
        now=event.time,
        groups=groups_of(event) if groups_of is not None else frozenset(),
    )
    decision = strongest(ruleset.decide_all(analysis, ctx))
    if decision.verdict == event.verdict:
        return None
    return _change(event, text, old, (decision.verdict, decision.rule), None)


def _change(
    event: AuditEvent,
    text: str,
    old: tuple[str | None, str | None],
    new: tuple[str, str | None],
    reason: str | None,
) -> Change:
    return Change(
        event_id=event.event_id,
        time=event.time,
        user=event.user,
        target=event.target,
        statement=text,
        old_verdict=old[0],
        old_rule=old[1],
        new_verdict=new[0],
        new_rule=new[1],
        reason=reason,
    )


# --- output -------------------------------------------------------------------------


def format_table(report: ReplayReport) -> str:
    """The changed statements as aligned columns, then the counts per change."""
    lines = [f"{report.checked} statements re-decided, {len(report.changes)} changed"]
    if report.changes:
        rows = [("TIME", "USER", "TARGET", "OLD", "NEW", "STATEMENT")]
        for change in report.changes:
            rows.append(
                (
                    format_time(change.time, timespec="seconds"),
                    _cell(change.user),
                    _cell(change.target),
                    _verdict(change.old_verdict, change.old_rule),
                    _verdict(change.new_verdict, change.new_rule),
                    _cell(change.statement, _STATEMENT_WIDTH),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines.append("")
        for row in rows:
            cells = [
                cell.ljust(width) for cell, width in zip(row, widths, strict=False)
            ]
            lines.append("  ".join([*cells, row[5]]).rstrip())
        lines.append("")
        for transition, count in report.counts().items():
            lines.append(f"{count:>6}  {transition}")
    return "\n".join(lines) + "\n"


def format_json(report: ReplayReport) -> str:
    """One JSON document: checked, counts and the changes."""
    document = {
        "checked": report.checked,
        "changed": len(report.changes),
        "counts": report.counts(),
        "changes": [
            {
                "event_id": change.event_id,
                "time": format_time(change.time),
                "user": change.user,
                "target": change.target,
                "statement": change.statement,
                "old": {"verdict": change.old_verdict, "rule": change.old_rule},
                "new": {"verdict": change.new_verdict, "rule": change.new_rule},
                "reason": change.reason,
            }
            for change in report.changes
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _cell(value: str | None, width: int | None = None) -> str:
    if value is None:
        return "-"
    text = clean_text(value)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _verdict(verdict: str | None, rule: str | None) -> str:
    return f"{verdict or '-'}/{rule}" if rule else verdict or "-"


# --- command line -------------------------------------------------------------------

_TIME_FORMS = "ISO 8601 (2026-12-04, 2026-12-04T10:00:00Z) or an age (30s, 15m, 7d)"


def _time_argument(value: str) -> float:
    try:
        return parse_time(value)
    except PamwireError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `pamwire rules replay` to parser."""
    parser.add_argument(
        "--since",
        type=_time_argument,
        required=True,
        metavar="WHEN",
        help=f"re-decide statements at or after WHEN: {_TIME_FORMS}",
    )
    parser.add_argument(
        "--until",
        type=_time_argument,
        metavar="WHEN",
        help="and before WHEN (default: now)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format"
    )
    parser.add_argument(
        "rules",
        nargs="+",
        metavar="CANDIDATE_FILE",
        help="candidate rule files (or pack:NAME), in load order",
    )


def load_candidates(names: Sequence[str]) -> RuleSet:
    """The rule set of files and ``pack:NAME`` entries; ConfigError on a mistake."""
    paths = [
        builtin_pack(name.removeprefix("pack:"))
        if name.startswith("pack:")
        else pathlib.Path(name)
        for name in names
    ]
    return load_rules(paths)


def run_replay(
    args: argparse.Namespace, ruleset: RuleSet | None, store_path: pathlib.Path
) -> int:
    """Run `pamwire rules replay`; writes the report to stdout and returns 0.

    ``ruleset`` is the candidate set already loaded (None: load ``args.rules``).
    Raises ConfigError for a bad candidate file and AuditError when the store
    cannot be read.
    """
    candidates = ruleset if ruleset is not None else load_candidates(args.rules)
    store = AuditStore(store_path, read_only=True)
    try:
        records = store.iter_records(since=args.since, until=args.until)
        report = replay((record.event for record in records), candidates)
    finally:
        store.close()
    if args.format == "json":
        sys.stdout.write(format_json(report))
    else:
        sys.stdout.write(format_table(report))
    return 0


__all__ = [
    "UNPARSABLE_NOW",
    "Change",
    "ReplayReport",
    "add_replay_arguments",
    "format_json",
    "format_table",
    "load_candidates",
    "replay",
    "run_replay",
]
