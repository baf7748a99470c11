"""The PostgreSQL cases of the field corpus (fixtures/sql/corpus-sql-cases.jsonl).

Every case runs through ``pg.analyze`` and the baseline pack. The classes the
baseline covers (unscoped, destructive-ddl, multi-statement) must pass; a case of
another class that needs a feature not built yet is a strict xfail naming that
feature, so it flags the day the feature lands. Cases of other classes that the
baseline already gets right run as ordinary tests, guarding against regressions.

Read-only cases are judged against the baseline too, for want of a read-only
pack; only their allow verdicts and the denials the baseline shares mean much.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest

from pamwire.rules.engine import RuleContext, strongest
from pamwire.rules.loader import builtin_pack, load_rules
from pamwire.sql import pg

FIXTURE = (
    pathlib.Path(__file__).parents[2] / "fixtures" / "sql" / "corpus-sql-cases.jsonl"
)
BASELINE_CLASSES = frozenset({"unscoped", "destructive-ddl", "multi-statement"})

_READ_ONLY_PACK = "read-only pack (allow-list of statement kinds and functions)"
_DANGEROUS = (
    "dangerous-function pack (pg_sleep*, pg_terminate_backend, lo_*, dblink*...)"
)
_SERVER_CODE = "server-side-code rule (CREATE RULE/EXTENSION/OPERATOR) in a pack"
_DENIED_OBJECTS = "denied-object rules (hr.salaries) in a read-only pack"

MISSING: dict[str, str] = {
    "fun-pg-02": _DANGEROUS,
    "fun-pg-05": _DANGEROUS,
    "fun-pg-08": _DANGEROUS,
    "fun-pg-11": _DANGEROUS,
    "ind-pg-03": _SERVER_CODE,
    "ind-pg-06": "prepared-statement tracking: deny EXECUTE of a name never vetted",
    "ind-pg-09": _SERVER_CODE,
    "ind-pg-12": _SERVER_CODE,
    "obj-pg-02": _DENIED_OBJECTS,
    "obj-pg-05": _DENIED_OBJECTS,
    "obj-pg-08": _DENIED_OBJECTS,
    "obj-pg-11": "column facts: whole-row references to a table with a denied column",
    "obj-pg-14": "column facts: field selection from a whole-row reference",
    "wro-pg-03": _READ_ONLY_PACK,
    "wro-pg-06": "function-argument facts: set_config on role or *read_only settings",
    "wro-pg-09": _DANGEROUS,
    "wro-pg-12": "COPY facts: TO/FROM PROGRAM and server files",
    "wro-pg-15": _READ_ONLY_PACK,
    "wro-pg-21": "SET facts: the setting name (role, session_authorization)",
    "wro-pg-24": "SET facts: the setting name (role, session_authorization)",
    "wro-pg-27": _READ_ONLY_PACK,
    "wro-pg-30": _READ_ONLY_PACK,
    "wro-pg-33": _DANGEROUS,
    "wro-pg-36": _DANGEROUS,
}


def _cases() -> list[Any]:
    cases = []
    for line in FIXTURE.read_text("utf-8").splitlines():
        case = json.loads(line)
        if case["dialect"] != "postgres":
            continue
        marks = []
        if case["id"] in MISSING:
            assert case["class"] not in BASELINE_CLASSES, case["id"]
            marks.append(pytest.mark.xfail(reason=MISSING[case["id"]], strict=True))
        cases.append(pytest.param(case, id=case["id"], marks=marks))
    return cases


@pytest.fixture(scope="module")
def baseline() -> Any:
    return load_rules([builtin_pack("baseline")])


def _message_text(case: dict[str, Any]) -> str:
    """The text as the proxy hands it over: bytes decoded as UTF-8, surrogateescape."""
    if "bytes=latin1" in case["settings"]:
        raw = case["sql"].encode("latin-1")
        return raw.decode("utf-8", "surrogateescape")
    return str(case["sql"])


def _session(settings: str) -> dict[str, Any]:
    scs = "standard_conforming_strings=off" not in settings.replace(" ", "")
    match = re.search(r"search_path\s*=\s*([\w$\", ]+)", settings)
    path = ("public",)
    if match:
        path = tuple(part.strip().strip('"') for part in match.group(1).split(","))
    return {"standard_conforming_strings": scs, "search_path": path}


@pytest.mark.parametrize("case", _cases())
def test_corpus_case(case: dict[str, Any], baseline: Any) -> None:
    analysis = pg.analyze(_message_text(case), **_session(case["settings"]))
    ctx = RuleContext(user="corpus", target="pg15")
    decision = strongest(baseline.decide_all(analysis, ctx))
    expected = "allow" if case["expect"] == "allow" else "deny"
    assert decision.verdict == expected, (case["why"], decision)


def test_corpus_covers_baseline_classes() -> None:
    classes = {
        json.loads(line)["class"]
        for line in FIXTURE.read_text("utf-8").splitlines()
        if json.loads(line)["dialect"] == "postgres"
    }
    assert classes >= BASELINE_CLASSES
