"""What the throwaway database servers (demo, tests, benchmarks) have in common.

PostgreSQL and MariaDB refuse to run as root, so when pamwire runs as root their
folders are handed to an unprivileged OS user; a start failure shows the tail of
the server's log.
"""

from __future__ import annotations

import os
import pathlib
import pwd
import socket

from pamwire.errors import PamwireError

HOST = "127.0.0.1"

# Lines of a server log quoted in a start-up error: enough to show the reason.
LOG_TAIL_LINES = 25


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was unused a moment ago.

    Another process may take it before the caller binds it; the window is small.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def as_root() -> bool:
    return os.geteuid() == 0


def give_to_os_user(path: pathlib.Path, os_user: str) -> None:
    """chown `path` to `os_user` when running as root; PamwireError if no such user."""
    if as_root():
        try:
            entry = pwd.getpwnam(os_user)
        except KeyError as exc:
            raise PamwireError(f"no {os_user!r} os user to run the server") from exc
        os.chown(path, entry.pw_uid, entry.pw_gid)


def log_tail(path: pathlib.Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a server log, or a note saying why there are none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])
