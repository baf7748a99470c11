"""Tests of password generation and sealing."""

from __future__ import annotations

import pathlib
import pickle
import stat

import pytest

from pamwire.grants import GrantError
from pamwire.grants.secrets import PASSWORD_BYTES, Secret, SecretBox, new_password


def test_secrets_passwords_are_long_and_fresh() -> None:
    passwords = {new_password().reveal() for _ in range(50)}
    assert len(passwords) == 50
    # URL-safe base64 of PASSWORD_BYTES bytes: 4 characters per 3 bytes.
    assert all(len(p) >= PASSWORD_BYTES * 4 // 3 for p in passwords)


def test_secrets_secret_hides_itself() -> None:
    secret = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
    assert secret == Secret("hunter2-very-secret")
    assert secret != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_secrets_key_file_created_private_on_first_seal(tmp_path: pathlib.Path) -> None:
    key_file = tmp_path / "grants.key"
    box = SecretBox(key_file)
    assert not key_file.exists()
    sealed = box.seal(Secret("pw-123"), b"grant 1")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"pw-123" not in sealed
    assert list(tmp_path.iterdir()) == [key_file]  # no temporary left behind
    # a second box (another process) reads the same key
    assert SecretBox(key_file).open(sealed, b"grant 1").reveal() == "pw-123"
    assert "pw-123" not in repr(box)


def test_secrets_blob_bound_to_context_and_key(tmp_path: pathlib.Path) -> None:
    box = SecretBox(tmp_path / "a.key")
    sealed = box.seal(Secret("pw"), b"grant 1")
    with pytest.raises(GrantError, match="does not open"):
        box.open(sealed, b"grant 2")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(GrantError, match="does not open"):
        box.open(tampered, b"grant 1")
    other = SecretBox(tmp_path / "b.key")
    other.seal(Secret("x"), b"")
    with pytest.raises(GrantError, match="does not open"):
        other.open(sealed, b"grant 1")
    with pytest.raises(GrantError, match="not in a known format"):
        box.open(b"\x02" + sealed[1:], b"grant 1")


def test_secrets_bad_or_missing_key_file(tmp_path: pathlib.Path) -> None:
    sealed = SecretBox(tmp_path / "a.key").seal(Secret("pw"), b"")
    with pytest.raises(GrantError, match="is missing"):
        SecretBox(tmp_path / "none.key").open(sealed, b"")
    bad = tmp_path / "bad.key"
    bad.write_text("not base64!\n")
    with pytest.raises(GrantError, match="does not hold a 32-byte key"):
        SecretBox(bad).open(sealed, b"")
