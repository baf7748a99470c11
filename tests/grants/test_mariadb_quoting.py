"""Quoting and rendering of the MariaDB templates, without a server."""

from __future__ import annotations

import pytest

from pamwire.grants import MintError
from pamwire.grants.config import MARIADB_CREATE, MARIADB_EVENT, MARIADB_REVOKE
from pamwire.grants.mariadb import (
    MAX_EVENT_NAME,
    event_name,
    expiry_literal,
    native_password_hash,
    quote_identifier,
    quote_literal,
    render,
)

VALUES = {
    "name": "pamwire_alice_7",
    "host": "%",
    "password": "*HASH",
    "expiry": "2027-01-15 08:00:00",
    "role": "orders_ro",
    "owner": "root",
    "database": "app",
    "event": "lock_pamwire_alice_7",
}


def test_mariadb_quote_identifier() -> None:
    assert quote_identifier("plain") == "`plain`"
    assert quote_identifier("a`b") == "`a``b`"
    assert quote_identifier("ro`; DROP USER x; --") == "`ro``; DROP USER x; --`"
    with pytest.raises(MintError, match="nul byte"):
        quote_identifier("a\x00b")


def test_mariadb_quote_literal_with_and_without_backslash_escapes() -> None:
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("a\\'b") == "'a\\\\''b'"
    assert quote_literal("a\\'b", backslash_escapes=False) == "'a\\''b'"
    with pytest.raises(MintError, match="nul byte"):
        quote_literal("\x00")


def test_mariadb_native_password_hash_known_answer() -> None:
    # The published mysql_native_password hash of the word "password".
    assert (
        native_password_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    )


def test_mariadb_event_name_fits() -> None:
    assert event_name("pamwire_alice_7") == "lock_pamwire_alice_7"
    long_a, long_b = "p" * 60 + "_1", "p" * 60 + "_2"
    assert len(event_name(long_a)) == MAX_EVENT_NAME
    assert event_name(long_a) != event_name(long_b)


def test_mariadb_expiry_literal_is_utc() -> None:
    assert expiry_literal(1_800_000_000.0) == "2027-01-15 08:00:00"
    assert expiry_literal(1_800_000_000.2) == "2027-01-15 08:00:01"  # never early


def test_mariadb_default_templates_render() -> None:
    rendered = [render(t, VALUES) for t in MARIADB_CREATE + MARIADB_EVENT]
    assert rendered == [
        "CREATE USER 'pamwire_alice_7'@'%' IDENTIFIED BY PASSWORD '*HASH'",
        "GRANT `orders_ro` TO 'pamwire_alice_7'@'%'",
        "SET DEFAULT ROLE `orders_ro` FOR 'pamwire_alice_7'@'%'",
        "CREATE EVENT `app`.`lock_pamwire_alice_7` ON SCHEDULE AT"
        " '2027-01-15 08:00:00' DO ALTER USER 'pamwire_alice_7'@'%' ACCOUNT LOCK",
    ]
    assert render(MARIADB_REVOKE[-1], VALUES) == (
        "DROP EVENT IF EXISTS `app`.`lock_pamwire_alice_7`"
    )


def test_mariadb_render_hostile_values() -> None:
    values = dict(VALUES, role="r`x", host="10.0.0.%' OR '1", database="d`b")
    assert render("GRANT {role} TO {name}", values) == (
        "GRANT `r``x` TO 'pamwire_alice_7'@'10.0.0.%'' OR ''1'"
    )
    assert render("{name_literal} {event} {{x}}", values) == (
        "'pamwire_alice_7' `d``b`.`lock_pamwire_alice_7` {x}"
    )
