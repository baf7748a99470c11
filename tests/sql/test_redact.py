"""Tests of password redaction in PostgreSQL statement text."""

from __future__ import annotations

import pytest

from pamwire.sql.redact import REDACTED, redact_conninfo, redact_pg

R = REDACTED

# (statement as sent, statement as stored)
CASES = [
    ("ALTER ROLE bob PASSWORD 'hunter2'", f"ALTER ROLE bob PASSWORD {R}"),
    (
        "alter role bob with password 'hunter2' login",
        f"alter role bob with password {R} login",
    ),
    (
        "CREATE ROLE bob LOGIN PASSWORD 'hunter2' VALID UNTIL '2030-01-01'",
        f"CREATE ROLE bob LOGIN PASSWORD {R} VALID UNTIL '2030-01-01'",
    ),
    (
        "CREATE USER bob WITH ENCRYPTED PASSWORD 'md5abc'",
        f"CREATE USER bob WITH ENCRYPTED PASSWORD {R}",
    ),
    (
        "ALTER USER bob PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'",
        f"ALTER USER bob PASSWORD {R}",
    ),
    ("CREATE GROUP g PASSWORD 'x'", f"CREATE GROUP g PASSWORD {R}"),
    ("ALTER ROLE bob PASSWORD E'it\\'s sec\\\\ret'", f"ALTER ROLE bob PASSWORD {R}"),
    ("ALTER ROLE bob PASSWORD 'it''s secret'", f"ALTER ROLE bob PASSWORD {R}"),
    ("ALTER ROLE bob PASSWORD $$hunter2$$", f"ALTER ROLE bob PASSWORD {R}"),
    (
        "ALTER ROLE bob PASSWORD $pw$hun'ter$2$pw$ LOGIN",
        f"ALTER ROLE bob PASSWORD {R} LOGIN",
    ),
    ("ALTER ROLE bob PASSWORD 'hun'\n  'ter2'", f"ALTER ROLE bob PASSWORD {R}"),
    ("ALTER ROLE bob PASSWORD U&'d\\0061t\\+000061'", f"ALTER ROLE bob PASSWORD {R}"),
    ("ALTER ROLE bób PASSWORD 'sécrét€' LOGIN", f"ALTER ROLE bób PASSWORD {R} LOGIN"),
    ("ALTER ROLE bob PASSWORD NULL", "ALTER ROLE bob PASSWORD NULL"),
    (
        "/* note */ ALTER ROLE bob PASSWORD 'x'; SELECT 'password'",
        f"/* note */ ALTER ROLE bob PASSWORD {R}; SELECT 'password'",
    ),
    (
        "SELECT 1; ALTER ROLE a PASSWORD 'one'; ALTER ROLE b PASSWORD 'two'",
        f"SELECT 1; ALTER ROLE a PASSWORD {R}; ALTER ROLE b PASSWORD {R}",
    ),
    (
        "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'pw')",
        f"CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password {R})",
    ),
    (
        "ALTER USER MAPPING FOR b SERVER s OPTIONS (SET password 'pw', ADD \"Pw\" 'y')",
        f"ALTER USER MAPPING FOR b SERVER s OPTIONS (SET password {R}, ADD \"Pw\" 'y')",
    ),
    (
        "ALTER USER MAPPING FOR bob SERVER s OPTIONS (DROP password)",
        "ALTER USER MAPPING FOR bob SERVER s OPTIONS (DROP password)",
    ),
    (
        "SELECT dblink_connect('c', 'host=db password=hunter2 user=bob')",
        "SELECT dblink_connect('c', 'host=db password=<redacted> user=bob')",
    ),
    (
        "SELECT * FROM dblink('dbname=x password = ''hun ter''', 'SELECT 1')",
        "SELECT * FROM dblink('dbname=x password = <redacted>', 'SELECT 1')",
    ),
    (
        "SELECT dblink_exec('postgresql://bob:hunter2@db/x', 'DELETE FROM t')",
        "SELECT dblink_exec('postgresql://bob:<redacted>@db/x', 'DELETE FROM t')",
    ),
    (
        "SELECT dblink_connect_u(E'host=db password=hun\\'ter2')",
        "SELECT dblink_connect_u('host=db password=<redacted>')",
    ),
    (
        "SELECT dblink('host=db ' || 'password=hunter2', 'SELECT 1')",
        "SELECT dblink('host=db ' || 'password=<redacted>', 'SELECT 1')",
    ),
    (
        "ALTER SERVER s OPTIONS (ADD \"sslPassword\" 'k')",
        f'ALTER SERVER s OPTIONS (ADD "sslPassword" {R})',
    ),
    ("SELECT dblink('myconn', 'SELECT 1')", "SELECT dblink('myconn', 'SELECT 1')"),
    (
        "SELECT password FROM users WHERE password = 'x'",
        "SELECT password FROM users WHERE password = 'x'",
    ),
]


@pytest.mark.parametrize(("sql", "expected"), CASES)
def test_redact_pg_forms(sql: str, expected: str) -> None:
    assert redact_pg(sql) == expected


@pytest.mark.parametrize(
    "sql", ["SELECT 1", "UPDATE t SET a = 'secret'", "", "SELECT 'pass' || 'word'"]
)
def test_redact_pg_fast_path_returns_the_same_object(sql: str) -> None:
    assert redact_pg(sql) is sql


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER ROLE bob PASSWORD 'unterminated", f"ALTER ROLE bob PASSWORD {R}"),
        (
            "ALTER ROLE bob PASWORD 'x'; password 'y'",
            f"ALTER ROLE bob PASWORD 'x'; password {R}",
        ),
        ("ALTER ROLE bob PASSWORD 'a\x00b'", f"ALTER ROLE bob PASSWORD {R}"),
        ("garbage mapping", "garbage mapping"),
    ],
)
def test_redact_pg_unparsable_text_is_cut_after_password(
    sql: str, expected: str
) -> None:
    assert redact_pg(sql) == expected


def test_redact_pg_keeps_the_rest_byte_for_byte() -> None:
    sql = "ALTER  ROLE\t\"Bob\"\n  WITH PASSWORD 'x'  -- done\n"
    assert redact_pg(sql) == f'ALTER  ROLE\t"Bob"\n  WITH PASSWORD {R}  -- done\n'


@pytest.mark.parametrize(
    ("conninfo", "expected"),
    [
        ("host=a password=b", "host=a password=<redacted>"),
        ("password='a b\\' c' port=5", "password=<redacted> port=5"),
        ("sslpassword=k", "sslpassword=<redacted>"),
        (
            "postgres://u:p%40ss@h:5/d?password=z&x=1",
            "postgres://u:<redacted>@h:5/d?password=<redacted>&x=1",
        ),
        ("host=a user=b", "host=a user=b"),
    ],
)
def test_redact_conninfo(conninfo: str, expected: str) -> None:
    assert redact_conninfo(conninfo) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE SUBSCRIPTION s CONNECTION 'host=h password=HunterSub1' PUBLICATION p",
        "ALTER SUBSCRIPTION s CONNECTION 'postgresql://u:HunterSub2@h/db'",
    ],
)
def test_redact_subscription_connection_password(sql: str) -> None:
    out = redact_pg(sql)
    assert "HunterSub" not in out and "<redacted>" in out


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER SYSTEM SET primary_conninfo = 'host=h password=HunterGap1'",
        "SELECT set_config('primary_conninfo', 'host=h password=HunterGap2', false)",
        "DO $$BEGIN EXECUTE 'CREATE ROLE r PASSWORD ''HunterGap3'''; END$$",
        "SELECT dblink_connect('c', 'host=h password=' || 'HunterGap4')",
        "SELECT dblink_connect('c', concat('host=h password=', 'HunterGap5'))",
        "SELECT dblink_connect('postgresql://u:HunterGap6@h/db') )",
        "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS "
        "$$ ALTER ROLE r PASSWORD 'HunterGap7' $$",
    ],
)
def test_redact_passwords_outside_the_usual_forms(sql: str) -> None:
    assert "HunterGap" not in redact_pg(sql)


def test_redact_leaves_password_columns_and_urls_alone() -> None:
    for sql in ("SELECT password_hash FROM users", "SELECT 'https://example.com/x'"):
        assert redact_pg(sql) == sql
