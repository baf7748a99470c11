"""The MySQL/MariaDB cases of the field corpus, and our own cases of each class.

Every mariadb and mysql case of fixtures/sql/corpus-sql-cases.jsonl (copied from
the shared corpus) and of fixtures/sql/mysql-policy.jsonl (ours, same format)
runs through ``mysql.analyze`` and the shipped packs baseline, read-only and
sensitive-data, with the case's grant as the rule context's role. Its settings
become analyze() arguments: the flavour and version from the dialect
(``mysql`` cases are MySQL 8.0), ``sql_mode`` flags, and the current database
(``hr`` when the case says so, else the application's database ``app``).
Cases that only the proxy session can decide would be strict xfails whose
reason starts with "session:".
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from pamwire.rules.engine import RuleContext, RuleSet, strongest
from pamwire.rules.loader import builtin_pack, load_rules
from pamwire.sql import mysql

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "sql"
CORPUS = FIXTURES / "corpus-sql-cases.jsonl"
OWN_CASES = FIXTURES / "mysql-policy.jsonl"
PACKS = ("baseline", "read-only", "sensitive-data")
DIALECTS = ("mariadb", "mysql")

#: Cases that need state only the proxy session holds (none so far: the
#: corpus's COM_INIT_DB case names its database in the settings, which the
#: session passes as ``database``).
SESSION_ONLY: dict[str, str] = {}


def _cases(path: pathlib.Path) -> list[dict[str, Any]]:
    lines = path.read_text("utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    return [case for case in cases if case["dialect"] in DIALECTS]


def _params(path: pathlib.Path) -> list[Any]:
    params = []
    for case in _cases(path):
        marks = []
        if case["id"] in SESSION_ONLY:
            marks.append(
                pytest.mark.xfail(reason=SESSION_ONLY[case["id"]], strict=True)
            )
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


@pytest.fixture(scope="module")
def policy() -> RuleSet:
    return load_rules([builtin_pack(name) for name in PACKS])


def _options(case: dict[str, Any]) -> dict[str, Any]:
    settings = case["settings"]
    mysql8 = case["dialect"] == "mysql"
    return {
        "flavor": "mysql" if mysql8 else "mariadb",
        "server_version": (8, 0, 36) if mysql8 else (10, 11, 0),
        "ansi_quotes": "ANSI_QUOTES" in settings,
        "no_backslash_escapes": "NO_BACKSLASH_ESCAPES" in settings,
        "database": "hr" if "default database hr" in settings else "app",
    }


def _grant(settings: str) -> str:
    return "read-only" if settings.startswith("grant=read-only") else "read-write"


@pytest.mark.parametrize("case", _params(CORPUS) + _params(OWN_CASES))
def test_mysql_corpus_case(case: dict[str, Any], policy: RuleSet) -> None:
    analysis = mysql.analyze(case["sql"], **_options(case))
    ctx = RuleContext(
        user="corpus",
        target="mariadb",
        role=_grant(case["settings"]),
        dialect="mysql",
    )
    decision = strongest(policy.decide_all(analysis, ctx))
    expected = "allow" if case["expect"] == "allow" else "deny"
    assert decision.verdict == expected, (case["why"], analysis.error, decision)


def test_mysql_corpus_every_class_has_own_cases() -> None:
    own = {case["class"] for case in _cases(OWN_CASES)}
    assert own >= {case["class"] for case in _cases(CORPUS)}


def test_mysql_corpus_ids_are_unique() -> None:
    ids = [case["id"] for case in _cases(CORPUS) + _cases(OWN_CASES)]
    assert len(ids) == len(set(ids))
