"""A pamwire process started by a test, as users run it: `pamwire serve --config`.

The PostgreSQL and MySQL fixtures build on this; it starts and stops the process,
runs other pamwire commands against the same configuration and reads the trail.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class PamwireProcess:
    """A pamwire serving `config` in `workdir`, listening first on `port`."""

    def __init__(self, workdir: Path, port: int, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = port
        self.env = env
        self.config = workdir / "pamwire.toml"
        self.process: subprocess.Popen[bytes] | None = None

    def pamwire(
        self, *args: str, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pamwire.cli", *args, "--config", str(self.config)]
        return subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=60, env=self.env
        )

    def log_events(self, *args: str) -> list[dict[str, Any]]:
        """The audit trail as JSON objects, via `pamwire log search --format json`."""
        result = self.pamwire(
            "log", "search", "--format", "json", "--limit", "100000", *args
        )
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def wait_for_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Poll the trail until an event satisfies predicate (completions lag)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.log_events()
            if any(predicate(e) for e in events) or time.monotonic() > deadline:
                return events
            time.sleep(0.1)

    def start(self) -> None:
        log = (self.workdir / "pamwire.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pamwire.cli",
                "serve",
                "--config",
                str(self.config),
            ],
            stdout=log,
            stderr=log,
            env=self.env,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pamwire exited: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pamwire did not start: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "pamwire.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
