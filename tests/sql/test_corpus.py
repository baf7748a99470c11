"""The PostgreSQL cases of the field corpus, and our own cases of each class.

Every case of fixtures/sql/corpus-sql-cases.jsonl (copied from the shared
corpus) and of fixtures/sql/pg-policy.jsonl (ours, same format) runs through
``pg.analyze`` and the shipped packs baseline, read-only and sensitive-data,
with the case's grant as the rule context's role and its session settings as
analyze() arguments. Cases that only the proxy session can decide are strict
xfails whose reason starts with "session:".
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
OWN_CASES = pathlib.Path(__file__).parents[2] / "fixtures" / "sql" / "pg-policy.jsonl"
PACKS = ("baseline", "read-only", "sensitive-data")

#: Cases that need state only the proxy session holds; each reason starts
#: "session:" and names what the session must track.
SESSION_ONLY: dict[str, str] = {
    "ind-pg-06": "session: deny EXECUTE of a name the proxy never saw prepared",
}


def _postgres(path: pathlib.Path) -> list[dict[str, Any]]:
    lines = path.read_text("utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    return [case for case in cases if case["dialect"] == "postgres"]


def _load(path: pathlib.Path) -> list[Any]:
    cases = []
    for case in _postgres(path):
        marks = []
        if case["id"] in SESSION_ONLY:
            marks.append(
                pytest.mark.xfail(reason=SESSION_ONLY[case["id"]], strict=True)
            )
        cases.append(pytest.param(case, id=case["id"], marks=marks))
    return cases


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_rules([builtin_pack(name) for name in PACKS])


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


def _grant(settings: str) -> str:
    match = re.match(r"grant=(read-only|read-write)", settings)
    assert match, settings
    return match.group(1)


@pytest.mark.parametrize("case", _load(FIXTURE) + _load(OWN_CASES))
def test_corpus_case(case: dict[str, Any], policy: Any) -> None:
    analysis = pg.analyze(_message_text(case), **_session(case["settings"]))
    ctx = RuleContext(user="corpus", target="pg15", role=_grant(case["settings"]))
    decision = strongest(policy.decide_all(analysis, ctx))
    expected = "allow" if case["expect"] == "allow" else "deny"
    assert decision.verdict == expected, (case["why"], decision)


def test_corpus_every_class_has_own_cases() -> None:
    own = {case["class"] for case in _postgres(OWN_CASES)}
    assert own >= {case["class"] for case in _postgres(FIXTURE)}


def test_corpus_ids_are_unique() -> None:
    ids = [case["id"] for case in _postgres(FIXTURE) + _postgres(OWN_CASES)]
    assert len(ids) == len(set(ids))


CLIENTS = (
    pathlib.Path(__file__).parents[2]
    / "fixtures"
    / "sql"
    / "pg-client-statements.jsonl"
)


def test_read_only_allows_what_pg_dump_and_psql_send() -> None:
    # Captured with log_statement = all from pg_dump and psql's describe commands
    # (the dump includes hr.salaries, so the sensitive-data pack stays out).
    policy = load_rules([builtin_pack("baseline"), builtin_pack("read-only")])
    lines = CLIENTS.read_text("utf-8").splitlines()
    ctx = RuleContext(user="dump", target="pg15", role="read-only")
    denied = []
    for case in (json.loads(line) for line in lines):
        decision = strongest(policy.decide_all(pg.analyze(case["sql"]), ctx))
        if decision.verdict != "allow":
            denied.append((decision.rule, case["sql"][:120]))
    assert len(lines) > 80
    assert denied == []
