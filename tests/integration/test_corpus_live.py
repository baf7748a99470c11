"""Every PostgreSQL case of the SQL corpus, end to end through pamwire to a real server.

Each case runs in its own session on the target of its grant (`app` for read-write,
`app_ro` for read-only) under the shipped packs, after the session settings it
names, inside a transaction that is rolled back. A case passes when pamwire's
verdict is the expected one: a denial is pamwire's 42501, anything else (including
an ordinary server error) is an allow. Afterwards the database must be exactly as
before: denied statements never reached it.
"""

from __future__ import annotations

import json
import pathlib
import struct

import pytest

from pamwire.pg import messages as m
from tests.integration import rawpg
from tests.integration.conftest import PERSON, PERSON_PASSWORD, Proxy

pytestmark = pytest.mark.integration

CASES = [
    case
    for line in (
        pathlib.Path(__file__).parents[2]
        / "fixtures"
        / "sql"
        / "corpus-sql-cases.jsonl"
    )
    .read_text()
    .splitlines()
    if (case := json.loads(line))["dialect"] == "postgres"
]

STATE_SQL = """
select concat_ws(',',
  (select count(*) from t), (select sum(coalesce(b, 0)) from t),
  (select count(*) from u), (select count(*) from users),
  (select count(*) from delete_log), (select count(*) from hr.salaries),
  (select count(*) from app_user), (select count(*) from django_session),
  (select count(*) from pg_roles), (select count(*) from pg_proc),
  (select count(*) from pg_class), (select count(*) from pg_namespace),
  (select last_value from s))
"""


def _query_bytes(case: dict[str, str]) -> bytes:
    sql = case["sql"]
    if "bytes=latin1" in case["settings"]:
        body = sql.encode("latin-1") + b"\x00"
        return b"Q" + struct.pack("!I", len(body) + 4) + body
    if "extended protocol" in case["settings"]:
        return rawpg.P("", sql) + rawpg.B() + rawpg.E() + rawpg.S
    return rawpg.Q(sql)


def _setup(case: dict[str, str]) -> list[str]:
    settings = case["settings"]
    steps = ["BEGIN"]
    if "session:" in settings:
        change = settings.split("session:", 1)[1].split(";")[0].strip()
        name, _, value = change.partition("=")
        value = value.strip()
        if not value.replace(",", "").replace(" ", "").isalnum():
            value = f"'{value}'"
        steps.append(f"SET {name.strip()} = {value}")
    return steps


def _is_denial(error: m.ErrorResponse) -> bool:
    # A refusal because the audit trail is down would say nothing about the rules.
    return (
        error.code == "42501"
        and error.message.startswith("pamwire:")
        and "audit-unavailable" not in error.message
    )


def _run_case(proxy: Proxy, case: dict[str, str]) -> str:
    target = "app_ro" if case["settings"].startswith("grant=read-only") else "app"
    extra = {}
    if "replication=database" in case["settings"]:
        extra["replication"] = "database"
    try:
        conn = rawpg.connect(proxy.port, PERSON, PERSON_PASSWORD, target, extra=extra)
    except rawpg.LoginFailed as failed:
        return "deny" if failed.error.message.startswith("pamwire:") else "error"
    with conn:
        for step in _setup(case):
            replies = conn.query(rawpg.Q(step))
            if any(_is_denial(e) for e in rawpg.errors(replies)):
                # pamwire refuses the session state the case needs (an encoding
                # that would hide quotes): the dangerous statement cannot follow.
                return "deny"
            assert not rawpg.errors(replies), (step, rawpg.errors(replies))
        replies = conn.query(_query_bytes(case))
        verdict = (
            "deny" if any(_is_denial(e) for e in rawpg.errors(replies)) else "allow"
        )
        conn.query(rawpg.Q("ROLLBACK"))
    return verdict


def test_corpus_cases_reach_their_verdict_through_pamwire(proxy: Proxy) -> None:
    before = proxy.pg.psql(STATE_SQL, database="app")
    wrong = []
    for case in CASES:
        expected = case["expect"].split(":")[0]
        got = _run_case(proxy, case)
        if got != expected:
            wrong.append(f"{case['id']}: expected {expected}, got {got}: {case['sql']}")
    assert not wrong, "\n".join(wrong)
    assert len(CASES) >= 50
    assert proxy.pg.psql(STATE_SQL, database="app") == before
