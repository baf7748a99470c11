"""Tests of the SQLite store of persons."""

from __future__ import annotations

import logging
import pathlib
import re
import sqlite3
import stat
from collections.abc import Iterator

import pytest

from pamwire.errors import AuthenticationError, ConfigError
from pamwire.pg.auth import ScramClient, ScramServer
from pamwire.users import NAME_RULE, SCHEMA_VERSION, Person, UserStore, check_name


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "users.sqlite"


@pytest.fixture
def store(path: pathlib.Path) -> Iterator[UserStore]:
    with UserStore(path, clock=lambda: 1700000000.5) as opened:
        yield opened


def logs_in(person: Person | None, password: str) -> bool:
    server = ScramServer(None if person is None else person.scram)
    client = ScramClient("ignored", password)
    try:
        reply = server.client_first(client.client_first())
        client.server_final(server.client_final(client.server_first(reply)))
    except AuthenticationError:
        return False
    return True


def test_user_store_creates_private_file_in_wal_mode(
    store: UserStore, path: pathlib.Path
) -> None:
    store.add("alice", "pw")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    wal = path.with_name(path.name + "-wal")
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_user_store_add_and_get(store: UserStore) -> None:
    added = store.add("alice@example.com", "correct horse")

    assert store.get("alice@example.com") == added
    assert added.name == "alice@example.com"
    assert added.created_at == 1700000000.5
    assert not added.disabled
    assert logs_in(added, "correct horse")
    assert not logs_in(added, "battery staple")


def test_user_store_get_missing(store: UserStore) -> None:
    assert store.get("nobody") is None


def test_user_store_add_duplicate(store: UserStore) -> None:
    store.add("alice", "pw")

    with pytest.raises(ConfigError, match="'alice' already exists"):
        store.add("alice", "other")
    with pytest.raises(ConfigError, match="'Alice' already exists"):
        store.add("Alice", "other")
    assert store.get("Alice") is None  # lookups stay exact


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 64,
        "with space",
        "slash/name",
        "semi;colon",
        "ümlaut",
        "quote'",
        "\x00",
    ],
)
def test_user_store_add_rejects_invalid_name(store: UserStore, name: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(NAME_RULE)) as caught:
        store.add(name, "pw")
    assert repr(name) in str(caught.value)
    assert store.list() == []


@pytest.mark.parametrize("name", ["a", "a" * 63, "A.b_c-d+e@f", "0"])
def test_check_name_accepts(name: str) -> None:
    assert check_name(name) == name


def test_user_store_add_rejects_empty_password(store: UserStore) -> None:
    with pytest.raises(ConfigError, match="empty"):
        store.add("alice", "")


def test_user_store_set_password(store: UserStore) -> None:
    store.add("alice", "old")

    store.set_password("alice", "new")

    person = store.get("alice")
    assert logs_in(person, "new")
    assert not logs_in(person, "old")


def test_user_store_set_password_missing(store: UserStore) -> None:
    with pytest.raises(ConfigError, match="no person named 'bob'"):
        store.set_password("bob", "pw")


def test_user_store_set_password_replaces_the_mysql_verifiers(
    store: UserStore, path: pathlib.Path
) -> None:
    store.add("alice", "old")
    before = store.verifiers("alice")

    store.set_password("alice", "new")

    after = store.verifiers("alice")
    assert (
        set(after)
        == set(before)
        == {
            "mysql_native_password",
            "caching_sha2_password",
        }
    )
    assert all(after[method] != before[method] for method in after)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM person_verifier").fetchone() == (2,)


def test_user_store_remove_drops_other_verifiers(
    store: UserStore, path: pathlib.Path
) -> None:
    store.add("alice", "pw")
    assert store.verifiers("alice")

    store.remove("alice")

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM person_verifier").fetchone() == (0,)


def test_user_store_set_disabled(store: UserStore) -> None:
    store.add("alice", "pw")

    store.set_disabled("alice", True)
    disabled = store.get("alice")
    store.set_disabled("alice", False)

    assert disabled is not None and disabled.disabled
    enabled = store.get("alice")
    assert enabled is not None and not enabled.disabled
    with pytest.raises(ConfigError, match="no person named 'bob'"):
        store.set_disabled("bob", True)


def test_user_store_list_is_sorted(store: UserStore) -> None:
    for name in ("carol", "alice", "bob"):
        store.add(name, "pw")

    assert [person.name for person in store.list()] == ["alice", "bob", "carol"]


def test_user_store_remove(store: UserStore) -> None:
    store.add("alice", "pw")

    assert store.remove("alice")
    assert not store.remove("alice")
    assert store.get("alice") is None
    assert not logs_in(store.get("alice"), "pw")


def test_user_store_never_stores_the_password(
    store: UserStore, path: pathlib.Path
) -> None:
    password = "Tr0ub4dor&3-unique-marker"
    store.add("alice", password)
    store.set_password("alice", "Changed-" + password)
    store.close()

    for file in path.parent.iterdir():
        content = file.read_bytes()
        assert password.encode() not in content
        assert password.encode("utf-16-le") not in content


def test_user_store_persists_across_reopen(path: pathlib.Path) -> None:
    with UserStore(path) as store:
        added = store.add("alice", "pw")

    with UserStore(path) as store:
        assert store.get("alice") == added


def test_user_store_refuses_newer_schema(path: pathlib.Path) -> None:
    UserStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(ConfigError, match="newer than this pamwire supports"):
        UserStore(path)


def test_user_store_unreadable_verifier(store: UserStore, path: pathlib.Path) -> None:
    store.add("alice", "pw")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE person SET scram_sha_256 = 'garbage'")

    with pytest.raises(ConfigError, match="verifier of person 'alice'"):
        store.get("alice")


def test_user_store_cannot_create_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="cannot create user store"):
        UserStore(tmp_path / "missing" / "users.sqlite")


def test_user_store_warns_about_open_mode(
    path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.touch()
    path.chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="pamwire.users"):
        UserStore(path).close()

    assert "mode 644" in caplog.text


def test_user_store_close_twice(path: pathlib.Path) -> None:
    store = UserStore(path)
    store.close()
    store.close()
