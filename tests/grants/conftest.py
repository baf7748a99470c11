"""Fixtures of the grants tests: a configuration, a fake clock, a fake minter."""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from pamwire.config import Config, parse_config
from pamwire.grants import MintError
from pamwire.grants.config import GrantsConfig, TargetGrants, parse_grants_config
from pamwire.grants.minting import Account, AdminLogin
from pamwire.grants.secrets import SecretBox
from pamwire.grants.service import GrantService
from pamwire.grants.store import GrantStore

ADMIN_ENV = "PAMWIRE_TEST_GRANTS_ADMIN_PW"
START = 1_800_000_000.0
# The OS user the tests' grant stores record in history and audit events.
OS_USER = "tester"


def document(
    *, port: int = 5432, grants: dict[str, Any] | None = None, **target_grants: Any
) -> dict[str, Any]:
    """A whole TOML document (as parsed) with target `app` taking grants."""
    table: dict[str, Any] = {
        "roles": {"read-only": "ro", "read-write": "app"},
        "approvers": ["bob", "carol"],
        "approvals_needed": 1,
        "max_duration": "8h",
        "reason_required": True,
        "admin": {"user": "postgres", "password_env": ADMIN_ENV},
    }
    table.update(target_grants)
    return {
        "target": {
            "app": {
                "protocol": "postgres",
                "host": "127.0.0.1",
                "port": port,
                "database": "app",
                "credential": {"user": "app", "password_env": "PAMWIRE_TEST_APP_PW"},
                "connect_timeout": 5,
                "grants": table,
            },
            "plain": {
                "protocol": "postgres",
                "host": "127.0.0.1",
                "port": port,
                "database": "app",
                "credential": {"user": "app", "password_env": "PAMWIRE_TEST_APP_PW"},
            },
        },
        "grants": grants or {},
    }


def load(raw: dict[str, Any], folder: pathlib.Path) -> tuple[Config, GrantsConfig]:
    from pamwire.grants.config import without_grants

    path = folder / "pamwire.toml"
    return parse_config(without_grants(raw), path), parse_grants_config(raw, path)


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeMinter:
    """Records what it was asked; `fail_mint` / `fail_remove` make it fail."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.removed: list[str] = []
        self.fail_mint: str | None = None
        self.fail_remove: str | None = None
        self.notes: tuple[str, ...] = ()

    def mint(
        self, login: AdminLogin, grants: TargetGrants, account: Account
    ) -> tuple[str, ...]:
        if self.fail_mint:
            raise MintError(self.fail_mint)
        self.accounts[account.name] = account
        return self.notes

    def remove(self, login: AdminLogin, grants: TargetGrants, account: Account) -> str:
        if self.fail_remove:
            raise MintError(self.fail_remove)
        self.accounts.pop(account.name, None)
        self.removed.append(account.name)
        return "dropped"


def copy_grants_file(source: pathlib.Path, copy: pathlib.Path) -> None:
    """Copy a grants file as an operator might (SQLite's backup: WAL included)."""
    copy.parent.mkdir(exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def minter() -> FakeMinter:
    return FakeMinter()


def make_service(
    raw: dict[str, Any],
    folder: pathlib.Path,
    clock: FakeClock,
    minter: Any | None = None,
) -> GrantService:
    config, grants = load(raw, folder)
    return GrantService(
        config,
        grants,
        store=GrantStore(folder / "grants.db", os_user=OS_USER),
        box=SecretBox(folder / "grants.key"),
        minters=None if minter is None else {"postgres": minter},
        clock=clock,
    )


@pytest.fixture
def service(
    tmp_path: pathlib.Path,
    clock: FakeClock,
    minter: FakeMinter,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[GrantService]:
    monkeypatch.setenv(ADMIN_ENV, "admin-pw")
    svc = make_service(document(), tmp_path, clock, minter)
    yield svc
    svc.close()


# The MySQL tests' throwaway MariaDB, for the MariaDB minter's live tests.
from tests.mysql.conftest import mariadb  # noqa: E402, F401
