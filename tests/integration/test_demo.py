"""`pamwire demo`, the README's first command, as a new user runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pamwire.localserver import free_port

pytestmark = pytest.mark.integration


def _psql(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PGPASSWORD="demo")
    dsn = f"host=127.0.0.1 port={port} dbname=demo user=demo sslmode=prefer"
    return subprocess.run(
        ["psql", "-X", dsn, *args], capture_output=True, text=True, timeout=30, env=env
    )


def test_demo_runs_the_main_job_and_stops_cleanly(tmp_path: Path) -> None:
    port, mysql_port = free_port(), free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pamwire",
            "demo",
            "--port",
            str(port),
            "--mysql-port",
            str(mysql_port),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl+C" in line:
                break
        output = "".join(lines)
        assert f'psql "host=127.0.0.1 port={port} dbname=demo user=demo"' in output

        account = _psql(port, "-At", "-c", "select current_user").stdout.strip()
        assert re.fullmatch(r"pamwire_[0-9a-f]{8}_demo_\d+", account), account
        read = _psql(port, "-At", "-c", "SELECT count(*) FROM customers")
        assert int(read.stdout.strip()) > 0
        scoped = _psql(port, "-c", "UPDATE orders SET status = 'shipped' WHERE id = 1")
        assert "UPDATE 1" in scoped.stdout
        refused = _psql(port, "-v", "VERBOSITY=verbose", "-c", "DELETE FROM customers;")
        assert refused.returncode != 0 and "42501" in refused.stderr

        # The same target through the MySQL listener, with the mariadb CLI.
        mariadb = subprocess.run(
            [
                "mariadb",
                "-h",
                "127.0.0.1",
                "-P",
                str(mysql_port),
                "-u",
                "demo",
                "-pdemo",
                "demo",
                "-N",
                "-e",
                "SELECT CURRENT_USER(); SELECT count(*) FROM customers",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert mariadb.returncode == 0, mariadb.stderr
        assert re.match(r"pamwire_[0-9a-f]{8}_demo_\d+@", mariadb.stdout)
        refused_my = subprocess.run(
            [
                "mariadb",
                "-h",
                "127.0.0.1",
                "-P",
                str(mysql_port),
                "-u",
                "demo",
                "-pdemo",
                "demo",
                "-e",
                "DELETE FROM customers",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused_my.returncode != 0 and "no-unscoped-delete" in refused_my.stderr

        config = tmp_path / "pamwire-demo" / "pamwire.toml"
        # A second demo in the same folder is refused and changes nothing.
        before = config.read_bytes()
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "pamwire",
                "demo",
                "--port",
                str(free_port()),
                "--mysql-port",
                str(free_port()),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2 and "already running" in second.stderr
        assert config.read_bytes() == before

        search = subprocess.run(
            [
                sys.executable,
                "-m",
                "pamwire",
                "log",
                "search",
                "--config",
                str(config),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        events = [json.loads(x) for x in search.stdout.splitlines()]
        verdicts = {e["statement"]: e["verdict"] for e in events if e["statement"]}
        assert verdicts.get("DELETE FROM customers") == "deny"
        assert (
            verdicts.get("UPDATE orders SET status = 'shipped' WHERE id = 1") == "allow"
        )
    finally:
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, rest
    assert "demo stopped" in rest
    # The throwaway PostgreSQL is gone too.
    started = next(x for x in lines if "starting a throwaway PostgreSQL" in x)
    pg_port = int(started.rsplit(":", 1)[1].split()[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", pg_port), timeout=2).close()
