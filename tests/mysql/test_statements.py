"""Statement-text helpers of the MySQL session and pamwire's own packets."""

from __future__ import annotations

import pytest

from pamwire.audit.params import names_a_secret
from pamwire.mysql import codec, replies
from pamwire.mysql import messages as m
from pamwire.mysql.statements import (
    leading_words,
    parse_kill,
    parse_server_version,
    redact_mysql,
)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("KILL QUERY 5", ["KILL", "QUERY", "5"]),
        ("  /* c */ kill\n-- x\n 7;", ["kill", "7"]),
        ("/*!50000 KILL */ 9", ["KILL", "9"]),
        ("/*M!100000 USE `a``b` */", ["USE", "`a``b`"]),
        ("# note\nLOAD DATA LOCAL INFILE 'f'", ["LOAD", "DATA", "LOCAL", "INFILE"]),
        ("(SELECT 1)", ["SELECT", "1", ")"]),
    ],
)
def test_leading_words_skip_comments_and_open_executable_ones(
    text: str, words: list[str]
) -> None:
    assert leading_words(text, 4) == words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("KILL 5", (5, False)),
        ("KILL CONNECTION 5", (5, False)),
        ("kill query 12", (12, True)),
        ("KILL HARD QUERY 3", (3, True)),
        ("KILL QUERY ID 3", None),
        ("KILL USER bob", None),
        ("KILL (SELECT 1)", None),
        ("KILL 5 6", None),
    ],
)
def test_parse_kill_accepts_only_plain_ids(
    text: str, expected: tuple[int, bool] | None
) -> None:
    assert parse_kill(leading_words(text, 8)) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("10.11.6-MariaDB-0+deb12u1", ("mariadb", (10, 11, 6))),
        ("5.5.5-10.6.12-MariaDB-log", ("mariadb", (10, 6, 12))),
        ("8.0.36", ("mysql", (8, 0, 36))),
        ("weird", ("mysql", (8, 0, 0))),
    ],
)
def test_parse_server_version(version: str, expected: object) -> None:
    assert parse_server_version(version) == expected


def test_redact_mysql_cuts_after_secrets() -> None:
    assert redact_mysql("SELECT 1") == "SELECT 1"
    assert (
        redact_mysql("CREATE USER u IDENTIFIED BY 'hunter2'")
        == "CREATE USER u IDENTIFIED <redacted>"
    )
    assert "hunter2" not in redact_mysql("SET PASSWORD FOR u = PASSWORD('hunter2')")
    assert redact_mysql("SELECT '\udce9'") == "SELECT '\ufffd'"


@pytest.mark.parametrize(
    "text",
    [
        "CHANGE MASTER TO MASTER_HOST='h', MASTER_PASSWORD='hunter2'",
        "CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = 'hunter2'",
        "change master to master_password='hunter2'",
        "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (PASSWORD 'hunter2')",
        "ALTER USER u IDENTIFIED VIA ed25519 USING PASSWORD('hunter2')",
    ],
)
def test_redact_mysql_cuts_password_options(text: str) -> None:
    assert "hunter2" not in redact_mysql(text)
    assert names_a_secret(text)


def test_redact_mysql_keeps_columns_that_only_start_with_password() -> None:
    text = "SELECT password_hash, passwords FROM accounts"
    assert redact_mysql(text) == text


def test_denial_is_1142_naming_the_rule() -> None:
    data = replies.denial(
        "no-drop", "DROP is not allowed", "drop", 1, codec.PROTOCOL_41
    )
    assert data[3] == 1
    error = codec.decode_err(data[4:], codec.PROTOCOL_41)
    assert (error.error_code, error.sql_state) == (1142, "42000")
    assert error.error_message.startswith('pamwire: statement denied by rule "no-drop"')


def test_login_failed_words_it_as_the_server() -> None:
    data = replies.login_failed(
        "bob", "10.0.0.1", 2, codec.PROTOCOL_41, using_password=True
    )
    error = codec.decode_err(data[4:], codec.PROTOCOL_41)
    assert data[3] == 2
    assert (error.error_code, error.sql_state) == (1045, "28000")
    assert error.error_message == (
        "Access denied for user 'bob'@'10.0.0.1' (using password: YES)"
    )


@pytest.mark.parametrize(
    "caps", [codec.PROTOCOL_41, codec.PROTOCOL_41 | codec.SESSION_TRACK]
)
def test_ok_round_trips(caps: int) -> None:
    data = replies.ok(caps, 3, status_flags=2)
    ok = codec.decode_ok(data[4:], caps)
    assert data[3] == 3 and ok.status_flags == 2 and ok.affected_rows == 0


def test_handshake_offers_exactly_the_capabilities() -> None:
    caps = codec.SUPPORTED_CAPABILITIES
    data = replies.handshake(
        connection_id=7,
        scramble=b"a" * 20,
        capabilities=caps,
        server_version="10.11.6-MariaDB",
        auth_plugin="caching_sha2_password",
    )
    greeting = codec.decode_handshake(data[4:])
    assert isinstance(greeting, m.HandshakeV10)
    assert greeting.capabilities == caps and greeting.connection_id == 7
    assert greeting.scramble == b"a" * 20 and not caps & codec.SSL


def test_auth_switch_carries_the_nonce() -> None:
    data = replies.auth_switch("caching_sha2_password", b"b" * 20, 2)
    switch = codec.decode_auth_reply(data[4:], codec.PROTOCOL_41)
    assert isinstance(switch, m.AuthSwitchRequest)
    assert switch.plugin_data == b"b" * 20 + b"\0"


def test_unknown_command_of_an_empty_packet_says_so() -> None:
    data = replies.unknown_command(-1, 0, codec.PROTOCOL_41)
    error = codec.decode_err(data[4:], codec.PROTOCOL_41)
    assert (
        "empty command packet" in error.error_message
        and "-1" not in error.error_message
    )


@pytest.mark.parametrize(
    "text",
    [
        "CREATE TABLE f (i INT) ENGINE=FEDERATED "
        "CONNECTION='mysql://root:MySecretQ1@127.0.0.1:3306/db/t'",
        "CREATE TABLE c (i INT) ENGINE=CONNECT TABLE_TYPE=ODBC "
        "CONNECTION 'DSN=x;UID=root;PWD=MySecretR3'",
    ],
)
def test_redact_mysql_cuts_connection_strings(text: str) -> None:
    assert "MySecret" not in redact_mysql(text)
    assert redact_mysql("KILL CONNECTION 5") == "KILL CONNECTION 5"


@pytest.mark.parametrize(
    ("version", "shown"),
    [
        ("5.5.5-10.11.6-MariaDB-0+deb12u1", "5.5.5-10.11.0-MariaDB"),
        ("10.11.6-MariaDB", "10.11.0-MariaDB"),
        ("8.0.36-0ubuntu0.22.04.1", "8.0.0"),
    ],
)
def test_greeting_version_hides_the_release(version: str, shown: str) -> None:
    from pamwire.server.mysql_login import coarse_version

    assert coarse_version(version) == shown


@pytest.mark.parametrize(
    "text",
    [
        "CREATE TABLE f (i INT) CONNECTION=_utf8mb4'mysql://u:MySecretS1@h/d/t'",
        "CREATE TABLE f (i INT) CONNECTION/**/='mysql://u:MySecretS2@h'",
        "CREATE TABLE f (i INT) CONNECTION = N'mysql://u:MySecretS3@h'",
        "CREATE TABLE f (i INT) CONNECTION=-- x\n'mysql://u:MySecretS4@h'",
        "CREATE TABLE f (i INT) `CONNECTION`='mysql://u:MySecretS5@h'",
        "ALTER TABLE f CONNECTION _latin1 'mysql://u:MySecretS6@h'",
    ],
)
def test_redact_mysql_connection_however_spelled(text: str) -> None:
    assert "MySecret" not in redact_mysql(text)


def test_redact_mysql_keeps_a_column_named_connection() -> None:
    assert redact_mysql("SELECT connection FROM t") == "SELECT connection FROM t"
