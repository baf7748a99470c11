"""Tests of `evidence export`: the bundle from synthetic events and grants."""

from __future__ import annotations

import argparse
import csv
import hashlib
import html.parser
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from pamwire.audit.events import Completion
from pamwire.audit.store import AuditStore
from pamwire.errors import PamwireError
from pamwire.evidence import bundle
from pamwire.grants.store import GrantStore, State
from tests.audit import BASE_TIME, make_event

HOUR = 3600.0
DAY = 86400.0
START = BASE_TIME - 2 * DAY  # 2026-12-02
END = BASE_TIME + 2 * DAY


def _grants(path: pathlib.Path) -> None:
    store = GrantStore(path)
    try:
        t = BASE_TIME - DAY
        # Approved after 10 minutes by two people, expired, account removed 30 s late.
        g = store.create("alice", "prod", "read", HOUR, "incident 42", t)
        store.add_approval(g.id, "bob", t + 300)
        store.add_approval(g.id, "carol", t + 600)
        assert store.claim_mint(g.id, "pw_alice_1", t + 600, t)
        assert store.activate(g.id, "carol", t + 600, t + 600 + HOUR, b"sealed")
        store.end(
            g.id, State.EXPIRED, "pamwire", t + 600 + HOUR + 5, None, [State.APPROVED]
        )
        store.account_removed(g.id, t + 600 + HOUR + 30, "dropped")
        # Denied.
        d = store.create("mallory", "prod", "admin", HOUR, "<script>x</script>", t)
        store.end(d.id, State.DENIED, "bob", t + 60, "no", [State.REQUESTED])
        # Long before the period: left out.
        old = store.create("dave", "prod", "read", HOUR, None, START - 30 * DAY)
        store.end(
            old.id, State.DENIED, "bob", START - 30 * DAY + 5, None, [State.REQUESTED]
        )
    finally:
        store.close()


def _trail(path: pathlib.Path) -> None:
    store = AuditStore(path)
    try:
        events = []
        for n, person in enumerate(["alice", "alice", "bob"]):
            session = f"s{n}"
            t = BASE_TIME + n * HOUR
            events.append(
                make_event(
                    session=session,
                    user=person,
                    kind="session_start",
                    time=t,
                    statement=None,
                    verdict=None,
                )
            )
            events.append(
                make_event(
                    session=session,
                    user=person,
                    time=t + 1,
                    statement="SELECT * FROM orders",
                    tables_read=["public.orders"],
                )
            )
            events.append(
                make_event(
                    session=session,
                    user=person,
                    time=t + 2,
                    statement="DELETE FROM orders",
                    verdict="deny",
                    rule="no-unscoped-write",
                    statement_kind="delete",
                    message="=cmd|' /C calc'!A0",
                )
            )
            events.append(
                make_event(
                    session=session,
                    user=person,
                    kind="session_end",
                    time=t + 3,
                    statement=None,
                    verdict=None,
                )
            )
        events.append(make_event(session="s9", time=START - DAY))  # before the period
        store.append(events)
        store.complete([Completion(events[1].event_id, 2.5, "ok", None, 7)])
    finally:
        store.close()


@pytest.fixture
def bundle_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    _grants(tmp_path / "grants.db")
    _trail(tmp_path / "audit.db")
    out = tmp_path / "bundle"
    messages: list[str] = []
    manifest = bundle.export_evidence(
        audit_path=tmp_path / "audit.db",
        grants_path=tmp_path / "grants.db",
        start=START,
        end=END,
        out_dir=out,
        progress=messages.append,
    )
    assert manifest["log_verify"]["ok"] is True
    assert "verifying the audit trail" in messages and messages[-1].startswith("bundle")
    return out


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.svg_titles: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "svg":
            self.svg_titles.append(dict(attrs).get("aria-label") or "")
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.sources.append(value)


def test_evidence_manifest_hashes_every_file(bundle_dir: pathlib.Path) -> None:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    names = sorted(p.name for p in bundle_dir.iterdir() if p.name != "manifest.json")
    assert sorted(manifest["files"]) == names
    assert {
        "report.html",
        "grants.csv",
        "grants.json",
        "sessions.csv",
        "statements.json",
        "denials.csv",
        "denials.json",
    } <= set(names)
    for name, entry in manifest["files"].items():
        data = (bundle_dir / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    assert manifest["counts"] == {
        "grants": 2,
        "sessions": 3,
        "statements": 6,
        "denials": 3,
        "events": 12,
    }
    assert manifest["log_verify"]["report"][-1] == "trail verified: no problems"


def test_evidence_grants_carry_requesters_and_approvers(
    bundle_dir: pathlib.Path,
) -> None:
    grants = json.loads((bundle_dir / "grants.json").read_text())
    first = grants[0]
    assert first["requester"] == "alice" and first["state"] == "expired"
    assert [a.split(" at ")[0] for a in first["approvers"]] == ["bob", "carol"]
    assert first["request_to_approval_s"] == 600
    assert first["end_to_removal_s"] == 30
    assert grants[1]["ended_by"] == "bob"
    with open(bundle_dir / "grants.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["approvers"].startswith("bob at ")


def test_evidence_statement_tables(bundle_dir: pathlib.Path) -> None:
    statements = json.loads((bundle_dir / "statements.json").read_text())
    assert len(statements) == 6 and statements[0]["rows"] == 7
    with open(bundle_dir / "denials.csv", newline="") as f:
        denials = list(csv.DictReader(f))
    assert len(denials) == 3
    assert denials[0]["message"].startswith("'=")  # a formula is defused
    sessions = json.loads((bundle_dir / "sessions.json").read_text())
    assert [s["session"] for s in sessions] == ["s0", "s1", "s2"]
    assert sessions[0]["end"] is not None and sessions[0]["denied"] == 1


def test_evidence_report_parses_and_holds_the_charts(bundle_dir: pathlib.Path) -> None:
    page = (bundle_dir / "report.html").read_text()
    parser = _Collector()
    parser.feed(page)
    parser.close()
    assert parser.tags.count("svg") == 5
    assert parser.svg_titles == [
        "Grants requested per day",
        "Time from request to approval",
        "Time from expiry or revocation to account removal",
        "Denials by rule",
        "Sessions per person",
    ]
    assert "script" not in parser.tags and parser.sources == []
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert "the trail verified" in page


def test_evidence_refuses_a_used_folder_and_a_reversed_period(
    tmp_path: pathlib.Path,
) -> None:
    _trail(tmp_path / "audit.db")
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with pytest.raises(PamwireError, match="not an empty folder"):
        bundle.export_evidence(
            audit_path=tmp_path / "audit.db",
            grants_path=None,
            start=START,
            end=END,
            out_dir=used,
        )
    with pytest.raises(PamwireError, match="is not before"):
        bundle.export_evidence(
            audit_path=tmp_path / "audit.db",
            grants_path=None,
            start=END,
            end=START,
            out_dir=tmp_path / "new",
        )


def test_evidence_cli_with_a_tampered_trail_exits_1(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    _trail(tmp_path / "audit.db")
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("UPDATE events SET statement = 'SELECT 2' WHERE session = 's1'")
    conn.commit()
    conn.close()
    (tmp_path / "pamwire.toml").write_text('[audit]\npath = "audit.db"\n')
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=pathlib.Path)
    bundle.add_evidence_commands(parser.add_subparsers(), common)
    args = parser.parse_args(
        [
            "evidence",
            "export",
            "--from",
            "2026-12-02",
            "--to",
            "2026-12-05",
            "--out",
            str(tmp_path / "b"),
            "--config",
            str(tmp_path / "pamwire.toml"),
        ]
    )
    assert args.func(args) == 1
    assert "evidence: verifying the audit trail" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["log_verify"]["ok"] is False
    assert "FAILED" in (tmp_path / "b" / "report.html").read_text()


def test_evidence_period_to_a_date_includes_that_day() -> None:
    start, end = bundle.parse_period("2026-12-04", "2026-12-04")
    assert end - start == DAY


CHROMIUM = shutil.which("chromium")


def test_evidence_report_renders_in_headless_chromium(
    bundle_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    if CHROMIUM is None:
        # ./dev.sh test installs Debian's chromium; only a bare pytest run skips.
        if os.environ.get("PAMWIRE_REQUIRE_SERVERS") == "1":
            pytest.fail("chromium is missing, and this run requires it")
        pytest.skip("Debian's chromium is not installed (`which chromium`)")
    png = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1200,2400",
            (bundle_dir / "report.html").resolve().as_uri(),
        ],
        check=True,
        timeout=60,
        capture_output=True,
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_evidence_statement_with_undecodable_bytes(tmp_path: pathlib.Path) -> None:
    store = AuditStore(tmp_path / "audit.db")
    try:
        store.append(
            [
                make_event(session="s1", statement="SELECT 'caf\udcff'"),
                make_event(
                    session="s1",
                    time=BASE_TIME + 1,
                    statement="DELETE FROM t WHERE x = '\udcff'",
                    verdict="deny",
                    rule="r\udcfe",
                ),
            ]
        )
    finally:
        store.close()
    out = tmp_path / "bundle"
    manifest = bundle.export_evidence(
        audit_path=tmp_path / "audit.db",
        grants_path=None,
        start=START,
        end=END,
        out_dir=out,
    )
    assert manifest["counts"]["statements"] == 2
    csv_text = (out / "statements.csv").read_text(encoding="utf-8")
    assert "SELECT 'caf\\udcff'" in csv_text
    rows = json.loads((out / "denials.json").read_text(encoding="utf-8"))
    assert rows[0]["statement"] == "DELETE FROM t WHERE x = '\udcff'"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "\\udcff" in page
    for name, entry in manifest["files"].items():
        assert bundle.sha256_file(out / name) == entry["sha256"]


def test_evidence_failure_leaves_no_bundle(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trail(tmp_path / "audit.db")

    def broken(**kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(bundle.report, "render", broken)
    out = tmp_path / "bundle"
    with pytest.raises(OSError, match="disk full"):
        bundle.export_evidence(
            audit_path=tmp_path / "audit.db",
            grants_path=None,
            start=START,
            end=END,
            out_dir=out,
        )
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "bundle" in p.name]
