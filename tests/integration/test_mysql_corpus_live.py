"""The MariaDB and MySQL cases of the SQL corpus, end to end through pamwire.

A pamwire of its own (the shipped packs) serves the run's MariaDB with three
targets on a database made for this module: `corpus_rw` (read-write),
`corpus_ro` (read-only) and `corpus_hr` (read-only, default database `hr`). Each
case runs in its own session on the target of its grant, after the session
settings it names, inside a transaction that is rolled back. A case passes when
pamwire's verdict is the expected one: a denial is pamwire's ERR 1142 (or
pamwire refusing the session state the case needs), anything else, including an
ordinary server error, is an allow. Afterwards the database must be exactly as
before: denied statements never reached it.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from pamwire.localserver import free_port
from pamwire.mariadbcluster import MariaDBServer
from pamwire.rules.engine import RuleContext, strongest
from pamwire.rules.loader import builtin_pack, load_rules
from pamwire.sql import mysql
from tests.integration.mysql_conftest import (
    PERSON,
    PERSON_PASSWORD,
    MysqlProxy,
    mysql_server,
)
from tests.mysql.conftest import APP_USER

__all__ = ["mysql_server"]

pytestmark = pytest.mark.integration

PACKS = ["baseline", "read-only", "sensitive-data"]

DATABASE = "pamwire_corpus"

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
    if (case := json.loads(line))["dialect"] in ("mariadb", "mysql")
]

# Cases on which pamwire is wrong today: id -> the fault. Each runs as strict
# xfail, so a fix in pamwire turns it into a failure to be removed from here.
KNOWN_WRONG: dict[str, str] = {}

# The schema the corpus expects (its README), in DATABASE and in database hr.
SCHEMA = f"""\
CREATE DATABASE {DATABASE};
USE {DATABASE};
CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b INT);
INSERT INTO t SELECT seq, CONCAT('row ', seq), seq FROM seq_1_to_10;
CREATE TABLE u (id INT PRIMARY KEY, t_id INT, name TEXT, b INT);
INSERT INTO u VALUES (1, 1, 'x', 1), (2, 2, 'y', 2), (3, 3, 'z', 3);
CREATE TABLE users (
    id INT PRIMARY KEY AUTO_INCREMENT, email TEXT NOT NULL, ssn TEXT, active BOOL
);
INSERT INTO users (email, ssn, active) VALUES
    ('a@example.org', '123-45-6789', TRUE), ('b@example.org', NULL, FALSE);
CREATE TABLE delete_log (id INT PRIMARY KEY AUTO_INCREMENT, note TEXT);
INSERT INTO delete_log (note) VALUES ('first');
CREATE TABLE app_user (id INT PRIMARY KEY, last_login DATETIME);
INSERT INTO app_user VALUES (1, '2024-01-01 00:00:00'), (2, NULL);
CREATE SEQUENCE s;
CREATE PROCEDURE p() DELETE FROM t;
CREATE DATABASE hr;
CREATE TABLE hr.salaries (emp_id INT PRIMARY KEY, amount DECIMAL(10, 2));
INSERT INTO hr.salaries VALUES (1, 1000), (2, 2000);
GRANT ALL ON {DATABASE}.* TO '{APP_USER}'@'127.0.0.1';
GRANT ALL ON hr.* TO '{APP_USER}'@'127.0.0.1';
"""

DROP = f"""\
DROP DATABASE IF EXISTS {DATABASE};
DROP DATABASE IF EXISTS hr;
"""

TEARDOWN = f"""\
{DROP}REVOKE ALL ON {DATABASE}.* FROM '{APP_USER}'@'127.0.0.1';
REVOKE ALL ON hr.* FROM '{APP_USER}'@'127.0.0.1';
"""

# Row counts of every table, the sequence, and the server's routines, users,
# tables and databases: what a statement that slipped through would change.
STATE_SQL = f"""\
SELECT CONCAT_WS(',',
  (SELECT COUNT(*) FROM {DATABASE}.t), (SELECT SUM(COALESCE(b, 0)) FROM {DATABASE}.t),
  (SELECT COUNT(*) FROM {DATABASE}.u), (SELECT COUNT(*) FROM {DATABASE}.users),
  (SELECT COUNT(*) FROM {DATABASE}.delete_log),
  (SELECT COUNT(*) FROM {DATABASE}.app_user),
  (SELECT COUNT(*) FROM hr.salaries),
  (SELECT next_not_cached_value FROM {DATABASE}.s),
  (SELECT COUNT(*) FROM information_schema.routines),
  (SELECT COUNT(*) FROM mysql.user),
  (SELECT COUNT(*) FROM information_schema.tables),
  (SELECT COUNT(*) FROM information_schema.columns),
  (SELECT COUNT(*) FROM information_schema.schemata))
"""

CONFIG = """\
[[listener]]
protocol = "mysql"
host = "127.0.0.1"
port = {port}
login_timeout = 5

[target.corpus_rw]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "{database}"
credential.user = "{user}"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 5

[target.corpus_ro]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "{database}"
credential.user = "{user}"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 5
role = "read-only"

[target.corpus_hr]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "hr"
credential.user = "{user}"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 5
role = "read-only"

[audit]
path = "audit.db"

[users]
path = "users.db"

[rules]
files = {rules}
"""


@pytest.fixture(scope="module")
def corpus_cleanup() -> Iterator[dict[str, Any]]:
    """At the end of the module: stop the proxy, drop the corpus databases."""
    made: dict[str, Any] = {}
    yield made
    if "proxy" in made:
        made["proxy"].stop()
        shutil.rmtree(made["proxy"].workdir, ignore_errors=True)
    if "server" in made:
        made["server"].sql(TEARDOWN)


@pytest.fixture
def corpus_proxy(
    mysql_server: MariaDBServer, corpus_cleanup: dict[str, Any]
) -> MysqlProxy:
    """pamwire with the shipped packs in front of the corpus schema (made once)."""
    if "proxy" in corpus_cleanup:
        proxy: MysqlProxy = corpus_cleanup["proxy"]
        return proxy
    corpus_cleanup["server"] = mysql_server
    mysql_server.sql(DROP)
    mysql_server.sql(SCHEMA)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pamwire-mysql-corpus-"))
    proxy = MysqlProxy(workdir, free_port(), mysql_server)
    corpus_cleanup["proxy"] = proxy
    proxy.config.write_text(
        CONFIG.format(
            port=proxy.port,
            db_port=mysql_server.port,
            database=DATABASE,
            user=APP_USER,
            rules=json.dumps([f"pack:{name}" for name in PACKS]),
        )
    )
    added = proxy.pamwire(
        "user", "add", PERSON, "--password-stdin", input=PERSON_PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    proxy.start()
    return proxy


def _is_denial(error: pymysql.MySQLError) -> bool:
    # A refusal because the audit trail is down would say nothing about the rules.
    code, message = [*error.args, 0, ""][:2]
    return (
        code == 1142
        and str(message).startswith("pamwire")
        and "audit-unavailable" not in str(message)
    )


def _is_pamwire_refusal(error: pymysql.MySQLError) -> bool:
    message = str([*error.args, 0, ""][1])
    return message.startswith("pamwire") and "audit-unavailable" not in message


def _setup(case: dict[str, str]) -> list[str]:
    """The session statements the case's settings name, in order."""
    steps = []
    for part in case["settings"].split(";"):
        part = part.strip()
        if part.startswith("session:"):
            steps.append(part.removeprefix("session:").strip())
        elif part.startswith("sql_mode="):
            steps.append(f"SET SESSION sql_mode = '{part.removeprefix('sql_mode=')}'")
    return steps


def _connect(proxy: MysqlProxy, case: dict[str, str], target: str) -> Any:
    flags = (
        CLIENT.MULTI_STATEMENTS if "CLIENT_MULTI_STATEMENTS" in case["settings"] else 0
    )
    return pymysql.connect(
        **proxy.connect_args(database=target, client_flag=flags, autocommit=True)
    )


def _run(conn: Any, case: dict[str, str], init_db: str | None = None) -> str:
    """Run the case on conn; "deny" when pamwire refused it, else "allow"."""
    with conn.cursor() as cursor:
        try:
            if init_db is not None:
                conn.select_db(init_db)
            for step in _setup(case):
                cursor.execute(step)
        except pymysql.MySQLError as error:
            # pamwire refuses the session state the case needs: the dangerous
            # statement cannot follow.
            if _is_pamwire_refusal(error):
                return "deny"
            raise
        cursor.execute("BEGIN")
        verdict = "allow"
        try:
            cursor.execute(case["sql"])
            while cursor.nextset():
                pass
        except pymysql.MySQLError as error:
            if _is_denial(error):
                verdict = "deny"
        with contextlib.suppress(pymysql.MySQLError):
            cursor.execute("ROLLBACK")
    return verdict


def _run_case(proxy: MysqlProxy, case: dict[str, str]) -> str:
    read_only = case["settings"].startswith("grant=read-only")
    if "default database hr" in case["settings"]:
        # Both ways of making hr the default database: the handshake (a target
        # whose database is hr) and COM_INIT_DB on the read-only target, which
        # pamwire refuses (1044: hr is outside that target) before any query.
        verdicts = set()
        for target, init_db in (("corpus_hr", None), ("corpus_ro", "hr")):
            conn = _connect(proxy, case, target)
            try:
                verdicts.add(_run(conn, case, init_db))
            finally:
                conn.close()
        return "deny" if verdicts == {"deny"} else "allow"
    conn = _connect(proxy, case, "corpus_ro" if read_only else "corpus_rw")
    try:
        return _run(conn, case)
    finally:
        conn.close()


def _state(server: MariaDBServer) -> str:
    return server.sql(STATE_SQL).strip()


def _param(case: dict[str, str]) -> Any:
    marks = []
    if case["id"] in KNOWN_WRONG:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[case["id"]]))
    return pytest.param(case, id=case["id"], marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_corpus_case_reaches_its_verdict_through_pamwire(
    corpus_proxy: MysqlProxy, case: dict[str, str]
) -> None:
    before = _state(corpus_proxy.server)
    expected = case["expect"].split(":")[0]
    got = _run_case(corpus_proxy, case)
    assert got == expected, f"{case['id']}: expected {expected}, got {got}"
    assert _state(corpus_proxy.server) == before


@pytest.mark.parametrize(
    "case", [_param(case) for case in CASES if case["dialect"] == "mysql"]
)
def test_mysql_only_case_is_decided_as_mysql_8(case: dict[str, str]) -> None:
    # The live run reads these with the MariaDB server's flavour; MySQL 8 reads
    # executable comments by its own version, so the verdict is also checked
    # with the analysis pamwire would make in front of MySQL 8.0.36.
    ruleset = load_rules([builtin_pack(name) for name in PACKS])
    read_only = case["settings"].startswith("grant=read-only")
    ctx = RuleContext(
        user=PERSON,
        target="corpus_ro" if read_only else "corpus_rw",
        role="read-only" if read_only else None,
        dialect="mysql",
    )
    analysis = mysql.analyze(
        case["sql"], flavor="mysql", server_version=(8, 0, 36), database=DATABASE
    )
    if analysis.error is not None:
        verdict = ruleset.decide_unparsable(analysis.error, ctx).verdict
    else:
        verdict = strongest(
            [ruleset.decide(facts, ctx) for facts in analysis.statements]
        ).verdict
    assert verdict == case["expect"].split(":")[0]


def test_corpus_has_mysql_cases() -> None:
    assert len(CASES) >= 30
