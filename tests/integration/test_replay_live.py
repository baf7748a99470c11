"""A psql session through pamwire, recorded and replayed as the person saw it."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import Proxy

pytestmark = pytest.mark.integration


def test_session_replay_shows_rows_errors_and_denials(proxy: Proxy) -> None:
    marker = f"replay-{time.time_ns()}"
    script = (
        f"select id, a from t where id <= 3 order by id /* {marker} */;\n"
        "select 1/0;\n"
        "DELETE FROM delete_log;\n"
    )
    proxy.psql("-v", "ON_ERROR_STOP=0", input=script, check=False)
    events = proxy.wait_for_event(lambda e: marker in str(e.get("statement")))
    session = next(e["session"] for e in events if marker in str(e.get("statement")))

    deadline = time.monotonic() + 10
    replay = ""
    while time.monotonic() < deadline:
        result = proxy.pamwire("session", "replay", str(session))
        replay = result.stdout
        if "DELETE FROM delete_log" in replay:
            break
        time.sleep(0.3)
    assert marker in replay
    assert "(3 rows)" in replay
    assert "division by zero" in replay
    assert "denied" in replay

    listed = proxy.pamwire("session", "list", "--user", "alice")
    assert str(session) in listed.stdout
    as_json = proxy.pamwire("session", "replay", str(session), "--format", "json")
    assert json.loads(as_json.stdout)


def test_log_export_streams_jsonl(proxy: Proxy) -> None:
    proxy.psql("-c", "select 'export-check'")
    result = proxy.pamwire("log", "export", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert any(x.get("statement") == "select 'export-check'" for x in lines)
