"""The demo's folder between runs: an earlier trail is moved aside, not reused."""

from __future__ import annotations

from pathlib import Path

from pamwire import demo


def test_demo_archives_an_earlier_trail(tmp_path: Path) -> None:
    for name in ("audit.db", "audit.db.head", "audit.db.journal-3", "audit.db.lock"):
        (tmp_path / name).write_text(name)
    demo._archive_trail(tmp_path)
    (aside,) = (tmp_path / "earlier-runs").iterdir()
    assert sorted(p.name for p in aside.iterdir()) == [
        "audit.db",
        "audit.db.head",
        "audit.db.journal-3",
    ]
    assert sorted(p.name for p in tmp_path.glob("audit.db*")) == ["audit.db.lock"]


def test_demo_without_an_earlier_trail_moves_nothing(tmp_path: Path) -> None:
    demo._archive_trail(tmp_path)
    assert not (tmp_path / "earlier-runs").exists()
