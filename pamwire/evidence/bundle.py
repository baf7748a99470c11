"""`pamwire evidence export`: write the bundle an auditor opens offline.

The bundle is one new folder: report.html, grants, sessions, statements and denials
as CSV and JSON, and manifest.json with the sha256 of every other file and the
result of `log verify` run at export time. Verification runs first, so the report
can state it; statements are streamed to their files as they are read.

The bundle is written into a hidden temporary folder beside --out and renamed to
--out only when the manifest is written, so a failed export leaves no folder that
looks complete. Text the trail cannot hold as UTF-8 (undecodable bytes of a
statement, kept as lone surrogates) is written with Python's "backslashreplace",
so it appears as `\\udcff` in every file of the bundle.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from pamwire import __version__
from pamwire.audit.search import format_time, parse_time
from pamwire.audit.store import AuditStore
from pamwire.audit.verify import run_verify
from pamwire.errors import PamwireError
from pamwire.evidence import collect, report

MANIFEST = "manifest.json"
# How every file of the bundle encodes text that is not valid Unicode.
ENCODING_ERRORS = "backslashreplace"
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _csv_cell(value: object) -> object:
    # As in `log search --format csv`: lists joined, formulas defused.
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join("" if v is None else str(v) for v in value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class _TableFiles:
    """One table written as NAME.csv and NAME.json (a JSON array), row by row."""

    def __init__(self, folder: pathlib.Path, name: str, fields: Sequence[str]) -> None:
        self.count = 0
        self._csv_file: IO[str] = open(  # noqa: SIM115 - closed in close()
            folder / f"{name}.csv",
            "w",
            newline="",
            encoding="utf-8",
            errors=ENCODING_ERRORS,
        )
        self._json_file: IO[str] = open(  # noqa: SIM115 - closed in close()
            folder / f"{name}.json", "w", encoding="utf-8", errors=ENCODING_ERRORS
        )
        self._csv = csv.DictWriter(self._csv_file, fieldnames=list(fields))
        self._csv.writeheader()
        self._json_file.write("[")

    def add(self, row: dict[str, Any]) -> None:
        self._csv.writerow({k: _csv_cell(v) for k, v in row.items()})
        self._json_file.write(",\n" if self.count else "\n")
        self._json_file.write(json.dumps(row))
        self.count += 1

    def close(self) -> None:
        self._json_file.write("\n]\n")
        self._csv_file.close()
        self._json_file.close()


def _write_table(
    folder: pathlib.Path,
    name: str,
    fields: Sequence[str],
    rows: Sequence[dict[str, Any]],
) -> None:
    files = _TableFiles(folder, name, fields)
    try:
        for row in rows:
            files.add(row)
    finally:
        files.close()


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_evidence(
    *,
    audit_path: pathlib.Path,
    grants_path: pathlib.Path | None,
    start: float,
    end: float,
    out_dir: pathlib.Path,
    progress: Callable[[str], None] = lambda message: None,
    now: float | None = None,
) -> dict[str, Any]:
    """Write the bundle for [start, end) into out_dir (created; it must not exist or
    be empty) and return the manifest.

    Raises PamwireError for a bad period or folder, or a grants file that cannot be
    read, AuditError if the audit store cannot be opened or read.
    """
    if start >= end:
        raise PamwireError(f"--from {format_time(start)} is not before --to")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise PamwireError(f"{out_dir} exists and is not an empty folder")
    generated = time.time() if now is None else now

    progress("verifying the audit trail")
    verify_ok, verify_lines = run_verify(audit_path)
    progress("reading grants")
    grants = collect.read_grants(grants_path, start, end)
    notes = []
    if grants_path is None or not grants_path.exists():
        notes.append("No grants file was found: the grant tables and charts are empty.")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp makes the folder 0700: the bundle holds statements, private like
    # the trail.
    work = pathlib.Path(
        tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent)
    )
    try:
        manifest = _write_bundle(
            work,
            audit_path,
            (start, end, generated),
            grants,
            (verify_ok, verify_lines),
            notes,
            progress,
        )
        # Renaming onto an empty folder is allowed; a non-empty one was refused
        # above (a race with another writer fails here and leaves theirs alone).
        os.rename(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    progress(f"bundle written to {out_dir}")
    return manifest


def _write_bundle(
    out_dir: pathlib.Path,
    audit_path: pathlib.Path,
    times: tuple[float, float, float],
    grants: list[dict[str, Any]],
    verified: tuple[bool, list[str]],
    notes: list[str],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Write every file into out_dir, the manifest last; return the manifest."""
    start, end, generated = times
    verify_ok, verify_lines = verified
    _write_table(out_dir, "grants", collect.GRANT_FIELDS, grants)

    progress("reading audit events")
    statements = _TableFiles(out_dir, "statements", collect.STATEMENT_FIELDS)
    denials = _TableFiles(out_dir, "denials", collect.STATEMENT_FIELDS)
    shown_denials: list[dict[str, Any]] = []

    def on_statement(row: dict[str, Any], denied: bool) -> None:
        statements.add(row)
        if denied:
            denials.add(row)
            if len(shown_denials) < report.MAX_TABLE_ROWS:
                shown_denials.append(row)

    store = AuditStore(audit_path, read_only=True)
    try:
        activity = collect.read_activity(
            store, start, end, on_statement=on_statement, progress=progress
        )
    finally:
        store.close()
        statements.close()
        denials.close()
    progress(f"{activity.events} events read")
    _write_table(
        out_dir, "sessions", collect.SESSION_FIELDS, list(activity.sessions.values())
    )

    progress("writing the report")
    page = report.render(
        start=start,
        end=end,
        generated=generated,
        grants=grants,
        activity=activity,
        denials=shown_denials,
        denials_total=activity.denials,
        verify_ok=verify_ok,
        verify_lines=verify_lines,
        notes=notes,
    )
    (out_dir / "report.html").write_text(page, encoding="utf-8", errors=ENCODING_ERRORS)

    progress("hashing the files")
    files = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(out_dir.iterdir())
        if p.name != MANIFEST
    }
    manifest = {
        "generator": f"pamwire {__version__}",
        "generated": format_time(generated),
        "period": {"from": format_time(start), "to": format_time(end)},
        "counts": {
            "grants": len(grants),
            "sessions": len(activity.sessions),
            "statements": activity.statements,
            "denials": activity.denials,
            "events": activity.events,
        },
        "log_verify": {"ok": verify_ok, "report": verify_lines},
        "files": files,
    }
    (out_dir / MANIFEST).write_text(
        json.dumps(manifest, indent=1) + "\n", encoding="utf-8"
    )
    return manifest


def parse_period(since: str, until: str) -> tuple[float, float]:
    """Unix seconds for --from and --to; a date alone as --to means the end of
    that day. Raises PamwireError naming a bad value."""
    start = parse_time(since)
    end = parse_time(until)
    if _DATE_ONLY.fullmatch(until.strip()):
        end += 86400
    return start, end


def add_evidence_commands(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    common_parent: argparse.ArgumentParser,
) -> None:
    """Add `evidence export` to the top-level subparsers."""
    evidence = subparsers.add_parser("evidence", help="compliance evidence")
    sub = evidence.add_subparsers(title="evidence commands", metavar="ACTION")
    p = sub.add_parser(
        "export", parents=[common_parent], help="write an offline evidence bundle"
    )
    p.add_argument(
        "--from", dest="since", required=True, metavar="DATE", help="start (inclusive)"
    )
    p.add_argument(
        "--to",
        dest="until",
        required=True,
        metavar="DATE",
        help="end (exclusive; a date alone includes that whole day)",
    )
    p.add_argument(
        "--out", type=pathlib.Path, required=True, help="new folder to write"
    )
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from pamwire.config import default_config_path, load_config

    config = load_config(args.config or default_config_path())
    start, end = parse_period(args.since, args.until)
    grants = None
    if config.grants is not None:
        grants = config.resolve(config.grants.path)

    def progress(message: str) -> None:
        print(f"evidence: {message}", file=sys.stderr, flush=True)

    manifest = export_evidence(
        audit_path=config.resolve(config.audit.path),
        grants_path=grants,
        start=start,
        end=end,
        out_dir=args.out,
        progress=progress,
    )
    return 0 if manifest["log_verify"]["ok"] else 1
