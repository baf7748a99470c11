"""A full disk under the audit trail refuses statements; it never runs them unlogged."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pamwire.pgcluster import PostgresCluster
from tests.integration.conftest import Proxy, _start_proxy

pytestmark = pytest.mark.integration


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: small enough to fill in a test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Fill the filesystem to its last byte."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size = 65536
        while size >= 1:
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)
    return filler


def test_full_disk_refuses_statements_and_recovers(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_fs: Path,
) -> None:
    proxy: Proxy = _start_proxy(
        pg,
        pg_md5,
        tmp_path_factory.mktemp("pamwire-full"),
        ["pack:baseline"],
        audit_path=str(tiny_fs / "audit.db"),
    )
    try:
        pg.psql("delete from delete_log where note like 'diskfull-%'", database="app")
        filler = _fill(tiny_fs)
        ran: list[int] = []
        refused = 0
        with psycopg.connect(proxy.dsn(), autocommit=True) as conn:
            for i in range(300):
                try:
                    conn.execute(
                        "insert into delete_log(id, note) values (%s, %s)",
                        (8000 + i, f"diskfull-{i}"),
                    )
                    ran.append(i)
                except psycopg.errors.InsufficientPrivilege as exc:
                    assert "audit-unavailable" in str(exc)
                    refused += 1
        assert refused > 0, "the full disk never refused a statement"
        on_server = pg.psql(
            "select count(*) from delete_log where note like 'diskfull-%'",
            database="app",
        )
        assert int(on_server.strip()) == len(ran)

        # Space comes back; pamwire works again, and after a restart (which copies
        # its journal into the store) every statement that ran has its event.
        filler.unlink()
        proxy.psql("-c", "select 1")
        proxy.stop()
        proxy.start()
        # Bound values are not in the trail: count the executions of the insert.
        executed = [
            e
            for e in proxy.log_events("--text", "insert into delete_log")
            if e["verdict"] == "allow" and e["operation"] == "execute"
        ]
        assert len(executed) >= len(ran)
    finally:
        proxy.stop()
        pg.psql("delete from delete_log where note like 'diskfull-%'", database="app")
