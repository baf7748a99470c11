"""Passwords of minted accounts: drawn at random, sealed with AES-256-GCM at rest.

The key lives in its own file, created with mode 0600 the first time a password is
sealed. A `Secret` never shows its value in repr or str; only `reveal()` does, and
only the code that logs in upstream or mints the account calls it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pamwire.grants import GrantError

log = logging.getLogger("pamwire.grants.secrets")

# 32 random bytes, URL-safe base64 (43 characters): no quoting trouble anywhere.
PASSWORD_BYTES = 32
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM nonce size NIST SP 800-38D recommends
# The first byte of every sealed blob, so the format can change later.
_FORMAT_V1 = b"\x01"


class Secret:
    """A password that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The password itself; call only where it is handed to a database."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


def new_password() -> Secret:
    """A fresh random password of PASSWORD_BYTES random bytes."""
    return Secret(secrets.token_urlsafe(PASSWORD_BYTES))


class SecretBox:
    """Seals and opens passwords with the key in `key_file`.

    `context` binds a sealed blob to its owner (the grant and account), so a blob
    copied to another row does not open. Errors are GrantError naming the file.
    """

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._aead: AESGCM | None = None

    def __repr__(self) -> str:
        return f"SecretBox(key_file={str(self.key_file)!r})"

    def seal(self, secret: Secret, context: bytes) -> bytes:
        """Encrypt `secret`; creates the key file on first use."""
        aead = self._load(create=True)
        nonce = os.urandom(NONCE_BYTES)
        sealed = aead.encrypt(nonce, secret.reveal().encode("utf-8"), context)
        return _FORMAT_V1 + nonce + sealed

    def open(self, blob: bytes, context: bytes) -> Secret:
        """Decrypt a blob from seal(); GrantError if the key or blob does not fit."""
        if blob[:1] != _FORMAT_V1 or len(blob) < 1 + NONCE_BYTES + 16:
            raise GrantError("stored password is not in a known format")
        aead = self._load(create=False)
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            plain = aead.decrypt(nonce, sealed, context)
        except InvalidTag:
            raise GrantError(
                f"stored password does not open with key file {self.key_file} "
                "(other key, or the store was altered)"
            ) from None
        return Secret(plain.decode("utf-8"))

    def _load(self, *, create: bool) -> AESGCM:
        if self._aead is None:
            if create and not self.key_file.exists():
                _create_key_file(self.key_file)
            self._aead = AESGCM(_read_key_file(self.key_file))
        return self._aead


def _read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        raise GrantError(f"key file {path} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise GrantError(f"cannot read key file {path}: {error}") from None
    if mode & 0o077:
        log.warning("key file %s has mode %o; 600 is expected", path, mode)
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != KEY_BYTES:
        raise GrantError(f"key file {path} does not hold a {KEY_BYTES}-byte key")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key to `path` unless another process got there first.

    The key is written to a private temporary file and linked into place, so a
    reader never sees a half-written key and two writers cannot both win.
    """
    key = base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8))
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        else:
            log.info("created key file %s", path)
    except OSError as error:
        raise GrantError(f"cannot create key file {path}: {error.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)
