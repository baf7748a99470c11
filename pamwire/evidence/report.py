"""The evidence bundle's report.html: one self-contained page, no script, no network.

Charts are inline SVG from pamwire/evidence/charts.py; tables are plain HTML. Every
value from the trail or the grants file is HTML-escaped, so a recorded statement
cannot inject markup into the auditor's browser.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Sequence
from typing import Any

from pamwire.audit.search import format_time
from pamwire.evidence import charts
from pamwire.evidence.collect import Activity

# Tables in the page stop after this many rows; the CSV and JSON files hold all.
MAX_TABLE_ROWS = 500

_APPROVAL_BINS = (
    (60, "< 1 min"),
    (300, "1-5 min"),
    (900, "5-15 min"),
    (3600, "15-60 min"),
    (4 * 3600, "1-4 h"),
    (86400, "4-24 h"),
    (float("inf"), "> 1 day"),
)
_REMOVAL_BINS = (
    (10, "< 10 s"),
    (60, "10-60 s"),
    (300, "1-5 min"),
    (3600, "5-60 min"),
    (float("inf"), "> 1 h"),
)

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left;
         vertical-align: top; }
th { background: #eee; } td.num { text-align: right; }
.ok { color: #1a7f37; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
.note { color: #666; font-size: 0.85em; } pre { white-space: pre-wrap; }
svg.chart { display: block; margin: 1em 0; }
"""


def _histogram(
    values: Sequence[float], bins: Sequence[tuple[float, str]]
) -> tuple[list[str], list[float]]:
    counts = [0.0] * len(bins)
    for value in values:
        for i, (upper, _) in enumerate(bins):
            if value < upper:
                counts[i] += 1
                break
    return [label for _, label in bins], counts


def _buckets(grants: Sequence[dict[str, Any]], start: float, end: float) -> str:
    """Grants requested per day, or per week over more than two months."""
    day = 86400.0
    size = day if end - start <= 62 * day else 7 * day
    count = max(1, min(int((end - start + size - 1) // size), 400))
    values = [0.0] * count
    for grant in grants:
        at = datetime.datetime.fromisoformat(grant["requested_at"]).timestamp()
        i = int((at - start) // size)
        if 0 <= i < count:
            values[i] += 1
    labels = [format_time(start + i * size)[:10] for i in range(count)]
    unit = "per day" if size == day else "per week"
    return charts.column_chart(
        f"Grants requested {unit}", labels, values, y_label="grants"
    )


def _top(counts: dict[str, int], n: int) -> tuple[list[str], list[float]]:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [k for k, _ in items], [float(v) for _, v in items]


def build_charts(
    grants: Sequence[dict[str, Any]], activity: Activity, start: float, end: float
) -> list[str]:
    """The five charts of the report, as SVG text."""
    waits = [g["request_to_approval_s"] for g in grants if g["request_to_approval_s"]]
    removals = [
        g["end_to_removal_s"] for g in grants if g["end_to_removal_s"] is not None
    ]
    labels, values = _histogram(waits, _APPROVAL_BINS)
    approval = charts.column_chart("Time from request to approval", labels, values)
    labels, values = _histogram(removals, _REMOVAL_BINS)
    removal = charts.column_chart(
        "Time from expiry or revocation to account removal", labels, values
    )
    rules = charts.bar_chart("Denials by rule", *_top(activity.denials_by_rule, 15))
    people = charts.bar_chart(
        "Sessions per person", *_top(activity.sessions_per_person(), 20)
    )
    return [_buckets(grants, start, end), approval, removal, rules, people]


def _table(
    rows: Sequence[dict[str, Any]],
    fields: Sequence[str],
    numeric: set[str],
    *,
    total: int | None = None,
) -> str:
    if not rows:
        return '<p class="note">none in this period</p>'
    head = "".join(f"<th>{html.escape(f)}</th>" for f in fields)
    body = []
    for row in rows[:MAX_TABLE_ROWS]:
        cells = []
        for field in fields:
            value = row.get(field)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            text = "" if value is None else html.escape(str(value))
            css = ' class="num"' if field in numeric else ""
            cells.append(f"<td{css}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    shown = min(len(rows), MAX_TABLE_ROWS)
    total = len(rows) if total is None else total
    if total > shown:
        more = (
            f'<p class="note">{total - shown} more rows in the CSV and JSON files</p>'
        )
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def render(
    *,
    start: float,
    end: float,
    generated: float,
    grants: Sequence[dict[str, Any]],
    activity: Activity,
    denials: Sequence[dict[str, Any]],
    denials_total: int,
    verify_ok: bool,
    verify_lines: Sequence[str],
    notes: Sequence[str] = (),
) -> str:
    """The whole report page."""
    first, last = (format_time(t, timespec="seconds") for t in (start, end))
    period = f"{first} to {last}"
    verdict = (
        '<span class="ok">the trail verified: no problems</span>'
        if verify_ok
        else '<span class="bad">the trail FAILED verification</span>'
    )
    summary = [
        ("grants", len(grants)),
        ("sessions", len(activity.sessions)),
        ("statements", activity.statements),
        ("denied statements", activity.denials),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>pamwire evidence {html.escape(period)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Privileged access evidence</h1>",
        f"<p>Period: {html.escape(period)} (UTC). Generated "
        f"{html.escape(format_time(generated, timespec='seconds'))} by pamwire.</p>",
        "<table>"
        + "".join(f"<tr><th>{k}</th><td class='num'>{v}</td></tr>" for k, v in summary)
        + "</table>",
        "<h2>Integrity of the audit trail</h2>",
        f"<p>{verdict} (<code>pamwire log verify</code> at export time).</p>",
        f"<pre>{html.escape(chr(10).join(verify_lines))}</pre>",
        *(f'<p class="note">{html.escape(n)}</p>' for n in notes),
        "<h2>Charts</h2>",
        *build_charts(grants, activity, start, end),
        "<h2>Grants</h2>",
        _table(
            grants,
            (
                "id",
                "requester",
                "target",
                "role",
                "state",
                "requested_at",
                "approvers",
                "approved_at",
                "expires_at",
                "ended_at",
                "ended_by",
                "account_removed_at",
                "reason",
            ),
            {"id"},
        ),
        "<h2>Sessions</h2>",
        _table(
            list(activity.sessions.values()),
            (
                "session",
                "user",
                "target",
                "start",
                "end",
                "client_addr",
                "grant",
                "statements",
                "denied",
            ),
            {"statements", "denied"},
        ),
        "<h2>Denied statements</h2>",
        _table(
            denials,
            ("time", "session", "user", "target", "rule", "statement", "message"),
            set(),
            total=denials_total,
        ),
        '<p class="note">Every statement is in statements.csv and statements.json; '
        "the hash of every file is in manifest.json.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
